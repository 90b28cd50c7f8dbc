# Reference labels in the package's numbering (deepnuclei.labels), matched by name through the dataset's
# dseg.tsv: whatever order a dataset numbers its structures in, training, inference and scoring see one
# numbering, listed in results/labels/dseg.tsv. A session labelled on one grid only gets the other grid's
# labels moved through its T1 -> SWI registration (desc-moved).

LOOKUPS = sorted({found.lookup for found in SESSIONS.values() if found.labelled and found.lookup})


rule labels_lookup:
    """The structures the dataset's reference labels hold, as a dseg.tsv in the package's numbering."""
    input:
        LOOKUPS,
    output:
        LAYOUT.labels_lookup(),
    params:
        lookups=f"--lookups {' '.join(LOOKUPS)}" if LOOKUPS else "",
        ignore=f"--ignore {' '.join(config['labels']['ignore'])}" if config["labels"]["ignore"] else "",
    log:
        log_path("labels_lookup"),
    benchmark:
        benchmark_path("labels_lookup")
    conda:
        "../../envs/qsm.yaml"
    shell:
        "deepnuclei labels-lookup {params.lookups} {params.ignore} --out {output} > {log} 2>&1"


rule segmentations_lookup:
    """The dseg.tsv of every segmentation under results/segmentations/: the package's numbering."""
    output:
        RESULTS / "segmentations" / "dseg.tsv",
    log:
        log_path("segmentations_lookup"),
    benchmark:
        benchmark_path("segmentations_lookup")
    conda:
        "../../envs/qsm.yaml"
    shell:
        "deepnuclei labels-lookup --all --out {output} > {log} 2>&1"


rule relabel_reference:
    input:
        labels=lambda wildcards: session(wildcards).labels[wildcards.space],
        lookup=lambda wildcards: session(wildcards).lookup or [],
        validated=validation_record("{subject}", "labels"),
    output:
        LAYOUT.reference_labels("{subject}", "{space}"),
    params:
        lookup=lambda wildcards, input: f"--lookup {input.lookup}" if input.lookup else "",
        ignore=f"--ignore {' '.join(config['labels']['ignore'])}" if config["labels"]["ignore"] else "",
    log:
        log_path("relabel_reference_{space}", "{subject}"),
    benchmark:
        benchmark_path("relabel_reference_{space}", "{subject}")
    conda:
        "../../envs/qsm.yaml"
    shell:
        "deepnuclei relabel --labels {input.labels} {params.lookup} {params.ignore} --out {output} > {log} 2>&1"


rule move_reference_labels:
    """Labels drawn on one grid only, moved to the other through the session's registration."""
    input:
        labels=lambda wildcards: LAYOUT.reference_labels(wildcards.subject, "T1w" if wildcards.space == "SWI" else "SWI"),
        reference=lambda wildcards: grid_image(wildcards.subject, wildcards.space),
        transform=registration_transform("{subject}"),
    output:
        LAYOUT.reference_labels("{subject}", "{space}", moved=True),
    params:
        interpolation=REGISTRATION["label_interpolation"],
    log:
        log_path("move_reference_labels_{space}", "{subject}"),
    benchmark:
        benchmark_path("move_reference_labels_{space}", "{subject}")
    conda:
        "../../envs/registration.yaml"
    shell:
        "deepnuclei move-labels --labels {input.labels} --reference {input.reference} --transform {input.transform}"
        " --to {wildcards.space} --interpolation {params.interpolation} --out {output} > {log} 2>&1"


rule bids_validator:
    """The BIDS reference validator's report (never blocks: a dataset this workflow can read runs anyway, even
    one without dataset_description.json)."""
    output:
        json=RESULTS / "validation" / "bids_validator.json",
        text=RESULTS / "validation" / "bids_validator.txt",
    params:
        bids_dir=BIDS,
    log:
        log_path("bids_validator"),
    benchmark:
        benchmark_path("bids_validator")
    conda:
        "../../envs/qsm.yaml"
    shell:
        "deepnuclei bids-validator --bids-dir {params.bids_dir} --out-json {output.json} --out-text {output.text} > {log} 2>&1"
