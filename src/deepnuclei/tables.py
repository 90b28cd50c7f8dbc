"""Tables of the evaluation, built from the overlap table (`evaluate.overlap_table`, one row per subject,
method and structure) and set beside the numbers the two papers report.

The papers' numbers ship in `data_files/`: `paper_results.csv` (one reported value a row: source, dataset,
method, condition, structure, metric, value, sd, unit, note), `paper_stn_localization.csv` (LiNUS Tables
IV and V: predicted and reference STN centres as voxel indices i, j, k of the 1 mm TT14 grid, and their
distance in mm) and `paper_demographics.csv` (LiNUS Table I: TT14's 14 patients, then the rows it prints as
"Mean" and "Variance", here `mean` and `sd`: its "Variance" is a standard deviation, e.g. 3.0 for the
education years whose SD is 3.02 and variance 9.2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .evaluate import scored_structures
from .io import read_json, write_text_atomic
from .layout import MAIN_COHORT
from .plan_files import Participants, TimingCase

PAPER_NUCLEI = ("CN", "GP", "PUT", "THA", "SN", "RN", "DN")  # the DB-ResUNet paper's columns, in its order
PAPER_PREFIX = "paper: "  # marks rows holding a paper's numbers rather than ours

# Which paper row each of our methods stands beside ("ours beside theirs"): a model by its architecture's
# name in the papers' tables and the conditions its config meets (inputs, global-branch rate, cohort, task,
# optimizer); the atlas baselines beside the papers' registration-based methods (MRICloud, a multi-atlas
# method, and the LiNUS paper's "traditional method"). Our rows carry the paper row's method and condition.
PAPER_NAMES = {"linus": "LiNUS", "lraspp": "Lraspp", "vnet": "VNet", "unet2d": "UNet", "unet3d_linus": "UNet3d",
               "fcn": "FCN", "deeplabv3": "Deeplab", "unet3d": "3D-UNet", "resunet": "ResUNet",
               "dbresunet": "DB-ResUNet"}
ATLAS_METHODS = ("atlas", "atlas-jlf")
REGISTRATION_METHODS = ("MRICloud", "Traditional method")
INPUT_NAMES = {"Chimap": "QSM", "T1w": "T1 WI"}  # in the papers' order: "QSM+T1 WI"
PAPER_RATE = 2  # DB-ResUNet's global branch, downsampled 2x in-plane unless options.rate says otherwise
LINUS_DATASETS = ("TT14", "PD25")  # LiNUS Table VII's: its 1 mm patients and the 0.3 mm atlas
PAPER_TASKS = {"stn": "STN", "gpi": "GPi"}
PAPER_OPTIMIZERS = {"adam": "Adam", "mist": "MI-ST"}
CONFIDENCE = 0.95


def data_file(name: str) -> pd.DataFrame:
    with (resources.files("deepnuclei") / "data_files" / name).open() as stream:
        return pd.read_csv(stream)


def paper_results() -> pd.DataFrame:
    """Every number the papers report, one a row, with its `source` (paper and table)."""
    return data_file("paper_results.csv").fillna({"condition": "", "structure": "", "unit": "", "note": ""})


def paper_localization() -> pd.DataFrame:
    """LiNUS's per-case STN centre-of-mass errors (Tables IV and V)."""
    return data_file("paper_stn_localization.csv")


def paper_demographics() -> pd.DataFrame:
    """LiNUS Table I: TT14's patients (participant_id DBS01 ...) and its printed `mean` and `sd` rows."""
    return data_file("paper_demographics.csv")


def nucleus_of(structure: str) -> str:
    """`CN_L` -> `CN`."""
    return structure.rsplit("_", 1)[0]


def ci95(values: pd.Series) -> float:
    """Half-width of the 95 % confidence interval of the mean (Student's t); NaN below two values."""
    values = values.dropna()
    if len(values) < 2:
        return float("nan")
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1) * values.std() / np.sqrt(len(values)))


def with_misses(overlap: pd.DataFrame) -> pd.DataFrame:
    """The overlap table with a boolean `missed` column (all False in tables written before misses were)."""
    return overlap.assign(missed=overlap["missed"].astype(bool) if "missed" in overlap else False)


def misses(overlap: pd.DataFrame) -> pd.Series:
    """Per method: structures (summed over subjects) that the reference has and the method did not find."""
    return with_misses(overlap).groupby("method")["missed"].sum().astype(int).rename("misses")


def linus_dataset(cohort: str) -> str:
    """The LiNUS dataset a cohort stands for: the one it is named after (a cohort `tt14` or `pd25`), else TT14
    for the main cohort and PD25 for any other."""
    named = {name.lower(): name for name in LINUS_DATASETS}
    return named.get(cohort.lower(), "TT14" if cohort == MAIN_COHORT else "PD25")


def paper_identity(method: str, model: Mapping[str, Any] | None) -> tuple[tuple[str, ...], set[str]]:
    """The paper methods our `method` (a config model entry, None for an atlas method) may stand beside,
    and the conditions it meets. A paper row's condition is the one thing it changes: a DB-ResUNet variant
    of another global-branch rate meets only that rate's condition, not its inputs' (and vice versa)."""
    if model is None:
        return (REGISTRATION_METHODS if method in ATLAS_METHODS else ()), {"", "QSM+T1 WI"}
    if model.get("architecture") not in PAPER_NAMES:
        return (), set()
    inputs = "+".join(name for key, name in INPUT_NAMES.items() if key in model["inputs"])
    rate = (model.get("options") or {}).get("rate", [PAPER_RATE])[0]
    optimizer = (model.get("training") or {}).get("optimizer", "adam")
    conditions = {"", PAPER_TASKS.get(model["task"], ""), linus_dataset(model.get("cohort", MAIN_COHORT)),
                  f"optimizer {PAPER_OPTIMIZERS[optimizer]}"}
    if rate == PAPER_RATE:
        conditions |= {inputs, f"input {inputs}"}
    if inputs == "QSM+T1 WI":
        conditions.add(f"global branch downsampled {rate:g}x")
    return (PAPER_NAMES[model["architecture"]],), conditions


def beside(ours: pd.DataFrame, theirs: pd.DataFrame, models: Mapping[str, Mapping] | None) -> pd.DataFrame:
    """Our rows and the papers' (`paper_method` and `condition` columns), each paper row after ours that
    stand beside it (`paper_identity`; they take its paper_method and condition); ours standing beside
    none come last."""
    models = models or {}
    ours = ours.assign(paper_method="", condition="")
    identities = {index: paper_identity(method, models.get(method)) for index, method in ours["method"].items()}
    placed, rows = set(), []
    for _, paper in theirs.iterrows():
        for index, (names, conditions) in identities.items():
            if index not in placed and paper["paper_method"] in names and paper["condition"] in conditions:
                placed.add(index)
                rows.append(pd.concat([ours.loc[index].drop(["paper_method", "condition"]),
                                       paper[["paper_method", "condition"]]]))
        rows.append(paper)
    rows += [row for index, row in ours.iterrows() if index not in placed]
    columns = list(dict.fromkeys([*ours.columns, *theirs.columns]))
    return pd.DataFrame(rows).reset_index(drop=True).reindex(columns=columns)


def per_nucleus(overlap: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """A metric per method, subject and nucleus, left and right averaged within each subject."""
    table = overlap.assign(nucleus=overlap["structure"].map(nucleus_of), subject=overlap["subject"].astype(str))
    return table.groupby(["method", "subject", "nucleus"], as_index=False)[metric].mean()


def _paper_label(method: str, condition: str) -> str:
    return f"{PAPER_PREFIX}{method}" + (f" ({condition})" if condition else "")


def paper_wide(sources: Sequence[str], metrics: Sequence[str], structures: Sequence[str] | None = None,
               by_structure: bool = False, with_sd: bool = False) -> pd.DataFrame:
    """The papers' values of `metrics` from `sources` (times in seconds), a row per reported method and
    condition (labelled "paper: <method> (<condition>)", with the source where several are asked for),
    with its paper_method and condition; a column per metric, or with `by_structure` per structure. With
    `with_sd`, each column the papers give a ± SD for is followed by `<column>_sd`."""
    reported = paper_results().query("source in @sources and metric in @metrics")
    scale = reported["unit"].map(SECONDS_PER_UNIT).fillna(1.0)
    reported = reported.assign(value=reported["value"] * scale, sd=reported["sd"] * scale)
    if structures is not None:
        reported = reported[reported["structure"].isin([*structures, ""])]
    several = len(sources) > 1
    reported = reported.assign(
        paper_method=reported["method"],
        method=[_paper_label(f"{m}, {s}" if several else m, c)
                for m, s, c in zip(reported["method"], reported["source"], reported["condition"])])
    columns, index = "structure" if by_structure else "metric", ["method", "paper_method", "condition"]
    wide = reported.pivot_table(index=index, columns=columns, values="value", sort=False)
    if with_sd and reported["sd"].notna().any():
        spread = reported.pivot_table(index=index, columns=columns, values="sd", sort=False).add_suffix("_sd")
        wide = wide.join(spread)[[name for column in wide.columns
                                  for name in (column, f"{column}_sd") if name in wide.columns or name in spread]]
    return wide.reset_index().rename_axis(columns=None)


def dice_table(overlap: pd.DataFrame, nuclei: Sequence[str] = PAPER_NUCLEI, source: str = "DB-ResUNet Table I",
               models: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """Mean Dice per method (rows) and nucleus (columns; left and right averaged per subject), each with the
    half-width of its 95 % confidence interval (`<nucleus>_ci95`), the subjects and the misses (structures
    not found: Dice 0 in the means); each row of `source` after ours that stand beside it. For the STN:
    `dice_table(overlap, ("STN",), "LiNUS Table II")`."""
    overlap = overlap[overlap["structure"].map(nucleus_of).isin(nuclei)]
    values = per_nucleus(overlap)
    grouped = values.groupby(["method", "nucleus"])["dice"]
    means = grouped.mean().unstack().reindex(columns=list(nuclei))
    intervals = grouped.agg(ci95).unstack().reindex(columns=list(nuclei)).add_suffix("_ci95")
    ours = means.join(intervals)[[column for nucleus in nuclei for column in (nucleus, f"{nucleus}_ci95")]]
    ours = ours.join(values.groupby("method")["subject"].nunique().rename("subjects")).join(misses(overlap))
    theirs = paper_wide((source,), ("dice",), nuclei, by_structure=True)
    return beside(ours.rename_axis("method").reset_index(), theirs, models)


def _mean_sd_rows(values: pd.DataFrame) -> pd.DataFrame:
    """Rows `mean` and `sd` (sample standard deviation) of each column."""
    return pd.DataFrame([values.mean(), values.std()], index=["mean", "sd"])


def localization_table(overlap: pd.DataFrame, structures: Sequence[str] | None = ("STN_L", "STN_R")) -> pd.DataFrame:
    """Centre-of-mass error (mm) per method and subject (rows) and structure (columns, every scored one
    for None), each method closed by mean and sd rows over the structures found and a `misses` row
    (not found: no centre); LiNUS's mean and sd over its Tables IV and V follow as method "paper: LiNUS"
    where those structures are asked for."""
    structures = list(structures or [name for name in scored_structures() if name in set(overlap["structure"])])
    errors = with_misses(overlap[overlap["structure"].isin(structures)]).assign(subject=lambda rows: rows["subject"].astype(str))
    wide = errors.pivot(index=["method", "subject"], columns="structure", values="com_error_mm")
    wide = wide.reindex(columns=structures)
    missed = errors.pivot_table(index="method", columns="structure", values="missed", aggfunc="sum").reindex(columns=structures)
    blocks = {method: pd.concat([rows.droplevel("method"), _mean_sd_rows(rows),
                                 pd.DataFrame([missed.loc[method]], index=["misses"])])
              for method, rows in wide.groupby(level="method")}
    paper = paper_localization().query("structure in @structures")
    if not paper.empty:
        cases = paper.pivot(index="case", columns="structure", values="distance_mm").reindex(columns=structures)
        blocks[_paper_label("LiNUS", "")] = _mean_sd_rows(cases)
    table = pd.concat(blocks, names=["method", "subject"])
    return table.rename_axis(columns=None).reset_index()


POOLED = "STN_L+STN_R"  # the localization tables' pooled rows: the LiNUS text's mean over both sides (1.699 mm)


def localization_voxels(overlap: pd.DataFrame, structures: Sequence[str] = ("STN_L", "STN_R")) -> pd.DataFrame:
    """LiNUS Tables IV and V in their form: per method scored on the T1 grid, structure and subject, the
    predicted and reference centres of mass as voxel indices of that grid (rounded, as the paper prints
    them) and the distance in mm between those rounded indices, as the paper's 28 distances are
    (`evaluate.rounded_index_distance`); then the paper's cases. Each method closes with a pooled row
    (structure `STN_L+STN_R`, subject `mean`): the mean distance over both sides, the text's 1.699 mm."""
    columns = ["method", "structure", "subject", *(f"predicted_{axis}" for axis in "ijk"),
               *(f"reference_{axis}" for axis in "ijk"), "distance_mm"]
    scored = overlap[overlap["structure"].isin(structures)]
    scored = scored[scored["space"] == "T1w"] if "space" in scored else scored.iloc[:0]
    # overlap tables written before the rounded distance was scored have no such column: NaN, not a guess
    rounded_distance = scored["com_index_error_mm"] if "com_index_error_mm" in scored else np.nan
    ours = pd.DataFrame({"method": scored["method"], "structure": scored["structure"],
                         "subject": scored["subject"].astype(str),
                         **{f"predicted_{axis}": scored[f"com_{axis}"].round() for axis in "ijk"},
                         **{f"reference_{axis}": scored[f"reference_com_{axis}"].round() for axis in "ijk"},
                         "distance_mm": rounded_distance}) if not scored.empty else pd.DataFrame(columns=columns)
    theirs = paper_localization().query("structure in @structures").assign(
        method=_paper_label("LiNUS", ""), subject=lambda rows: rows["case"].astype(str))
    blocks = []
    for table in (ours.sort_values(["method", "structure", "subject"]), theirs):
        for method, rows in table.groupby("method", sort=False):
            pooled = pd.DataFrame([{"method": method, "structure": POOLED, "subject": "mean",
                                    "distance_mm": rows["distance_mm"].astype(float).mean()}])
            blocks += [rows, pooled]
    table = pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame(columns=columns)
    return table.reindex(columns=[*columns, "source"])


SEXES = {"m": "M", "male": "M", "f": "F", "female": "F"}  # BIDS participants.tsv spells sex either way


def demographics_row(participants: pd.DataFrame) -> dict[str, Any]:
    """Counts and summaries of a participants table: how many, age (mean, sd, range), sex and `group`
    counts where it has those columns, and the mean and sd of every other numeric column."""
    row: dict[str, Any] = {"participants": len(participants)}
    numeric = participants.drop(columns=["participant_id", "sex", "group"], errors="ignore").apply(
        pd.to_numeric, errors="coerce").dropna(axis=1, how="all")
    if "age" in numeric:
        row.update(age_min=numeric["age"].min(), age_max=numeric["age"].max())
    for column in numeric:
        row.update({f"{column}_mean": numeric[column].mean(), f"{column}_sd": numeric[column].std()})
    for column, prefix in (("sex", "sex_"), ("group", "group_")):
        if column in participants:
            values = participants[column].dropna().astype(str)
            values = values.map(lambda value: SEXES.get(value.lower(), value)) if column == "sex" else values
            row.update(values.value_counts().sort_index().add_prefix(prefix).to_dict())
    return row


def demographics_table(participants: pd.DataFrame | None, cohorts: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """LiNUS Table I's form for our data: per cohort, its participants' count, age, sex and group counts
    (from the dataset's participants.tsv, where it has them; participants it does not list count in
    `participants` only), then the paper's TT14 row: its printed mean and "Variance" (an SD) of each column,
    its counts and age range from the 14 patients it lists (whose ages give 55.3 ± 7.0, not the printed
    54.9 ± 7.7)."""
    rows = []
    for cohort, members in cohorts.items():
        listed = (participants[participants["participant_id"].str.removeprefix("sub-").isin([str(m) for m in members])]
                  if participants is not None else pd.DataFrame({"participant_id": []}))
        rows.append({"dataset": f"ours: {cohort}", **demographics_row(listed), "participants": len(members),
                     "listed": len(listed)})
    paper = paper_demographics().drop(columns="source")
    patients, printed = paper[paper["participant_id"].str.startswith("DBS")], paper.set_index("participant_id")
    counted = demographics_row(patients)
    summaries = {f"{column}_{statistic}": printed.loc[statistic, column]
                 for column in printed.columns if column != "sex" for statistic in ("mean", "sd")}
    rows.append({"dataset": _paper_label("TT14", ""), **counted, **summaries, "listed": len(patients)})
    table = pd.DataFrame(rows)
    first = ["dataset", "participants", "listed", "age_mean", "age_sd", "age_min", "age_max"]
    counts = sorted(column for column in table if column.startswith(("sex_", "group_")))
    rest = [column for column in table if column not in first and column not in counts]
    return table.reindex(columns=[*first, *counts, *rest])


def method_summary(overlap: pd.DataFrame, metrics: Sequence[str] = ("dice", "precision", "recall")) -> pd.DataFrame:
    """Mean and sd of each metric per structure and method, structures in scored order, with n subjects,
    the 95 % interval of the mean Dice where Dice is asked for, and the misses."""
    grouped = with_misses(overlap).groupby(["structure", "method"])
    table = grouped[list(metrics)].agg(["mean", "std"])
    table.columns = [f"{metric}_{'sd' if statistic == 'std' else statistic}" for metric, statistic in table.columns]
    table.insert(0, "n", grouped.size())
    if "dice" in metrics:
        table.insert(table.columns.get_loc("dice_sd") + 1, "dice_ci95", grouped["dice"].agg(ci95))
    table["misses"] = grouped["missed"].sum().astype(int)
    rank = {name: index for index, name in enumerate(scored_structures())}
    table = table.reset_index().assign(rank=lambda rows: rows["structure"].map(rank))
    return table.sort_values(["rank", "method"]).drop(columns="rank").reset_index(drop=True)


SECONDS_PER_UNIT = {"min": 60.0, "h": 3600.0}  # the papers' times, in seconds like ours
EFFICIENCY_METRICS = ("parameters", "model_size", "inference_time", "inference_time_cpu", "inference_time_gpu")


def read_benchmark_seconds(path: str | os.PathLike) -> float:
    """Wall seconds of a Snakemake `benchmark:` file (its first repeat)."""
    return float(pd.read_csv(path, sep="\t")["s"].iloc[0])


def timing_table(cases: Sequence[TimingCase]) -> pd.DataFrame:
    """Per method and subject: the wall seconds of an atlas method's job (its Snakemake benchmark file) or of a
    model's part of its session's inference job (reading the model to the written labels), and for models the
    network's seconds, device and parameter count, all from the inference record; nothing is timed again."""
    rows = []
    for case in cases:
        record = read_json(case.record) if case.record else {}
        rows.append({"method": case.method, "subject": str(case.subject),
                     "job_seconds": read_benchmark_seconds(case.benchmark) if case.benchmark else record["wall_seconds"],
                     "network_seconds": record.get("inference_seconds", float("nan")),
                     "device": record.get("device", "cpu"), "parameters": record.get("parameters", float("nan"))})
    return pd.DataFrame(rows, columns=["method", "subject", "job_seconds", "network_seconds", "device", "parameters"])


def paper_times(theirs: pd.DataFrame) -> pd.DataFrame:
    """The LiNUS paper's `inference_time` beside ours: a network's (0.05 s for LiNUS) as `network_seconds`,
    its registration method's (15 min, the whole run) as `job_seconds`."""
    if "inference_time" not in theirs:
        return theirs
    registration = theirs["paper_method"].isin(REGISTRATION_METHODS)
    return theirs.assign(job_seconds=theirs["inference_time"].where(registration),
                         network_seconds=theirs["inference_time"].where(~registration)).drop(columns="inference_time")


def efficiency_table(timings: pd.DataFrame, models: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """Parameters, float32 model bytes and seconds per subject (the jobs' wall time and the network alone,
    each mean and sd) per method, then the papers' rows (DB-ResUNet Table II, LiNUS Tables II and III, with
    DB-ResUNet's ± SD of its times as `<column>_sd`) each after ours beside it."""
    per_method = timings.groupby("method").agg(
        job_seconds=("job_seconds", "mean"), job_seconds_sd=("job_seconds", "std"),
        network_seconds=("network_seconds", "mean"), network_seconds_sd=("network_seconds", "std"),
        device=("device", "first"), subjects=("subject", "count"), parameters=("parameters", "first"))
    per_method.insert(0, "parameters", per_method.pop("parameters").astype("float"))
    per_method.insert(1, "model_size", 4 * per_method["parameters"])
    ours = per_method.rename_axis("method").reset_index()
    theirs = paper_times(paper_wide(("DB-ResUNet Table II", "LiNUS Table II", "LiNUS Table III"), EFFICIENCY_METRICS,
                                    with_sd=True))  # DB-ResUNet Table II's times are mean ± SD
    return beside(ours, theirs, models)


def stn_table(overlap: pd.DataFrame, efficiency: pd.DataFrame, models: Mapping[str, Mapping] | None = None
              ) -> pd.DataFrame:
    """LiNUS Tables II and III: STN Dice (with its 95 % interval), precision and recall (left and right
    averaged per subject), misses, each method's size and seconds per subject (the job's; the network's,
    which the paper's times are), then the paper's rows, each after ours beside it."""
    stn = overlap[overlap["structure"].isin(["STN_L", "STN_R"])]
    metrics = ["dice", "precision", "recall"]
    subjects = pd.concat([per_nucleus(stn, metric).set_index(["method", "subject"])[metric] for metric in metrics],
                         axis=1)
    scores = subjects.groupby("method").mean().join(subjects.groupby("method")["dice"].agg(ci95).rename("dice_ci95"))
    columns = ["parameters", "model_size", "job_seconds", "network_seconds"]
    ours = scores.join(misses(stn)).join(efficiency.set_index("method")[columns], how="left")
    theirs = paper_times(paper_wide(("LiNUS Table II", "LiNUS Table III"), [*metrics, *EFFICIENCY_METRICS], ("STN",)))
    table = beside(ours.rename_axis("method").reset_index(), theirs, models)
    return table.reindex(columns=["method", "dice", "dice_ci95", "precision", "recall", "misses", *columns,
                                  "paper_method", "condition"])


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


def read_participants(path: str | os.PathLike | None) -> pd.DataFrame | None:
    """A BIDS participants.tsv (labels as written, "n/a" missing); None without one."""
    if path is None or not Path(path).is_file():
        return None
    return pd.read_csv(path, sep="\t", dtype={"participant_id": str}, na_values=["n/a"], keep_default_na=False)


def write_evaluation_tables(overlap: pd.DataFrame, out_dir: str | os.PathLike, timing_cases: Sequence[TimingCase] = (),
                            ablations: dict[str, Sequence[str]] | None = None,
                            models: Mapping[str, Mapping] | None = None,
                            participants: Participants | None = None) -> list[Path]:
    """Every table of the evaluation, each as CSV, Markdown and LaTeX in `out_dir`. `timing_cases` and
    their inference records feed the efficiency tables; `ablations` names
    the methods of each ablation ("rate", "inputs"), the reference model included; `models` (the config's
    entries) places our rows beside the papers' (`paper_identity`); `participants` (the dataset's
    participants.tsv and each cohort's participants) feeds LiNUS Table I's form."""
    out_dir = Path(out_dir)
    efficiency = efficiency_table(timing_table(timing_cases), models)
    participants = participants or Participants(None, {})
    tables = {
        "demographics": (demographics_table(read_participants(participants.tsv), participants.cohorts),
                         "Participants per cohort: count (listed: in participants.tsv), age, sex and group counts, "
                         "mean and sd of its other numeric columns; paper row: LiNUS Table I (TT14)"),
        "dice_nuclei": (dice_table(overlap, models=models),
                        "Mean Dice per nucleus (left and right averaged per subject) with the half-width of its 95 % "
                        "confidence interval, subjects and misses (structures not found, Dice 0); paper rows: "
                        "DB-ResUNet Table I"),
        "dice_stn": (dice_table(overlap, ("STN",), "LiNUS Table II", models),
                     "Mean Dice of the STN (left and right averaged per subject); paper rows: LiNUS Table II"),
        "stn_methods": (stn_table(overlap, efficiency, models),
                        "STN Dice, precision, recall, misses, size and seconds per subject (the job's; the network's, "
                        "which the paper times); paper rows: LiNUS Tables II and III"),
        "efficiency": (efficiency, "Parameters, float32 model bytes and seconds per subject (Snakemake benchmark "
                                   "of each job; network alone); paper rows: DB-ResUNet Table II, LiNUS Tables II, III"),
        "localization_stn": (localization_table(overlap), "STN centre-of-mass error (mm) per subject, mean and sd over "
                                                          "the structures found, misses; paper rows: LiNUS Tables IV and V"),
        "localization_stn_voxels": (localization_voxels(overlap),
                                    "LiNUS Tables IV and V: STN centres of mass as voxel indices of the T1 grid "
                                    "(models scored there) and their distance (mm); then the paper's cases"),
        "localization_all": (localization_table(overlap, None), "Centre-of-mass error (mm) per subject and structure"),
        "summary": (method_summary(overlap, ("dice", "precision", "recall", "hd95_mm", "mean_surface_distance_mm",
                                             "com_error_mm")), "Mean and sd per structure and method"),
    }
    for kind, methods in (ablations or {}).items():
        chosen = overlap[overlap["method"].isin(methods)]
        tables[f"ablation_{kind}"] = (dice_table(chosen, source=ABLATION_SOURCES[kind], models=models),
                                      f"Ablation ({kind}): mean Dice per nucleus; paper rows: {ABLATION_SOURCES[kind]}")
    return [path for name, (table, caption) in tables.items() for path in write_table(table, out_dir / name, caption)]
