# Nucleus measures for every session a method segments, labelled or not (deepnuclei.measures): volume and
# centre of mass on the T1 grid, susceptibility on the SWI grid (also in QSMxT's columns), and a QC picture of
# the labels over the T1 and QSM. One job per session reads its cases from the plan file measures.json, every
# method's (and `reference`'s), and one small job merges the sessions into the group tables.


rule measures_session:
    """Per method and structure: volume, centre of mass (world mm, T1 voxel indices), susceptibility; a TSV
    and a QSMxT CSV per method in the session's folder; every method's labels in one picture, a row each."""
    input:
        # ancient: a session added elsewhere rewrites the plan file; this session's own files below say when it reruns
        cases=ancient(plan_file("measures")),
        files=measures_inputs,
    output:
        # the session's folder, which its key cannot spell: the rule's one wildcard is `session_dir`
        measures=directory(LAYOUT.measures_dir("{subject}")),
        qc=report(LAYOUT.segmentation_qc("{subject}"), caption="../report/segmentations_qc.rst",
                  category="Segmentations QC", subcategory="{session_dir}"),
    params:
        subject=lambda wildcards: folder_key(wildcards.session_dir),
    log:
        log_path("measures_session", "{subject}", named=False),
    benchmark:
        benchmark_path("measures_session", "{subject}", named=False)
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "deepnuclei measures --plan {input.cases} --subject {params.subject} --qc {output.qc} > {log} 2>&1"


rule measures:
    """Every session x method x structure (long TSV, and QSMxT's columns: CSV), a row per session x method
    (wide CSV), and the measures with their intervals (PNG)."""
    input:
        cases=plan_file("measures"),
        sessions=[LAYOUT.measures_dir(key) for key in PLAN.measures_sessions()],
        records=[path for path in plan_paths("measures", "inference_record") if path],
    output:
        table=report(LAYOUT.measures_table(), caption="../report/measures.rst", category="Measures"),
        wide=report(LAYOUT.measures_wide(), caption="../report/measures.rst", category="Measures"),
        qsmxt=report(LAYOUT.measures_qsmxt_table(), caption="../report/measures.rst", category="Measures"),
        figure=report(LAYOUT.measures_intervals_figure(), caption="../report/measure_intervals.rst",
                      category="Measures"),
    log:
        log_path("measures"),
    benchmark:
        benchmark_path("measures")
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "deepnuclei merge-measures --plan {input.cases} --out-tsv {output.table} --out-csv {output.wide}"
        " --out-qsmxt {output.qsmxt} --out-figure {output.figure} > {log} 2>&1"
