"""The dipole forward model: susceptibility (ppm) to local field (ppm of B0), FFT-based in torch.

The field of a susceptibility distribution is the convolution with the unit dipole kernel,
D(k) = 1/3 - (k . b0)^2 / |k|^2 in k-space (with the Lorentz sphere correction), D(0) = 0.
Everything runs on CUDA when present.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

GYROMAGNETIC_RATIO_MHZ_PER_T = 42.577478518  # proton gamma / 2 pi


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def dipole_kernel(
    shape: Sequence[int],
    voxel_size_mm: Sequence[float],
    b0_direction: Sequence[float] = (0.0, 0.0, 1.0),
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Unit dipole kernel in k-space on an FFT grid (unshifted, full complex FFT layout)."""
    device = device or default_device()
    direction = torch.as_tensor(np.asarray(b0_direction, dtype=float) / np.linalg.norm(b0_direction))
    frequencies = [
        torch.fft.fftfreq(n, d=float(size), device=device, dtype=torch.float64)
        for n, size in zip(shape, voxel_size_mm)
    ]
    kx, ky, kz = torch.meshgrid(*frequencies, indexing="ij")
    k_parallel = kx * direction[0] + ky * direction[1] + kz * direction[2]
    k_squared = kx**2 + ky**2 + kz**2
    kernel = 1.0 / 3.0 - k_parallel**2 / torch.where(k_squared == 0, 1.0, k_squared)
    kernel[0, 0, 0] = 0.0
    return kernel.to(dtype)


def padded_shape(shape: Sequence[int], factor: float = 2.0) -> tuple[int, ...]:
    """FFT-friendly shape at least `factor` times `shape` (even sizes), to limit wrap-around."""
    return tuple(int(2 * np.ceil(n * factor / 2)) for n in shape)


def forward_field(
    chi_ppm: np.ndarray | torch.Tensor,
    voxel_size_mm: Sequence[float],
    b0_direction: Sequence[float] = (0.0, 0.0, 1.0),
    pad_factor: float = 1.5,
    device: torch.device | None = None,
) -> np.ndarray:
    """Field perturbation (ppm) of a susceptibility map (ppm), zero-padded to limit periodic wrap."""
    device = device or default_device()
    chi = torch.as_tensor(np.asarray(chi_ppm, dtype=np.float32), device=device)
    shape = padded_shape(chi.shape, pad_factor)
    kernel = dipole_kernel(shape, voxel_size_mm, b0_direction, device=device)
    spectrum = torch.fft.fftn(chi, s=shape)
    field = torch.fft.ifftn(spectrum * kernel).real
    return field[tuple(slice(0, n) for n in chi.shape)].cpu().numpy()


def field_to_phase(field_ppm: np.ndarray, echo_time_s: float, b0_tesla: float) -> np.ndarray:
    """Phase (radians, not wrapped) accrued by a field offset (ppm) at one echo time."""
    return 2.0 * np.pi * GYROMAGNETIC_RATIO_MHZ_PER_T * b0_tesla * field_ppm * echo_time_s


def phase_to_field(phase_rad: np.ndarray, echo_time_s: float, b0_tesla: float) -> np.ndarray:
    return phase_rad / (2.0 * np.pi * GYROMAGNETIC_RATIO_MHZ_PER_T * b0_tesla * echo_time_s)


def wrap_phase(phase_rad: np.ndarray) -> np.ndarray:
    """Wrap to (-pi, pi]."""
    wrapped = np.angle(np.exp(1j * np.asarray(phase_rad, dtype=np.float64)))
    wrapped[wrapped <= -np.pi] = np.pi
    return wrapped.astype(np.float32)


def sphere_field_analytic(
    points_mm: np.ndarray, radius_mm: float, delta_chi_ppm: float, b0_direction: Sequence[float] = (0, 0, 1)
) -> np.ndarray:
    """Field (ppm) of a uniformly magnetised sphere centred at the origin, Lorentz-corrected.

    Outside: delta_chi * (a/r)^3 * (3 cos^2 theta - 1) / 3; inside: 0 (after the Lorentz correction).
    """
    points = np.asarray(points_mm, dtype=float)
    direction = np.asarray(b0_direction, dtype=float) / np.linalg.norm(b0_direction)
    radius = np.linalg.norm(points, axis=-1)
    cos_theta = np.divide(points @ direction, radius, out=np.zeros_like(radius), where=radius > 0)
    outside = delta_chi_ppm * (radius_mm / np.maximum(radius, 1e-9)) ** 3 * (3 * cos_theta**2 - 1) / 3
    return np.where(radius > radius_mm, outside, 0.0)
