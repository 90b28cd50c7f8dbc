"""Background field removal: V-SHARP (spherical mean value, several radii) and PDF (projection onto
dipole fields). Both return (local field in ppm, mask where it is valid)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .fourier import (
    Shape,
    ball_fits,
    ball_kernel_half,
    dipole_kernel_half,
    irfft,
    padded_fft_shape,
    rfft,
    to_numpy,
    to_tensor,
)


def vsharp(
    field_ppm: np.ndarray,
    mask: np.ndarray,
    voxel_size_mm: Sequence[float],
    radii_mm: Sequence[float] = (12.0, 10.0, 8.0, 6.0, 4.0),
    threshold: float = 0.05,
    device: torch.device | None = None,
    demean: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """V-SHARP: a harmonic background equals its own spherical mean, so (delta - S_r) * field holds
    only the local field's part. Each voxel uses the largest radius whose sphere fits in the mask (big
    spheres deconvolve better; small ones reach the brain edge); the combined map is deconvolved with
    the largest radius's kernel, truncated where |1 - S| < `threshold`.

    Beyond the volume counts as outside the mask. The valid mask is the mask eroded by the smallest radius.
    `demean`: remove each radius's mean where its ball fits (`spherical_highpass`).
    """
    radii = sorted(radii_mm, reverse=True)
    inside = to_tensor(mask, device)
    shape = padded_fft_shape(mask.shape, voxel_size_mm, radii[0])
    crop = tuple(slice(0, n) for n in mask.shape)
    field_spectrum = rfft(to_tensor(field_ppm, inside.device) * inside, shape)
    mask_spectrum = rfft(inside, shape)
    combined = torch.zeros_like(inside)
    assigned = torch.zeros_like(inside, dtype=torch.bool)
    for radius in radii:
        ball, count = ball_kernel_half(shape, voxel_size_mm, radius, inside.device)
        if radius == radii[0]:
            deconvolution = torch.where((1.0 - ball).abs() > threshold, 1.0 / (1.0 - ball), torch.zeros_like(ball))
        fits = ball_fits(mask_spectrum, ball, count, shape)[crop]
        high_passed = spherical_highpass(field_spectrum, ball, shape)[crop]
        if demean:
            high_passed = high_passed - weighted_mean(high_passed, fits)
        newly_valid = fits & ~assigned
        combined = torch.where(newly_valid, high_passed, combined)
        assigned |= newly_valid
    local = irfft(rfft(combined, shape) * deconvolution, shape, crop_to=mask.shape) * assigned
    return to_numpy(local), to_numpy(assigned)


def spherical_highpass(field_spectrum: torch.Tensor, ball: torch.Tensor, shape: Shape) -> torch.Tensor:
    """(delta - S_r) * field on the padded grid, from the field's half spectrum and the ball's.

    Where the ball fits in the mask, a harmonic background is gone from it. A smooth background that
    is not harmonic is not: one whose Laplacian is a constant L (shim polynomials that are not spherical
    harmonics, a residual phase offset) leaves -L <|x|^2>_ball / 6 everywhere the ball fits, and
    inverted, that constant shades the whole brain (70 ppb on shared case qsm-3t-h01). V-SHARP removes
    each radius's mean (`weighted_mean`); SHARP-TV fits the constant beside chi.
    """
    return irfft(field_spectrum * (1.0 - ball), shape)


def weighted_mean(volume: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return torch.sum(weight * volume) / torch.sum(weight)


def embed(volume: torch.Tensor, shape: Shape) -> torch.Tensor:
    """`volume` in the corner of a zero grid of `shape` (the padding layout of `fourier.rfft`)."""
    padded = volume.new_zeros(shape)
    padded[tuple(slice(0, n) for n in volume.shape)] = volume
    return padded


def pdf(
    field_ppm: np.ndarray,
    mask: np.ndarray,
    voxel_size_mm: Sequence[float],
    b0_direction: Sequence[float],
    weights: np.ndarray | None = None,
    pad_mm: float = 20.0,
    max_iter: int = 100,
    tol: float = 5e-4,
    device: torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Projection onto dipole fields: fit the field inside the mask with dipoles outside it (weighted
    least squares, conjugate gradients); the remainder is the local field.

    Solves min_x || W M (D * ((1 - M) x) - f) ||^2 over the padded grid, where the padding (`pad_mm`
    on each side) holds sources beyond the field of view. `tol` is on the relative residual norm.
    """
    inside_small = to_tensor(mask, device)
    shape = padded_fft_shape(mask.shape, voxel_size_mm, pad_mm)
    kernel = dipole_kernel_half(shape, voxel_size_mm, b0_direction, inside_small.device)
    inside = embed(inside_small, shape)
    outside = 1.0 - inside
    weight_sq = embed(to_tensor(mask if weights is None else weights * mask, device) ** 2, shape)

    def dipole(volume: torch.Tensor) -> torch.Tensor:
        return irfft(rfft(volume, shape) * kernel, shape)

    def normal_operator(sources: torch.Tensor) -> torch.Tensor:
        return outside * dipole(weight_sq * dipole(outside * sources))

    field = embed(to_tensor(field_ppm, device), shape) * inside
    # A uniform field is harmonic but no finite set of outside dipoles on a periodic grid makes it:
    # left in, a large offset (2 pi k from unwrapping) would pull the whole fit.
    field = (field - torch.sum(weight_sq * field) / torch.sum(weight_sq)) * inside
    sources = conjugate_gradient(normal_operator, outside * dipole(weight_sq * field), max_iter, tol)
    local = (field - dipole(outside * sources)) * inside
    return to_numpy(local[tuple(slice(0, n) for n in mask.shape)]), np.asarray(mask, bool)


def conjugate_gradient(
    operator: Callable[[torch.Tensor], torch.Tensor], rhs: torch.Tensor, max_iter: int, tol: float
) -> torch.Tensor:
    """Solve operator(x) = rhs for a symmetric positive semi-definite operator, from x = 0."""
    solution = torch.zeros_like(rhs)
    residual = rhs.clone()
    direction = residual.clone()
    residual_sq = torch.sum(residual * residual)
    target = (tol**2) * residual_sq
    for _ in range(max_iter):
        if residual_sq <= target:
            break
        mapped = operator(direction)
        step = residual_sq / torch.sum(direction * mapped)
        solution += step * direction
        residual -= step * mapped
        new_residual_sq = torch.sum(residual * residual)
        direction = residual + (new_residual_sq / residual_sq) * direction
        residual_sq = new_residual_sq
    return solution
