"""Tables of the LiNUS paper's further experiments (its Tables VI-IX) and of 2D vs 2.5D LiNUS.

Each table compares models named in the config (`linus_experiments`), scored on the test subjects of
the cohort each was trained on; its values are means over the per-subject rows of the overlap table
(left and right averaged within each subject first, as in `tables.per_nucleus`), its paper rows come
from `data_files/paper_results.csv` and `paper_datasets.csv`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .io import load_nifti, read_volume, write_text_atomic
from .labels import STRUCTURE_BY_NAME, TASKS
from .metrics import slice_consistency
from .plan_files import ExperimentCohort, ExperimentsPlan, OverlapCase
from .tables import PAPER_PREFIX, beside, ci95, data_file, misses, nucleus_of, paper_times, paper_wide, timing_table, write_table

SCORES = ("dice", "precision", "recall")
TABLE_SOURCES = {"resolution": "LiNUS Table VII", "targets": "LiNUS Table VIII", "optimizers": "LiNUS Table IX",
                 "slices": None}
TABLE_NAMES = {"resolution": "linus_resolution", "targets": "linus_targets", "optimizers": "linus_optimizers",
               "slices": "linus_2d_vs_25d"}
CAPTIONS = {
    "resolution": "LiNUS on the main vs the high-resolution cohort (STN); paper rows: LiNUS Table VII",
    "targets": "LiNUS for GPi vs STN on the high-resolution cohort; paper rows: LiNUS Table VIII",
    "optimizers": "LiNUS trained with MI-ST vs Adam; paper rows: LiNUS Table IX",
    "slices": "2D vs 2.5D LiNUS: overlap and 3D consistency (Dice between consecutive slices' masks, "
              "connected components per structure; the reference labels' own values as the last row)",
}


def image_geometry(path: str | os.PathLike) -> dict[str, str]:
    """Dimensions and voxel size of a NIfTI file, as Table VI prints them (a*b*c)."""
    header = load_nifti(path).header  # the shared reader: a clear error for a bad file, (X, Y, Z, 1) as 3D
    return {"dimensions": "*".join(str(n) for n in header.get_data_shape()),
            "spacing_mm": "*".join(f"{size:g}" for size in header.get_zooms())}


def cohort_table(cohorts: Mapping[str, ExperimentCohort]) -> pd.DataFrame:
    """Table VI: per cohort, its number of subjects and the dimensions and spacing of its T1 and of the
    model input, read from one subject's files; then the paper's two datasets."""
    rows = []
    for name, cohort in cohorts.items():
        t1, model_input = image_geometry(cohort.t1), image_geometry(cohort.model_input)
        rows.append({"cohort": name, "subjects": cohort.subjects, "t1_dimensions": t1["dimensions"],
                     "t1_spacing_mm": t1["spacing_mm"], "model_input_dimensions": model_input["dimensions"],
                     "model_input_spacing_mm": model_input["spacing_mm"]})
    paper = data_file("paper_datasets.csv")
    rows += [{"cohort": f"{PAPER_PREFIX}{row.dataset}", "t1_dimensions": row.dimensions,
              "t1_spacing_mm": row.spacing_mm} for row in paper.itertuples()]
    return pd.DataFrame(rows)


def subject_scores(overlap: pd.DataFrame) -> pd.DataFrame:
    """Per method and subject: Dice, precision and recall (left and right averaged) and the
    centre-of-mass error of each side, for the one structure of each binary task."""
    table = overlap.assign(subject=overlap["subject"].astype(str), nucleus=overlap["structure"].map(nucleus_of),
                           side=overlap["structure"].str.rsplit("_", n=1).str[1])
    scores = table.groupby(["method", "subject", "nucleus"])[list(SCORES)].mean()
    errors = table.pivot_table(index=["method", "subject", "nucleus"], columns="side", values="com_error_mm",
                               dropna=False).reindex(columns=["L", "R"])  # a side never found: NaN, kept
    errors = errors.rename(columns={"L": "com_error_left_mm", "R": "com_error_right_mm"}).rename_axis(columns=None)
    return scores.join(errors).reset_index().rename(columns={"nucleus": "structure"})


def experiment_table(overlap: pd.DataFrame, timings: pd.DataFrame, methods: Sequence[str],
                     models: Mapping[str, Mapping], source: str | None) -> pd.DataFrame:
    """Means over each method's test subjects: scores (Dice with its 95 % interval), misses, centre-of-mass
    errors (over the sides found) and seconds per subject (the job's wall time from its Snakemake benchmark;
    the network alone, which the paper's times are), then `source`'s rows, each after ours beside it."""
    chosen = overlap[overlap["method"].isin(methods)]
    scores = subject_scores(chosen)
    averaged = [*SCORES, "com_error_left_mm", "com_error_right_mm"]
    means = scores.groupby(["method", "structure"]).agg(
        subjects=("subject", "count"), **{column: (column, "mean") for column in averaged},
        dice_ci95=("dice", ci95))
    seconds = timings.groupby("method").agg(job_seconds=("job_seconds", "mean"),
                                            network_seconds=("network_seconds", "mean"))
    ours = means.reset_index().join(seconds, on="method").join(misses(chosen), on="method")
    ours = ours[["method", "structure", "subjects", "dice", "dice_ci95", "precision", "recall", "misses",
                 "com_error_left_mm", "com_error_right_mm", "job_seconds", "network_seconds"]]
    ours.insert(1, "cohort", ours["method"].map({method: model["cohort"] for method, model in models.items()}))
    rank = {method: position for position, method in enumerate(methods)}
    ours = ours.sort_values("method", key=lambda names: names.map(rank), ignore_index=True)  # the config's order
    if source is None:
        return ours
    return beside(ours, paper_times(paper_wide((source,), (*SCORES, "inference_time"))), models)


REFERENCE = "reference labels"


def consistency_cases(cases: Sequence[OverlapCase], tasks: Mapping[str, str], slice_axis: int = 2) -> pd.DataFrame:
    """Per subject, method and structure: `metrics.slice_consistency` across the 2D models' slice axis,
    of each case's labels and of its subject's reference labels (method "reference labels", scored for
    the structures of the last case's task: the compared models share one)."""
    scored = {}
    for case in cases:
        task = tasks[case.method]
        scored[(case.method, str(case.subject))] = (case.prediction, task)
        scored[(REFERENCE, str(case.subject))] = (case.reference, task)
    rows = []
    for (method, subject), (path, task) in scored.items():
        structures = {name: tuple(STRUCTURE_BY_NAME[part].label for part in parts) for name, parts in TASKS[task].items()}
        labels = read_volume(path, dtype=np.int16)[0]
        rows += [{"subject": subject, "method": method, **row} for row in slice_consistency(labels, structures, slice_axis)]
    return pd.DataFrame(rows)


def slices_table(overlap: pd.DataFrame, timings: pd.DataFrame, consistency: pd.DataFrame,
                 methods: Sequence[str], models: Mapping[str, Mapping]) -> pd.DataFrame:
    """2D vs 2.5D: `experiment_table` with the mean consecutive-slice Dice and components per structure."""
    table = experiment_table(overlap, timings, methods, models, None)
    per_structure = consistency.assign(structure=consistency["structure"].map(nucleus_of))
    means = per_structure.groupby(["method", "structure"])[["slice_dice", "components"]].mean()
    table = table.join(means, on=["method", "structure"])
    reference = means.loc[[REFERENCE]].reset_index()
    return pd.concat([table, reference], ignore_index=True)


def write_experiment_tables(overlap: pd.DataFrame, plan: ExperimentsPlan, out_dir: str | os.PathLike) -> list[Path]:
    """Every LiNUS experiment table (CSV, Markdown, LaTeX) and the per-subject consistency CSV it
    aggregates, from the overlap table and the plan file linus_experiments.json."""
    out_dir = Path(out_dir)
    timings, models = timing_table(plan.timings), plan.models
    consistency = consistency_cases(plan.slice_cases, {method: model["task"] for method, model in models.items()})
    written = [write_table(cohort_table(plan.cohorts), out_dir / "linus_cohorts",
                           "Cohorts: image dimensions and spacing read from the data; paper rows: LiNUS Table VI")]
    for kind, methods in plan.experiments.items():
        table = (slices_table(overlap, timings, consistency, methods, models) if kind == "slices"
                 else experiment_table(overlap, timings, methods, models, TABLE_SOURCES[kind]))
        written.append(write_table(table, out_dir / TABLE_NAMES[kind], CAPTIONS[kind]))
    consistency_csv = write_text_atomic(out_dir / "linus_slice_consistency.csv", consistency.to_csv(index=False))
    return [path for paths in written for path in paths] + [consistency_csv]
