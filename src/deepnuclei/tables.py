"""Tables of the evaluation, built from the overlap table (`evaluate.overlap_table`, one row per subject,
method and structure) and set beside the numbers the two papers report.

The papers' numbers ship in `data_files/`: `paper_results.csv` (one reported value a row: source, dataset,
method, condition, structure, metric, value, sd, unit, note) and `paper_stn_localization.csv` (LiNUS Tables
IV and V: predicted and reference STN centres as voxel indices i, j, k of the 1 mm TT14 grid, and their
distance in mm).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import pandas as pd

from .evaluate import scored_structures
from .io import read_json, write_text_atomic

PAPER_NUCLEI = ("CN", "GP", "PUT", "THA", "SN", "RN", "DN")  # the DB-ResUNet paper's columns, in its order
PAPER_PREFIX = "paper: "  # marks rows holding a paper's numbers rather than ours


def data_file(name: str) -> pd.DataFrame:
    with (resources.files("deepnuclei") / "data_files" / name).open() as stream:
        return pd.read_csv(stream)


def paper_results() -> pd.DataFrame:
    """Every number the papers report, one a row, with its `source` (paper and table)."""
    return data_file("paper_results.csv").fillna({"condition": "", "structure": "", "unit": "", "note": ""})


def paper_localization() -> pd.DataFrame:
    """LiNUS's per-case STN centre-of-mass errors (Tables IV and V)."""
    return data_file("paper_stn_localization.csv")


def nucleus_of(structure: str) -> str:
    """`CN_L` -> `CN`."""
    return structure.rsplit("_", 1)[0]


def per_nucleus(overlap: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """A metric per method, subject and nucleus, left and right averaged within each subject."""
    table = overlap.assign(nucleus=overlap["structure"].map(nucleus_of), subject=overlap["subject"].astype(str))
    return table.groupby(["method", "subject", "nucleus"], as_index=False)[metric].mean()


def _paper_label(method: str, condition: str) -> str:
    return f"{PAPER_PREFIX}{method}" + (f" ({condition})" if condition else "")


def dice_table(
    overlap: pd.DataFrame, nuclei: Sequence[str] = PAPER_NUCLEI, source: str = "DB-ResUNet Table I"
) -> pd.DataFrame:
    """Mean Dice per method (rows) and nucleus (columns), then the rows `source` reports, labelled
    "paper: <method>". For the STN: `dice_table(overlap, ("STN",), "LiNUS Table II")`."""
    ours = per_nucleus(overlap).pivot_table(index="method", columns="nucleus", values="dice", aggfunc="mean")
    reported = paper_results().query("source == @source and metric == 'dice' and structure in @nuclei")
    reported = reported.assign(method=[_paper_label(m, c) for m, c in zip(reported["method"], reported["condition"])])
    theirs = reported.pivot_table(index="method", columns="structure", values="value", sort=False)
    table = pd.concat([ours, theirs]).reindex(columns=list(nuclei))
    return table.rename_axis(index="method", columns=None).reset_index()


def _mean_sd_rows(values: pd.DataFrame) -> pd.DataFrame:
    """Rows `mean` and `sd` (sample standard deviation) of each column."""
    return pd.DataFrame([values.mean(), values.std()], index=["mean", "sd"])


def localization_table(overlap: pd.DataFrame, structures: Sequence[str] | None = ("STN_L", "STN_R")) -> pd.DataFrame:
    """Centre-of-mass error (mm) per method and subject (rows) and structure (columns, every scored one
    for None), each method closed by mean and sd rows; LiNUS's mean and sd over its Tables IV and V
    follow as method "paper: LiNUS" where those structures are asked for."""
    structures = list(structures or [name for name in scored_structures() if name in set(overlap["structure"])])
    errors = overlap[overlap["structure"].isin(structures)].assign(subject=overlap["subject"].astype(str))
    wide = errors.pivot(index=["method", "subject"], columns="structure", values="com_error_mm")
    wide = wide.reindex(columns=structures)
    blocks = {method: pd.concat([rows.droplevel("method"), _mean_sd_rows(rows)])
              for method, rows in wide.groupby(level="method")}
    paper = paper_localization().query("structure in @structures")
    if not paper.empty:
        cases = paper.pivot(index="case", columns="structure", values="distance_mm").reindex(columns=structures)
        blocks[_paper_label("LiNUS", "")] = _mean_sd_rows(cases)
    table = pd.concat(blocks, names=["method", "subject"])
    return table.rename_axis(columns=None).reset_index()


def method_summary(overlap: pd.DataFrame, metrics: Sequence[str] = ("dice", "precision", "recall")) -> pd.DataFrame:
    """Mean and sd of each metric per structure and method, structures in scored order, with n subjects."""
    grouped = overlap.groupby(["structure", "method"])[list(metrics)]
    table = grouped.agg(["mean", "std"])
    table.columns = [f"{metric}_{'sd' if statistic == 'std' else statistic}" for metric, statistic in table.columns]
    table.insert(0, "n", grouped.size())
    rank = {name: index for index, name in enumerate(scored_structures())}
    table = table.reset_index().assign(rank=lambda rows: rows["structure"].map(rank))
    return table.sort_values(["rank", "method"]).drop(columns="rank").reset_index(drop=True)


SECONDS_PER_UNIT = {"min": 60.0, "h": 3600.0}  # the papers' times, in seconds like ours
EFFICIENCY_METRICS = ("parameters", "model_size", "inference_time", "inference_time_cpu", "inference_time_gpu")


def read_benchmark_seconds(path: str | os.PathLike) -> float:
    """Wall seconds of a Snakemake `benchmark:` file (its first repeat)."""
    return float(pd.read_csv(path, sep="\t")["s"].iloc[0])


def timing_table(cases: Sequence[dict]) -> pd.DataFrame:
    """Per method and subject: the job's wall seconds from its Snakemake benchmark file and, for models,
    the network's seconds and device from the inference record. Cases: {method, subject, benchmark,
    record (optional)}; nothing is timed again."""
    rows = []
    for case in cases:
        record = read_json(case["record"]) if case.get("record") else {}
        rows.append({"method": case["method"], "subject": str(case["subject"]),
                     "job_seconds": read_benchmark_seconds(case["benchmark"]),
                     "network_seconds": record.get("inference_seconds", float("nan")),
                     "device": record.get("device", "cpu")})
    return pd.DataFrame(rows, columns=["method", "subject", "job_seconds", "network_seconds", "device"])


def paper_wide(sources: Sequence[str], metrics: Sequence[str], structure: str | None = None) -> pd.DataFrame:
    """The papers' values of `metrics` from `sources`, a row per reported method, a column per metric."""
    reported = paper_results().query("source in @sources and metric in @metrics")
    reported = reported.assign(value=reported["value"] * reported["unit"].map(SECONDS_PER_UNIT).fillna(1.0))
    if structure is not None:
        reported = reported[reported["structure"].isin([structure, ""]) | reported["structure"].isna()]
    reported = reported.assign(method=[_paper_label(f"{m}, {s}", c) for m, s, c in
                                       zip(reported["method"], reported["source"], reported["condition"].fillna(""))])
    return reported.pivot_table(index="method", columns="metric", values="value", sort=False).reset_index()


def efficiency_table(timings: pd.DataFrame, parameters: dict[str, int]) -> pd.DataFrame:
    """Parameters, float32 model bytes and seconds per subject (mean and sd of the jobs' wall time; the
    network alone) per method, then the papers' rows (DB-ResUNet Table II, LiNUS Tables II and III)."""
    per_method = timings.groupby("method").agg(
        seconds_per_subject=("job_seconds", "mean"), seconds_sd=("job_seconds", "std"),
        network_seconds=("network_seconds", "mean"), device=("device", "first"), subjects=("subject", "count"))
    per_method.insert(0, "parameters", pd.Series(parameters, dtype="float"))
    per_method.insert(1, "model_size", 4 * per_method["parameters"])
    ours = per_method.rename_axis("method").reset_index()
    theirs = paper_wide(("DB-ResUNet Table II", "LiNUS Table II", "LiNUS Table III"), EFFICIENCY_METRICS)
    theirs = theirs.rename(columns={"inference_time": "seconds_per_subject"})
    return pd.concat([ours, theirs], ignore_index=True)


def stn_table(overlap: pd.DataFrame, efficiency: pd.DataFrame) -> pd.DataFrame:
    """LiNUS Tables II and III: STN Dice, precision and recall (left and right averaged per subject) with
    each method's size and time, then the paper's rows."""
    stn = overlap[overlap["structure"].isin(["STN_L", "STN_R"])]
    metrics = ["dice", "precision", "recall"]
    scores = pd.concat([per_nucleus(stn, metric).set_index(["method", "subject"])[metric] for metric in metrics],
                       axis=1).groupby("method").mean()
    columns = ["method", "parameters", "model_size", "seconds_per_subject"]
    ours = scores.join(efficiency[columns].set_index("method"), how="left").reset_index()
    theirs = paper_wide(("LiNUS Table II", "LiNUS Table III"), [*metrics, *EFFICIENCY_METRICS], "STN")
    theirs = theirs.rename(columns={"inference_time": "seconds_per_subject"})
    return pd.concat([ours, theirs], ignore_index=True).reindex(columns=["method", *metrics, *columns[1:]])


def write_table(table: pd.DataFrame, out_stem: str | os.PathLike, caption: str, digits: int = 3) -> list[Path]:
    """Write `<stem>.csv` (full precision), `<stem>.md` and `<stem>.tex` (`digits` decimals), each atomically."""
    stem = Path(out_stem)
    markdown = table.to_markdown(index=False, floatfmt=f".{digits}f")
    latex = table.to_latex(index=False, caption=caption, escape=True, na_rep="--", float_format=f"%.{digits}f")
    return [
        write_text_atomic(stem.with_suffix(".csv"), table.to_csv(index=False)),
        write_text_atomic(stem.with_suffix(".md"), f"{caption}\n\n{markdown}\n"),
        write_text_atomic(stem.with_suffix(".tex"), latex),
    ]


ABLATION_SOURCES = {"rate": "DB-ResUNet Table III", "inputs": "DB-ResUNet Table IV"}


def write_evaluation_tables(overlap: pd.DataFrame, out_dir: str | os.PathLike, timing_cases: Sequence[dict] = (),
                            parameters: dict[str, int] | None = None,
                            ablations: dict[str, Sequence[str]] | None = None) -> list[Path]:
    """Every table of the evaluation, each as CSV, Markdown and LaTeX in `out_dir`. `timing_cases` and
    `parameters` (per model, `models.configured_parameters`) feed the efficiency tables; `ablations` names
    the methods of each ablation ("rate", "inputs"), the reference model included."""
    out_dir = Path(out_dir)
    efficiency = efficiency_table(timing_table(timing_cases), parameters or {})
    tables = {
        "dice_nuclei": (dice_table(overlap), "Mean Dice per nucleus (left and right averaged per subject); "
                                             "paper rows: DB-ResUNet Table I"),
        "dice_stn": (dice_table(overlap, ("STN",), "LiNUS Table II"),
                     "Mean Dice of the STN (left and right averaged per subject); paper rows: LiNUS Table II"),
        "stn_methods": (stn_table(overlap, efficiency), "STN Dice, precision, recall, size and seconds per subject; "
                                                         "paper rows: LiNUS Tables II and III"),
        "efficiency": (efficiency, "Parameters, float32 model bytes and seconds per subject (Snakemake benchmark "
                                   "of each job; network alone); paper rows: DB-ResUNet Table II, LiNUS Tables II, III"),
        "localization_stn": (localization_table(overlap), "STN centre-of-mass error (mm) per subject; "
                                                          "paper rows: LiNUS Tables IV and V"),
        "localization_all": (localization_table(overlap, None), "Centre-of-mass error (mm) per subject and structure"),
        "summary": (method_summary(overlap, ("dice", "precision", "recall", "hd95_mm", "mean_surface_distance_mm",
                                             "com_error_mm")), "Mean and sd per structure and method"),
    }
    for kind, methods in (ablations or {}).items():
        chosen = overlap[overlap["method"].isin(methods)]
        tables[f"ablation_{kind}"] = (dice_table(chosen, source=ABLATION_SOURCES[kind]),
                                      f"Ablation ({kind}): mean Dice per nucleus; paper rows: {ABLATION_SOURCES[kind]}")
    return [path for name, (table, caption) in tables.items() for path in write_table(table, out_dir / name, caption)]
