"""Evaluation metrics.

QSM: the QSM-CI scorer's metrics (`qsm_ci.qsm_eval`, a port of the QSM.rs reference: demeaned NRMSE,
HFEN, XSIM) and the mean susceptibility error per structure of the reference label map.

Segmentations: 3D consistency of a label map along the axis a 2D model slices it across
(consecutive-slice Dice, 26-connected components), to compare 2D with 2.5D and 3D models.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.ndimage as ndi
from qsm_ci import qsm_eval

from .evaluate import dice
from .io import InputError, load_nifti, read_volume, same_affine
from .labels import STRUCTURES

# ---- QSM -------------------------------------------------------------------------------------------


def demeaned(chi: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`chi` minus its mean in the mask, zero outside: susceptibility is only defined up to a constant."""
    mask = np.asarray(mask, bool)
    return np.where(mask, chi - chi[mask].mean(), 0.0)


def structure_errors_ppb(
    estimate: np.ndarray, truth: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, float]:
    """Mean susceptibility error (estimate - truth, ppb) per structure present in the label map."""
    within = np.ones(labels.shape, bool) if mask is None else np.asarray(mask, bool)
    errors = {}
    for structure in STRUCTURES:
        region = (labels == structure.label) & within
        if region.any():
            errors[structure.name] = float(1000.0 * (estimate[region].mean() - truth[region].mean()))
    return errors


def qsm_metrics(
    estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None
) -> dict[str, float]:
    """All QSM metrics as one flat row: nrmse_percent, hfen_percent, xsim, and per structure
    error_ppb_<name> plus max_abs_error_ppb.

    Both maps are first referenced to their mean in the mask (the challenge's demeaned metrics), so an
    arbitrary susceptibility offset does not count as error.
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("the evaluation mask is empty")
    estimate, truth = demeaned(estimate, mask), demeaned(truth, mask)
    row = {
        "nrmse_percent": qsm_eval.nrmse_challenge(estimate, truth, mask)[0],
        "hfen_percent": qsm_eval.hfen(estimate, truth, mask),
        "xsim": qsm_eval.xsim(estimate, truth, mask),
    }
    if labels is not None:
        errors = structure_errors_ppb(estimate, truth, labels, mask)
        row.update({f"error_ppb_{name}": value for name, value in errors.items()})
        row["max_abs_error_ppb"] = max((abs(value) for value in errors.values()), default=float("nan"))
    return row


def _on_grid(path: str | os.PathLike, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    volume = read_volume(path, dtype=dtype)[0]
    if volume.shape != shape:
        raise InputError(path, f"shape {volume.shape} differs from the susceptibility map's {shape}")
    return volume


def qsm_metrics_from_files(
    chi_path: str | os.PathLike,
    truth_path: str | os.PathLike,
    mask_path: str | os.PathLike,
    dseg_path: str | os.PathLike | None = None,
    truth_mask_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """`qsm_metrics` of a susceptibility map against the true one, in the reconstruction's valid mask
    (intersected with the true brain mask when given)."""
    estimate, affine = read_volume(chi_path)
    if not same_affine(load_nifti(truth_path).affine, affine):
        raise InputError(truth_path, f"affine differs from that of {chi_path}")
    mask = _on_grid(mask_path, estimate.shape) > 0
    if truth_mask_path is not None:
        mask &= _on_grid(truth_mask_path, estimate.shape) > 0
    labels = None if dseg_path is None else _on_grid(dseg_path, estimate.shape, np.int16)
    return qsm_metrics(estimate, _on_grid(truth_path, estimate.shape), mask, labels)


# ---- segmentations: 3D consistency -----------------------------------------------------------------


def consecutive_slice_dice(mask: np.ndarray, axis: int) -> float:
    """Mean Dice between each slice of a boolean mask and the next across `axis`, over the pairs within
    the structure's extent along that axis where either slice holds it; NaN below two slices.

    A smooth structure's cross-section changes gradually from slice to slice; a model that segments
    each slice on its own (LiNUS) can miss a slice or move an outline between neighbours (the LiNUS
    paper's Figs 5-6), which shows as pairs of low Dice (a missed slice: two pairs of 0). The pairs
    where the structure enters and leaves the stack, 0 for any method, are left out. Small structures
    and thick slices lower every method's score: compare methods with the reference's own score."""
    mask = np.moveaxis(np.asarray(mask, bool), axis, 0)
    areas = mask.reshape(len(mask), -1).sum(1)
    present = np.flatnonzero(areas)
    if len(present) < 2:
        return np.nan
    first, last = present[0], present[-1]
    overlaps = (mask[first:last] & mask[first + 1 : last + 1]).reshape(last - first, -1).sum(1)
    sizes = areas[first:last] + areas[first + 1 : last + 1]
    either = sizes > 0  # inside a gap of two or more empty slices neither does
    return float(np.mean(dice(overlaps[either], sizes[either])))


def connected_components(mask: np.ndarray) -> int:
    """Number of 26-connected components of a boolean mask: 1 for a structure in one piece; a
    slice-wise model's missed slice splits it, and a stray detection on a far slice adds one."""
    return int(ndi.label(np.asarray(mask, bool), structure=np.ones((3, 3, 3)))[1])


def slice_consistency(labels: np.ndarray, structures: Mapping[str, Sequence[int]], axis: int) -> list[dict]:
    """Per structure (name -> its values in `labels`, e.g. `evaluate.scored_structures()`), its
    `consecutive_slice_dice` across `axis` and its `connected_components`, one row each."""
    rows = []
    for name, values in structures.items():
        mask = np.isin(labels, values)
        rows.append({"structure": name, "slice_dice": consecutive_slice_dice(mask, axis),
                     "components": connected_components(mask)})
    return rows
