"""Numerical building blocks shared by the QSM steps, in torch on the compute device: FFTs and
k-space kernels, and coarse grids for quantities that vary slowly in space.

Kernels live on the half spectrum of a real FFT (`torch.fft.rfftn`): every kernel used here is
real and even in k, so the half spectrum holds all of it at half the time and memory. They are built
by broadcasting per-axis frequencies, never a full meshgrid, which matters on 20 M-voxel padded grids.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .forward import default_device

Shape = tuple[int, ...]


def to_tensor(array: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32), device=device or default_device())


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def fast_fft_length(n: int) -> int:
    """Smallest length >= n with no prime factor above 5 (the sizes FFT libraries are fastest at)."""
    length = n
    while True:
        rest = length
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return length
        length += 1


def padded_fft_shape(shape: Sequence[int], voxel_size_mm: Sequence[float], margin_mm: float) -> Shape:
    """Grid holding `shape` plus a zero margin of `margin_mm` on each side, rounded up to fast FFT sizes."""
    return tuple(
        fast_fft_length(n + 2 * int(np.ceil(margin_mm / size))) for n, size in zip(shape, voxel_size_mm)
    )


def rfft(volume: torch.Tensor, shape: Shape) -> torch.Tensor:
    """Half spectrum of `volume` zero-padded (at the far end of each axis) to `shape`."""
    return torch.fft.rfftn(volume, s=shape)


def irfft(spectrum: torch.Tensor, shape: Shape, crop_to: Sequence[int] | None = None) -> torch.Tensor:
    """Inverse of `rfft`, cropped back to the unpadded volume when `crop_to` is given."""
    volume = torch.fft.irfftn(spectrum, s=shape)
    return volume if crop_to is None else volume[tuple(slice(0, n) for n in crop_to)]


def frequencies(shape: Shape, voxel_size_mm: Sequence[float], device: torch.device) -> list[torch.Tensor]:
    """Spatial frequencies (cycles/mm; cycles per sample for unit voxels) of each axis of an rfftn
    spectrum, shaped to broadcast."""
    axes = []
    for axis, (n, size) in enumerate(zip(shape, voxel_size_mm)):
        last = axis == len(shape) - 1
        values = (torch.fft.rfftfreq if last else torch.fft.fftfreq)(n, d=float(size), device=device)
        view = [1] * len(shape)
        view[axis] = -1
        axes.append(values.reshape(view))
    return axes


def frequency_magnitude(shape: Shape, voxel_size_mm: Sequence[float], device: torch.device) -> torch.Tensor:
    """|k| (cycles/mm) on the rfftn half spectrum."""
    kx, ky, kz = frequencies(shape, voxel_size_mm, device)
    return torch.sqrt(kx**2 + ky**2 + kz**2)


def dipole_kernel_half(
    shape: Shape, voxel_size_mm: Sequence[float], b0_direction: Sequence[float], device: torch.device
) -> torch.Tensor:
    """Unit dipole kernel D(k) = 1/3 - (k.b0)^2/|k|^2 on the rfftn half spectrum, D(0) = 0.

    The same kernel as `forward.dipole_kernel`, laid out for real FFTs.
    """
    direction = np.asarray(b0_direction, dtype=float) / np.linalg.norm(b0_direction)
    kx, ky, kz = frequencies(shape, voxel_size_mm, device)
    k_parallel = kx * float(direction[0]) + ky * float(direction[1]) + kz * float(direction[2])
    k_squared = kx**2 + ky**2 + kz**2
    kernel = 1.0 / 3.0 - k_parallel**2 / k_squared.clamp_min(torch.finfo(torch.float32).tiny)
    kernel[0, 0, 0] = 0.0
    return kernel


def ball_offsets(radius_mm: float, voxel_size_mm: Sequence[float]) -> np.ndarray:
    """(N, 3) integer offsets of the voxels whose centres lie within `radius_mm` of the origin."""
    half_widths = [int(np.floor(radius_mm / size)) for size in voxel_size_mm]
    grid = np.stack(np.meshgrid(*[np.arange(-w, w + 1) for w in half_widths], indexing="ij"), axis=-1)
    offsets = grid.reshape(-1, 3)
    return offsets[np.sum((offsets * np.asarray(voxel_size_mm)) ** 2, axis=1) <= radius_mm**2]


def ball_second_moment(radius_mm: float, voxel_size_mm: Sequence[float]) -> float:
    """<|x|^2> (mm^2) over the voxel ball of `radius_mm`: what its spherical mean adds to a field |x|^2."""
    offsets_mm = ball_offsets(radius_mm, voxel_size_mm) * np.asarray(voxel_size_mm)
    return float(np.mean(np.sum(offsets_mm**2, axis=1)))


def ball_kernel_half(
    shape: Shape, voxel_size_mm: Sequence[float], radius_mm: float, device: torch.device
) -> tuple[torch.Tensor, int]:
    """Spherical mean value operator, the normalised voxel ball of `radius_mm`, on the rfftn half
    spectrum; and the ball's voxel count.

    A voxel ball, not the analytic sphere transform: its support ends at the radius, so a mean at a
    voxel whose ball fits in the mask reads only mask voxels. The analytic transform has ringing tails
    that reach outside and pick up the jump of a large background field at the mask edge.
    """
    offsets = ball_offsets(radius_mm, voxel_size_mm)
    ball = torch.zeros(shape, device=device)
    index = torch.as_tensor(offsets % np.asarray(shape), device=device)  # centred at voxel 0, wrapped
    ball[index[:, 0], index[:, 1], index[:, 2]] = 1.0 / len(offsets)
    return torch.fft.rfftn(ball).real, len(offsets)  # real: the ball is symmetric about the origin


def ball_fits(mask_spectrum: torch.Tensor, ball: torch.Tensor, count: int, shape: Shape) -> torch.Tensor:
    """Where the whole ball lies in the mask (erosion by the ball), from the mask's half spectrum.

    The ball's mean of the mask is 1 there and at most 1 - 1/count elsewhere; float32 FFT errors are
    below 1e-6, far inside the half step used as threshold.
    """
    return irfft(mask_spectrum * ball, shape) > 1.0 - 0.5 / count


def gaussian_kernel_half(
    shape: Shape, voxel_size_mm: Sequence[float], sigma_mm: float, device: torch.device
) -> torch.Tensor:
    return torch.exp(-2.0 * np.pi**2 * sigma_mm**2 * frequency_magnitude(shape, voxel_size_mm, device) ** 2)


def gaussian_smooth(volume: torch.Tensor, voxel_size_mm: Sequence[float], sigma_mm: float) -> torch.Tensor:
    """Gaussian smoothing (sigma in mm), zero-padded by 3 sigma so opposite faces do not mix."""
    shape = padded_fft_shape(volume.shape, voxel_size_mm, 3.0 * sigma_mm)
    kernel = gaussian_kernel_half(shape, voxel_size_mm, sigma_mm, volume.device)
    return irfft(rfft(volume, shape) * kernel, shape, crop_to=volume.shape)


def downsample(
    volume: torch.Tensor, voxel_size_mm: Sequence[float], block_mm: float
) -> tuple[torch.Tensor, list[float]]:
    """Block means over blocks of about `block_mm`, and the coarse voxel size: smooth quantities
    (bias field, receiver phase) are estimated on this grid at a small fraction of the cost."""
    factors = [max(1, int(round(block_mm / size))) for size in voxel_size_mm]
    coarse = F.avg_pool3d(volume[None, None], kernel_size=factors, ceil_mode=True)[0, 0]
    return coarse, [size * factor for size, factor in zip(voxel_size_mm, factors)]


def upsample(coarse: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    return F.interpolate(coarse[None, None], size=tuple(shape), mode="trilinear", align_corners=False)[0, 0]
