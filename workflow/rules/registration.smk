# T1 -> SWI rigid registration by mutual information: the transform, the T1 on the SWI grid with its QC
# picture, and (demo) the error against the true transform.

REGISTER_COMMAND = ("deepnuclei register-t1-to-swi --t1 {input.t1} --magnitudes {input.magnitudes} --method {params.method}"
                    " --threads {threads} --settings '{params.settings}' --transform {output.transform}"
                    " --record {output.record}")


rule register_t1_to_swi:
    """The registration the workflow uses, and in the same job the T1 resampled onto the SWI grid with its QC
    picture (one job a session, not two)."""
    input:
        t1=lambda wildcards: grid_image(wildcards.subject, "T1w"),
        magnitudes=lambda wildcards: swi_magnitudes(wildcards.subject),
        validated=validation_record("{subject}"),
    output:
        transform=registration_transform("{subject}"),
        record=registration_record("{subject}", REGISTRATION["method"]),
        t1=t1_in_swi("{subject}"),
        qc=report(registration_qc("{subject}"), caption="../report/registration_qc.rst", category="Registration"),
    params:
        method=REGISTRATION["method"],
        settings=as_json(REGISTRATION),
        fixed_image=REGISTRATION["fixed_image"],
        title=lambda wildcards: f"sub-{wildcards.subject}: T1 to SWI ({REGISTRATION['method']})",
    threads: REGISTRATION["threads"]
    priority: PREPARATION_PRIORITY
    log:
        log_path(f"register_t1_to_swi_{REGISTRATION['method']}", "{subject}"),
    benchmark:
        benchmark_path(f"register_t1_to_swi_{REGISTRATION['method']}", "{subject}")
    conda:
        "../../envs/registration.yaml"
    shell:
        f"{REGISTER_COMMAND} > {{log}} 2>&1 && deepnuclei t1-to-swi --t1 {{input.t1}} --magnitudes {{input.magnitudes}}"
        " --transform {output.transform} --fixed-image {params.fixed_image} --out {output.t1} --qc {output.qc}"
        " --title '{params.title}' >> {log} 2>&1"


rule register_t1_to_swi_compared:
    """The other methods of `registration.tre_methods` (demo), scored against the true transform only."""
    input:
        t1=lambda wildcards: grid_image(wildcards.subject, "T1w"),
        magnitudes=lambda wildcards: swi_magnitudes(wildcards.subject),
        validated=validation_record("{subject}"),
    output:
        transform=registration_transform("{subject}", "{method}"),
        record=registration_record("{subject}", "{method}"),
    wildcard_constraints:
        method="|".join(method for method in ("simpleitk", "antspyx") if method != REGISTRATION["method"]),
    params:
        method=lambda wildcards: wildcards.method,
        settings=as_json(REGISTRATION),
    threads: REGISTRATION["threads"]
    priority: PREPARATION_PRIORITY
    log:
        log_path("register_t1_to_swi_{method}", "{subject}"),
    benchmark:
        benchmark_path("register_t1_to_swi_{method}", "{subject}")
    conda:
        "../../envs/registration.yaml"
    shell:
        f"{REGISTER_COMMAND} > {{log}} 2>&1"


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
