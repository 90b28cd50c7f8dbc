"""The SWI input files as QSM reads them, checked before any heavy step: phase in radians (scanner
units rescaled, a magnitude given as phase refused), echo times and field strength from the BIDS
sidecars, one grid for every echo. numpy and nibabel only, so that `deepnuclei.validate` checks a
session's files without importing torch.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..io import InputError, check_same_grid, load_nifti, read_json, read_volume

SCANNER_PHASE_RANGES = ((0, 4095), (-4096, 4095))  # 12-bit phase as stored by Siemens and others
PHASE_MIN_HALF = 0.01  # share of non-zero voxels on either side of 0 rad under which a "phase" is a magnitude
NOISE_FLOOR_MIN = 0.25  # share of non-zero voxels in the range's lowest eighth from which, with under...
NOISE_FLOOR_TOP_RATIO = 0.1  # ...this fraction of it in the highest eighth, a "phase" is a magnitude's noise floor


def phase_in_radians(phase: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Phase in radians: accepted as is within [-pi, pi]; 12-bit integer scanner units are rescaled
    (with a warning); anything else is an `InputError`, and so is a magnitude image given as phase
    (`looks_like_magnitude`)."""
    low, high = float(phase.min()), float(phase.max())
    if low >= -np.pi - 1e-3 and high <= np.pi + 1e-3:
        return checked_phase(phase, phase, path)
    if np.array_equal(phase, np.round(phase)):
        for first, last in SCANNER_PHASE_RANGES:
            if first <= low and high <= last:
                radians = ((phase - first) / (last - first + 1) * 2 * np.pi - np.pi).astype(np.float32)
                checked_phase(phase, radians, path)
                warnings.warn(f"{path}: phase in scanner units [{first}, {last}], rescaled to radians", stacklevel=2)
                return radians
    raise InputError(
        path, f"phase values span [{low:.4g}, {high:.4g}]: expected radians in [-pi, pi] or integer "
        f"scanner units in [0, 4095] or [-4096, 4095]",
    )


def checked_phase(stored: np.ndarray, radians: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """`radians` unless the image looks like a magnitude given as phase (an easy swap of two files of one
    echo, which would otherwise run as a nonsense field). Exact zeros (a mask outside the head) are left
    out. A phase spreads over both sides of 0 rad: a wrapped one about evenly, a masked brain's around its
    offset. A magnitude in radians has no negative values; in 12-bit scanner units, as stored, it rarely
    reaches the range's upper half, and scaled to fill it, its noise floor piles up in the lowest eighth
    while the highest stays nearly empty (a phase piled up at -pi wraps to +pi: both ends fill). Not every
    quarter of the range need hold voxels: a masked first-echo phase leaves the ends nearly empty."""
    values = radians[stored != 0]
    if values.size == 0:
        raise InputError(path, "all voxels are zero")
    stored_range = f"values in [{stored.min():.4g}, {stored.max():.4g}]" + (" (all >= 0)" if stored.min() >= 0 else "")
    for share, half in ((np.mean(values < 0), "lower"), (np.mean(values >= 0), "upper")):
        if share < PHASE_MIN_HALF:
            raise InputError(path, f"looks like a magnitude image, not a phase: {stored_range}, {share:.1%} of the "
                                   f"non-zero ones in the {half} half of the phase range (a phase spreads over both)")
    lowest, highest = np.mean(values < -0.75 * np.pi), np.mean(values >= 0.75 * np.pi)
    if lowest >= NOISE_FLOOR_MIN and highest < NOISE_FLOOR_TOP_RATIO * lowest:
        raise InputError(path, f"looks like a magnitude image, not a phase: {stored_range}, {lowest:.0%} of the "
                               f"non-zero ones in the lowest eighth of the phase range and {highest:.1%} in the "
                               f"highest (a magnitude's noise floor; a phase wraps, filling both ends)")
    return radians


def _number(sidecar: Mapping[str, Any], key: str, path: str | os.PathLike, unit: str, upper: float) -> float:
    if key not in sidecar:
        raise InputError(path, f"missing {key} ({unit}) in the JSON sidecar")
    value = sidecar[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < upper:
        raise InputError(path, f"{key} must be a number of {unit} in (0, {upper}), got {value!r}")
    return float(value)


def echo_parameters(sidecar_paths: Sequence[str | os.PathLike]) -> tuple[list[float], float]:
    """Echo times (s) and field strength (T) from BIDS sidecars. BIDS gives EchoTime in seconds: a value
    of 0.2 or more (milliseconds, most likely) is refused."""
    if not sidecar_paths:
        raise ValueError("no echo sidecars given: a GRE session needs at least one echo's JSON")
    echo_times, strengths = [], []
    for path in sidecar_paths:
        sidecar = read_json(path)
        echo_times.append(_number(sidecar, "EchoTime", path, "seconds (BIDS), not milliseconds", 0.2))
        strengths.append(_number(sidecar, "MagneticFieldStrength", path, "tesla", 20.0))
        if not np.isclose(strengths[-1], strengths[0]):
            raise InputError(path, f"MagneticFieldStrength {strengths[-1]} T differs from {strengths[0]} T "
                                   f"in {sidecar_paths[0]}")
        if any(np.isclose(echo_times[-1], earlier) for earlier in echo_times[:-1]):
            raise InputError(path, f"EchoTime {echo_times[-1]} s repeats another echo's")
    return echo_times, strengths[0]


def shared_affine(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """The affine all images share, with their shape (headers only); a mismatch names the odd file."""
    reference = load_nifti(paths[0])
    for path in paths[1:]:
        image = load_nifti(path)
        check_same_grid(path, image.shape, image.affine, reference.shape, reference.affine, str(paths[0]))
    return reference.affine


def load_echoes(
    mag_paths: Sequence[str | os.PathLike], phase_paths: Sequence[str | os.PathLike]
) -> tuple[np.ndarray, np.ndarray]:
    magnitudes = np.stack([read_volume(path)[0] for path in mag_paths])
    phases = np.stack([phase_in_radians(read_volume(path)[0], path) for path in phase_paths])
    return magnitudes, phases
