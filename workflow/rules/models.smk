# Training of each configured model (GPU when present) and its inference per subject. Checkpoints are
# not outputs: Snakemake would delete them with an incomplete job, and a rerun resumes from them.

wildcard_constraints:
    model="|".join(re.escape(model) for model in MODELS) or "(?!)",


rule train:
    input:
        training_inputs,
    output:
        summary=model_file("{model}", "summary.json"),
        log_csv=model_file("{model}", "log.csv"),
        curves=report(model_file("{model}", "curves.png"), caption="../report/curves.rst", category="Training",
                      subcategory="{model}"),
    params:
        settings=lambda wildcards: as_json(MODELS[wildcards.model]),
        cases=lambda wildcards: as_json(training_cases(wildcards.model)),
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
        "deepnuclei train --settings '{params.settings}' --cases '{params.cases}' --out-dir {params.out_dir}"
        " --threads {threads} > {log} 2>&1"


rule infer:
    input:
        summary=model_file("{model}", "summary.json"),
        channels=lambda wildcards: model_inputs(wildcards.model, wildcards.subject),
        record=preprocessed("{subject}", "padding.json"),
    output:
        dseg=segmentation("{model}", "{subject}", "SWI"),
        record=inference_record("{model}", "{subject}"),
    params:
        checkpoint=lambda wildcards: model_file(wildcards.model, "checkpoint_best.pt"),
        settings=as_json({key: value for key, value in config["inference"].items() if key != "threads"}),
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
        "deepnuclei infer --checkpoint {params.checkpoint} --inputs {input.channels} --padding-record {input.record}"
        " --settings '{params.settings}' --out-dseg {output.dseg} --out-json {output.record} --threads {threads}"
        " > {log} 2>&1"
