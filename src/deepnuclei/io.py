"""NIfTI and JSON input/output: validation with clear errors, atomic writes, geometry helpers."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

# Affines whose entries differ by less than this (mm) describe one grid: a header stored in float32, or
# written by another tool, differs from the original by rounding
GRID_TOLERANCE_MM = 1e-3


class InputError(ValueError):
    """A bad input file: the message names the file and what is wrong with it."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")



def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()

def without_trailing_singletons(image: nib.spatialimages.SpatialImage) -> nib.spatialimages.SpatialImage:
    """The image with length-1 axes after the 3rd dropped: converters (dcm2niix) may store a 3D image as
    (X, Y, Z, 1). The data stay unread: the array proxy is reshaped, not loaded."""
    shape = image.shape
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if shape == image.shape:
        return image
    return image.__class__(image.dataobj.reshape(shape), image.affine, image.header)


def load_nifti(path: str | os.PathLike, ndim: int | None = 3) -> nib.Nifti1Image:
    """Open a NIfTI file, failing with an `InputError` for a missing, corrupt or misshapen file; a 3D image
    stored with trailing length-1 axes comes back 3D."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    try:
        image = without_trailing_singletons(nib.load(str(path)))
        shape = image.shape
    except Exception as error:  # nibabel raises many types for corrupt files
        raise InputError(path, f"not a readable NIfTI file ({error})") from error
    if ndim is not None and len(shape) != ndim:
        raise InputError(path, f"expected a {ndim}D image, got shape {shape}")
    if not np.all(np.isfinite(image.affine)) or abs(np.linalg.det(image.affine[:3, :3])) < 1e-9:
        raise InputError(path, "affine is not invertible or holds NaN")
    return image


def read_volume(
    path: str | os.PathLike, dtype: type = np.float32, allow_nan: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Return (data, affine) of a 3D NIfTI; NaN or Inf voxels are an error unless allowed."""
    image = load_nifti(path)
    try:
        data = np.asarray(image.dataobj, dtype=dtype)
    except Exception as error:  # truncated gzip streams fail only here
        raise InputError(path, f"image data cannot be read ({error})") from error
    if not allow_nan and np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        count = int(np.sum(~np.isfinite(data)))
        raise InputError(path, f"{count} voxels are NaN or infinite")
    return data, image.affine.copy()


def nifti_image(data: np.ndarray, affine: np.ndarray, dtype: type | None = None) -> nib.Nifti1Image:
    """A NIfTI image whose qform and sform both hold `affine` (scanner coordinates)."""
    image = nib.Nifti1Image(np.asarray(data if dtype is None else data.astype(dtype)), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return image


def write_atomic(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """`write(temporary)` to a temporary file beside `path`, then renamed over it: a killed run never leaves a
    partial file. The temporary name ends as `path` does, for writers that choose the format by the suffix
    (NIfTI, PNG, ITK transforms, .npz); it is readable as a normal file would be (mkstemp makes it 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix="".join(path.suffixes))
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def save_volume(
    path: str | os.PathLike, data: np.ndarray, affine: np.ndarray, dtype: type | None = None
) -> Path:
    """Write a NIfTI atomically (`write_atomic`)."""
    return write_atomic(path, lambda temporary: nib.save(nifti_image(data, affine, dtype), temporary))


def write_bytes_atomic(path: str | os.PathLike, content: bytes) -> Path:
    return write_atomic(path, lambda temporary: Path(temporary).write_bytes(content))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


def write_json(path: str | os.PathLike, content: dict[str, Any]) -> Path:
    return write_text_atomic(path, json.dumps(content, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(path, f"not valid JSON ({error})") from error


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel edge lengths in mm from an affine (norms of its columns)."""
    return np.sqrt(np.sum(np.asarray(affine)[:3, :3] ** 2, axis=0))


def voxel_volume_mm3(affine: np.ndarray) -> float:
    return float(abs(np.linalg.det(np.asarray(affine)[:3, :3])))


def same_affine(affine: np.ndarray, other: np.ndarray) -> bool:
    """Whether two affines place voxels alike: within `GRID_TOLERANCE_MM`."""
    return bool(np.allclose(affine, other, atol=GRID_TOLERANCE_MM))


def same_grid(shape: Sequence[int], affine: np.ndarray, other_shape: Sequence[int], other_affine: np.ndarray) -> bool:
    """Whether two images share one grid: the same shape, and affines alike (`same_affine`)."""
    return tuple(shape) == tuple(other_shape) and same_affine(affine, other_affine)


def check_same_grid(path: str | os.PathLike, shape: Sequence[int], affine: np.ndarray, reference_shape: Sequence[int],
                    reference_affine: np.ndarray, reference: str) -> None:
    """An `InputError` on `path` unless it shares the grid of `reference` (as the message names it), saying which
    of the shape and the affine differs."""
    if tuple(shape) != tuple(reference_shape):
        raise InputError(path, f"shape {tuple(shape)} differs from {tuple(reference_shape)} of {reference}")
    if not same_affine(affine, reference_affine):
        raise InputError(path, f"affine differs from that of {reference}")


def b0_direction_in_voxels(affine: np.ndarray, b0_world: tuple[float, float, float] = (0, 0, 1)) -> np.ndarray:
    """Unit B0 direction in the image's voxel axes; B0 lies along the scanner (world) z axis."""
    rotation = np.asarray(affine)[:3, :3] / voxel_sizes(affine)
    direction = np.linalg.solve(rotation, np.asarray(b0_world, dtype=float))
    return direction / np.linalg.norm(direction)


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map an (..., 3) array of points through a 4x4 affine."""
    points = np.asarray(points, dtype=float)
    return points @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]
