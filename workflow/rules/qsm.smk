# Input checks, then QSM from the SWI magnitude and phase: mask, unwrapping, echo fit, background removal,
# dipole inversion.


rule validate_inputs:
    """Cheap checks of a subject's files (deepnuclei.validate); QSM and registration wait for its record,
    so a bad input stops the run before any heavy step, with one line naming the file and the problem."""
    input:
        unpack(validation_inputs),
    output:
        validation_record("{subject}"),
    params:
        outside_view=lambda wildcards: outside_view(wildcards.subject),
    log:
        log_path("validate_inputs", "{subject}"),
    benchmark:
        benchmark_path("validate_inputs", "{subject}")
    conda:
        "../../envs/qsm.yaml"
    shell:
        "deepnuclei validate-inputs --t1 {input.t1} --magnitudes {input.magnitudes} --phases {input.phases}"
        " --sidecars {input.sidecars} --swi-labels {input.swi_labels} --t1-labels {input.t1_labels}"
        " --lookup {input.lookup} --outside-view {params.outside_view} --out {output} > {log} 2>&1"


rule qsm:
    input:
        magnitudes=lambda wildcards: swi_files(wildcards.subject, "mag"),
        phases=lambda wildcards: swi_files(wildcards.subject, "phase"),
        sidecars=lambda wildcards: swi_files(wildcards.subject, "phase", "json"),
        validated=validation_record("{subject}"),
    output:
        chi=qsm_output("{subject}", "Chimap.nii.gz", "{method}"),
        mask=qsm_output("{subject}", "mask.nii.gz", "{method}"),
        field=qsm_output("{subject}", "localfield.nii.gz", "{method}"),
        qc=report(qsm_qc("{subject}", "{method}"), caption="../report/qsm_qc.rst", category="QSM"),
    wildcard_constraints:
        method="[A-Za-z0-9]+",
    params:
        settings=lambda wildcards: as_json(qsm_settings(wildcards.subject, wildcards.method)),
    threads: QSM["threads"]
    resources:
        # 1.2 GB measured on the demo's 1.0 M-voxel slab (3 echoes); the paper's 9.6 M voxels need ~10x
        mem_mb=attempt_scaled(16000),
        runtime=attempt_scaled(60),
    log:
        log_path("qsm_{method}", "{subject}"),
    benchmark:
        benchmark_path("qsm_{method}", "{subject}")
    conda:
        "../../envs/qsm.yaml"
    shell:
        "deepnuclei qsm --magnitudes {input.magnitudes} --phases {input.phases} --sidecars {input.sidecars}"
        " --settings '{params.settings}' --threads {threads} --out-chi {output.chi} --out-mask {output.mask}"
        " --out-field {output.field} --qc {output.qc} > {log} 2>&1"


rule qsm_metrics:
    """Every evaluated QSM method against the simulated truth, per cohort: the main cohort's table has no
    suffix (results/qsm/qsm_metrics.csv), another cohort's is qsm_metrics_<cohort>.csv."""
    input:
        maps=lambda wildcards: [case["chi"] for case in qsm_metric_cases(wildcards.cohort_suffix)],
        masks=lambda wildcards: [case["mask"] for case in qsm_metric_cases(wildcards.cohort_suffix)],
        truths=lambda wildcards: [case["truth"] for case in qsm_metric_cases(wildcards.cohort_suffix)],
    output:
        RESULTS / "qsm" / "qsm_metrics{cohort_suffix}.csv",
    wildcard_constraints:
        cohort_suffix="(_[A-Za-z0-9]+)?",
    params:
        cases=lambda wildcards: as_json(qsm_metric_cases(wildcards.cohort_suffix)),
    log:
        log_path("qsm_metrics{cohort_suffix}"),
    benchmark:
        benchmark_path("qsm_metrics{cohort_suffix}")
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "deepnuclei qsm-metrics --cases '{params.cases}' --out {output} > {log} 2>&1"
