# Atlas baselines, evaluated like any model: labels made on the T1 grid and, where the session's registration links
# it to the SWI grid, moved there in the same job. One rule per method for registered sessions (`atlas_single`,
# `atlas_jlf`) and one for sessions without SWI (`_only`).

ATLAS = config["atlas"]
ATLAS_RULES = {  # method -> rule name, its atlases (inputs, and their options from them), memory, minutes
    "atlas": ("atlas_single", {"atlas_t1": ATLAS["template_t1"], "atlas_labels": ATLAS["template_labels"]},
              lambda input: f"--atlas-t1 {input.atlas_t1} --atlas-labels {input.atlas_labels}", 4000, 60),  # demo: 1.0 GB, < 1 min
    "atlas-jlf": ("atlas_jlf", {"atlases": plan_file("atlas_jlf"),  # the first training sessions' T1 and labels
                                "atlas_files": [path for key in ("t1", "labels") for path in plan_paths("atlas_jlf", key)]},
                  lambda input: f"--atlas-list {input.atlases}", 16000, 480),  # demo: 1.1 GB and 2.5 minutes with 3 atlases
}
for method, (rule_name, atlases, atlas_options, memory, minutes) in ATLAS_RULES.items():
    for registered in (True, False):
        sessions, others = PLAN.sessions_where(registered), PLAN.sessions_where(not registered)
        if not sessions:
            continue

        rule:
            name:
                f"{rule_name}{'' if registered else '_only'}"
            input:
                **atlases,
                t1=lambda wildcards: grid_image(wildcards.subject, "T1w"),
                validated=validation_record("{subject}"),
                settings=LAYOUT.settings("atlas"),
                **({"swi": lambda wildcards: grid_image(wildcards.subject, "SWI"),
                    "transform": registration_transform("{subject}")} if registered else {}),
            output:
                t1=segmentation(method, "{subject}", "T1w"),
                swi=segmentation(method, "{subject}", "SWI") if registered else [],
            wildcard_constraints:
                subject=session_constraint(sessions, others),
            params:  # the loop's values as default arguments: a shell command is built when its job runs, after the
                     # loop has moved on (an f-string in `shell:` took the last method's options)
                atlases=lambda wildcards, input, atlas_options=atlas_options: atlas_options(input),
                swi=lambda wildcards, input, output, registered=registered, method=method: (
                    f"--swi {input.swi} --transform {input.transform} --out-swi {output.swi}"
                    f" --interpolation {REGISTRATION['label_interpolation']} --swi-sources "
                    + source_uris(f"segmentations/{method}", [output.t1, input.transform, input.swi]) if registered else ""),
                sources=lambda wildcards, input, method=method: source_uris(f"segmentations/{method}", [input.t1]),
            threads: ATLAS["threads"]
            resources:
                mem_mb=attempt_scaled(memory),
                runtime=attempt_scaled(minutes),
            log:
                log_path(rule_name, "{subject}"),
            benchmark:
                benchmark_path(rule_name, "{subject}")
            conda:
                "../../envs/registration.yaml"
            shell:
                "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS={threads} deepnuclei atlas --t1 {input.t1} {params.atlases}"
                " --out {output.t1} --sources {params.sources} {params.swi} --settings {input.settings} > {log} 2>&1"
