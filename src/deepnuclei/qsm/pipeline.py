"""The QSM pipeline: brain mask, multi-echo field fit (with unwrapping), background field removal,
dipole inversion and referencing, on arrays (`reconstruct`) and on BIDS files (`run_qsm`).

`run_qsm` checks every input (units, sidecars, geometry, NaN) before any heavy step, so a bad input
fails in seconds with the file and the problem named.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import InputError, b0_direction_in_voxels, read_volume, save_volume, voxel_sizes, write_json
from ..qc import Panel, centre_of, three_view_figure
from .background import pdf, vsharp
from .echo import FieldFit, fit_field, reference_phase
from .forward import default_device
from .inputs import echo_parameters, load_echoes, shared_affine
from .inversion import reference_to_region, sharp_tv, tkd, tv_admm
from .mask import brain_mask, csf_mask, phase_quality, reliable_region, signal_mask
from .timing import StepTimer
from .unwrap import UNWRAPPERS

log = logging.getLogger(__name__)

MASK_METHODS = ("magnitude", "signal")
BACKGROUND_METHODS = ("vsharp", "pdf")
INVERSION_METHODS = ("tkd", "tv", "sharp-tv")
REFERENCES = ("mask", "csf", "none", "region")
CHI_DISPLAY_PPM = (-0.15, 0.25)  # the DB-ResUNet paper's QSM clipping range, [-150, 250] ppb
CROP_MARGIN_VOXELS = 3
# QC bars (docs/qsm.md, "Quality control"): a true brain's susceptibility has 2.5 to 6 ppb of quadratic shading
# (the truths of the benchmark's cases, the shared case and the demo), the default's maps 2.3 to 6.2; maps
# shaded by a background left in 9.6 to 25 ppb (3T-nonharmonic, 3T-h01-like, the shared case)
MAX_SHADING_PPB = 8.0
MIN_BRAIN_KEPT = 0.6  # share of the brain mask where chi is valid; the benchmark's whole heads keep 0.8


@dataclass(frozen=True)
class QSMParams:
    """Every choice of the pipeline; the field names are the config keys under `qsm:`."""

    mask: str = "magnitude"  # "magnitude" (Otsu, head in air) or "signal" (a field of view inside the head)
    mask_signal_fraction: float = 0.1  # "signal": the noise floor, as a fraction of the 99th percentile
    mask_bias_sigma_mm: float = 20.0  # smoothness of the coil bias field estimate
    mask_smooth_mm: float = 1.0  # box smoothing of the magnitude before thresholding (reach each way)
    mask_detach_mm: float = 4.0  # erosion that parts the brain from scalp and vessels, grown back after
    mask_erosion_mm: float = 0.0
    mask_quality_threshold: float = 0.4  # drop voxels whose mean phase-edge quality is lower (0: off)
    unwrap: str = "quality"  # "quality" (ROMEO-like, path-based) or "laplacian"
    phase_offset_sigma_mm: float = 2.0  # smoothing of the receiver phase offset phi0 (chosen on the benchmark)
    background: str = "vsharp"  # "vsharp" or "pdf": makes the local field (output, and input to tkd/tv)
    vsharp_radii_mm: tuple[float, ...] = (12.0, 10.0, 8.0, 6.0, 4.0)
    vsharp_threshold: float = 0.05  # truncation of the deconvolution
    smv_demean: bool = True  # the constant a background that is not harmonic leaves in each sphere-filtered field:
    # fitted beside chi (SHARP-TV), removed (V-SHARP); left in, it shades the whole brain (docs/qsm.md)
    pdf_pad_mm: float = 20.0
    pdf_max_iter: int = 100
    pdf_tol: float = 5e-4  # on the relative residual of the normal equations
    inversion: str = "sharp-tv"  # "tkd", "tv" (of the local field) or "sharp-tv" (of the total field)
    tkd_threshold: float = 0.19
    tv_alpha: float = 2.5e-4  # TV weight (field in ppm, gradients per mm, weights of mean 1; chosen on the benchmark)
    tv_mu: float | None = None  # ADMM penalty of the gradient split; None: 100 * tv_alpha
    tv_max_iter: int = 100
    tv_tol: float = 0.01  # relative change of chi that stops the iterations
    sharp_tv_radii_mm: tuple[float, ...] = (4.0, 6.0, 9.0, 12.0)
    inversion_pad_mm: float = 16.0
    reference: str = "mask"  # zero mean over: "mask" (where chi is valid), "csf" (ventricles), "region" (a given
    # mask), or "none"; the tables state which
    csf_max_r2star_hz: float = 5.0  # "csf": R2* under which a voxel deep in the brain counts as CSF

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("mask", self.mask, MASK_METHODS),
            ("unwrap", self.unwrap, tuple(UNWRAPPERS)),
            ("background", self.background, BACKGROUND_METHODS),
            ("inversion", self.inversion, INVERSION_METHODS),
            ("reference", self.reference, REFERENCES),
        ):
            if value not in allowed:
                raise ValueError(f"qsm.{key} must be one of {list(allowed)}, got {value!r}")
        for key in ("vsharp_radii_mm", "sharp_tv_radii_mm"):
            radii = getattr(self, key)
            if not radii or min(radii) <= 0:
                raise ValueError(f"qsm.{key} must be positive radii, got {radii!r}")
        if not 0 < self.mask_signal_fraction < 1:
            raise ValueError(f"qsm.mask_signal_fraction must lie in (0, 1), got {self.mask_signal_fraction}")
        if not 0 < self.tkd_threshold < 2 / 3:
            raise ValueError(f"qsm.tkd_threshold must lie in (0, 2/3), got {self.tkd_threshold}")

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> QSMParams:
        """Build from one method's config mapping; an unknown key is an error, not a silent default."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown qsm parameter(s) {unknown}; known: {sorted(known)}")
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """Slices of the mask's bounding box grown by `margin` voxels (clipped to the volume)."""
    occupied = np.argwhere(mask)
    low = np.maximum(occupied.min(axis=0) - margin, 0)
    high = np.minimum(occupied.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def uncrop(volume: np.ndarray, box: tuple[slice, ...], shape: Sequence[int]) -> np.ndarray:
    full = np.zeros(tuple(shape), dtype=volume.dtype)
    full[box] = volume
    return full


def combined_magnitude(magnitudes: np.ndarray) -> np.ndarray:
    """Root mean square over echoes: early echoes dominate, so iron-rich nuclei stay bright enough."""
    return np.sqrt(np.mean(np.square(magnitudes, dtype=np.float32), axis=0))


def remove_background(
    field: np.ndarray, mask: np.ndarray, weights: np.ndarray, voxel: np.ndarray, b0: np.ndarray,
    params: QSMParams, device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    if params.background == "vsharp":
        return vsharp(field, mask, voxel, params.vsharp_radii_mm, params.vsharp_threshold, device, params.smv_demean)
    return pdf(field, mask, voxel, b0, weights, params.pdf_pad_mm, params.pdf_max_iter, params.pdf_tol, device)


def invert_dipole(
    fit: FieldFit, brain: np.ndarray, local_field: np.ndarray, valid: np.ndarray, voxel: np.ndarray,
    b0: np.ndarray, params: QSMParams, device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """(chi, mask where it is valid); SHARP-TV starts again from the total field and the brain mask."""
    tv = {"alpha": params.tv_alpha, "mu_tv": params.tv_mu, "max_iter": params.tv_max_iter, "tol": params.tv_tol,
          "pad_mm": params.inversion_pad_mm, "device": device}
    if params.inversion == "tkd":
        return tkd(local_field, valid, voxel, b0, params.tkd_threshold, params.inversion_pad_mm, device), valid
    if params.inversion == "tv":
        return tv_admm(local_field, valid, voxel, b0, fit.weights, **tv), valid
    return sharp_tv(fit.field_ppm, brain, voxel, b0, fit.weights, params.sharp_tv_radii_mm, demean=params.smv_demean,
                    **tv)


def magnitude_mask(magnitudes: np.ndarray, voxel: np.ndarray, params: QSMParams, device: torch.device) -> np.ndarray:
    magnitude = combined_magnitude(magnitudes)
    if params.mask == "signal":
        return signal_mask(magnitude, voxel, params.mask_signal_fraction, params.mask_smooth_mm)
    return brain_mask(magnitude, voxel, params.mask_bias_sigma_mm, params.mask_smooth_mm, params.mask_detach_mm,
                      params.mask_erosion_mm, device)


def reconstruct(
    magnitudes: np.ndarray,
    phases: np.ndarray,
    echo_times_s: Sequence[float],
    b0_tesla: float,
    affine: np.ndarray,
    params: QSMParams = QSMParams(),
    mask: np.ndarray | None = None,
    reference_region: np.ndarray | None = None,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """QSM from echoes stacked as (echo, x, y, z): magnitudes and wrapped phases (radians).

    Returns 'chi' (ppm), 'mask' (where chi is valid: the brain mask eroded by the smallest spherical
    mean value radius of V-SHARP or SHARP-TV; all of it for PDF with TKD or TV), 'brain_mask' (the
    magnitude mask, or `mask`, less unreliable phase), 'field' and 'local_field' (ppm), 'weights' (fit
    reliability), 'timings_s' (seconds per step: mask, unwrap, echo_fit, background, inversion) and 'qc'
    (`quality_control`'s measures and warnings).
    The work runs on the brain's bounding box; outputs have the input's shape.
    """
    device = device or default_device()
    shape = magnitudes.shape[1:]
    voxel, b0 = voxel_sizes(affine), b0_direction_in_voxels(affine)
    timer = StepTimer()
    with timer.step("mask"):
        brain = magnitude_mask(magnitudes, voxel, params, device) if mask is None else np.asarray(mask) > 0
        if not brain.any():
            raise ValueError("the brain mask is empty")
        box = bounding_box(brain, CROP_MARGIN_VOXELS)
        magnitudes, phases, brain = magnitudes[(slice(None), *box)], phases[(slice(None), *box)], brain[box]
        if params.mask_quality_threshold > 0:
            quality = phase_quality(*reference_phase(magnitudes, phases, echo_times_s))
            brain = reliable_region(brain, quality, params.mask_quality_threshold)
    with timer.step("echo_fit"):
        fit = fit_field(magnitudes, phases, echo_times_s, b0_tesla, voxel, brain, params.unwrap,
                        params.phase_offset_sigma_mm, device, timer)
    timer.seconds["echo_fit"] -= timer.seconds["unwrap"]  # unwrapping is reported on its own
    with timer.step("background"):
        local_field, valid = remove_background(fit.field_ppm, brain, fit.weights, voxel, b0, params, device)
    with timer.step("inversion"):
        chi, valid = invert_dipole(fit, brain, local_field, valid, voxel, b0, params, device)
        region = None if reference_region is None else reference_region[box]
        if params.reference == "csf":
            region = csf_mask(magnitudes, echo_times_s, brain, voxel, params.csf_max_r2star_hz)
        chi = reference(chi, valid, region, params)
    volumes = {"chi": chi.astype(np.float32), "mask": valid, "brain_mask": brain, "field": fit.field_ppm * brain,
               "local_field": local_field.astype(np.float32), "weights": fit.weights}
    return ({name: uncrop(volume, box, shape) for name, volume in volumes.items()}
            | {"timings_s": timer.seconds, "qc": quality_control(chi, valid, brain, voxel)})


def shading_ppb(chi: np.ndarray, valid: np.ndarray, voxel: Sequence[float]) -> float:
    """Root mean square (ppb) over `valid` of the non-constant part of chi's least-squares quadratic in space:
    how much of the map is a smooth shading across the brain rather than anatomy."""
    points = np.argwhere(valid) * np.asarray(voxel, dtype=np.float64)
    x, y, z = ((points - points.mean(axis=0)) / 50.0).T  # 50 mm units keep the columns of one scale
    quadratic = np.stack([x, y, z, x * x, y * y, z * z, x * y, y * z, x * z], axis=1)
    design = np.column_stack([np.ones_like(x), quadratic])
    coefficients = np.linalg.lstsq(design, chi[valid].astype(np.float64), rcond=None)[0]
    return 1000.0 * float(np.std(quadratic @ coefficients[1:]))


def quality_control(chi: np.ndarray, valid: np.ndarray, brain: np.ndarray, voxel: Sequence[float]) -> dict[str, Any]:
    """Per-map QC measures, and a warning for each that is out of range (MAX_SHADING_PPB, MIN_BRAIN_KEPT)."""
    measures = {"shading_ppb": round(shading_ppb(chi, valid, voxel), 2),
                "brain_kept_fraction": round(float(valid.sum() / brain.sum()), 3),
                "brain_mask_ml": round(float(brain.sum() * np.prod(voxel)) / 1000.0, 1)}
    warnings = []
    if measures["shading_ppb"] > MAX_SHADING_PPB:
        warnings.append(f"a smooth shading of {measures['shading_ppb']:.0f} ppb rms runs across the brain (over "
                        f"{MAX_SHADING_PPB:.0f}): a background field was left in; nuclei may be off by tens of ppb")
    if measures["brain_kept_fraction"] < MIN_BRAIN_KEPT:
        warnings.append(f"chi is valid in {measures['brain_kept_fraction']:.0%} of the brain mask only "
                        f"(under {MIN_BRAIN_KEPT:.0%}): the mask is ragged or the field of view a thin slab")
    return {**measures, "warnings": warnings}


def reference(chi: np.ndarray, valid: np.ndarray, region: np.ndarray | None, params: QSMParams) -> np.ndarray:
    if params.reference == "none":
        return chi
    if params.reference == "mask":
        return reference_to_region(chi, valid) * valid
    if region is None:  # "csf" always finds one or fails
        raise ValueError("qsm.reference is 'region' but no reference region was given")
    return reference_to_region(chi, (np.asarray(region) > 0) & valid) * valid


# ---- files -----------------------------------------------------------------------------------------


def qc_figure(result: Mapping[str, np.ndarray], magnitude: np.ndarray, affine: np.ndarray, path: str | os.PathLike,
              title: str) -> Path:
    """Three orthogonal slices: magnitude with the mask outline, and the QSM."""
    panels = [
        Panel("magnitude, mask outline", magnitude, affine, outline=result["mask"]),
        Panel("QSM (ppm)", result["chi"], affine, window=CHI_DISPLAY_PPM),
    ]
    return three_view_figure(panels, path, centre=centre_of(result["mask"], magnitude.shape), title=title)


def run_qsm(
    mag_paths: Sequence[str | os.PathLike],
    phase_paths: Sequence[str | os.PathLike],
    sidecar_paths: Sequence[str | os.PathLike],
    out_chi: str | os.PathLike,
    out_mask: str | os.PathLike,
    out_field: str | os.PathLike,
    out_qc_png: str | os.PathLike,
    params: QSMParams = QSMParams(),
    mask_path: str | os.PathLike | None = None,
    reference_path: str | os.PathLike | None = None,
    out_record: str | os.PathLike | None = None,
    sources: Sequence[str] = (),
) -> dict[str, Any]:
    """QSM from BIDS echo files (one magnitude, phase and JSON sidecar per echo, in the same order).

    Writes the susceptibility map (ppm, `_Chimap`), the mask where it is valid, the local field (ppm),
    a QC PNG and, given `out_record`, a JSON record (units, reference, settings, step times, QC measures
    and warnings, and `sources`: the BIDS URIs of the input files); each QC warning is logged too. `mask_path` replaces the automatic brain mask;
    `reference_path` holds the reference region (non-zero voxels) when `params.reference == 'region'`.
    Returns `reconstruct`'s result.
    """
    if not (len(mag_paths) == len(phase_paths) == len(sidecar_paths) > 0):
        raise ValueError(f"need one magnitude, phase and sidecar per echo; got {len(mag_paths)} magnitude, "
                         f"{len(phase_paths)} phase and {len(sidecar_paths)} sidecar files")
    if params.reference == "region" and reference_path is None:
        raise ValueError("qsm.reference is 'region' but no reference region file was given")
    echo_times, b0_tesla = echo_parameters(sidecar_paths)
    optional = [path for path in (mask_path, reference_path) if path is not None]
    affine = shared_affine([*mag_paths, *phase_paths, *optional])
    magnitudes, phases = load_echoes(mag_paths, phase_paths)
    mask = None if mask_path is None else read_volume(mask_path)[0] > 0
    if mask is not None and not mask.any():
        raise InputError(mask_path, "the mask is empty")
    region = None if reference_path is None else read_volume(reference_path)[0] > 0

    result = reconstruct(magnitudes, phases, echo_times, b0_tesla, affine, params, mask, region)
    save_volume(out_chi, result["chi"], affine, np.float32)
    save_volume(out_mask, result["mask"], affine, np.uint8)
    save_volume(out_field, result["local_field"], affine, np.float32)
    subject = Path(mag_paths[0]).name.split("_")[0]
    qc = result["qc"]
    for warning in qc["warnings"]:
        log.warning("%s: %s", out_chi, warning)
    qc_figure(result, combined_magnitude(magnitudes), affine, out_qc_png,
              f"{subject} QSM: {params.unwrap} unwrapping, {params.background}, {params.inversion}; shading "
              f"{qc['shading_ppb']:.1f} ppb, brain kept {qc['brain_kept_fraction']:.0%}"
              + (" - CHECK" if qc["warnings"] else ""))
    if out_record is not None:
        write_json(out_record, {"Units": "ppm", "Reference": params.reference, "Settings": params.to_dict(),
                                "StepSeconds": {step: round(value, 2) for step, value in result["timings_s"].items()},
                                "QC": qc, "Sources": list(sources)})
    return result
