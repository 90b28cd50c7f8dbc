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


# Inference: one job per session segments it with every model that reads its grid (a job per model and session
# made 1,000 sessions plan about 9,500 jobs more), on that grid and, where the session's registration links it to the
# other grid, there too. One rule per group of sessions that the same models segment (deepnuclei.plan.
# inference_groups): usually one per grid, its name `infer_swi` or `infer_t1w` (`_only`: sessions without SWI).
for group in PLAN.inference_groups():
    name = f"infer_{group.space.lower()}" + ("" if group.registered else "_only")
    same_space = [other for other in PLAN.inference_groups() if other.space == group.space]
    others = [key for other in same_space if other is not group and set(other.models) & set(group.models)
              for key in other.sessions]  # the sessions whose labels of this group's models another rule writes
    earlier = [other for other in same_space[:same_space.index(group)] if other.registered == group.registered]
    other_space = "T1w" if group.space == "SWI" else "SWI"

    rule:
        name:
            name + (f"_{len(earlier) + 1}" if earlier else "")
        input:
            unpack(lambda wildcards, group=group, other_space=other_space: {
                "channels": list(dict.fromkeys(path for model in group.models
                                               for path in PLAN.model_inputs(model, wildcards.subject))),
                **({"other_grid": grid_image(wildcards.subject, other_space),
                    "transform": registration_transform(wildcards.subject)} if group.registered else {})}),
            plans=[plan_file(f"infer_{model}") for model in group.models],
            models=[trained_model(model) for model in group.models],
            record=preprocessed("{subject}", "padding.json", group.space),
            settings=LAYOUT.settings("inference"),
        # per model: its labels on its grid, on the other grid where registered, its record, its passes. The labels'
        # sidecars (written beside them) are not declared: a tenth more files made 1,000 sessions plan slower
        output:
            [path for model in group.models for path in (segmentation(model, "{subject}", group.space),
             *([segmentation(model, "{subject}", other_space)] if group.registered else []),
             inference_record(model, "{subject}"), *PLAN.flip_passes(model, "{subject}").values())],
        wildcard_constraints:  # its sessions: a session's models on one grid belong to one group
            subject=session_constraint(group.sessions, others),
        params:
            other=lambda wildcards, input: (f"--other-grid {input.other_grid} --transform {input.transform}"
                                            if "transform" in input.keys() else ""),
            interpolation=REGISTRATION["label_interpolation"],
        threads: config["inference"]["threads"]
        resources:
            gpu=config["training"]["gpus"],
            mem_mb=attempt_scaled(8000),
            runtime=attempt_scaled(60 * len(group.models)),
        log:
            log_path(f"infer_{group.space.lower()}", "{subject}"),
        benchmark:
            benchmark_path(f"infer_{group.space.lower()}", "{subject}")
        conda:
            "../../envs/torch.yaml"
        shell:
            "deepnuclei infer-session --plans {input.plans} --subject {wildcards.subject} --settings {input.settings}"
            " {params.other} --interpolation {params.interpolation} --threads {threads} > {log} 2>&1"


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
