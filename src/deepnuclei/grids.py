"""Images between numpy (RAS NIfTI affines) and SimpleITK (LPS physical space), and resampling of
intensities and label maps onto another grid: what registration, the atlas and the models' grid share.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from .io import voxel_sizes

LPS = np.diag([-1.0, -1.0, 1.0])  # NIfTI world axes are RAS, ITK's physical axes LPS
LABEL_INTERPOLATIONS = ("nearest", "label_aware")


def identity() -> sitk.Transform:
    return sitk.Transform(3, sitk.sitkIdentity)


def lps_geometry(affine: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    """Origin, spacing and direction cosines (row-major) of a RAS affine, in ITK's LPS physical space."""
    spacing = voxel_sizes(affine)
    direction = LPS @ np.asarray(affine)[:3, :3] / spacing
    return (LPS @ np.asarray(affine)[:3, 3]).tolist(), spacing.tolist(), direction.ravel().tolist()


def to_sitk(data: np.ndarray, affine: np.ndarray) -> sitk.Image:
    # SimpleITK arrays index (z, y, x); nibabel's (i, j, k)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data)))
    origin, spacing, direction = lps_geometry(affine)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def from_sitk(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    affine = np.eye(4)
    direction = np.reshape(image.GetDirection(), (3, 3))
    affine[:3, :3] = LPS @ direction * np.asarray(image.GetSpacing())
    affine[:3, 3] = LPS @ np.asarray(image.GetOrigin())
    return np.transpose(sitk.GetArrayFromImage(image)), affine


def resample(data: np.ndarray, affine: np.ndarray, transform: sitk.Transform, shape: Sequence[int],
             reference_affine: np.ndarray, interpolator: int = sitk.sitkLinear) -> np.ndarray:
    """Resample a volume onto a reference grid; `transform` maps reference points to the volume's points.
    Outside the volume's field of view the result is 0."""
    origin, spacing, direction = lps_geometry(reference_affine)
    moved = sitk.Resample(to_sitk(data, affine), [int(n) for n in shape], transform, interpolator,
                          origin, spacing, direction, 0.0)
    return from_sitk(moved)[0]


def resample_labels(labels: np.ndarray, affine: np.ndarray, transform: sitk.Transform, shape: Sequence[int],
                    reference_affine: np.ndarray, interpolation: str = "label_aware") -> np.ndarray:
    """Move a label map onto a reference grid. `nearest`: the label of the nearest voxel. `label_aware`:
    each label's indicator is interpolated linearly and every voxel takes the label of largest weight,
    so boundaries move smoothly instead of in whole voxel steps and no label is invented."""
    if interpolation not in LABEL_INTERPOLATIONS:
        raise ValueError(f"label interpolation '{interpolation}' is not one of {LABEL_INTERPOLATIONS}")
    labels = np.asarray(labels)
    if interpolation == "nearest":
        moved = resample(labels, affine, transform, shape, reference_affine, sitk.sitkNearestNeighbor)
        return moved.astype(labels.dtype)
    best_weight = np.zeros(tuple(shape), dtype=np.float32)
    best_label = np.zeros(tuple(shape), dtype=labels.dtype)
    for label in np.unique(labels):  # background included: it must be able to win too
        weight = resample((labels == label).astype(np.float32), affine, transform, shape, reference_affine)
        wins = weight > best_weight
        best_weight[wins], best_label[wins] = weight[wins], label
    return best_label
