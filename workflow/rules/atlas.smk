# Atlas baselines, evaluated like any model: labels on the T1 grid (segmentation_to_swi moves them to the
# SWI grid where the session has one).

ATLAS = config["atlas"]
ATLAS_SETTINGS = as_json({key: value for key, value in ATLAS.items() if key != "threads"})  # threads: no rerun


rule atlas_single:
    input:
        t1=lambda wildcards: grid_image(wildcards.subject, "T1w"),
        atlas_t1=ATLAS["template_t1"],
        atlas_labels=ATLAS["template_labels"],
        validated=validation_record("{subject}"),
    output:
        segmentation("atlas", "{subject}", "T1w"),
    params:
        settings=ATLAS_SETTINGS,
    threads: ATLAS["threads"]
    resources:  # demo: 1.0 GB, under a minute; real 1 mm T1s may need more
        mem_mb=attempt_scaled(4000),
        runtime=attempt_scaled(60),
    log:
        log_path("atlas_single", "{subject}"),
    benchmark:
        benchmark_path("atlas_single", "{subject}")
    conda:
        "../../envs/registration.yaml"
    shell:
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS={threads} deepnuclei atlas --t1 {input.t1} --atlas-t1 {input.atlas_t1}"
        " --atlas-labels {input.atlas_labels} --out {output} --settings '{params.settings}' > {log} 2>&1"


rule atlas_jlf:
    """Joint label fusion of the first training sessions (plan file atlas_jlf: their T1 and labels)."""
    input:
        t1=lambda wildcards: grid_image(wildcards.subject, "T1w"),
        atlases=plan_file("atlas_jlf"),
        atlas_files=[path for key in ("t1", "labels") for path in plan_paths("atlas_jlf", key)],
        validated=validation_record("{subject}"),
    output:
        segmentation("atlas-jlf", "{subject}", "T1w"),
    params:
        settings=ATLAS_SETTINGS,
    threads: ATLAS["threads"]
    resources:  # demo: 1.1 GB and 2.5 minutes with 3 atlases
        mem_mb=attempt_scaled(16000),
        runtime=attempt_scaled(480),
    log:
        log_path("atlas_jlf", "{subject}"),
    benchmark:
        benchmark_path("atlas_jlf", "{subject}")
    conda:
        "../../envs/registration.yaml"
    shell:
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS={threads} deepnuclei atlas --t1 {input.t1} --atlas-list {input.atlases}"
        " --out {output} --settings '{params.settings}' > {log} 2>&1"
