"""Brain mask from GRE magnitude (bias-normalised, Otsu-thresholded, morphologically cleaned), and
its refinement by phase quality.

The receive-coil bias field makes one global threshold cut into dim tissue far from the coils, so the
magnitude is first divided by a smooth estimate of the tissue intensity. That estimate is computed on
a coarse (about 4 mm) grid, since the bias field is smooth and the full grid would cost seconds.

A magnitude mask also takes in voxels whose phase cannot be trusted: the CSF rim and tissue next to
air, where the field changes by more than pi per voxel. Any unwrapper fails there, and the 2 pi
errors, of the order of 1 ppm, swamp a local field of a few ppb once background removal spreads them.
Thresholding ROMEO's edge quality, averaged per voxel, takes them out.

A field of view inside the brain (a subcortical slab at high resolution) has no air around the head:
Otsu would split CSF from tissue there. `signal_mask` keeps every voxel above the noise floor instead
and leaves the unreliable ones to the phase quality.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.ndimage as ndi
import torch
from skimage.filters import threshold_otsu

from .fourier import ball_offsets, downsample, gaussian_smooth, to_numpy, to_tensor, upsample
from .unwrap import edge_quality

BRAIN_MIN_DEPTH_MM = 20.0  # a scalp lies within about 10 mm of the head's surface; a brain reaches 50 mm deeper


def ball(radius_mm: float, voxel_size_mm: Sequence[float]) -> np.ndarray:
    """Boolean structuring element: the voxels within `radius_mm` of the centre (anisotropic voxels)."""
    half_widths = np.floor(radius_mm / np.asarray(voxel_size_mm)).astype(int)
    element = np.zeros(tuple(2 * half_widths + 1), bool)
    element[tuple((ball_offsets(radius_mm, voxel_size_mm) + half_widths).T)] = True
    return element


def tissue_intensity(
    magnitude: torch.Tensor, voxel_size_mm: Sequence[float], sigma_mm: float = 20.0, block_mm: float = 4.0
) -> torch.Tensor:
    """Smooth estimate of the tissue intensity (the bias field) at every voxel.

    Normalised convolution of the foreground on a coarse grid: away from the head, where there is no
    foreground to average, the estimate blends into the median tissue intensity instead of falling to 0.
    """
    coarse, coarse_voxel = downsample(magnitude, voxel_size_mm, block_mm)
    foreground = coarse > float(threshold_otsu(to_numpy(coarse)))
    tissue_median = coarse[foreground].median()
    blend = 0.05  # weight of the median where the foreground is absent
    signal = gaussian_smooth(coarse * foreground, coarse_voxel, sigma_mm) + blend * tissue_median
    support = gaussian_smooth(foreground.float(), coarse_voxel, sigma_mm) + blend
    return upsample(signal / support, magnitude.shape)


def largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndi.label(mask)
    if count <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == np.argmax(sizes)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill every background region that does not touch the volume border.

    Labelling the background once is much faster than `binary_fill_holes` on large grids.
    """
    background, count = ndi.label(~mask)
    border = np.zeros_like(mask)
    for axis in range(mask.ndim):
        border[(slice(None),) * axis + (0,)] = True
        border[(slice(None),) * axis + (-1,)] = True
    is_hole = np.ones(count + 1, bool)
    is_hole[np.unique(background[border])] = False  # also marks label 0 (the mask itself) as no hole
    return mask | is_hole[background]


def box_smoothed(magnitude: np.ndarray, voxel_size_mm: Sequence[float], smooth_mm: float) -> np.ndarray:
    """Mean over a box reaching `smooth_mm` each way (against noise before a threshold)."""
    half_widths = [int(smooth_mm / size + 0.5) for size in voxel_size_mm]
    return ndi.uniform_filter(np.asarray(magnitude, np.float32), [2 * h + 1 for h in half_widths])


def brain_component(foreground: np.ndarray, voxel_size_mm: Sequence[float], detach_mm: float) -> np.ndarray:
    """The brain within a thresholded head: the foreground is eroded by `detach_mm` (a dark skull
    thicker than twice that parts the scalp from the brain), the part of it that lies deeper in the
    head than a scalp can (`BRAIN_MIN_DEPTH_MM` from the head's surface) and is largest is kept, and
    grown back by `detach_mm` within the foreground. Without such a part (a skull-stripped image, a
    slab) the largest part is kept."""
    sampling = np.asarray(voxel_size_mm, float)
    eroded = ndi.distance_transform_edt(foreground, sampling=sampling) > detach_mm if detach_mm > 0 else foreground
    parts, count = ndi.label(eroded)
    if count == 0:
        return np.zeros_like(foreground)
    sizes = np.bincount(parts.ravel(), minlength=count + 1)
    sizes[0] = 0
    depth = ndi.distance_transform_edt(fill_holes(largest_component(foreground)), sampling=sampling)
    deepest = ndi.maximum(depth, parts, index=np.arange(count + 1))
    deep = np.where(deepest >= BRAIN_MIN_DEPTH_MM, sizes, 0)
    chosen = parts == int(np.argmax(deep if deep.any() else sizes))
    if detach_mm <= 0:
        return chosen
    return (ndi.distance_transform_edt(~chosen, sampling=sampling) <= detach_mm) & foreground


def brain_mask(
    magnitude: np.ndarray,
    voxel_size_mm: Sequence[float],
    bias_sigma_mm: float = 20.0,
    smooth_mm: float = 1.0,
    detach_mm: float = 4.0,
    erosion_mm: float = 0.0,
    device: torch.device | None = None,
) -> np.ndarray:
    """Brain mask from a (first-echo or echo-combined) magnitude image.

    Steps: light smoothing against noise (a box reaching `smooth_mm` each way), division by
    the bias field, Otsu threshold, the brain parted from scalp, neck and vessels (`brain_component`),
    hole filling, optional erosion. Scalp left in the mask is the worst of errors: its phase, next to
    air, is wrapped many times over and carries a background field of several ppm.
    """
    volume = to_tensor(magnitude, device)
    smoothed = box_smoothed(magnitude, voxel_size_mm, smooth_mm)
    normalised = smoothed / to_numpy(tissue_intensity(volume, voxel_size_mm, bias_sigma_mm).clamp_min(1e-12))
    ceiling = np.percentile(normalised.ravel()[::7], 99.5)  # a sample is enough for a percentile
    normalised = np.minimum(normalised, ceiling)  # bright vessels would squash Otsu's histogram
    mask = fill_holes(brain_component(normalised > threshold_otsu(normalised), voxel_size_mm, detach_mm))
    if erosion_mm > 0:
        mask = ndi.binary_erosion(mask, structure=ball(erosion_mm, voxel_size_mm))
    return mask


def signal_mask(magnitude: np.ndarray, voxel_size_mm: Sequence[float], fraction: float = 0.1,
                smooth_mm: float = 1.0) -> np.ndarray:
    """Voxels whose smoothed magnitude exceeds `fraction` of its 99th percentile (largest component,
    holes filled): the whole field of view where it holds signal, for slabs with no background."""
    smoothed = box_smoothed(magnitude, voxel_size_mm, smooth_mm)
    mask = smoothed > fraction * np.percentile(smoothed.ravel()[::7], 99)
    return fill_holes(largest_component(mask))


def csf_mask(magnitudes: np.ndarray, echo_times_s: Sequence[float], mask: np.ndarray,
             voxel_size_mm: Sequence[float], max_r2star_hz: float = 5.0, depth_mm: float = 10.0) -> np.ndarray:
    """Ventricular CSF, the reference MEDI+0 uses: voxels at least `depth_mm` inside the mask (not the
    outer CSF, whose phase borders air and bone) whose R2* (log-linear fit of the magnitude over echoes)
    is below `max_r2star_hz` (CSF: 2-5 Hz; tissue: 15 Hz and more at 3 T), largest connected part."""
    if len(echo_times_s) < 2:
        raise ValueError("the CSF reference needs two or more echoes (it finds CSF by its low R2*)")
    times = np.asarray(echo_times_s, float)
    centred = times - times.mean()
    logs = np.log(np.maximum(magnitudes, 1e-6 * float(magnitudes.max())))
    r2star = -np.tensordot(centred / np.sum(centred**2), logs, axes=1)
    deep = ndi.distance_transform_edt(np.asarray(mask, bool), sampling=np.asarray(voxel_size_mm, float)) > depth_mm
    region = largest_component(deep & (r2star < max_r2star_hz))
    if not region.any():
        raise ValueError(f"no CSF found for the reference: no voxel {depth_mm:g} mm inside the brain mask has an "
                         f"R2* under {max_r2star_hz:g} Hz (set qsm.csf_max_r2star_hz, or another qsm.reference)")
    return region


def phase_quality(phase: np.ndarray, magnitude: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """Mean ROMEO-like quality (phase and magnitude coherence) of the face edges of each voxel, in [0, 1]."""
    phase_t, magnitude_t = to_tensor(phase, device), to_tensor(magnitude, device)
    total, count = torch.zeros_like(phase_t), torch.zeros_like(phase_t)
    for axis in range(phase_t.ndim):
        near = (slice(None),) * axis + (slice(0, -1),)
        far = (slice(None),) * axis + (slice(1, None),)
        quality = edge_quality(phase_t[near], phase_t[far], magnitude_t[near], magnitude_t[far])
        for side in (near, far):
            total[side] += quality
            count[side] += 1
    return to_numpy(total / count)


def reliable_region(mask: np.ndarray, quality: np.ndarray, threshold: float) -> np.ndarray:
    """The largest connected part of the mask whose voxels reach the quality threshold."""
    return largest_component(np.asarray(mask, bool) & (quality >= threshold))
