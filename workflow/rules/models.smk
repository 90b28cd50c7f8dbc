# Training of each configured model (GPU when present) and its inference per session. Checkpoints are
# not outputs: Snakemake would delete them with an incomplete job, and a rerun resumes from them.

wildcard_constraints:
    model="|".join(re.escape(model) for model in MODELS) or "(?!)",


rule train:
    """One model on its plan file (results/plan/train_<model>.json: its settings and training cases)."""
    input:
        plan=lambda wildcards: plan_file(f"train_{wildcards.model}"),
        cases=training_inputs,
    output:
        summary=model_file("{model}", "summary.json"),
        log_csv=model_file("{model}", "log.csv"),
        curves=report(model_file("{model}", "curves.png"), caption="../report/curves.rst", category="Training",
                      subcategory="{model}"),
    wildcard_constraints:
        model="|".join(re.escape(model) for model in MODELS if PLAN.trained(model)) or "(?!)",
    params:
        out_dir=lambda wildcards: model_file(wildcards.model, ""),
    threads: config["training"]["threads"]
    resources:  # a guess at the papers' scale (no GPU machine measured it)
        gpu=config["training"]["gpus"],
        mem_mb=attempt_scaled(16000),
        runtime=attempt_scaled(24 * 60),
    log:
        log_path("train_{model}"),
    benchmark:
        benchmark_path("train_{model}")
    conda:
        "../../envs/torch.yaml"
    shell:
        "deepnuclei train --plan {input.plan} --out-dir {params.out_dir} --threads {threads} > {log} 2>&1"


# Inference writes a model's labels on its own grid and, where the session's registration links it to the
# other grid, there too (one job, not two: a cohort of 1,000 sessions and 10 models plans 10,000 fewer jobs).
# One rule per grid, and one for T1w-space models on sessions without SWI.
UNREGISTERED = PLAN.sessions_where(registered=False)  # usually none or few: their alternation stays short
for space, registered in (("SWI", True), ("T1w", True), *((("T1w", False),) if UNREGISTERED else ())):
    other = "T1w" if space == "SWI" else "SWI"

    rule:
        name:
            f"infer_{space.lower()}" + ("" if registered else "_only")
        input:
            unpack(lambda wildcards, registered=registered, other=other: {
                "model": trained_model(wildcards.model),
                "channels": model_inputs(wildcards.model, wildcards.subject),
                **({"other_grid": grid_image(wildcards.subject, other),
                    "transform": registration_transform(wildcards.subject)} if registered else {})}),
            record=preprocessed("{subject}", "padding.json", space),
        output:
            dseg=segmentation("{model}", "{subject}", space),
            other=segmentation("{model}", "{subject}", other) if registered else [],
            record=inference_record("{model}", "{subject}"),
        wildcard_constraints:
            model="|".join(re.escape(model) for model in MODELS if PLAN.native_space(model) == space) or "(?!)",
            subject=(f"(?!({'|'.join(UNREGISTERED)})$){SESSION_KEY}" if registered else "|".join(UNREGISTERED)),
        params:
            weights=lambda wildcards: model_weights(wildcards.model),
            settings=as_json({key: value for key, value in config["inference"].items() if key != "threads"}),
            other=lambda wildcards, input, output: (f"--other-grid {input.other_grid} --transform {input.transform}"
                                                    f" --out-other {output.other}" if output.other else ""),
            interpolation=REGISTRATION["label_interpolation"],
        threads: config["inference"]["threads"]
        resources:
            gpu=config["training"]["gpus"],
            mem_mb=attempt_scaled(8000),
            runtime=attempt_scaled(60),
        log:
            log_path("infer_{model}", "{subject}"),
        benchmark:
            benchmark_path("infer_{model}", "{subject}")
        conda:
            "../../envs/torch.yaml"
        shell:
            "deepnuclei infer --checkpoint {params.weights} --inputs {input.channels} --padding-record {input.record}"
            " --settings '{params.settings}' --out-dseg {output.dseg} --out-json {output.record} --threads {threads}"
            " {params.other} --interpolation {params.interpolation} > {log} 2>&1"


rule export_model:
    """A trained model as one file (deepnuclei.bundle) that `models.<name>.bundle` applies to another dataset;
    after the evaluation where the model is scored, so that the bundle carries its test scores."""
    input:
        summary=model_file("{model}", "summary.json"),
        evaluation=lambda wildcards: [EVALUATION / "overlap.csv"] if PLAN.scored(wildcards.model) else [],
        plan=lambda wildcards: plan_file(f"train_{wildcards.model}"),
        settings=lambda wildcards: LAYOUT.preprocess_plan(PLAN.native_space(wildcards.model),
                                                          PLAN.method_cohort(wildcards.model)),
    output:
        model_bundle("{model}"),
    wildcard_constraints:
        model="|".join(re.escape(model) for model in MODELS if PLAN.trained(model)) or "(?!)",
    params:
        model_dir=lambda wildcards: model_file(wildcards.model, ""),
    log:
        log_path("export_model_{model}"),
    conda:
        "../../envs/torch.yaml"
    shell:
        "deepnuclei export-model {params.model_dir} -o {output} > {log} 2>&1"
