# The results folders as BIDS-Derivatives datasets (deepnuclei.derivatives): results/qsm, results/registration,
# results/measures and one dataset per segmentation method, each with its description, .bidsignore, the
# top-level sidecars its maps inherit and (segmentations) its dseg.tsv. Small jobs that read no images.

from deepnuclei.derivatives import derivative_files


for root, (kind, method) in derivative_datasets().items():
    job = "bids_derivative_" + re.sub(r"[^A-Za-z0-9]", "_", root)  # a rule name: letters, digits, _

    rule:
        name:
            job
        input:
            # a model's weights, whose SHA-256 the sidecars give; the lookup: its numbering
            model=[trained_model(method)] if method in MODELS else [],
            lookup=[LAYOUT.segmentations_lookup()] if method else [],
        output:
            [RESULTS / root / name for name in derivative_files(kind)],
        params:  # values, not f-strings in `shell`: Snakemake formats those after the loop, with its last values
            root=RESULTS / root,
            kind=kind,
            bids_dir=BIDS,
            results=RESULTS,
            options=(f"--method {method} --lookup {LAYOUT.segmentations_lookup()}" if method else "")
            + (f" --model {PLAN.model_weights(method)}" if method in MODELS else ""),
        log:
            log_path(job),
        benchmark:
            benchmark_path(job)
        conda:
            "../../envs/qsm.yaml"
        shell:
            "deepnuclei bids-derivative --root {params.root} --kind {params.kind} --bids-dir {params.bids_dir}"
            " --results {params.results}"
            " {params.options} > {log} 2>&1"
