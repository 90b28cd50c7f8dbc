# The LiNUS paper's further experiments (Tables VI-IX) and 2D vs 2.5D LiNUS: models of the config's
# `linus_experiments`, trained and segmented by the rules of models.smk, scored by `overlap`
# (linus_experiments_overlap.csv), then tabled here. Not in the default run: `snakemake linus_experiments`.


rule linus_experiment_tables:
    input:
        overlap=RESULTS / "evaluation" / "linus_experiments_overlap.csv",
        benchmarks=[case["benchmark"] for case in experiment_timing_cases()],
        records=[case["record"] for case in experiment_timing_cases()],
        cohort_files=[path for cohort in experiment_cohorts().values() for path in (cohort["t1"], cohort["model_input"])],
        slice_predictions=[case["prediction"] for case in experiment_cases() if case["method"] in EXPERIMENTS["slices"]],
    output:
        [evaluation_table(name, extension) for name in LINUS_TABLES for extension in ("csv", "tex")],
        evaluation_table("linus_slice_consistency", "csv"),
        [report(evaluation_table(name, "md"), caption="../report/linus_experiments.rst", category="LiNUS experiments")
         for name in LINUS_TABLES],
    params:
        experiments=as_json({kind: EXPERIMENTS[kind] for kind in EXPERIMENT_TABLES}),
        models=as_json({method: {"task": MODELS[method]["task"], "cohort": MODELS[method].get("cohort", MAIN_COHORT)}
                        for method in experiment_methods()}),
        cohorts=as_json(experiment_cohorts()),
        timings=as_json(experiment_timing_cases()),
        slice_cases=as_json([case for case in experiment_cases() if case["method"] in EXPERIMENTS["slices"]]),
        out_dir=EVALUATION,
    log:
        log_path("linus_experiment_tables"),
    benchmark:
        benchmark_path("linus_experiment_tables")
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "deepnuclei linus-tables --overlap {input.overlap} --experiments '{params.experiments}'"
        " --models '{params.models}' --cohorts '{params.cohorts}' --timings '{params.timings}'"
        " --slice-cases '{params.slice_cases}' --out-dir {params.out_dir} > {log} 2>&1"


rule linus_experiments:
    """Target: the LiNUS experiment tables (CSV, Markdown, LaTeX) under results/evaluation/, and on the demo
    each further cohort's QSM metrics against its simulated truth (results/qsm/qsm_metrics_<cohort>.csv)."""
    input:
        [evaluation_table(name, extension) for name in LINUS_TABLES for extension in ("csv", "md", "tex")],
        [qsm_metrics_table(cohort) for cohort in experiment_cohorts() if cohort != MAIN_COHORT and DEMO["enabled"]],
