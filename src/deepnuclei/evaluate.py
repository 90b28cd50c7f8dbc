"""Evaluation of segmentations against reference labels, per subject, method and structure: overlap
(Dice, precision, recall), volumes, surface distances (HD95, mean surface distance), centre-of-mass
error in world coordinates (and the centres as voxel indices of the scored grid, as the LiNUS paper's
Tables IV and V give them) and, given the subject's susceptibility map, mean susceptibility.

Every method (atlas baselines, models) is scored the same way from the files it wrote. A structure the
reference has and the method did not find at all is a miss: Dice, precision and recall 0 (not NaN, which
the means would drop, so that a model missing a structure would look better than one finding it badly),
`missed` true, and its distances NaN: the tables show the number of misses beside those means.

Neither paper cleans its predictions up; where the config asks for it (`evaluation.largest_component`)
every method's labels are scored a second time reduced to each structure's largest connected component,
as method `<method>+lcc` (`CLEANED_SUFFIX`): their own rows, for atlas baselines and models alike.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd
import scipy.ndimage as ndi
from scipy.spatial import cKDTree

from .io import InputError, apply_affine, read_volume, same_grid, voxel_volume_mm3, write_text_atomic
from .labels import ALL_STRUCTURES, MAX_LABEL, PARTS, STRUCTURE_BY_NAME, STRUCTURES, TASKS, covers

CROP_MARGIN_VOXELS = 1  # every border voxel lies in the union's bounding box; one more keeps erosion exact
HAUSDORFF_PERCENTILE = 95
AXES = ("x", "y", "z")
INDICES = ("i", "j", "k")  # voxel indices of the scored grid


def scored_structures() -> dict[str, tuple[int, ...]]:
    """Each structure kept apart in the reference, plus GP per side as the DB-ResUNet paper annotates it:
    its own label (a dataset with GP as one label, a model's output) and GPe + GPi."""
    structures = {s.name: (s.label,) for s in STRUCTURES}
    for merged in (s for s in ALL_STRUCTURES if s.nucleus in PARTS):
        parts = (STRUCTURE_BY_NAME[f"{part}_{merged.hemisphere}"].label for part in PARTS[merged.nucleus])
        structures[merged.name] = (merged.label, *parts)
    return structures


def scored_names(structures: Collection[str] | None = None, task: str | None = None) -> list[str]:
    """The scored structures (in `scored_structures` order) of a reference annotating `structures` (package
    structure names; None: every one) and, for a model, of its task: GP where the reference has it as one
    label or as GPe and GPi, GPe and GPi only where it has them apart."""
    return [name for name in scored_structures()
            if (structures is None or covers(structures, name)) and (task is None or name in TASKS[task])]


CLEANED_SUFFIX = "+lcc"


def dice(overlap: np.ndarray | float, sizes: np.ndarray | float) -> np.ndarray:
    """Dice, 2 |A ∩ B| / (|A| + |B|), from the voxels two masks share and the sum of their voxel counts (scalars
    or arrays, one Dice each); NaN where both masks are empty."""
    with np.errstate(invalid="ignore"):  # 0 / 0
        return 2 * np.asarray(overlap, dtype=float) / np.asarray(sizes, dtype=float)


def overlap(prediction: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Dice, precision and recall of two boolean masks, and whether the prediction missed a structure the
    reference has. A miss scores 0 on all three; with both empty they are NaN (nothing to find or to miss)."""
    true_positive = float(np.sum(prediction & reference))
    predicted, actual = float(np.sum(prediction)), float(np.sum(reference))
    return {
        "dice": float(dice(true_positive, predicted + actual)),
        "precision": true_positive / predicted if predicted else (0.0 if actual else np.nan),
        "recall": true_positive / actual if actual else np.nan,
        "missed": bool(actual and not predicted),
    }


def keep_largest_components(labels: np.ndarray) -> np.ndarray:
    """Each label value reduced to its largest connected component (26-connectivity, within the value's
    bounding box); the rest becomes background."""
    cleaned = np.zeros_like(labels)
    for value, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        components, count = ndi.label(labels[box] == value, structure=np.ones((3,) * labels.ndim))
        largest = np.argmax(np.bincount(components.ravel())[1:]) + 1 if count else 0
        cleaned[box][components == largest] = value
    return cleaned


def border_points(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World coordinates (mm) of the mask's border voxels: those with a 6-neighbour outside the mask."""
    border = mask & ~ndi.binary_erosion(mask)
    return apply_affine(affine, np.argwhere(border))


def surface_distances(prediction: np.ndarray, reference: np.ndarray, affine: np.ndarray) -> dict[str, float]:
    """HD95 and mean surface distance in mm, as MONAI defines them (NaN where a mask is empty).

    Distances run from each border voxel of one mask to the nearest border voxel of the other, in world
    coordinates, so anisotropic and oblique (even sheared) grids need no special care. HD95 is the larger
    of the two directed 95th percentiles; the mean pools both directions.
    """
    if not prediction.any() or not reference.any():
        return {"hd95_mm": np.nan, "mean_surface_distance_mm": np.nan}
    predicted, actual = border_points(prediction, affine), border_points(reference, affine)
    to_reference = cKDTree(actual).query(predicted)[0]
    to_prediction = cKDTree(predicted).query(actual)[0]
    hd95 = max(np.percentile(distances, HAUSDORFF_PERCENTILE) for distances in (to_reference, to_prediction))
    pooled = np.concatenate([to_reference, to_prediction])
    return {"hd95_mm": float(hd95), "mean_surface_distance_mm": float(pooled.mean())}


def mean_index(mask: np.ndarray) -> np.ndarray:
    """Centre of mass in voxels: the mean index of the mask's voxels; NaN for an empty mask."""
    if not mask.any():
        return np.full(mask.ndim, np.nan)
    return np.argwhere(mask).mean(axis=0)


def centre_of_mass(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Centre of mass in world coordinates (mm), NaN for an empty mask; the affine maps voxel means exactly."""
    return apply_affine(affine, mean_index(mask))


def rounded_index_distance(predicted_index: np.ndarray, reference_index: np.ndarray, grid_affine: np.ndarray) -> float:
    """The distance (mm) between two centres rounded to voxel indices of the grid, as the LiNUS paper's Tables
    IV and V compute theirs (between the indices they print: {64,79,107} to {63,79,111} is 4.12 mm on 1 mm
    voxels); NaN where a centre is missing. Rounding as pandas' and numpy's round (half to even)."""
    offset = np.round(np.asarray(predicted_index, dtype=float)) - np.round(np.asarray(reference_index, dtype=float))
    return float(np.linalg.norm(np.asarray(grid_affine)[:3, :3] @ offset))


def ppb_mean(values_ppm: np.ndarray) -> float:
    """The mean of susceptibilities given in ppm, in ppb, summed in float64 (a float32 sum over a large
    structure drifts); NaN for none. The evaluation's and the measures' tables both report it."""
    return float(1000.0 * np.mean(values_ppm, dtype=np.float64)) if len(values_ppm) else np.nan


def mean_ppb(chi_ppm: np.ndarray | None, mask: np.ndarray) -> float:
    """Mean susceptibility in the mask in ppb (`ppb_mean`); NaN without a map or for an empty mask."""
    return ppb_mean(chi_ppm[mask]) if chi_ppm is not None else np.nan


def score_structure(
    prediction: np.ndarray, reference: np.ndarray, affine: np.ndarray, chi_ppm: np.ndarray | None = None,
    grid_affine: np.ndarray | None = None,
) -> dict[str, float]:
    """Every score of one structure from its two boolean masks on one grid (and the susceptibility map);
    centres also as voxel indices of `grid_affine`'s grid (default: the masks' own)."""
    voxel_mm3 = voxel_volume_mm3(affine)
    predicted_com, reference_com = centre_of_mass(prediction, affine), centre_of_mass(reference, affine)
    grid = affine if grid_affine is None else grid_affine
    to_index = np.linalg.inv(grid)
    predicted_index, reference_index = apply_affine(to_index, predicted_com), apply_affine(to_index, reference_com)
    return {
        **overlap(prediction, reference),
        "volume_mm3": float(prediction.sum()) * voxel_mm3,
        "reference_volume_mm3": float(reference.sum()) * voxel_mm3,
        **surface_distances(prediction, reference, affine),
        "com_error_mm": float(np.linalg.norm(predicted_com - reference_com)),
        "com_index_error_mm": rounded_index_distance(predicted_index, reference_index, grid),
        **{f"com_{axis}_mm": float(value) for axis, value in zip(AXES, predicted_com)},
        **{f"reference_com_{axis}_mm": float(value) for axis, value in zip(AXES, reference_com)},
        **{f"com_{axis}": float(value) for axis, value in zip(INDICES, predicted_index)},
        **{f"reference_com_{axis}": float(value) for axis, value in zip(INDICES, reference_index)},
        "susceptibility_ppb": mean_ppb(chi_ppm, prediction),
        "reference_susceptibility_ppb": mean_ppb(chi_ppm, reference),
    }


def union_box(boxes: Sequence[tuple[slice, ...] | None], shape: Sequence[int]) -> tuple[slice, ...]:
    """Bounding box of the given boxes plus a margin, clipped to the grid; empty when none is present."""
    present = [box for box in boxes if box is not None]
    if not present:
        return tuple(slice(0, 0) for _ in shape)
    starts = np.min([[s.start for s in box] for box in present], axis=0) - CROP_MARGIN_VOXELS
    stops = np.max([[s.stop for s in box] for box in present], axis=0) + CROP_MARGIN_VOXELS
    return tuple(slice(max(start, 0), min(stop, size)) for start, stop, size in zip(starts, stops, shape))


def cropped_affine(affine: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """The affine of a sub-grid starting at the box's corner."""
    moved = np.array(affine, dtype=float)
    moved[:3, 3] = apply_affine(affine, [s.start for s in box])
    return moved


def score_labels(
    prediction: np.ndarray, reference: np.ndarray, affine: np.ndarray, chi_ppm: np.ndarray | None = None,
    names: Sequence[str] | None = None,
) -> list[dict]:
    """Scores of the scored structures `names` (None: every one) from two label maps on one grid, each
    within its bounding box (found for all labels in one pass) so distances and masks cost no more than
    the structure itself."""
    boxes = ndi.find_objects(prediction, MAX_LABEL), ndi.find_objects(reference, MAX_LABEL)
    scored = scored_structures()
    rows = []
    for name in scored if names is None else names:
        labels = scored[name]
        box = union_box([found[label - 1] for found in boxes for label in labels], reference.shape)
        rows.append({"structure": name, **score_structure(
            np.isin(prediction[box], labels), np.isin(reference[box], labels), cropped_affine(affine, box),
            None if chi_ppm is None else chi_ppm[box], affine)})
    return rows


def read_on_grid(path: str | os.PathLike, reference_path: str | os.PathLike, shape: tuple[int, ...],
                 affine: np.ndarray, dtype: type) -> np.ndarray:
    """A volume that must share the reference labels' grid."""
    volume, volume_affine = read_volume(path, dtype=dtype)
    if not same_grid(volume.shape, volume_affine, shape, affine):
        raise InputError(path, f"not on the reference grid of {reference_path}")
    return volume


def score_subject(
    prediction_path: str | os.PathLike,
    reference_path: str | os.PathLike,
    qsm_path: str | os.PathLike | None = None,
    structures: Collection[str] | None = None,
    task: str | None = None,
    largest_component: bool = False,
) -> dict[str, list[dict]]:
    """`score_labels` of a segmentation file against the reference labels (and a Chimap in ppm), for the
    structures the reference annotates and the model's task segments (`scored_names`): under "" the
    labels as written, under `CLEANED_SUFFIX` (with `largest_component`) after `keep_largest_components`."""
    reference, affine = read_volume(reference_path, dtype=np.uint8)
    prediction = read_on_grid(prediction_path, reference_path, reference.shape, affine, np.uint8)
    chi_ppm = None
    if qsm_path is not None:
        chi_ppm = read_on_grid(qsm_path, reference_path, reference.shape, affine, np.float32)
    names = scored_names(structures, task)
    versions = {"": prediction, **({CLEANED_SUFFIX: keep_largest_components(prediction)} if largest_component else {})}
    return {suffix: score_labels(labels, reference, affine, chi_ppm, names) for suffix, labels in versions.items()}


def overlap_table(cases: Sequence[dict], largest_component: bool = False) -> pd.DataFrame:
    """Cases: dicts with subject, method, prediction (path), reference (path) and optionally qsm (path),
    space (the scored grid's name, kept as a column), structures (the package structures the reference
    annotates, `labels.dataset_structures`: no row for one it lacks) and task (a model's `labels.TASKS` key:
    only its structures are scored, so an STN model is not listed with a Dice of 0 for the caudate).
    `largest_component`: also every case cleaned up, as method `<method>+lcc`."""
    return pd.DataFrame([
        {"subject": case["subject"], "method": case["method"] + suffix, "space": case.get("space", ""), **row}
        for case in cases
        for suffix, rows in score_subject(case["prediction"], case["reference"], case.get("qsm"),
                                          case.get("structures"), case.get("task"), largest_component).items()
        for row in rows
    ])


def summary_by_method(table: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """Mean of a metric per structure (rows) and method (columns)."""
    return table.pivot_table(index="structure", columns="method", values=metric, aggfunc="mean").round(3)


def write_overlap_case(case: dict, out_csv: str | os.PathLike, largest_component: bool = False) -> pd.DataFrame:
    """One method's scores on one session (an `overlap_table` case), as a CSV that `merge_overlap` joins."""
    table = overlap_table([case], largest_component)
    write_text_atomic(out_csv, table.to_csv(index=False))
    return table


def merge_overlap(case_csvs: Sequence[str | os.PathLike], out_csv: str | os.PathLike,
                  out_markdown: str | os.PathLike) -> pd.DataFrame:
    """The per-case CSVs in one table (in the order given), with its mean-Dice summary in Markdown."""
    table = pd.concat([pd.read_csv(path, dtype={"subject": str}) for path in case_csvs], ignore_index=True)
    write_text_atomic(out_csv, table.to_csv(index=False))
    write_text_atomic(out_markdown, "Mean Dice per structure and method\n\n" + summary_by_method(table).to_markdown() + "\n")
    return table
