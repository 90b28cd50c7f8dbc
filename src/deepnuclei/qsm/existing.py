"""A QSM map a session already has (the dataset's `_Chimap`, or one a QSM tool such as QSMxT wrote in a
derivative folder), used instead of reconstructing one from phase (config `qsm.input`).

Tools write ppm (QSMxT, STI Suite, MEDI) or ppb; the workflow's maps are in ppm (its measures report ppb).
The unit is the sidecar's `Units` where it states one, else read from the values: deep grey matter lies
within about 0 to 0.3 ppm and veins reach about 0.5 ppm, so the 99th percentile of |chi| over the brain
(the map's non-zero voxels) is about 0.05 to 0.5 in ppm and 50 to 500 in ppb. A map outside both ranges
(widened, below) is in another unit (radians, Hz, a tool's own scale) and is refused before any compute,
and so is one whose values contradict its sidecar's `Units`. The map is used as its source referenced it:
the reference is the sidecar's `Reference` where stated, and the record says so either way.

numpy and nibabel only for the check, which `deepnuclei.validate` runs with the other input checks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import InputError, read_json, read_volume, save_volume, write_json

TO_PPM = {"ppm": 1.0, "ppb": 1e-3}
ABS_P99_RANGES = {"ppm": (0.02, 2.0), "ppb": (20.0, 2000.0)}  # the 99th percentile of |chi| over the brain, per unit
UNIT_NAMES = {"ppm": "ppm", "ppb": "ppb", "parts per million": "ppm", "parts per billion": "ppb"}
UNSTATED_REFERENCE = "not stated by its source: used as given"


def sidecar_path(image: str | os.PathLike) -> Path:
    name = str(image)
    for extension in (".nii.gz", ".nii"):
        if name.endswith(extension):
            return Path(name[: -len(extension)] + ".json")
    return Path(name + ".json")


def unit_of_range(abs_p99: float) -> str | None:
    return next((unit for unit, (low, high) in ABS_P99_RANGES.items() if low <= abs_p99 <= high), None)


def ranges_text() -> str:
    return " or ".join(f"{low:g}-{high:g} in {unit}" for unit, (low, high) in ABS_P99_RANGES.items())


def existing_qsm_unit(path: str | os.PathLike, chi: np.ndarray) -> dict[str, Any]:
    """The map's unit, how it was found, its values' 99th percentile of |chi| over the brain and its reference;
    an `InputError` naming the map (or its sidecar) when the unit is not ppm or ppb or the two disagree."""
    brain = np.isfinite(chi) & (chi != 0)
    if not brain.any():
        raise InputError(path, "all voxels are zero or not finite")
    abs_p99 = float(np.percentile(np.abs(chi[brain]), 99))
    by_range = unit_of_range(abs_p99)
    sidecar = sidecar_path(path)
    stated = read_json(sidecar) if sidecar.is_file() else {}
    if "Units" in stated:
        unit = UNIT_NAMES.get(str(stated["Units"]).strip().lower())
        if unit is None:
            raise InputError(sidecar, f"Units '{stated['Units']}': a QSM map is read in ppm or ppb (convert it first)")
        if by_range != unit:
            raise InputError(path, f"its sidecar states Units {stated['Units']}, but the 99th percentile of |chi| over "
                                   f"the brain is {abs_p99:.3g} ({ranges_text()} expected): a map in another unit?")
        found_from = f"sidecar Units ({sidecar.name})"
    elif by_range is None:
        raise InputError(path, f"the 99th percentile of |chi| over the brain is {abs_p99:.3g}: neither ppm nor ppb "
                               f"({ranges_text()} expected); convert it to ppm, or state Units in its JSON sidecar")
    else:
        unit, found_from = by_range, "the values' range (no Units in a sidecar)"
    return {"source": str(path), "unit": unit, "unit_from": found_from, "abs_p99": round(abs_p99, 4),
            "reference": stated.get("Reference", UNSTATED_REFERENCE), "non_finite_voxels": int(np.sum(~np.isfinite(chi)))}


def check_existing_qsm(path: str | os.PathLike) -> dict[str, Any]:
    """Read the map (NaN outside the brain allowed: several tools write it so) and find its unit."""
    return existing_qsm_unit(path, read_volume(path, allow_nan=True)[0])


def import_existing_qsm(checked: Mapping[str, Any], magnitudes: Sequence[str | os.PathLike], out_chi: str | os.PathLike,
                        out_record: str | os.PathLike, out_qc: str | os.PathLike, sources: Sequence[str] = ()
                        ) -> dict[str, Any]:
    """The map `check_existing_qsm` found (`checked`, its record) in ppm, non-finite voxels zero, with a JSON
    record (units, reference, source; `sources`: its BIDS URI) and the QC picture of a reconstruction (magnitude, map)."""
    from .pipeline import combined_magnitude, qc_figure

    chi, affine = read_volume(checked["source"], allow_nan=True)
    ppm = np.where(np.isfinite(chi), chi * TO_PPM[checked["unit"]], 0).astype(np.float32)
    save_volume(out_chi, ppm, affine, np.float32)
    record = {"Units": "ppm", "Reference": checked["reference"], "Source": checked["source"],
              "SourceUnits": checked["unit"], "SourceUnitsFrom": checked["unit_from"],
              "SourceAbsP99": checked["abs_p99"], "NonFiniteVoxelsZeroed": checked["non_finite_voxels"],
              "Sources": list(sources)}
    write_json(out_record, record)
    magnitude = combined_magnitude(np.stack([read_volume(path)[0] for path in magnitudes]))
    qc_figure({"chi": ppm, "mask": ppm != 0}, magnitude, affine, out_qc,
              f"{Path(checked['source']).name.split('_')[0]} QSM: existing map ({checked['unit']}, unit from "
              f"{checked['unit_from']}), reference: {checked['reference']}")
    return record
