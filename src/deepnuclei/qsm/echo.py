"""Multi-echo combination: from wrapped phases of all echoes to one field map (ppm) with reliability
weights. A single echo works too.

1. Receiver phase offset phi0(x) (MCPC-3D-S): the phase difference of consecutive echoes holds no
   phi0; spatially unwrapped and scaled back to the first echo time it predicts the first echo's
   phase without phi0, and the remainder, smoothed, is phi0. With one echo phi0 cannot be told from
   the field and stays in (background field removal takes its harmonic part).
2. Unwrapping and fit of phase = omega * TE through the origin, with echo weights that are constant in
   space (each echo's mean squared magnitude in the mask):
   - "laplacian": the fit is linear in the unwrapped phases and Laplacian unwrapping is linear in the
     wrapped phase Laplacians, so one Poisson solve of their weighted sum gives omega. An error
     harmonic in every echo stays harmonic in the field, and background removal takes it away.
   - "quality" (path-based): only the echo difference is unwrapped in space; each echo, in order of
     echo time, is then unwrapped in time against the fit of the echoes before it (ROMEO's template
     scheme), so the costly spatial unwrapping runs once.
The reliability weight of a voxel is the inverse standard deviation of omega from its own
magnitudes (phase noise ~ 1/magnitude), normalised to mean 1 in the mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .forward import GYROMAGNETIC_RATIO_MHZ_PER_T
from .fourier import downsample, gaussian_smooth, to_numpy, to_tensor, upsample
from .timing import StepTimer
from .unwrap import TWO_PI, UNWRAPPERS, laplacian_sum, wrap


@dataclass
class FieldFit:
    field_ppm: np.ndarray
    weights: np.ndarray  # reliability, mean 1 in the mask, 0 outside
    phase_offset_rad: np.ndarray


def echo_difference(signal: torch.Tensor, echo_times_s: np.ndarray) -> tuple[torch.Tensor, float]:
    """Hermitian product of consecutive echoes, summed over the pairs spaced like the first two.

    Its phase is omega * spacing, free of phi0; summing pairs raises its SNR.
    """
    spacing = float(echo_times_s[1] - echo_times_s[0])
    same_spacing = np.flatnonzero(np.isclose(np.diff(echo_times_s), spacing, rtol=0.01))
    product = sum(signal[n + 1] * signal[n].conj() for n in same_spacing)
    return product, spacing


def reference_phase(
    magnitudes: np.ndarray, phases: np.ndarray, echo_times_s: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """(phase, magnitude) of the difference of the first two echoes, the kind of volume that is
    unwrapped in space (the echo itself when there is only one): for quality maps."""
    order = np.argsort(echo_times_s)
    if len(order) == 1:
        return phases[order[0]], magnitudes[order[0]]
    first, second = order[:2]
    return wrap(phases[second] - phases[first]), np.sqrt(magnitudes[first] * magnitudes[second])


def smooth_phase(signal: torch.Tensor, voxel_size_mm: Sequence[float], sigma_mm: float) -> torch.Tensor:
    """Phase of the magnitude-weighted Gaussian average of a complex signal, computed on a grid of
    about sigma/2 voxels (the result is smooth on that scale) and interpolated back."""
    parts = []
    for part in (signal.real.contiguous(), signal.imag.contiguous()):
        coarse, coarse_voxel = downsample(part, voxel_size_mm, sigma_mm / 2)
        parts.append(upsample(gaussian_smooth(coarse, coarse_voxel, sigma_mm), signal.shape))
    return torch.atan2(parts[1], parts[0])


def phase_offset(
    first_echo: torch.Tensor, first_echo_field_phase: torch.Tensor, voxel_size_mm: Sequence[float], sigma_mm: float
) -> torch.Tensor:
    """Smooth receiver phase offset phi0: the first echo's phase less its field part, smoothed."""
    without_field = first_echo * torch.polar(torch.ones_like(first_echo_field_phase), -first_echo_field_phase)
    return smooth_phase(without_field, voxel_size_mm, sigma_mm)


def spatial_unwrap(method: str, signal: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """Unwrapped phase of a complex volume, its magnitude guiding path-based methods."""
    unwrapped = UNWRAPPERS[method](to_numpy(signal.angle()), to_numpy(signal.abs()), mask)
    return to_tensor(unwrapped, signal.device)


def temporal_fit(
    phases: torch.Tensor, echo_times: torch.Tensor, echo_weights: torch.Tensor, omega: torch.Tensor
) -> torch.Tensor:
    """omega from wrapped phases (echoes in order of TE), each unwrapped in time against the fit so far."""
    numerator = torch.zeros_like(omega)
    denominator = 0.0
    for phase, time, weight in zip(phases, echo_times, echo_weights):
        unwrapped = phase + TWO_PI * torch.round((omega * time - phase) / TWO_PI)
        numerator += weight * time * unwrapped
        denominator += weight * time**2
        omega = numerator / denominator
    return omega


def multi_echo_frequency(
    signal: torch.Tensor, times: torch.Tensor, echo_weights: torch.Tensor, coefficients: torch.Tensor,
    voxel_size_mm: Sequence[float], mask: np.ndarray, unwrap: str, offset_sigma_mm: float, timer: StepTimer,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(omega in rad/s, phase offset phi0) from two or more echoes ordered by echo time."""
    echo_times = times.double().cpu().numpy()
    product, spacing = echo_difference(signal, echo_times)
    with timer.step("unwrap"):
        difference = spatial_unwrap(unwrap, product, mask)
    if unwrap != "laplacian":  # fix its free multiple of 2 pi: the mean echo difference is small
        difference -= TWO_PI * torch.round(difference[torch.as_tensor(mask, device=difference.device)].mean() / TWO_PI)
    offset = phase_offset(signal[0], difference * float(echo_times[0] / spacing), voxel_size_mm, offset_sigma_mm)
    corrected = (signal * torch.polar(torch.ones_like(offset), -offset)).angle()
    if unwrap == "laplacian":
        with timer.step("unwrap"):
            return to_tensor(laplacian_sum(corrected, coefficients.tolist(), mask), signal.device), offset
    return temporal_fit(corrected, times, echo_weights, difference / spacing), offset


def fit_field(
    magnitudes: np.ndarray,
    phases: np.ndarray,
    echo_times_s: Sequence[float],
    b0_tesla: float,
    voxel_size_mm: Sequence[float],
    mask: np.ndarray,
    unwrap: str = "quality",
    offset_sigma_mm: float = 3.0,
    device: torch.device | None = None,
    timer: StepTimer | None = None,
) -> FieldFit:
    """Field (ppm) from echoes stacked as (echo, x, y, z): magnitudes and wrapped phases in radians.

    `timer`, when given, collects the time spent unwrapping under "unwrap".
    """
    timer = timer or StepTimer()
    order = np.argsort(echo_times_s)
    signal = torch.polar(to_tensor(magnitudes[order], device), to_tensor(phases[order], device))
    times = torch.as_tensor(np.asarray(echo_times_s, dtype=np.float32)[order], device=signal.device)
    mask = np.asarray(mask, bool)
    inside = torch.as_tensor(mask, device=signal.device)
    magnitude = signal.abs()
    echo_weights = (torch.sum(magnitude * inside, dim=(1, 2, 3)) / inside.sum()) ** 2
    coefficients = echo_weights * times / torch.sum(echo_weights * times**2)  # omega = sum_n c_n phase_n
    if len(times) == 1:
        offset = torch.zeros_like(magnitude[0])
        with timer.step("unwrap"):
            omega = spatial_unwrap(unwrap, signal[0], mask) / times[0]
    else:
        omega, offset = multi_echo_frequency(signal, times, echo_weights, coefficients, voxel_size_mm, mask, unwrap,
                                             offset_sigma_mm, timer)
    return FieldFit(
        field_ppm=to_numpy(omega / (2.0 * np.pi * GYROMAGNETIC_RATIO_MHZ_PER_T * b0_tesla)),
        weights=reliability(magnitude, coefficients, inside),
        phase_offset_rad=to_numpy(offset),
    )


def reliability(magnitude: torch.Tensor, coefficients: torch.Tensor, inside: torch.Tensor) -> np.ndarray:
    """Inverse standard deviation of the fitted omega per voxel, normalised to mean 1 in the mask."""
    variance = torch.sum(coefficients.reshape(-1, 1, 1, 1) ** 2 / magnitude.clamp_min(1e-6) ** 2, dim=0)
    weights = variance.rsqrt() * inside
    return to_numpy(weights / (weights.sum() / inside.sum()))
