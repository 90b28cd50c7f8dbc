"""Checks of one subject's input files, made before any heavy step (the workflow's `validate_inputs` rule).

Every problem is an `InputError` naming the file and what is wrong, in one line. Headers and voxels are
read once (seconds per subject). The SWI checks (echo sidecars, phase units, one grid for every echo)
are the QSM pipeline's own, called here before QSM and registration start rather than inside them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from .io import InputError, read_volume, voxel_sizes
from .labels import STRUCTURES, dataset_mapping, dataset_structures, read_dseg_names
from .qsm.existing import check_existing_qsm
from .qsm.inputs import echo_parameters, phase_in_radians, shared_affine

PathLike = str | os.PathLike
PACKAGE_LOOKUP = "deepnuclei.labels"  # where the lookup comes from when the dataset has no dseg.tsv


def check_image(path: PathLike) -> np.ndarray:
    """The voxels of a readable 3D image (finite everywhere, see `read_volume`) that are not all zero."""
    data, _ = read_volume(path)
    if not np.any(data):
        raise InputError(path, "all voxels are zero")
    return data


def check_magnitude(path: PathLike) -> None:
    """A magnitude has no negative values: a real or imaginary part given as magnitude (an easy mistake with
    a scanner's complex export) would otherwise weight the QSM fit and drive registration as is."""
    data = check_image(path)
    negative = int(np.sum(data < 0))
    if negative:
        raise InputError(path, f"{negative} voxels are negative (min {data.min():.4g}): a magnitude image has none "
                               f"(a real or imaginary part given as magnitude?)")


def check_labels(path: PathLike, lookup: Mapping[int, str], table: str,
                 outside_view: Collection[str] = ()) -> dict[str, int]:
    """Voxel counts per structure of a label map. Every value must be in the lookup table `table`, and
    every structure the table lists must have voxels (a dataset labelling only some structures lists
    only those in its dseg.tsv), except background (0) and those `outside_view` (of a partial field of view)."""
    data = check_image(path)
    if not np.array_equal(data, np.round(data)):
        raise InputError(path, "label values are not integers")
    values, counts = np.unique(data.astype(np.int64), return_counts=True)
    present = {value: count for value, count in zip(values.tolist(), counts.tolist()) if value != 0}
    unknown = sorted(set(present) - set(lookup))
    if unknown:
        raise InputError(path, f"label values {unknown} are not in the lookup table {table}")
    empty = [f"{name} ({value})" for value, name in sorted(lookup.items())
             if value != 0 and value not in present and name not in outside_view]
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
    t1: PathLike | None,
    magnitudes: Sequence[PathLike],
    phases: Sequence[PathLike],
    sidecars: Sequence[PathLike],
    labels: Mapping[str, PathLike] | None = None,
    lookup: PathLike | None = None,
    outside_view: Collection[str] = (),
    ignore: Collection[str] = (),
    chimap: PathLike | None = None,
) -> dict[str, Any]:
    """Check a subject's T1, SWI echoes (magnitude, phase and phase sidecar per echo, in echo order) and
    reference labels (by space: "SWI" on the magnitude grid, "T1w" on the T1 grid) against the dataset's
    `lookup` table (its dseg.tsv; None: the package's table); structures `outside_view` may be absent.
    A session may have a T1 only (`magnitudes` empty) or SWI only (`t1` None). A session with an existing
    QSM map (`chimap`, on the magnitudes' grid) has no phases: the map's unit is checked instead
    (`deepnuclei.qsm.existing`) and recorded as `existing_qsm`.
    Every name in the table must match a package structure (`labels.dataset_mapping`) or be listed in
    `ignore` (structures deepnuclei does not segment, which may then also be absent).
    Raises `InputError` at the first problem; returns what was found, with the package structures the
    labels hold. Cheap checks come first: sidecars, then headers, then voxels."""
    if chimap is not None and (phases or sidecars or not magnitudes):
        raise ValueError("a session with an existing QSM map has its SWI magnitudes (their grid) and no phases")
    if chimap is None and not len(magnitudes) == len(phases) == len(sidecars):
        raise ValueError(f"need one magnitude, phase and sidecar per echo; got {len(magnitudes)} magnitude, "
                         f"{len(phases)} phase and {len(sidecars)} sidecar files")
    if t1 is None and not magnitudes:
        raise ValueError("a session needs a T1 or SWI echoes")
    labels = dict(labels or {})
    unknown_spaces = set(labels) - {"SWI", "T1w"}
    if unknown_spaces:
        raise ValueError(f"labels must be given by space SWI or T1w, got {sorted(unknown_spaces)}")
    for space, present in (("SWI", bool(magnitudes)), ("T1w", t1 is not None)):
        if space in labels and not present:
            raise InputError(labels[space], f"labels on the {space} grid of a session without {space} images")
    echo_times, b0_tesla = echo_parameters(sidecars) if sidecars else ([], None)
    swi_images = [*magnitudes, *phases, *([chimap] if chimap else []), *([labels["SWI"]] if "SWI" in labels else [])]
    swi_affine = shared_affine(swi_images) if magnitudes else None
    t1_affine = shared_affine([t1, *([labels["T1w"]] if "T1w" in labels else [])]) if t1 is not None else None
    if t1 is not None:
        check_image(t1)
    for path in magnitudes:
        check_magnitude(path)
    notes = checked_phases(phases)
    existing_qsm = check_existing_qsm(chimap) if chimap is not None else None
    table = str(lookup) if lookup is not None else PACKAGE_LOOKUP
    names = {s.label: (s.name,) for s in STRUCTURES} if lookup is None else read_dseg_names(lookup)
    structures = {value: label_names[0] for value, label_names in names.items()}  # abbreviation where given
    # names first: a table naming an unknown structure fails here, before the label maps' voxels are read
    mapping = dataset_mapping(names, table, ignore)
    ignored = [structures[value] for value, target in mapping.items() if target == 0 and value in structures]
    return {
        "echo_times_s": echo_times,
        "b0_tesla": b0_tesla,
        "swi_voxel_mm": None if swi_affine is None else voxel_sizes(swi_affine).round(4).tolist(),
        "t1_voxel_mm": None if t1_affine is None else voxel_sizes(t1_affine).round(4).tolist(),
        "lookup": table,
        "structures": dataset_structures(mapping),
        "label_voxels": {space: check_labels(path, structures, table, [*outside_view, *ignored])
                         for space, path in labels.items()},
        "existing_qsm": existing_qsm,
        "notes": notes,
    }
