# Model inputs on the SWI grid: QSM and the registered T1 zero-padded to the model's matrix, clipped and
# rescaled to [0, 1], one file per channel (named by the BIDS suffixes the models' `inputs` list), the
# reference labels padded alike, and the record that maps predictions back onto the SWI grid.

rule preprocess_inputs:
    input:
        qsm=qsm_output("{subject}", "Chimap.nii.gz"),
        t1=t1_in_swi("{subject}"),
    output:
        qsm=preprocessed("{subject}", "Chimap.nii.gz"),
        t1=preprocessed("{subject}", "T1w.nii.gz"),
        record=preprocessed("{subject}", "padding.json"),
    params:
        settings=lambda wildcards: as_json(cohort_settings(wildcards.subject, "preprocess")),
    log:
        log_path("preprocess_inputs", "{subject}"),
    benchmark:
        benchmark_path("preprocess_inputs", "{subject}")
    conda:
        "../../envs/qsm.yaml"
    shell:
        "deepnuclei preprocess --qsm {input.qsm} --t1 {input.t1} --settings '{params.settings}' --out-qsm {output.qsm}"
        " --out-t1 {output.t1} --record {output.record} > {log} 2>&1"


rule preprocess_labels:
    input:
        labels=reference_labels("{subject}", "SWI"),
        record=preprocessed("{subject}", "padding.json"),
    output:
        preprocessed("{subject}", "dseg.nii.gz"),
    log:
        log_path("preprocess_labels", "{subject}"),
    benchmark:
        benchmark_path("preprocess_labels", "{subject}")
    conda:
        "../../envs/qsm.yaml"
    shell:
        "deepnuclei apply-padding --record {input.record} --input {input.labels} --output {output} > {log} 2>&1"
