# Model inputs on a model's grid, one file per channel (named by the BIDS suffixes the models' `inputs`
# list), resampled where the space's settings (a plan file: the config's, or the bundled models') ask for another
# voxel size or orientation, clipped and rescaled to [0, 1] after zero-padding to the space's matrix; the reference labels padded
# alike; and the record that maps predictions back. SWI space: QSM and the registered T1 on the SWI slab (the
# DB-ResUNet paper); T1w space: the T1 on its own grid (the LiNUS paper), for sessions with or without SWI. SWI-space
# models need the T1 as well (QSM alone is registered to nothing): the plan segments only sessions with both.

rule preprocess_swi:
    input:
        qsm=lambda wildcards: qsm_output(wildcards.subject, "Chimap.nii.gz"),
        t1=t1_in_swi("{subject}"),
        settings=lambda wildcards: LAYOUT.preprocess_plan("SWI", SESSIONS[wildcards.subject].cohort),
    output:
        qsm=preprocessed("{subject}", "Chimap.nii.gz", "SWI"),
        t1=preprocessed("{subject}", "T1w.nii.gz", "SWI"),
        record=preprocessed("{subject}", "padding.json", "SWI"),
    priority: PREPARATION_PRIORITY
    log:
        log_path("preprocess_swi", "{subject}"),
    benchmark:
        benchmark_path("preprocess_swi", "{subject}")
    conda:
        "../../envs/qsm.yaml"
    shell:
        "deepnuclei preprocess --qsm {input.qsm} --t1 {input.t1} --settings {input.settings} --out-qsm {output.qsm}"
        " --out-t1 {output.t1} --record {output.record} > {log} 2>&1"


rule preprocess_t1w:
    input:
        t1=lambda wildcards: grid_image(wildcards.subject, "T1w"),
        validated=validation_record("{subject}"),
        settings=LAYOUT.preprocess_plan("T1w"),
    output:
        t1=preprocessed("{subject}", "T1w.nii.gz", "T1w"),
        record=preprocessed("{subject}", "padding.json", "T1w"),
    log:
        log_path("preprocess_t1w", "{subject}"),
    benchmark:
        benchmark_path("preprocess_t1w", "{subject}")
    conda:
        "../../envs/qsm.yaml"
    shell:
        "deepnuclei preprocess --t1 {input.t1} --settings {input.settings} --out-t1 {output.t1}"
        " --record {output.record} > {log} 2>&1"


rule preprocess_labels:
    input:
        labels=lambda wildcards: PLAN.reference_labels(wildcards.subject, wildcards.space),
        record=preprocessed("{subject}", "padding.json", "{space}"),
    output:
        preprocessed("{subject}", "dseg.nii.gz", "{space}"),
    log:
        log_path("preprocess_labels_{space}", "{subject}"),
    benchmark:
        benchmark_path("preprocess_labels_{space}", "{subject}")
    conda:
        "../../envs/qsm.yaml"
    shell:
        "deepnuclei apply-padding --record {input.record} --input {input.labels} --output {output} > {log} 2>&1"
