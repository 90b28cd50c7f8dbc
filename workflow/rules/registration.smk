# T1 -> SWI rigid registration by mutual information: the transform, the T1 on the SWI grid with its QC
# picture, SWI-space segmentations taken back to T1 space, and (demo) the error against the true transform.

rule register_t1_to_swi:
    input:
        t1=bids("{subject}", "T1w.nii.gz"),
        magnitudes=lambda wildcards: swi_magnitudes(wildcards.subject),
        validated=validation_record("{subject}"),
    output:
        transform=registration_transform("{subject}", "{method}"),
        record=result("registration", "{subject}", "registration.json", desc="{method}"),
    wildcard_constraints:
        method="simpleitk|antspyx",
    params:
        settings=as_json(REGISTRATION),
    threads: REGISTRATION["threads"]
    log:
        log_path("register_t1_to_swi_{method}", "{subject}"),
    benchmark:
        benchmark_path("register_t1_to_swi_{method}", "{subject}")
    conda:
        "../../envs/registration.yaml"
    shell:
        "deepnuclei register-t1-to-swi --t1 {input.t1} --magnitudes {input.magnitudes} --method {wildcards.method}"
        " --threads {threads} --settings '{params.settings}' --transform {output.transform} --record {output.record}"
        " > {log} 2>&1"


rule t1_to_swi:
    input:
        t1=bids("{subject}", "T1w.nii.gz"),
        magnitudes=lambda wildcards: swi_magnitudes(wildcards.subject),
        transform=registration_transform("{subject}"),
    output:
        t1=t1_in_swi("{subject}"),
        qc=report(registration_qc("{subject}"), caption="../report/registration_qc.rst", category="Registration"),
    params:
        fixed_image=REGISTRATION["fixed_image"],
        title=lambda wildcards: f"sub-{wildcards.subject}: T1 to SWI ({REGISTRATION['method']})",
    log:
        log_path("t1_to_swi", "{subject}"),
    benchmark:
        benchmark_path("t1_to_swi", "{subject}")
    conda:
        "../../envs/registration.yaml"
    shell:
        "deepnuclei t1-to-swi --t1 {input.t1} --magnitudes {input.magnitudes} --transform {input.transform}"
        " --fixed-image {params.fixed_image} --out {output.t1} --qc {output.qc} --title '{params.title}' > {log} 2>&1"


rule segmentation_to_t1:
    """Any method's SWI-space segmentation back to T1 space (the atlas methods write both spaces themselves)."""
    input:
        dseg=segmentation("{method}", "{subject}", "SWI"),
        t1=bids("{subject}", "T1w.nii.gz"),
        transform=registration_transform("{subject}"),
    output:
        segmentation("{method}", "{subject}", "T1w"),
    wildcard_constraints:
        method="(?!atlas)[A-Za-z0-9_-]+",
    params:
        interpolation=REGISTRATION["label_interpolation"],
    log:
        log_path("segmentation_to_t1_{method}", "{subject}"),
    benchmark:
        benchmark_path("segmentation_to_t1_{method}", "{subject}")
    conda:
        "../../envs/registration.yaml"
    shell:
        "deepnuclei move-labels --labels {input.dseg} --reference {input.t1} --transform {input.transform} --to T1w"
        " --interpolation {params.interpolation} --out {output} > {log} 2>&1"


rule registration_tre:
    input:
        transforms=[case["transform"] for case in tre_cases()],
        records=[case["record"] for case in tre_cases()],
        truths=[case["truth"] for case in tre_cases()],
        masks=[case["mask"] for case in tre_cases()],
    output:
        RESULTS / "registration" / "tre.csv",
    params:
        cases=as_json(tre_cases()),
    log:
        log_path("registration_tre"),
    benchmark:
        benchmark_path("registration_tre")
    conda:
        "../../envs/registration.yaml"
    shell:
        "deepnuclei registration-tre --cases '{params.cases}' --out {output} > {log} 2>&1"
