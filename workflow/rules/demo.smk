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

    rule demo_subject:
        input:
            template=rules.demo_template.output.template,
            settings=lambda wildcards: LAYOUT.settings("demo", session(wildcards).cohort),
        output:
            t1=bids("{subject}", "T1w.nii.gz"),
            swi=expand(bids("{{subject}}", "T2starw.nii.gz", echo="{echo}", part="{part}"), echo=ECHOES, part=["mag", "phase"]),
            sidecars=expand(bids("{{subject}}", "T2starw.json", echo="{echo}", part="{part}"), echo=ECHOES, part=["mag", "phase"]),
            labels_swi=dataset_labels("{subject}", "SWI"),
            labels_t1=dataset_labels("{subject}", "T1w"),
            truth=multiext(truth("{subject}", "space-SWI_"), "Chimap.nii.gz", "mask.nii.gz", "dseg.nii.gz",
                           "desc-local_field.nii.gz", "desc-total_field.nii.gz", "desc-phaseoffset.nii.gz"),
            truth_t1_labels=truth("{subject}", "space-T1w_dseg.nii.gz"),
            transform=truth("{subject}", "from-T1w_to-SWI_mode-image_xfm.tfm"),
            record=truth("{subject}", "truth.json"),
            qc=report(RESULTS / "qc" / "demo" / "sub-{subject}_demo.png", caption="../report/demo_qc.rst", category="Demo cohort"),
        params:
            bids_dir=BIDS,
            truth_dir=DEMO_ROOT / "truth",
        priority: PREPARATION_PRIORITY
        log:
            log_path("demo_subject", "{subject}"),
        benchmark:
            benchmark_path("demo_subject", "{subject}")
        conda:
            "../../envs/qsm.yaml"
        shell:
            "deepnuclei demo-subject {wildcards.subject} --template {input.template} --bids-dir {params.bids_dir}"
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
