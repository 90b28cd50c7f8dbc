# T1 -> SWI rigid registration by mutual information: the transform, the T1 on the SWI grid with its QC
# picture, SWI-space segmentations taken back to T1 space, and (demo) the error against the true transform.

rule register_t1_to_swi:
    input:
        t1=lambda wildcards: grid_image(wildcards.subject, "T1w"),
        magnitudes=lambda wildcards: swi_magnitudes(wildcards.subject),
        validated=validation_record("{subject}"),
        settings=LAYOUT.settings("registration"),
    output:
        transform=registration_transform("{subject}", "{method}"),
        record=registration_record("{subject}", "{method}"),
    wildcard_constraints:
        method="simpleitk|antspyx",
    threads: REGISTRATION["threads"]
    priority: PREPARATION_PRIORITY
    log:
        log_path("register_t1_to_swi_{method}", "{subject}"),
    benchmark:
        benchmark_path("register_t1_to_swi_{method}", "{subject}")
    conda:
        "../../envs/registration.yaml"
    shell:
        "deepnuclei register-t1-to-swi --t1 {input.t1} --magnitudes {input.magnitudes} --method {wildcards.method}"
        " --threads {threads} --settings {input.settings} --transform {output.transform} --record {output.record}"
        " > {log} 2>&1"


rule t1_to_swi:
    input:
        t1=lambda wildcards: grid_image(wildcards.subject, "T1w"),
        magnitudes=lambda wildcards: swi_magnitudes(wildcards.subject),
        transform=registration_transform("{subject}"),
    output:
        t1=t1_in_swi("{subject}"),
        sidecar=sidecar(t1_in_swi("{subject}")),
        qc=report(registration_qc("{subject}"), caption="../report/registration_qc.rst", category="Registration"),
    params:
        fixed_image=REGISTRATION["fixed_image"],
        sources=lambda wildcards, input: source_uris("registration", [input.t1, input.transform, input.magnitudes[0]]),
        title=lambda wildcards: f"sub-{wildcards.subject}: T1 to SWI ({REGISTRATION['method']})",
    priority: PREPARATION_PRIORITY
    log:
        log_path("t1_to_swi", "{subject}"),
    benchmark:
        benchmark_path("t1_to_swi", "{subject}")
    conda:
        "../../envs/registration.yaml"
    shell:
        "deepnuclei t1-to-swi --t1 {input.t1} --magnitudes {input.magnitudes} --transform {input.transform}"
        " --fixed-image {params.fixed_image} --out {output.t1} --qc {output.qc} --title '{params.title}'"
        " --sources {params.sources} > {log} 2>&1"


rule registration_tre:
    input:
        cases=plan_file("tre") if DEMO["enabled"] else [],
        files=[path for key in ("transform", "record", "truth", "mask") for path in plan_paths("tre", key)]
        if DEMO["enabled"] else [],
    output:
        RESULTS / "registration" / "tre.csv",
    log:
        log_path("registration_tre"),
    benchmark:
        benchmark_path("registration_tre")
    conda:
        "../../envs/registration.yaml"
    shell:
        "deepnuclei registration-tre --cases {input.cases} --out {output} > {log} 2>&1"
