"""Model inputs on the SWI grid (or, for T1w-space models, on the T1's): zero-pad (or centre-crop) to the
configured matrix, clip and rescale.

As in the DB-ResUNet paper: QSM and the T1 (already resampled to the SWI grid) are zero-padded to the
model's matrix, clipped (QSM to [-150, 250] ppb, T1 to [0, 800]) and rescaled to [0, 1]. Padding comes
first, so padded voxels read as 0 ppm and T1 0, like the background outside the brain.

Each channel is written as its own 3D NIfTI named by its BIDS suffix (`_Chimap`, `_T1w`), the names
that a model's `inputs` list in `deepnuclei.models` holds: the QSM-only and T1-only ablations read one
file, QSM+T1 reads both in the model's order, and no volume is stored twice. A JSON record keeps the
padding and the intensity windows, so predictions map back onto the image grid exactly (`Padding.unpad`).
The LiNUS paper's models read the T1 on its own grid instead: then the T1 is the only channel.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from skimage.filters import threshold_otsu

from .grids import identity, resample, resample_labels
from .io import check_same_grid, load_nifti, read_json, read_volume, save_volume, voxel_sizes, write_json

T1_CLIP_UNITS = ("value", "percentile", "median")
T1_CLIP_UNIT = "median"  # where settings name none (config.yaml's preprocess.t1_clip_unit): see t1_window


@dataclass(frozen=True)
class Padding:
    """Centred zero-padding of an image grid to a fixed matrix; an axis longer than the matrix is
    centre-cropped instead (`before` negative)."""

    shape: tuple[int, ...]  # the image grid (SWI)
    matrix: tuple[int, ...]  # the model's grid
    before: tuple[int, ...]  # voxels added in front of index 0 along each axis; negative: removed

    @classmethod
    def centred(cls, shape: Sequence[int], matrix: Sequence[int]) -> Padding:
        if len(shape) != len(matrix):
            raise ValueError(f"matrix {tuple(matrix)} has not the {len(shape)} axes of the image {tuple(shape)}")
        before = tuple((int(m) - int(n)) // 2 for n, m in zip(shape, matrix))
        return cls(tuple(int(n) for n in shape), tuple(int(m) for m in matrix), before)

    @property
    def cropped(self) -> bool:
        return any(b < 0 or n > m for n, m, b in zip(self.shape, self.matrix, self.before))

    def _overlap(self) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        """The block the two grids share, as slices into the image and into the padded array."""
        in_image, in_padded = [], []
        for n, m, b in zip(self.shape, self.matrix, self.before):
            image_start, padded_start = max(-b, 0), max(b, 0)
            length = min(n - image_start, m - padded_start)
            in_image.append(slice(image_start, image_start + length))
            in_padded.append(slice(padded_start, padded_start + length))
        return tuple(in_image), tuple(in_padded)

    def pad(self, data: np.ndarray) -> np.ndarray:
        if data.shape != self.shape:
            raise ValueError(f"expected an image of shape {self.shape}, got {data.shape}")
        in_image, in_padded = self._overlap()
        padded = np.zeros(self.matrix, dtype=data.dtype)
        padded[in_padded] = data[in_image]
        return padded

    def unpad(self, data: np.ndarray) -> np.ndarray:
        """Back onto the image grid: exact where the padding kept the image, 0 where it cropped."""
        if data.shape != self.matrix:
            raise ValueError(f"expected an array of the matrix shape {self.matrix}, got {data.shape}")
        in_image, in_padded = self._overlap()
        image = np.zeros(self.shape, dtype=data.dtype)
        image[in_image] = data[in_padded]
        return image

    def padded_affine(self, affine: np.ndarray) -> np.ndarray:
        """The padded grid's affine: the same world position for every kept voxel."""
        shift = np.eye(4)
        shift[:3, 3] = -np.asarray(self.before, dtype=float)
        return np.asarray(affine) @ shift

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "matrix": list(self.matrix), "before": list(self.before)}

    @classmethod
    def from_dict(cls, record: Mapping) -> Padding:
        return cls(tuple(record["shape"]), tuple(record["matrix"]), tuple(record["before"]))


def rescale(data: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """Clip to the window [low, high] and map it linearly to [0, 1]."""
    low, high = float(window[0]), float(window[1])
    if not high > low:
        raise ValueError(f"intensity window [{low}, {high}] is empty")
    return np.clip((np.asarray(data, dtype=np.float32) - low) / (high - low), 0.0, 1.0)


def qsm_window_ppm(clip_ppb: Sequence[float]) -> tuple[float, float]:
    """The config's QSM range is in ppb (the paper's); the maps are in ppm."""
    return float(clip_ppb[0]) / 1000.0, float(clip_ppb[1]) / 1000.0


def head_foreground(t1: np.ndarray) -> np.ndarray:
    """The T1's voxels above its Otsu threshold (the head): a set that scaling the image does not change."""
    nonzero = t1[t1 > 0]
    if nonzero.size == 0:
        raise ValueError("the T1 has no non-zero voxels")
    return nonzero[nonzero > threshold_otsu(nonzero)]


def t1_window(t1: np.ndarray, clip: Sequence[float], unit: str) -> tuple[float, float]:
    """The T1 window: `value` takes the config's range as intensities (the paper's [0, 800]); `percentile`
    reads it as percentiles of the non-zero voxels; `median` as multiples of the median of the head
    (`head_foreground`). The last two do not depend on the T1's absolute scale, which differs between
    scanners and converters by large factors; `median` does not depend on how much air the field of view
    holds either, so a model trained with it reads another site's T1 alike."""
    if unit not in T1_CLIP_UNITS:
        raise ValueError(f"t1_clip_unit '{unit}' is not one of {T1_CLIP_UNITS}")
    if unit == "value":
        return float(clip[0]), float(clip[1])
    if unit == "median":
        median = float(np.median(head_foreground(t1)))
        return float(clip[0]) * median, float(clip[1]) * median
    foreground = t1[t1 > 0]
    if foreground.size == 0:
        raise ValueError("the T1 has no non-zero voxels to take percentiles of")
    low, high = np.percentile(foreground, [clip[0], clip[1]])
    return float(low), float(high)


def read_same_grid(qsm_path: str | os.PathLike, t1_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """QSM and T1 on the SWI grid, checked to share it; returns both and the grid's affine."""
    qsm, affine = read_volume(qsm_path)
    t1, t1_affine = read_volume(t1_path)
    check_same_grid(t1_path, t1.shape, t1_affine, qsm.shape, affine, f"the QSM on the SWI grid, {qsm_path}")
    return qsm, t1, affine


VOXEL_TOLERANCE = 0.01  # relative: voxel sizes this close to the models' need no resampling


@dataclass(frozen=True)
class Grid:
    shape: tuple[int, ...]
    affine: np.ndarray


def model_grid(shape: Sequence[int], affine: np.ndarray, voxel_mm: Sequence[float] | None = None,
               orientation: str | None = None) -> Grid | None:
    """The grid the models read an image on: its axes permuted and flipped to `orientation` (axis codes such
    as "RAS", the closest to the image's own) and its voxels `voxel_mm`, covering the image's field of view;
    None where the image's own grid is that grid already (voxel sizes within `VOXEL_TOLERANCE`), so data
    acquired like the training data are read without interpolation."""
    affine = np.asarray(affine, dtype=float)
    own = nib.orientations.io_orientation(affine)
    target = own if orientation is None else nib.orientations.axcodes2ornt(tuple(orientation))
    change = nib.orientations.ornt_transform(own, target)
    reoriented = affine @ nib.orientations.inv_ornt_aff(change, shape)
    reoriented_shape = np.asarray(shape)[change[:, 0].astype(int)]
    sizes = voxel_sizes(reoriented)
    wanted = sizes if voxel_mm is None else np.asarray(voxel_mm, dtype=float)
    if np.allclose(wanted, sizes, rtol=VOXEL_TOLERANCE):
        same_axes = np.array_equal(change, [[axis, 1] for axis in range(len(shape))])
        return None if same_axes else Grid(tuple(int(n) for n in reoriented_shape), reoriented)
    new_shape = np.maximum(np.round(reoriented_shape * sizes / wanted), 1).astype(int)
    scale = wanted / sizes
    resized = reoriented.copy()
    resized[:3, :3] = reoriented[:3, :3] * scale
    # the same field of view: the first voxel's outer corner stays where it was
    resized[:3, 3] = reoriented[:3, :3] @ ((scale - 1) / 2) + reoriented[:3, 3]
    return Grid(tuple(int(n) for n in new_shape), resized)


def resample_to(data: np.ndarray, affine: np.ndarray, grid: Grid, labels: bool = False) -> np.ndarray:
    """`data` on `grid`: linear interpolation for intensities, label-aware for label maps."""
    if labels:
        return resample_labels(data, affine, identity(), grid.shape, grid.affine, "label_aware")
    return resample(np.asarray(data, dtype=np.float32), affine, identity(), grid.shape, grid.affine)


def prepare_inputs(qsm_path: str | os.PathLike | None, t1_path: str | os.PathLike, settings: Mapping,
                   out_qsm: str | os.PathLike | None, out_t1: str | os.PathLike, out_record: str | os.PathLike) -> dict:
    """Write the padded, clipped, rescaled QSM and T1 and the JSON record that maps them back. `settings` is
    the config's `preprocess:` section (or `preprocess_t1w:`, with no QSM: `qsm_path` and `out_qsm` None), or
    a bundle's: with `voxel_mm` / `orientation` the images are first resampled to the models' grid."""
    if qsm_path is None:
        t1, affine = read_volume(t1_path)
        qsm_ppm = None
    else:
        qsm_ppm, t1, affine = read_same_grid(qsm_path, t1_path)
    image_affine, image_shape = affine, t1.shape
    grid = model_grid(t1.shape, affine, settings.get("voxel_mm"), settings.get("orientation"))
    if grid is not None:
        t1 = resample_to(t1, image_affine, grid)
        qsm_ppm = None if qsm_ppm is None else resample_to(qsm_ppm, image_affine, grid)
        affine = grid.affine
    padding = Padding.centred(t1.shape, settings["matrix"])
    windows = {"t1_window": t1_window(t1, settings["t1_clip"], settings.get("t1_clip_unit", T1_CLIP_UNIT))}
    model_affine = padding.padded_affine(affine)
    if qsm_ppm is not None:
        windows["qsm_window_ppm"] = qsm_window_ppm(settings["qsm_clip_ppb"])
        save_volume(out_qsm, rescale(padding.pad(qsm_ppm), windows["qsm_window_ppm"]), model_affine, np.float32)
    save_volume(out_t1, rescale(padding.pad(t1), windows["t1_window"]), model_affine, np.float32)
    record = {"padding": padding.to_dict(), "cropped": padding.cropped, "image_affine": image_affine.tolist(),
              "image_shape": list(image_shape), "space": "T1w" if qsm_ppm is None else "SWI",
              "resampled_affine": None if grid is None else grid.affine.tolist(),
              "model_affine": model_affine.tolist(), **{key: list(value) for key, value in windows.items()}}
    write_json(out_record, record)
    return record


def move_by_record(data: np.ndarray, affine: np.ndarray, record_path: str | os.PathLike,
                   source: str | os.PathLike, inverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """An array on the image grid (SWI or T1) padded like the model inputs, or (`inverse`) one on the model grid
    taken back to the image grid, with its new affine; `source` names the data in the error when its grid is not the
    one the `preprocess` record expects. Where the record resampled the images, integer arrays (label maps) are
    resampled label-aware, others linearly."""
    record = read_json(record_path)
    padding = Padding.from_dict(record["padding"])
    image_shape = tuple(record.get("image_shape", padding.shape))
    grid = None if record.get("resampled_affine") is None else Grid(padding.shape, np.asarray(record["resampled_affine"]))
    grid_name, expected_shape, expected_affine = (("model", padding.matrix, record["model_affine"]) if inverse
                                                  else (record["space"], image_shape, record["image_affine"]))
    check_same_grid(source, data.shape, affine, expected_shape, expected_affine,
                    f"the {grid_name} grid recorded in {record_path}")
    labels = np.issubdtype(np.asarray(data).dtype, np.integer)
    image_affine = np.asarray(record["image_affine"])
    if inverse:
        moved = padding.unpad(data)
        if grid is not None:
            moved = resample_to(moved, grid.affine, Grid(image_shape, image_affine), labels).astype(data.dtype)
        return moved, image_affine
    if grid is not None:
        data = resample_to(data, image_affine, grid, labels).astype(data.dtype)
    return padding.pad(data), np.asarray(record["model_affine"])


def apply_padding(record_path: str | os.PathLike, in_path: str | os.PathLike, out_path: str | os.PathLike,
                  inverse: bool = False) -> Path:
    """Pad an image-grid volume (e.g. reference labels) like the model inputs, or (`inverse`) take a volume on
    the model's grid (e.g. a prediction) back to the image grid; the data type is kept."""
    image = load_nifti(in_path)
    data = np.asarray(image.dataobj)
    moved, affine = move_by_record(data, image.affine, record_path, in_path, inverse)
    return save_volume(out_path, moved, affine, data.dtype)
