"""Dipole inversion to susceptibility (ppm): TKD (thresholded k-space division) and TV-ADMM (total
variation, weighted data term, as in FANSI) of a local field; SHARP-TV, the same TV solver on the
spherical-mean-filtered total field; and referencing to a region."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .background import embed, spherical_highpass
from .fourier import (
    Shape,
    ball_fits,
    ball_kernel_half,
    ball_second_moment,
    dipole_kernel_half,
    frequencies,
    irfft,
    padded_fft_shape,
    rfft,
    to_numpy,
    to_tensor,
)


def tkd(
    local_field_ppm: np.ndarray,
    mask: np.ndarray,
    voxel_size_mm: Sequence[float],
    b0_direction: Sequence[float],
    threshold: float = 0.19,
    pad_mm: float = 16.0,
    device: torch.device | None = None,
) -> np.ndarray:
    """Thresholded k-space division: 1/D where |D| > threshold, sign(D)/threshold elsewhere."""
    field = to_tensor(local_field_ppm * mask, device)
    shape = padded_fft_shape(mask.shape, voxel_size_mm, pad_mm)
    kernel = dipole_kernel_half(shape, voxel_size_mm, b0_direction, field.device)
    inverse = torch.where(kernel.abs() > threshold, 1.0 / kernel.where(kernel != 0, 1.0), kernel.sign() / threshold)
    return to_numpy(irfft(rfft(field, shape) * inverse, shape, crop_to=mask.shape)) * mask


def difference_eigenvalues(shape: Shape, voxel_size_mm: Sequence[float], device: torch.device) -> torch.Tensor:
    """|E(k)|^2 summed over axes, E the periodic forward difference per mm, on the rfftn half spectrum."""
    unit_voxels = (1.0,) * len(shape)
    return sum((2.0 - 2.0 * torch.cos(2.0 * np.pi * cycles)) / size**2
               for cycles, size in zip(frequencies(shape, unit_voxels, device), voxel_size_mm))


def gradient(volume: torch.Tensor, voxel_size_mm: Sequence[float]) -> torch.Tensor:
    """Periodic forward differences per mm, stacked as (axis, x, y, z)."""
    return torch.stack([(torch.roll(volume, -1, axis) - volume) / size for axis, size in enumerate(voxel_size_mm)])


def gradient_adjoint(field: torch.Tensor, voxel_size_mm: Sequence[float]) -> torch.Tensor:
    """Adjoint of `gradient` (minus the divergence)."""
    return sum((torch.roll(component, 1, axis) - component) / size
               for axis, (component, size) in enumerate(zip(field, voxel_size_mm)))


def shrink(vectors: torch.Tensor, threshold: float) -> torch.Tensor:
    """Isotropic soft threshold of the gradient vectors (the proximal map of the TV norm)."""
    norm = torch.sqrt(torch.sum(vectors**2, dim=0, keepdim=True))
    return vectors * torch.clamp(1.0 - threshold / norm.clamp_min(1e-12), min=0.0)


@dataclass
class DataTerm:
    """One weighted data term 1/2 ||W (K chi - data)||^2 of the TV problem, on the padded grid."""

    kernel: torch.Tensor  # half spectrum: the model of the data is irfft(kernel * rfft(chi))
    data: torch.Tensor
    weight_sq: torch.Tensor  # W^2; zero where the data say nothing
    # The model adds offset_gain * c, one c for all terms, fitted beside chi (`shared_offset`); 0: no offset.
    offset_gain: float = 0.0


def shared_offset(gains: Sequence[float], weight_totals: Sequence[torch.Tensor],
                  residual_totals: Sequence[torch.Tensor]) -> float:
    """Least-squares c of residual_t = gain_t * c over all terms, from each term's sum of W^2 and of W^2
    times its residual (0 when no term has a gain).

    A background whose Laplacian is a constant L leaves -L/6 <|x|^2>_ball in each sphere-filtered field
    (`background.spherical_highpass`): with the spheres' second moments as gains, c is -L/6."""
    denominator = sum(gain**2 * total for gain, total in zip(gains, weight_totals))
    if not denominator:
        return 0.0
    return float(sum(gain * total for gain, total in zip(gains, residual_totals)) / denominator)


def admm_tv(
    terms: Sequence[DataTerm], region: torch.Tensor, voxel_size_mm: Sequence[float], alpha: float,
    mu_tv: float | None, mu_data: float, max_iter: int, tol: float,
) -> torch.Tensor:
    """min_chi sum_t 1/2 ||W_t (K_t chi - data_t)||^2 + alpha ||grad chi||_1 by ADMM (FANSI's
    weighted linear variant): z = grad chi (soft threshold) and y_t = K_t chi (closed-form weighted
    average of data and model) are split off, so the chi update is one division in k-space. `mu_tv`
    defaults to 100 alpha, as in FANSI. Terms with an `offset_gain` share one offset scale, fitted first to
    the data, then at every iteration to data less model (its least-squares value for that chi).
    Stops when chi changes by less than `tol` (relative) in `region`."""
    mu_tv = 100.0 * alpha if mu_tv is None else mu_tv
    shape = tuple(region.shape)
    denominator = mu_tv * difference_eigenvalues(shape, voxel_size_mm, region.device)
    denominator = denominator + mu_data * sum(term.kernel**2 for term in terms)
    denominator[0, 0, 0] = 1.0  # the mean of chi is not determined by the data; its numerator is 0
    # per term, computed once: W^2 data, 1 / (W^2 + mu_data), and the totals the offset's fit needs
    weighted_data = [term.weight_sq * term.data for term in terms]
    reciprocals = [1.0 / (term.weight_sq + mu_data) for term in terms]
    gains = [term.offset_gain for term in terms]
    weight_totals = [torch.sum(term.weight_sq) for term in terms]
    data_totals = [torch.sum(weighted) for weighted in weighted_data]
    offset = shared_offset(gains, weight_totals, data_totals)
    splits = [(term.data - term.offset_gain * offset) * (term.weight_sq > 0) for term in terms]
    duals = [torch.zeros_like(term.data) for term in terms]
    tv_split = torch.zeros((len(shape), *shape), device=region.device)
    tv_dual = torch.zeros_like(tv_split)
    chi = torch.zeros(shape, device=region.device)
    for _ in range(max_iter):
        numerator = mu_tv * rfft(gradient_adjoint(tv_split - tv_dual, voxel_size_mm), shape)
        for term, split, dual in zip(terms, splits, duals):
            numerator += mu_data * term.kernel * rfft(split - dual, shape)
        spectrum = numerator / denominator
        previous, chi = chi, irfft(spectrum, shape)
        differences = gradient(chi, voxel_size_mm)
        tv_split = shrink(differences + tv_dual, alpha / mu_tv)
        tv_dual += differences - tv_split
        residual_totals = []
        for index, term in enumerate(terms):
            model = irfft(term.kernel * spectrum, shape)
            target = weighted_data[index]
            if term.offset_gain:  # W^2 (data - gain * offset), in one pass
                target = torch.add(target, term.weight_sq, alpha=-term.offset_gain * offset)
                residual_totals.append(data_totals[index] - torch.vdot(term.weight_sq.flatten(), model.flatten()))
            else:
                residual_totals.append(0.0)
            splits[index] = (target + mu_data * (model + duals[index])) * reciprocals[index]
            duals[index] += model - splits[index]
        offset = shared_offset(gains, weight_totals, residual_totals)
        change = torch.linalg.vector_norm((chi - previous)[region]) / torch.linalg.vector_norm(chi[region])
        if change < tol:
            break
    return chi


def tv_admm(
    local_field_ppm: np.ndarray,
    mask: np.ndarray,
    voxel_size_mm: Sequence[float],
    b0_direction: Sequence[float],
    weights: np.ndarray | None = None,
    alpha: float = 2.5e-4,
    mu_tv: float | None = None,
    mu_data: float = 1.0,
    max_iter: int = 100,
    tol: float = 0.01,
    pad_mm: float = 16.0,
    device: torch.device | None = None,
) -> np.ndarray:
    """Total-variation regularised inversion of a local field (background already removed):
    min_chi 1/2 ||W (D chi - f)||^2 + alpha ||grad chi||_1, W the reliability weights in the mask.
    """
    inside = to_tensor(mask, device)
    shape = padded_fft_shape(mask.shape, voxel_size_mm, pad_mm)
    weight_sq = embed(to_tensor(mask if weights is None else weights * mask, device) ** 2, shape)
    term = DataTerm(
        kernel=dipole_kernel_half(shape, voxel_size_mm, b0_direction, inside.device),
        data=embed(to_tensor(local_field_ppm, device), shape) * (weight_sq > 0),
        weight_sq=weight_sq,
    )
    chi = admm_tv([term], embed(inside, shape) > 0, voxel_size_mm, alpha, mu_tv, mu_data, max_iter, tol)
    return to_numpy(chi[tuple(slice(0, n) for n in mask.shape)]) * mask


def sharp_tv(
    field_ppm: np.ndarray,
    mask: np.ndarray,
    voxel_size_mm: Sequence[float],
    b0_direction: Sequence[float],
    weights: np.ndarray | None = None,
    radii_mm: Sequence[float] = (4.0, 6.0, 9.0, 12.0),
    alpha: float = 2.5e-4,
    mu_tv: float | None = None,
    mu_data: float = 1.0,
    max_iter: int = 100,
    tol: float = 0.01,
    pad_mm: float = 16.0,
    device: torch.device | None = None,
    demean: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """TV inversion of the total field with the spherical mean value filter in the forward model.

    For each radius r the data are (delta - S_r) * field where the sphere fits in the mask: a
    harmonic background is gone from them, exactly as in V-SHARP. Rather than deconvolving them (the
    step that truncation at the mask edge turns into low-frequency errors), the model is
    (delta - S_r) * D * chi, still one division in k-space per iteration. `demean`: the constant that a
    background of constant Laplacian leaves in each radius's data (`background.spherical_highpass`) is
    fitted beside chi, one Laplacian for all radii. Returns (chi, valid mask: the mask eroded by the
    smallest radius).
    """
    inside = to_tensor(mask, device)
    shape = padded_fft_shape(mask.shape, voxel_size_mm, max(pad_mm, *radii_mm))
    dipole = dipole_kernel_half(shape, voxel_size_mm, b0_direction, inside.device)
    spectrum = rfft(to_tensor(field_ppm, device) * inside, shape)
    mask_spectrum = rfft(inside, shape)
    weight = embed(to_tensor(mask if weights is None else weights * mask, device), shape)
    terms, valid = [], torch.zeros(shape, dtype=torch.bool, device=inside.device)
    for radius in radii_mm:
        ball, count = ball_kernel_half(shape, voxel_size_mm, radius, inside.device)
        fits = ball_fits(mask_spectrum, ball, count, shape)
        data = spherical_highpass(spectrum, ball, shape) * fits
        gain = ball_second_moment(radius, voxel_size_mm) if demean else 0.0
        terms.append(DataTerm((1.0 - ball) * dipole, data, (weight * fits) ** 2, offset_gain=gain))
        valid |= fits
    chi = admm_tv(terms, valid, voxel_size_mm, alpha, mu_tv, mu_data, max_iter, tol)
    crop = tuple(slice(0, n) for n in mask.shape)
    valid_mask = to_numpy(valid[crop])
    return to_numpy(chi[crop]) * valid_mask, valid_mask


def reference_to_region(chi_ppm: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Shift susceptibility so its mean over `region` is zero (susceptibility is only relative)."""
    region = np.asarray(region, bool)
    if not region.any():
        raise ValueError("the susceptibility reference region is empty")
    return chi_ppm - float(chi_ppm[region].mean())
