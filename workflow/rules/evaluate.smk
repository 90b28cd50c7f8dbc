# Evaluation: every method's segmentations on the SWI grid against the reference labels.


rule overlap:
    input:
        predictions=[case["prediction"] for case in overlap_cases()],
        references=[case["reference"] for case in overlap_cases()],
    output:
        csv=RESULTS / "evaluation" / "overlap.csv",
        markdown=report(RESULTS / "evaluation" / "overlap_summary.md", caption="../report/overlap.rst",
                        category="Evaluation"),
    params:
        cases=as_json(overlap_cases()),
    log:
        log_path("overlap"),
    benchmark:
        benchmark_path("overlap")
    conda:
        "../../envs/deepnuclei.yaml"
    shell:
        "deepnuclei overlap --cases '{params.cases}' --out-csv {output.csv} --out-markdown {output.markdown} > {log} 2>&1"
