"""Training data: subjects as arrays and the 2D slice and 3D patch datasets that sample them.

A subject is its model-input channels (one volume each, on one grid, intensities in [0, 1]) and its
label map as the task's class indices. The datasets are map-style and reproducible: item `i` of
epoch `e` is drawn from a generator seeded by (seed, e, i), so a resumed run sees the same
samples as an uninterrupted one without saving any sampler state.

Sampling over-represents small structures: a `foreground_fraction` of the samples are centred
near a voxel (3D) or taken from a slice (2D) of a foreground class picked uniformly among the
classes present, so each class is drawn as often as any other whatever its size (weights inverse to
class frequency); the rest are uniform over the volume. The array geometry is in `volumes`, the
augmentation in `augment`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .augment import LABEL_KEYS, Augmentation, Augmenter
from .io import check_same_grid, read_volume
from .labels import remap_to_task, task_classes
from .volumes import GlobalView, context_stacks, crop, integer_rate, round_up




@dataclass(frozen=True)
class Subject:
    name: str
    image: torch.Tensor  # (channels, *volume) float32
    labels: torch.Tensor | None  # (*volume) uint8 task class indices; None for unlabelled subjects
    affine: np.ndarray

    @property
    def left_right_axis(self) -> int:
        """The array axis closest to the world left-right (x) axis."""
        return int(np.argmax(np.abs(self.affine[0, :3])))


def load_subject(
    name: str, channel_paths: Sequence[str | os.PathLike], label_path: str | os.PathLike | None, task: str
) -> Subject:
    """Read a subject's channels (in model-input order) and, if given, its reference label map
    (`labels.STRUCTURES` values) remapped to `task`; every file must share the first one's grid."""
    channels = [read_volume(path) for path in channel_paths]
    shape, affine = channels[0][0].shape, channels[0][1]
    for path, (data, data_affine) in zip(channel_paths, channels):
        check_same_grid(path, data.shape, data_affine, shape, affine, str(channel_paths[0]))
    labels = None
    if label_path is not None:
        dseg, dseg_affine = read_volume(label_path, dtype=np.int16)
        check_same_grid(label_path, dseg.shape, dseg_affine, shape, affine, str(channel_paths[0]))
        labels = torch.from_numpy(remap_to_task(dseg, task))
    return Subject(name, torch.from_numpy(np.stack([data for data, _ in channels])), labels, affine)


def finish(sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Images as float32, labels as int64 without their channel axis."""
    return {key: value[0].long() if key in LABEL_KEYS else value.float() for key, value in sample.items()}


class EpochDataset(Dataset):
    """`length` random samples per epoch, item i drawn from a generator seeded by (seed, epoch, i)."""

    def __init__(self, subjects: Sequence[Subject], length: int, task: str, seed: int,
                 foreground_fraction: float) -> None:
        for subject in subjects:
            if subject.labels is None:
                raise ValueError(f"subject {subject.name} has no labels to train on")
        self.subjects = list(subjects)
        self.length = length
        self.task = task
        self.n_classes = 1 + len(task_classes(task))
        self.seed = seed
        self.foreground_fraction = foreground_fraction
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def generator(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, index))

    def wants_foreground(self, rng: np.random.Generator) -> bool:
        return rng.random() < self.foreground_fraction


class SliceDataset(EpochDataset):
    """2D samples: slices across `slice_axis`, zero-padded at their ends to multiples of
    `size_multiple` (and to the largest subject's slice, so that they batch); or, given a
    `crop_size`, crops of the slices (around a random voxel of a class for foreground samples),
    which the fully convolutional 2D models accept and which cost a fraction of a whole slice.
    With `context_slices` > 1 the image is the slice's `context_stacks`, the label the slice's."""

    def __init__(
        self,
        subjects: Sequence[Subject],
        slice_axis: int,
        size_multiple: int,
        length: int,
        task: str,
        seed: int = 0,
        foreground_fraction: float = 0.5,
        augmentation: Augmentation | None = None,
        crop_size: Sequence[int] | None = None,
        context_slices: int = 1,
    ) -> None:
        super().__init__(subjects, length, task, seed, foreground_fraction)
        self.slice_axis = slice_axis
        self.context_slices = context_slices
        volume_axes = [axis for axis in range(3) if axis != slice_axis]  # those of a slice
        in_plane = [[s.labels.shape[axis] for axis in volume_axes] for s in subjects]
        self.slice_size = [round_up(max(sizes), size_multiple) for sizes in zip(*in_plane)]
        self.crop_size = None if crop_size is None else [round_up(size, size_multiple) for size in crop_size]
        self.slices = [
            (s, k) for s, subject in enumerate(subjects) for k in range(subject.labels.shape[slice_axis])
        ]
        self.foreground_slices = [(s, k) for s, k in self.slices if self.slice_labels(s, k).any()]
        self.augmenter = (
            None if augmentation is None else Augmenter(augmentation, ["image", "label"], task, volume_axes)
        )

    def slice_labels(self, subject_index: int, slice_index: int) -> torch.Tensor:
        return self.subjects[subject_index].labels.select(self.slice_axis, slice_index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.generator(index)
        foreground = self.foreground_slices and self.wants_foreground(rng)
        pool = self.foreground_slices if foreground else self.slices
        s, k = pool[rng.integers(len(pool))]
        subject = self.subjects[s]
        slices = subject.image.movedim(self.slice_axis + 1, 0)
        image = context_stacks(slices, torch.tensor([k]), self.context_slices)[0]
        sample = {"image": image, "label": self.slice_labels(s, k)[None]}
        start, size = self.window(sample["label"][0], foreground, rng)
        sample = {key: crop(value, start, size) for key, value in sample.items()}
        if self.augmenter is not None:
            sample = self.augmenter(sample, rng, subject.left_right_axis)
        return finish(sample)


    def window(self, labels: torch.Tensor, foreground: bool, rng: np.random.Generator) -> tuple[list[int], list[int]]:
        """Start and size of the sample in the slice: the whole (padded) slice, or a crop that holds a
        random voxel of a random class present (foreground samples) or lies anywhere in the slice."""
        if self.crop_size is None:
            return [0, 0], self.slice_size
        if foreground:
            classes = labels.unique()
            voxels = torch.nonzero(labels == classes[classes > 0][rng.integers((classes > 0).sum().item())])
            inside = voxels[rng.integers(len(voxels))].tolist()
            start = [int(at - rng.integers(size)) for at, size in zip(inside, self.crop_size)]
        else:
            start = [int(rng.integers(min(1 - size, 0), max(extent - size, 0) + 1))
                     for extent, size in zip(labels.shape, self.crop_size)]
        return start, self.crop_size


def rotation_margin(size: int) -> int:
    """Voxels to add on each side of a square of `size` so that it still fills `size` rotated by 45°."""
    return math.ceil(size * (math.sqrt(2) - 1) / 2)


class PatchDataset(EpochDataset):
    """3D samples: patches of `patch_size` (zero outside the volume) and, with `rate`, the global
    patch and its labels. Augmentation that rotates works on patches enlarged in the rotation
    plane, so the rotated corners hold image, and crops the centre afterwards."""

    def __init__(self, subjects: Sequence[Subject], patch_size: Sequence[int], length: int, task: str,
                 seed: int = 0, foreground_fraction: float = 0.5, rate: Sequence[float] | None = None,
                 augmentation: Augmentation | None = None) -> None:
        super().__init__(subjects, length, task, seed, foreground_fraction)
        self.patch_size = tuple(patch_size)
        self.rate = None if rate is None else integer_rate(rate)
        self.views = [None if rate is None else GlobalView.of(s.image, rate, s.labels, self.n_classes)
                      for s in subjects]
        self.class_voxels = [self.voxels_by_class(s.labels) for s in subjects]
        self.sample_size, self.augmenter = self.patch_size, None
        if augmentation is not None:
            if augmentation.rotates:
                self.sample_size = tuple(
                    size if axis == augmentation.rotation_axis else size + 2 * rotation_margin(size)
                    for axis, size in enumerate(self.patch_size)
                )
            keys = ["image", "label"] + (["global_image", "global_label"] if rate is not None else [])
            crop_to = self.patch_size if self.sample_size != self.patch_size else None
            self.augmenter = Augmenter(augmentation, keys, task, (0, 1, 2), crop_to)

    def voxels_by_class(self, labels: torch.Tensor) -> list[torch.Tensor]:
        """Flat voxel indices of each foreground class present, to draw centres class by class."""
        voxels = [torch.nonzero(labels.flatten() == label)[:, 0] for label in range(1, self.n_classes)]
        return [indices for indices in voxels if len(indices)]

    def centre(self, subject_index: int, rng: np.random.Generator) -> np.ndarray:
        """A foreground voxel moved by up to a quarter patch, or a uniform voxel; on multiples of
        the rate, so that the global patch starts on a whole voxel."""
        shape = np.array(self.subjects[subject_index].labels.shape)
        classes = self.class_voxels[subject_index]
        if classes and self.wants_foreground(rng):
            voxels = classes[rng.integers(len(classes))]
            quarter = np.array(self.patch_size) // 4
            point = np.array(np.unravel_index(int(voxels[rng.integers(len(voxels))]), shape))
            point = point + rng.integers(-quarter, quarter + 1)
        else:
            point = rng.integers(0, shape)
        rate = np.array(self.rate or (1,) * len(shape))
        return np.round(point / rate).astype(int) * rate

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.generator(index)
        s = int(rng.integers(len(self.subjects)))
        subject, view = self.subjects[s], self.views[s]
        start = [int(c) - size // 2 for c, size in zip(self.centre(s, rng), self.sample_size)]
        sample = {"image": crop(subject.image, start, self.sample_size),
                  "label": crop(subject.labels, start, self.sample_size)[None]}
        if view is not None:
            sample["global_image"] = view.patch(start, self.sample_size)
            sample["global_label"] = view.label_patch(start, self.sample_size)[None]
        if self.augmenter is not None:
            sample = self.augmenter(sample, rng, subject.left_right_axis)
        return finish(sample)
