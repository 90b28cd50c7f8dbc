# Evaluation: every method's segmentations against the reference labels, one job per session for all its methods
# (on the method's evaluation grid, see deepnuclei.plan), merged into the tables by one small job.


rule overlap_session:
    """Per method and structure of one session: Dice, precision, recall, distances, volumes, susceptibility,
    centre-of-mass error (a CSV per method)."""
    input:
        # ancient: a session added elsewhere rewrites the plan file; this session's own files below say when it reruns
        cases=ancient(lambda wildcards: plan_file(wildcards.cases)),
        files=overlap_inputs,
        lookup=LAYOUT.labels_lookup(),
    output:
        # the session's folder, which its key cannot spell: the rule's wildcards are `cases` and `session_dir`
        directory(LAYOUT.overlap_dir("{cases}", "{subject}")),
    params:
        subject=lambda wildcards: folder_key(wildcards.session_dir),
        largest_component="--largest-component" if config["evaluation"]["largest_component"] else "",
    wildcard_constraints:
        cases="|".join(OVERLAP_TABLES),
    log:
        log_path("overlap_session_{cases}", "{subject}", named=False),
    benchmark:
        benchmark_path("overlap_session_{cases}", "{subject}", named=False)
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "deepnuclei overlap-session --plan {input.cases} --subject {params.subject} {params.largest_component}"
        " --lookup {input.lookup} > {log} 2>&1"


rule overlap:
    """The per-case scores of the main evaluation (overlap) or of the LiNUS experiments, in one table."""
    input:
        cases=lambda wildcards: plan_file(wildcards.cases),
        sessions=lambda wildcards: [LAYOUT.overlap_dir(wildcards.cases, key) for key in PLAN.overlap_sessions(wildcards.cases)],
    output:
        csv=RESULTS / "evaluation" / "{cases}.csv",
        markdown=report(RESULTS / "evaluation" / "{cases}_summary.md", caption="../report/overlap.rst",
                        category="Evaluation"),
    wildcard_constraints:
        cases="|".join(OVERLAP_TABLES),
    log:
        log_path("overlap_{cases}"),
    benchmark:
        benchmark_path("overlap_{cases}")
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "deepnuclei merge-overlap --cases {input.cases} --out-csv {output.csv} --out-markdown {output.markdown} > {log} 2>&1"


rule evaluation_tables:
    input:
        overlap=RESULTS / "evaluation" / "overlap.csv",
        plan=plan_file("evaluation"),
        benchmarks=[case.benchmark for case in PLAN_CONTENTS["evaluation"].timings if case.benchmark],
        records=[case.record for case in PLAN_CONTENTS["evaluation"].timings if case.record],
        participants=PLAN_CONTENTS["evaluation"].participants.tsv or [],  # LiNUS Table I's form
    output:
        [evaluation_table(name, extension) for name in EVALUATION_TABLES for extension in ("csv", "tex")],
        [report(evaluation_table(name, "md"), caption="../report/tables.rst", category="Evaluation",
                subcategory="Tables") for name in EVALUATION_TABLES],
    params:
        out_dir=EVALUATION,
    log:
        log_path("evaluation_tables"),
    benchmark:
        benchmark_path("evaluation_tables")
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "deepnuclei evaluation-tables --overlap {input.overlap} --plan {input.plan} --out-dir {params.out_dir} > {log} 2>&1"


rule evaluation_figures:
    input:
        RESULTS / "evaluation" / "overlap.csv",
    output:
        [evaluation_figure(stem, "svg") for stem in figure_stems()],
        [report(evaluation_figure(stem, "png"), caption="../report/figures.rst", category="Evaluation",
                subcategory="Figures") for stem in figure_stems()],
    params:
        methods=PLAN.evaluated_methods(),
        qsm_reference=PLAN.qsm_reference(),
        out_dir=EVALUATION / "figures",
    threads: 4  # a process per method's figures (Snakemake gives at most --cores)
    log:
        log_path("evaluation_figures"),
    benchmark:
        benchmark_path("evaluation_figures")
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "deepnuclei evaluation-figures --overlap {input} --methods {params.methods}"
        " --qsm-reference {params.qsm_reference} --out-dir {params.out_dir} --workers {threads} > {log} 2>&1"


rule segmentation_overlays:
    input:
        image=lambda wildcards: qsm_output(wildcards.subject, "Chimap.nii.gz") if session(wildcards).has_swi
        else session(wildcards).t1,
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
