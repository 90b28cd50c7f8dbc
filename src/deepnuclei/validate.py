"""Checks of one subject's input files, made before any heavy step (the workflow's `validate_inputs` rule).

Every problem is an `InputError` naming the file and what is wrong, in one line. Headers and voxels are
read once (seconds per subject). The SWI checks (echo sidecars, phase units, one grid for every echo)
are the QSM pipeline's own, called here before QSM and registration start rather than inside them.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .io import InputError, read_volume, voxel_sizes
from .labels import STRUCTURES
from .qsm.pipeline import echo_parameters, phase_in_radians, shared_affine

PathLike = str | os.PathLike
PACKAGE_LOOKUP = "deepnuclei.labels"  # where the lookup comes from when the dataset has no dseg.tsv


def check_image(path: PathLike) -> np.ndarray:
    """The voxels of a readable 3D image (finite everywhere, see `read_volume`) that are not all zero."""
    data, _ = read_volume(path)
    if not np.any(data):
        raise InputError(path, "all voxels are zero")
    return data


def read_lookup(path: PathLike | None) -> dict[int, str]:
    """Label value -> structure name from a BIDS `dseg.tsv` (columns `index`, `name` and, when present,
    `abbreviation`, which then names the structure); without a file, the package's own table."""
    if path is None:
        return {structure.label: structure.name for structure in STRUCTURES}
    if not Path(path).exists():
        raise InputError(path, "file does not exist")
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    if not rows or not {"index", "name"} <= set(rows[0]):
        raise InputError(path, "a dseg.tsv needs the columns index and name")
    try:
        return {int(row["index"]): row.get("abbreviation") or row["name"] for row in rows}
    except (TypeError, ValueError) as error:
        raise InputError(path, f"the index column holds a value that is not an integer ({error})") from error


def check_labels(path: PathLike, lookup: Mapping[int, str], table: str,
                 outside_view: Collection[str] = ()) -> dict[str, int]:
    """Voxel counts per structure of a label map. Every value must be in the lookup table `table`, and
    every structure the table lists must have voxels (a dataset labelling only some structures lists
    only those in its dseg.tsv), except those `outside_view` (of a partial field of view)."""
    data = check_image(path)
    if not np.array_equal(data, np.round(data)):
        raise InputError(path, "label values are not integers")
    values, counts = np.unique(data.astype(np.int64), return_counts=True)
    present = {value: count for value, count in zip(values.tolist(), counts.tolist()) if value != 0}
    unknown = sorted(set(present) - set(lookup))
    if unknown:
        raise InputError(path, f"label values {unknown} are not in the lookup table {table}")
    empty = [f"{name} ({value})" for value, name in sorted(lookup.items())
             if value not in present and name not in outside_view]
    if empty:
        raise InputError(path, f"no voxels labelled {', '.join(empty)}, listed in {table}")
    return {lookup[value]: count for value, count in present.items()}


def checked_phases(paths: Sequence[PathLike]) -> list[str]:
    """Check each phase image's values; return the notes of phases accepted in scanner units."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in paths:
            phase_in_radians(check_image(path), path)
    return [str(warning.message) for warning in caught]


def validate_subject(
    t1: PathLike,
    magnitudes: Sequence[PathLike],
    phases: Sequence[PathLike],
    sidecars: Sequence[PathLike],
    labels: Mapping[str, PathLike] | None = None,
    lookup: PathLike | None = None,
    outside_view: Collection[str] = (),
) -> dict[str, Any]:
    """Check a subject's T1, SWI echoes (magnitude, phase and phase sidecar per echo, in echo order) and
    reference labels (by space: "SWI" on the magnitude grid, "T1w" on the T1 grid) against the dataset's
    `lookup` table (its dseg.tsv; None: the package's table); structures `outside_view` may be absent.
    Raises `InputError` at the first problem;
    returns what was found. Cheap checks come first: sidecars, then headers, then voxels."""
    if not len(magnitudes) == len(phases) == len(sidecars) > 0:
        raise ValueError(f"need one magnitude, phase and sidecar per echo; got {len(magnitudes)} magnitude, "
                         f"{len(phases)} phase and {len(sidecars)} sidecar files")
    labels = dict(labels or {})
    unknown_spaces = set(labels) - {"SWI", "T1w"}
    if unknown_spaces:
        raise ValueError(f"labels must be given by space SWI or T1w, got {sorted(unknown_spaces)}")
    echo_times, b0_tesla = echo_parameters(sidecars)
    swi_files = [*magnitudes, *phases, *([labels["SWI"]] if "SWI" in labels else [])]
    swi_affine = shared_affine(swi_files)
    t1_affine = shared_affine([t1, *([labels["T1w"]] if "T1w" in labels else [])])
    for path in (t1, *magnitudes):
        check_image(path)
    notes = checked_phases(phases)
    table = str(lookup) if lookup is not None else PACKAGE_LOOKUP
    structures = read_lookup(lookup)
    return {
        "echo_times_s": echo_times,
        "b0_tesla": b0_tesla,
        "swi_voxel_mm": voxel_sizes(swi_affine).round(4).tolist(),
        "t1_voxel_mm": voxel_sizes(t1_affine).round(4).tolist(),
        "lookup": table,
        "label_voxels": {space: check_labels(path, structures, table, outside_view) for space, path in labels.items()},
        "notes": notes,
    }
