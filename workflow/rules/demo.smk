# The demo cohort: simulated subjects with known susceptibility, labels and T1->SWI transform.

rule demo_template:
    output:
        template=TEMPLATE_DIR / "template.npz",
        t1=TEMPLATE_DIR / "tpl-MNI152_T1w.nii.gz",
        labels=TEMPLATE_DIR / "tpl-MNI152_dseg.nii.gz",
    log:
        log_path("demo_template"),
    benchmark:
        benchmark_path("demo_template")
    params:
        out_dir=TEMPLATE_DIR,
    conda:
        "../../envs/qsm.yaml"
    shell:
        "deepnuclei demo-template --out-dir {params.out_dir} > {log} 2>&1"


# The simulated subjects exist only in demo mode: with a real dataset these rules would "make" a missing
# subject file by simulation, writing into the dataset, instead of stopping on it.
if DEMO["enabled"]:

    # a simulated participant (the demo has no sessions): the rule's wildcard is `participant`, no session key
    rule demo_subject:
        input:
            template=rules.demo_template.output.template,
            settings=lambda wildcards: LAYOUT.settings("demo", SESSIONS[wildcards.participant].cohort),
        output:
            t1=bids("{participant}", "T1w.nii.gz"),
            swi=expand(bids("{{participant}}", "T2starw.nii.gz", echo="{echo}", part="{part}"), echo=ECHOES, part=["mag", "phase"]),
            sidecars=expand(bids("{{participant}}", "T2starw.json", echo="{echo}", part="{part}"), echo=ECHOES, part=["mag", "phase"]),
            labels_swi=dataset_labels("{participant}", "SWI"),
            labels_t1=dataset_labels("{participant}", "T1w"),
            truth=multiext(truth("{participant}", "space-SWI_"), "Chimap.nii.gz", "mask.nii.gz", "dseg.nii.gz",
                           "desc-local_field.nii.gz", "desc-total_field.nii.gz", "desc-phaseoffset.nii.gz"),
            truth_t1_labels=truth("{participant}", "space-T1w_dseg.nii.gz"),
            transform=truth("{participant}", "from-T1w_to-SWI_mode-image_xfm.tfm"),
            record=truth("{participant}", "truth.json"),
            qc=report(RESULTS / "qc" / "demo" / "sub-{participant}_demo.png", caption="../report/demo_qc.rst", category="Demo cohort"),
        params:
            bids_dir=BIDS,
            truth_dir=DEMO_ROOT / "truth",
        priority: PREPARATION_PRIORITY
        log:
            log_path("demo_subject", "{participant}"),
        benchmark:
            benchmark_path("demo_subject", "{participant}")
        conda:
            "../../envs/qsm.yaml"
        shell:
            "deepnuclei demo-subject {wildcards.participant} --template {input.template} --bids-dir {params.bids_dir}"
            " --truth-dir {params.truth_dir} --qc {output.qc} --settings {input.settings} > {log} 2>&1"


    rule demo_dataset:
        input:
            settings=LAYOUT.settings("demo"),
        output:
            description=BIDS / "dataset_description.json",
            participants=BIDS / "participants.tsv",
            lookup=BIDS / "derivatives" / "labels" / "dseg.tsv",
        params:
            bids_dir=BIDS,
        log:
            log_path("demo_dataset"),
        benchmark:
            benchmark_path("demo_dataset")
        conda:
            "../../envs/qsm.yaml"
        shell:
            "deepnuclei demo-dataset --bids-dir {params.bids_dir} --settings {input.settings} > {log} 2>&1"
