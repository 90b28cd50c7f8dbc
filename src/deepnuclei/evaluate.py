"""Evaluation of segmentations against reference labels: overlap per subject, method and structure.

Every method (atlas baselines, models) is scored the same way from the files it wrote on the SWI grid.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .io import InputError, read_volume, write_text_atomic
from .labels import STRUCTURE_BY_NAME, STRUCTURES


def scored_structures() -> dict[str, tuple[int, ...]]:
    """Each reference structure, plus GP (GPe + GPi) per side as the DB-ResUNet paper annotates it."""
    structures = {s.name: (s.label,) for s in STRUCTURES}
    for side in ("L", "R"):
        structures[f"GP_{side}"] = (STRUCTURE_BY_NAME[f"GPe_{side}"].label, STRUCTURE_BY_NAME[f"GPi_{side}"].label)
    return structures


def overlap(prediction: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Dice, precision and recall of two boolean masks (NaN where undefined)."""
    true_positive = float(np.sum(prediction & reference))
    predicted, actual = float(np.sum(prediction)), float(np.sum(reference))
    return {
        "dice": 2 * true_positive / (predicted + actual) if predicted + actual else np.nan,
        "precision": true_positive / predicted if predicted else np.nan,
        "recall": true_positive / actual if actual else np.nan,
    }


def score_subject(prediction_path: str | os.PathLike, reference_path: str | os.PathLike) -> list[dict]:
    prediction, prediction_affine = read_volume(prediction_path, dtype=np.uint8)
    reference, reference_affine = read_volume(reference_path, dtype=np.uint8)
    if prediction.shape != reference.shape or not np.allclose(prediction_affine, reference_affine, atol=1e-3):
        raise InputError(prediction_path, f"not on the reference grid of {reference_path}")
    voxel_mm3 = float(abs(np.linalg.det(reference_affine[:3, :3])))
    rows = []
    for name, labels in scored_structures().items():
        predicted, actual = np.isin(prediction, labels), np.isin(reference, labels)
        rows.append({"structure": name, **overlap(predicted, actual),
                     "volume_mm3": float(predicted.sum()) * voxel_mm3,
                     "reference_volume_mm3": float(actual.sum()) * voxel_mm3})
    return rows


def overlap_table(cases: Sequence[dict]) -> pd.DataFrame:
    """Cases: dicts with subject, method, prediction (path), reference (path)."""
    rows = []
    for case in cases:
        for row in score_subject(case["prediction"], case["reference"]):
            rows.append({"subject": case["subject"], "method": case["method"], **row})
    return pd.DataFrame(rows)


def summary_by_method(table: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """Mean of a metric per structure (rows) and method (columns)."""
    return table.pivot_table(index="structure", columns="method", values=metric, aggfunc="mean").round(3)


def write_overlap(cases: Sequence[dict], out_csv: str | os.PathLike, out_markdown: str | os.PathLike) -> pd.DataFrame:
    table = overlap_table(cases)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_csv, table.to_csv(index=False))
    summary = summary_by_method(table)
    write_text_atomic(out_markdown, "Mean Dice per structure and method\n\n" + summary.to_markdown() + "\n")
    return table
