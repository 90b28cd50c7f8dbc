# The LiNUS paper's further experiments (Tables VI-IX) and 2D vs 2.5D LiNUS: models of the config's
# `linus_experiments`, trained and segmented by the rules of models.smk, scored by `overlap`
# (linus_experiments_overlap.csv), then tabled here from the plan file linus_experiments.json. Not in the
# default run: `snakemake linus_experiments`.

EXPERIMENTS = PLAN_CONTENTS.get("linus_experiments")

if EXPERIMENTS:

    rule linus_experiment_tables:
        input:
            overlap=RESULTS / "evaluation" / "linus_experiments_overlap.csv",
            plan=plan_file("linus_experiments"),
            benchmarks=[case.benchmark for case in EXPERIMENTS.timings if case.benchmark],
            records=[case.record for case in EXPERIMENTS.timings],
            cohort_files=[path for cohort in EXPERIMENTS.cohorts.values() for path in (cohort.t1, cohort.model_input)],
            slice_predictions=[case.prediction for case in EXPERIMENTS.slice_cases],
        output:
            [evaluation_table(name, extension) for name in LINUS_TABLES for extension in ("csv", "tex")],
            evaluation_table("linus_slice_consistency", "csv"),
            [report(evaluation_table(name, "md"), caption="../report/linus_experiments.rst", category="LiNUS experiments")
             for name in LINUS_TABLES],
        params:
            out_dir=EVALUATION,
        log:
            log_path("linus_experiment_tables"),
        benchmark:
            benchmark_path("linus_experiment_tables")
        conda:
            "../../envs/evaluation.yaml"
        shell:
            "deepnuclei linus-tables --overlap {input.overlap} --plan {input.plan} --out-dir {params.out_dir} > {log} 2>&1"

    rule linus_experiments:
        """Target: the LiNUS experiment tables (CSV, Markdown, LaTeX) under results/evaluation/, and on the demo
        each further cohort's QSM metrics against its simulated truth (results/qsm/qsm_metrics_<cohort>.csv)."""
        input:
            [evaluation_table(name, extension) for name in LINUS_TABLES for extension in ("csv", "md", "tex")],
            [qsm_metrics_table(cohort) for cohort in EXPERIMENTS.cohorts if cohort != MAIN_COHORT and DEMO["enabled"]],

else:

    rule linus_experiments:
        """Not plannable on this dataset: the plan's note says why (results/plan/dataset.json)."""
        input:
            lambda wildcards: raise_workflow_error(
                next(note for note in PLAN_CONTENTS["dataset"].notes if note.startswith("linus_experiments"))),
