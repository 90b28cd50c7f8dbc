# Evaluation: every method's segmentations on the SWI grid against the reference labels.


rule overlap:
    """Per subject, method and structure: Dice, precision, recall, distances, volumes, susceptibility,
    centre-of-mass error; for the main evaluation (overlap) or the LiNUS experiments."""
    input:
        predictions=lambda wildcards: [case["prediction"] for case in OVERLAP_CASES[wildcards.cases]()],
        references=lambda wildcards: [case["reference"] for case in OVERLAP_CASES[wildcards.cases]()],
        qsm=lambda wildcards: [case["qsm"] for case in OVERLAP_CASES[wildcards.cases]()],
    output:
        csv=RESULTS / "evaluation" / "{cases}.csv",
        markdown=report(RESULTS / "evaluation" / "{cases}_summary.md", caption="../report/overlap.rst",
                        category="Evaluation"),
    wildcard_constraints:
        cases="|".join(OVERLAP_CASES),
    params:
        cases=lambda wildcards: as_json(OVERLAP_CASES[wildcards.cases]()),
    log:
        log_path("overlap_{cases}"),
    benchmark:
        benchmark_path("overlap_{cases}")
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "deepnuclei overlap --cases '{params.cases}' --out-csv {output.csv} --out-markdown {output.markdown} > {log} 2>&1"


rule evaluation_tables:
    input:
        overlap=RESULTS / "evaluation" / "overlap.csv",
        benchmarks=[case["benchmark"] for case in timing_cases()],
        records=[case["record"] for case in timing_cases() if "record" in case],
    output:
        [evaluation_table(name, extension) for name in EVALUATION_TABLES for extension in ("csv", "tex")],
        [report(evaluation_table(name, "md"), caption="../report/tables.rst", category="Evaluation",
                subcategory="Tables") for name in EVALUATION_TABLES],
    params:
        timings=as_json(timing_cases()),
        models=as_json(MAIN_MODELS),
        ablations=as_json(ABLATION_METHODS),
        out_dir=EVALUATION,
    log:
        log_path("evaluation_tables"),
    benchmark:
        benchmark_path("evaluation_tables")
    conda:
        "../../envs/torch.yaml"  # parameter counts build the models
    shell:
        "deepnuclei evaluation-tables --overlap {input.overlap} --timings '{params.timings}' --models '{params.models}'"
        " --ablations '{params.ablations}' --out-dir {params.out_dir} > {log} 2>&1"


rule evaluation_figures:
    input:
        RESULTS / "evaluation" / "overlap.csv",
    output:
        [evaluation_figure(stem, "svg") for stem in figure_stems()],
        [report(evaluation_figure(stem, "png"), caption="../report/figures.rst", category="Evaluation",
                subcategory="Figures") for stem in figure_stems()],
    params:
        methods=list(MAIN_MODELS),
        out_dir=EVALUATION / "figures",
    log:
        log_path("evaluation_figures"),
    benchmark:
        benchmark_path("evaluation_figures")
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "deepnuclei evaluation-figures --overlap {input} --methods {params.methods} --out-dir {params.out_dir} > {log} 2>&1"


rule segmentation_overlays:
    input:
        image=qsm_output("{subject}", "Chimap.nii.gz"),
        labels=lambda wildcards: list(overlay_labels(wildcards.subject).values()),
    output:
        report(overlay_figure("{subject}"), caption="../report/overlays.rst", category="Segmentations",
               subcategory="{subject}"),
    params:
        labels=lambda wildcards: [f"{name}={path}" for name, path in overlay_labels(wildcards.subject).items()],
    log:
        log_path("segmentation_overlays", "{subject}"),
    benchmark:
        benchmark_path("segmentation_overlays", "{subject}")
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "deepnuclei overlays --image {input.image} --labels {params.labels} --title 'sub-{wildcards.subject}'"
        " --out {output} > {log} 2>&1"
