# Nucleus measures for every session a method segments, labelled or not (deepnuclei.measures): volume and
# centre of mass on the T1 grid, susceptibility on the SWI grid (also in QSMxT's columns); one job per method
# (or `reference`) and session, merged into the group tables by one small job reading the case list (plan
# file measures.json).
# And a QC picture per segmented session: every method's labels over its T1 and QSM.


MEASURES_FILES = ("t1_labels", "t1", "swi_labels", "qsm")  # a case's optional files, as options of the command


rule measures_case:
    """Per structure the method writes: volume, centre of mass (world mm, T1 voxel indices), susceptibility."""
    input:
        t1_labels=lambda wildcards: measures_case(wildcards).t1_labels or [],
        t1=lambda wildcards: measures_case(wildcards).t1 or [],
        swi_labels=lambda wildcards: measures_case(wildcards).swi_labels or [],
        qsm=lambda wildcards: measures_case(wildcards).qsm or [],
        lookup=lambda wildcards: measures_case(wildcards).lookup,
    output:
        table=LAYOUT.measures("{method}", "{subject}"),
        qsmxt=LAYOUT.measures_qsmxt("{method}", "{subject}"),
    params:
        files=lambda wildcards, input: " ".join(f"--{name.replace('_', '-')} {input[name]}" for name in MEASURES_FILES
                                                if input[name]),
        task=lambda wildcards: f"--task {measures_case(wildcards).task}" if measures_case(wildcards).task else "",
    log:
        log_path("measures_{method}", "{subject}"),
    benchmark:
        benchmark_path("measures_{method}", "{subject}")
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "deepnuclei measures --subject {wildcards.subject} --method {wildcards.method} {params.files} {params.task}"
        " --lookup {input.lookup} --out {output.table} --out-qsmxt {output.qsmxt} > {log} 2>&1"


rule measures:
    """Every session x method x structure (long TSV, and QSMxT's columns: CSV) and a row per session x method
    (wide CSV)."""
    input:
        cases=plan_file("measures"),
        tables=plan_paths("measures", "out"),
        qsmxt_tables=plan_paths("measures", "qsmxt"),
        records=[path for path in plan_paths("measures", "inference_record") if path],
    output:
        table=report(LAYOUT.measures_table(), caption="../report/measures.rst", category="Measures"),
        wide=report(LAYOUT.measures_wide(), caption="../report/measures.rst", category="Measures"),
        qsmxt=report(LAYOUT.measures_qsmxt_table(), caption="../report/measures.rst", category="Measures"),
    log:
        log_path("measures"),
    benchmark:
        benchmark_path("measures")
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "deepnuclei merge-measures --plan {input.cases} --out-tsv {output.table} --out-csv {output.wide}"
        " --out-qsmxt {output.qsmxt} > {log} 2>&1"


rule segmentation_qc:
    input:
        t1=lambda wildcards: session(wildcards).t1 or [],
        qsm=lambda wildcards: qsm_output(wildcards.subject, "Chimap.nii.gz") if session(wildcards).has_swi else [],
        labels=lambda wildcards: [path for space in SPACES for path in qc_labels(wildcards.subject, space).values()],
    output:
        report(LAYOUT.segmentation_qc("{subject}"), caption="../report/segmentations_qc.rst",
               category="Segmentations QC", subcategory="{subject}"),
    params:
        images=lambda wildcards, input: " ".join(f"--{name} {input[name]}" for name in ("t1", "qsm") if input[name]),
        labels=lambda wildcards: " ".join(qc_option(wildcards.subject, space) for space in SPACES),
    log:
        log_path("segmentation_qc", "{subject}"),
    benchmark:
        benchmark_path("segmentation_qc", "{subject}")
    conda:
        "../../envs/evaluation.yaml"
    shell:
        "deepnuclei segmentation-qc {params.images} {params.labels} --title 'sub-{wildcards.subject}' --out {output}"
        " > {log} 2>&1"
