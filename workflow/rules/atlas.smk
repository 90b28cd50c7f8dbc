# Atlas baselines, evaluated like any model: labels in T1 space and on the SWI grid.

ATLAS = config["atlas"]


rule atlas_single:
    input:
        t1=bids("{subject}", "T1w.nii.gz"),
        atlas_t1=ATLAS["template_t1"],
        atlas_labels=ATLAS["template_labels"],
        swi_reference=lambda wildcards: swi_magnitudes(wildcards.subject)[0],
        transform=registration_transform("{subject}"),
    output:
        t1=segmentation("atlas", "{subject}", "T1w"),
        swi=segmentation("atlas", "{subject}", "SWI"),
    params:
        settings=as_json(ATLAS),
    threads: 2
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
        " --atlas-labels {input.atlas_labels} --swi-reference {input.swi_reference} --transform {input.transform}"
        " --out-t1 {output.t1} --out-swi {output.swi} --settings '{params.settings}' > {log} 2>&1"


rule atlas_jlf:
    input:
        t1=bids("{subject}", "T1w.nii.gz"),
        atlas_t1=[bids(subject, "T1w.nii.gz") for subject in jlf_atlas_subjects()],
        atlas_labels=[reference_labels(subject, "T1w") for subject in jlf_atlas_subjects()],
        swi_reference=lambda wildcards: swi_magnitudes(wildcards.subject)[0],
        transform=registration_transform("{subject}"),
    output:
        t1=segmentation("atlas-jlf", "{subject}", "T1w"),
        swi=segmentation("atlas-jlf", "{subject}", "SWI"),
    params:
        pairs=lambda wildcards, input: " ".join(f"{t1},{labels}" for t1, labels in zip(input.atlas_t1, input.atlas_labels)),
        settings=as_json(ATLAS),
    threads: 2
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
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS={threads} deepnuclei atlas --t1 {input.t1} --atlas-pairs {params.pairs}"
        " --swi-reference {input.swi_reference} --transform {input.transform}"
        " --out-t1 {output.t1} --out-swi {output.swi} --settings '{params.settings}' > {log} 2>&1"
