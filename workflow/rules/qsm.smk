# Input checks, then QSM from the SWI magnitude and phase: mask, unwrapping, echo fit, background removal,
# dipole inversion; or a session's existing QSM map (qsm.input) in our unit.


# Cheap checks of a session's files (deepnuclei.validate), in two jobs: its images (QSM, registration and
# the atlas wait for that record) and its reference labels (the relabelling waits for that one), so that
# labels added or redrawn later redo what reads labels, not QSM and registration. Both run before any
# other job (priority), so a bad input stops the run before any heavy step, with one line naming the file.
for checked in ("inputs", "labels"):

    rule:
        name:
            f"validate_{checked}"
        input:
            unpack(lambda wildcards, checked=checked: validation_inputs(wildcards.subject, checked == "labels")),
        output:
            validation_record("{subject}", checked),
        params:
            outside_view=lambda wildcards: PLAN.cohort_overrides("outside_view", session(wildcards).cohort, []),
            ignore=config["labels"]["ignore"],
        priority: 100
        log:
            log_path(f"validate_{checked}", "{subject}"),
        benchmark:
            benchmark_path(f"validate_{checked}", "{subject}")
        conda:
            "../../envs/qsm.yaml"
        shell:
            "deepnuclei validate-inputs --t1 {input.t1} --magnitudes {input.magnitudes} --phases {input.phases}"
            " --sidecars {input.sidecars} --swi-labels {input.swi_labels} --t1-labels {input.t1_labels}"
            " --lookup {input.lookup} --outside-view {params.outside_view} --ignore-labels {params.ignore}"
            " --chimap {input.chimap} --out {output} > {log} 2>&1"


rule qsm:
    input:
        magnitudes=lambda wildcards: swi_magnitudes(wildcards.subject),
        phases=lambda wildcards: session(wildcards).phases,
        sidecars=lambda wildcards: session(wildcards).sidecars,
        validated=validation_record("{subject}"),
        settings=lambda wildcards: LAYOUT.settings(f"qsm_{wildcards.method}", session(wildcards).cohort),
    output:
        chi=qsm_output("{subject}", "Chimap.nii.gz", "{method}"),
        mask=qsm_output("{subject}", "mask.nii.gz", "{method}"),
        field=qsm_output("{subject}", "localfield.nii.gz", "{method}"),
        record=qsm_output("{subject}", "Chimap.json", "{method}"),
        qc=report(qsm_qc("{subject}", "{method}"), caption="../report/qsm_qc.rst", category="QSM"),
    wildcard_constraints:
        method="|".join(QSM["methods"]),
    params:
        sources=lambda wildcards, input: source_uris("qsm", [*input.magnitudes, *input.phases]),
    threads: QSM["threads"]
    resources:
        # 1.2 GB measured on the demo's 1.0 M-voxel slab (3 echoes); the paper's 9.6 M voxels need ~10x
        mem_mb=attempt_scaled(16000),
        runtime=attempt_scaled(60),
    priority: PREPARATION_PRIORITY
    log:
        log_path("qsm_{method}", "{subject}"),
    benchmark:
        benchmark_path("qsm_{method}", "{subject}")
    conda:
        "../../envs/qsm.yaml"
    shell:
        "deepnuclei qsm --magnitudes {input.magnitudes} --phases {input.phases} --sidecars {input.sidecars}"
        " --settings {input.settings} --threads {threads} --out-chi {output.chi} --out-mask {output.mask}"
        " --out-field {output.field} --qc {output.qc} --out-record {output.record} --sources {params.sources} > {log} 2>&1"


rule qsm_existing:
    """A session's existing QSM map in ppm, its unit as validate_inputs found it; non-finite voxels zero."""
    input:
        magnitudes=lambda wildcards: swi_magnitudes(wildcards.subject),
        validated=validation_record("{subject}"),
    output:
        chi=qsm_output("{subject}", "Chimap.nii.gz", EXISTING_QSM),
        record=qsm_output("{subject}", "Chimap.json", EXISTING_QSM),
        qc=report(qsm_qc("{subject}", EXISTING_QSM), caption="../report/qsm_qc.rst", category="QSM"),
    params:
        sources=lambda wildcards: source_uris("qsm", [session(wildcards).chimap]),
    priority: PREPARATION_PRIORITY
    log:
        log_path("qsm_existing", "{subject}"),
    benchmark:
        benchmark_path("qsm_existing", "{subject}")
    conda:
        "../../envs/qsm.yaml"
    shell:
        "deepnuclei existing-qsm --validated {input.validated} --magnitudes {input.magnitudes} --out-chi {output.chi}"
        " --out-record {output.record} --qc {output.qc} --sources {params.sources} > {log} 2>&1"


rule qsm_metrics:
    """Every evaluated QSM method against the simulated truth, per cohort: the main cohort's table has no
    suffix (results/qsm/qsm_metrics.csv), another cohort's is qsm_metrics_<cohort>.csv."""
    input:
        cases=lambda wildcards: plan_file(f"qsm_metrics{wildcards.cohort_suffix}"),
        maps=lambda wildcards: plan_paths(f"qsm_metrics{wildcards.cohort_suffix}", "chi"),
        masks=lambda wildcards: plan_paths(f"qsm_metrics{wildcards.cohort_suffix}", "mask"),
        truths=lambda wildcards: plan_paths(f"qsm_metrics{wildcards.cohort_suffix}", "truth"),
    output:
        RESULTS / "qsm" / "qsm_metrics{cohort_suffix}.csv",
    wildcard_constraints:
        cohort_suffix="(_[A-Za-z0-9]+)?",
    log:
        log_path("qsm_metrics{cohort_suffix}"),
    benchmark:
        benchmark_path("qsm_metrics{cohort_suffix}")
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "deepnuclei qsm-metrics --cases {input.cases} --out {output} > {log} 2>&1"
