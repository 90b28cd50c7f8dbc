"""Training data: subjects as arrays, splits, the 2D slice and 3D patch datasets, augmentation.

A subject is its model-input channels (one volume each, on one grid, intensities in [0, 1]) and its
label map as the task's class indices. The datasets are map-style and reproducible: item `i` of
epoch `e` is drawn from a generator seeded by (seed, e, i), so a resumed run sees the same
samples as an uninterrupted one without saving any sampler state.

Sampling over-represents small structures: a `foreground_fraction` of the samples are centred
near a voxel (3D) or taken from a slice (2D) of a foreground class picked uniformly among the
classes present, so each class is drawn as often as any other whatever its size (weights inverse to
class frequency); the rest are uniform over the volume.

2.5D models see each slice with its neighbours stacked as channels (`context_stacks`); the label is
the centre slice's.

DB-ResUNet's global patch comes from the block average of the image at the model's integer
`rate` (voxel j covers voxels [j*rate, (j+1)*rate)), centred on the local patch's centre; its
auxiliary target is the majority label of each block.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import get_track_meta, set_track_meta
from monai.transforms import (
    Compose,
    MapTransform,
    Rand2DElasticd,
    RandAffined,
    RandBiasFieldd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandomizableTransform,
)
from torch.utils.data import Dataset

from .io import InputError, read_volume, same_grid
from .labels import remap_to_task, task_classes
from .models.dbresunet import global_patch_start

IMAGE_KEYS = ("image", "global_image")
LABEL_KEYS = ("label", "global_label")


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

    def check_grid(path: str | os.PathLike, data: np.ndarray, data_affine: np.ndarray) -> None:
        if not same_grid(data.shape, data_affine, shape, affine):
            raise InputError(path, f"grid {data.shape} differs from that of {channel_paths[0]} ({shape})")

    for path, (data, data_affine) in zip(channel_paths, channels):
        check_grid(path, data, data_affine)
    labels = None
    if label_path is not None:
        dseg, dseg_affine = read_volume(label_path, dtype=np.int16)
        check_grid(label_path, dseg, dseg_affine)
        labels = torch.from_numpy(remap_to_task(dseg, task))
    return Subject(name, torch.from_numpy(np.stack([data for data, _ in channels])), labels, affine)


# ---- geometry --------------------------------------------------------------------------------------


def crop(array: torch.Tensor, start: Sequence[int], size: Sequence[int]) -> torch.Tensor:
    """The box [start, start + size) of the trailing len(size) axes, zero where it leaves the array."""
    spatial = array.shape[-len(size) :]
    box = array.new_zeros((*array.shape[: -len(size)], *size))
    source, target = [], []
    for begin, length, extent in zip(start, size, spatial):
        low, high = max(begin, 0), min(begin + length, extent)
        if high <= low:
            return box
        source.append(slice(low, high))
        target.append(slice(low - begin, high - begin))
    box[(..., *target)] = array[(..., *source)]
    return box


def crop_interpolated(array: torch.Tensor, start: Sequence[float], size: Sequence[int]) -> torch.Tensor:
    """`crop` at a fractional start: linear interpolation between the neighbouring whole-voxel boxes."""
    base = [math.floor(begin) for begin in start]
    box = crop(array, base, [length + 1 for length in size])
    for axis, (begin, low, length) in enumerate(zip(start, base, size), start=box.dim() - len(size)):
        lower = box.narrow(axis, 0, length)
        box = lower if begin == low else torch.lerp(lower, box.narrow(axis, 1, length), begin - low)
    return box


def round_up(extent: int, multiple: int) -> int:
    return -(-extent // multiple) * multiple


def pad_ends(array: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Zero-pad the trailing len(sizes) axes at their ends up to `sizes` (where smaller)."""
    padding = []
    for extent, size in zip(reversed(array.shape[-len(sizes) :]), reversed(sizes)):  # F.pad: last axis first
        padding += [0, max(size - extent, 0)]
    return F.pad(array, padding)


def pad_to_multiple(array: torch.Tensor, multiple: int, dims: int) -> torch.Tensor:
    """Zero-pad the trailing `dims` axes at their ends up to multiples of `multiple`."""
    return pad_ends(array, [round_up(extent, multiple) for extent in array.shape[-dims:]])


def block_average(image: torch.Tensor, rate: Sequence[int]) -> torch.Tensor:
    """(channels, *volume) averaged over blocks of `rate` voxels; the volume is zero-padded at its
    ends to whole blocks."""
    whole_blocks = [round_up(extent, step) for extent, step in zip(image.shape[-len(rate) :], rate)]
    pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[len(rate) - 1]
    return pool(pad_ends(image.float(), whole_blocks)[None], kernel_size=tuple(rate))[0]


def block_majority(labels: torch.Tensor, rate: Sequence[int], n_classes: int) -> torch.Tensor:
    """Each block's most frequent class (ties to the lower class index; padding counts for none)."""
    fractions = torch.stack([block_average((labels == label)[None], rate)[0] for label in range(n_classes)])
    return fractions.argmax(0).to(torch.uint8)


def context_stacks(slices: torch.Tensor, centres: torch.Tensor, context: int) -> torch.Tensor:
    """(slices, channels, *slice) -> (len(centres), channels * context, *slice): each centre slice with
    its context // 2 neighbours on either side, zeros past the ends; each channel's slices together, in
    slice order. Only the stacks are copied, so a view of a volume (`movedim`) needs no copy of it."""
    offsets = centres[:, None] + torch.arange(context, device=centres.device) - context // 2
    outside = (offsets < 0) | (offsets >= len(slices))
    outside = outside.reshape(*outside.shape, *(1,) * (slices.dim() - 1))  # over channels and slice
    stacks = slices[offsets.clamp(0, len(slices) - 1)].masked_fill_(outside, 0)  # a copy already
    return stacks.transpose(1, 2).flatten(1, 2)


def integer_rate(rate: Sequence[float]) -> tuple[int, ...]:
    if any(step != int(step) or step < 1 for step in rate):
        raise ValueError(f"the global patch needs whole-voxel downsampling rates, got {tuple(rate)}")
    return tuple(int(step) for step in rate)


@dataclass(frozen=True)
class GlobalView:
    """A subject's image (and labels) downsampled for DB-ResUNet's global branch."""

    image: torch.Tensor
    labels: torch.Tensor | None
    rate: tuple[int, ...]

    @classmethod
    def of(cls, image: torch.Tensor, rate: Sequence[float], labels: torch.Tensor | None = None,
           n_classes: int = 0) -> GlobalView:
        rate = integer_rate(rate)
        majority = None if labels is None else block_majority(labels, rate, n_classes)
        return cls(block_average(image, rate), majority, rate)

    def patch(self, local_start: Sequence[int], size: Sequence[int]) -> torch.Tensor:
        """The global patch sharing the centre of the local patch [local_start, local_start + size)."""
        return crop_interpolated(self.image, global_patch_start(local_start, size, self.rate), size)

    def label_patch(self, local_start: Sequence[int], size: Sequence[int]) -> torch.Tensor:
        start = [round(begin) for begin in global_patch_start(local_start, size, self.rate)]
        return crop(self.labels, start, size)


# ---- augmentation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Augmentation:
    """Random transforms, applied alike to the image, its labels and (3D) the global patch.

    Flips (probability 1/2 per listed volume axis) swap the left and right classes when they
    mirror the left-right axis. Rotation is about `rotation_axis` (3D; in-plane for slices),
    uniform in ± `rotate_degrees`; scaling uniform in 1 ± `scale`; elastic deformation (2D only) of
    control-point `elastic_spacing` pixels and up to `elastic_magnitude`; Gaussian noise of standard
    deviation `noise_std` on the images. For inputs from scanners and QSM methods other than the training
    data's (the model-input scale, [0, 1] over the intensity window): each channel scaled by 1 ±
    `intensity_scale` and shifted by ± `intensity_shift` (a susceptibility scale and offset, a T1 gain), a
    smooth multiplicative field (`bias_field`: the largest coefficient of a degree-3 polynomial of its log,
    a shading), Gaussian blur of up to `blur_sigma` voxels (a coarser acquisition) and up to three smooth
    bright or dark spots of up to `spots` in each channel (`RandSpotsd`: the artefacts of a real QSM that a
    simulated head lacks). The spatial, noise and intensity transforms each fire with `probability`.
    """

    flip_axes: tuple[int, ...] = ()
    rotate_degrees: float = 0.0
    rotation_axis: int = 2
    scale: float = 0.0
    elastic_magnitude: float = 0.0
    elastic_spacing: float = 20.0
    noise_std: float = 0.0
    intensity_scale: float = 0.0
    intensity_shift: float = 0.0
    bias_field: float = 0.0
    blur_sigma: float = 0.0
    spots: float = 0.0
    probability: float = 1.0

    @property
    def rotates(self) -> bool:
        return self.rotate_degrees > 0


class RandSpotsd(RandomizableTransform, MapTransform):
    """Adds 1 to `count` Gaussian spots (sd `sigma` voxels, amplitude ± 0.5 to 1 times `amplitude`) at random
    places to each channel of each key, the labels unchanged. A QSM from a real head has bright and dark
    streaks and spots away from the nuclei (air-tissue interfaces, veins, a background field left over) that a
    simulated head lacks, and a network that never saw one takes it for a nucleus (the shipped DB-ResUNet put
    SN and RN on a sinus artefact of a held-out set, docs/pretrained.md). MONAI has no such transform (its
    coarse dropout fills boxes with noise), so it is written here."""

    def __init__(self, keys: Sequence[str], amplitude: float, prob: float = 1.0, count: int = 3,
                 sigma: tuple[float, float] = (1.5, 4.0)) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys=True)
        RandomizableTransform.__init__(self, prob)
        self.amplitude, self.count, self.sigma = amplitude, count, sigma

    def spots(self, shape: Sequence[int]) -> torch.Tensor:
        """The sum of the spots on a grid of `shape`, each separable: a product of 1D Gaussians."""
        total = torch.zeros(tuple(shape))
        for _ in range(self.R.randint(1, self.count + 1)):
            sigma = self.R.uniform(*self.sigma)
            spot = torch.tensor(self.R.choice([-1.0, 1.0]) * self.R.uniform(0.5, 1.0) * self.amplitude)
            for axis, size in enumerate(shape):
                offsets = torch.arange(size, dtype=torch.float32) - self.R.uniform(0, size)
                profile = torch.exp(-0.5 * (offsets / sigma) ** 2)
                spot = spot * profile.reshape([-1 if a == axis else 1 for a in range(len(shape))])
            total += spot
        return total

    def __call__(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.randomize(None)
        if not self._do_transform:
            return dict(data)
        sample = dict(data)
        for key in self.key_iterator(sample):
            image = sample[key]
            sample[key] = image + torch.stack([self.spots(image.shape[1:]) for _ in range(len(image))]).to(image)
        return sample


def mirror_permutation(task: str) -> torch.Tensor:
    """Class index -> the index of its other-side twin (X_L <-> X_R); background and unpaired
    classes map to themselves."""
    names = ["background", *task_classes(task)]
    index = {name: i for i, name in enumerate(names)}
    other_side = {"_L": "_R", "_R": "_L"}
    twins = [name[:-2] + other_side.get(name[-2:], name[-2:]) for name in names]
    return torch.tensor([index.get(twin, i) for i, twin in enumerate(twins)])


def spatial_transform(dims: int, augmentation: Augmentation, keys: Sequence[str],
                      spatial_size: Sequence[int] | None) -> RandAffined | Rand2DElasticd | None:
    """One MONAI transform for rotation, scaling and elastic deformation, cropping the centre
    `spatial_size` out of the (enlarged) sample."""
    angle = math.radians(augmentation.rotate_degrees)
    about_axis = tuple(angle * (axis == augmentation.rotation_axis) for axis in range(3))
    rotate_range = (angle,) if dims == 2 else about_axis
    common = dict(
        keys=list(keys),
        spatial_size=None if spatial_size is None else tuple(spatial_size),
        prob=augmentation.probability,
        rotate_range=rotate_range,
        scale_range=(augmentation.scale,) * dims,
        mode=["nearest" if key in LABEL_KEYS else "bilinear" for key in keys],
        padding_mode="zeros",
    )
    if augmentation.elastic_magnitude > 0:
        if dims != 2:
            raise ValueError("elastic deformation is implemented for 2D slices only")
        return Rand2DElasticd(spacing=augmentation.elastic_spacing,
                              magnitude_range=(0.0, augmentation.elastic_magnitude), **common)
    if augmentation.rotates or augmentation.scale > 0 or spatial_size is not None:
        return RandAffined(**common)
    return None


@contextmanager
def plain_tensors() -> Iterator[None]:
    """MONAI transforms returning torch tensors, not MetaTensors (half the time on small patches)."""
    tracking = get_track_meta()
    set_track_meta(False)
    try:
        yield
    finally:
        set_track_meta(tracking)


class Augmenter:
    """Applies an `Augmentation` to a sample dict (channel-first tensors) with a given generator.

    `volume_axes`: the volume axis each sample axis comes from; `spatial_size`: the size to crop
    the sample's centre to, where it was taken enlarged."""

    def __init__(self, augmentation: Augmentation, keys: Sequence[str], task: str, volume_axes: Sequence[int],
                 spatial_size: Sequence[int] | None = None) -> None:
        self.augmentation = augmentation
        self.volume_axes = tuple(volume_axes)
        self.mirror = mirror_permutation(task)
        image_keys = [key for key in keys if key in IMAGE_KEYS]
        chance, blur = augmentation.probability, (0.0, augmentation.blur_sigma)
        transforms = [spatial_transform(len(volume_axes), augmentation, keys, spatial_size)]
        if augmentation.noise_std > 0:
            transforms.append(RandGaussianNoised(image_keys, prob=chance, std=augmentation.noise_std))
        if augmentation.intensity_scale > 0:
            transforms.append(RandScaleIntensityd(image_keys, augmentation.intensity_scale, chance, channel_wise=True))
        if augmentation.intensity_shift > 0:
            transforms.append(RandShiftIntensityd(image_keys, augmentation.intensity_shift, prob=chance, channel_wise=True))
        if augmentation.bias_field > 0:
            transforms.append(RandBiasFieldd(image_keys, coeff_range=(0.0, augmentation.bias_field), prob=chance))
        if augmentation.blur_sigma > 0:
            transforms.append(RandGaussianSmoothd(image_keys, sigma_x=blur, sigma_y=blur, sigma_z=blur, prob=chance))
        if augmentation.spots > 0:
            transforms.append(RandSpotsd(image_keys, augmentation.spots, prob=chance))
        self.monai = Compose([transform for transform in transforms if transform is not None])

    def __call__(self, sample: dict[str, torch.Tensor], rng: np.random.Generator,
                 left_right_axis: int) -> dict[str, torch.Tensor]:
        # hand-written flips: MONAI's cannot swap the left and right classes of a mirrored sample
        for axis in self.augmentation.flip_axes:
            if axis in self.volume_axes and rng.random() < 0.5:
                sample_axis = 1 + self.volume_axes.index(axis)  # after the channel axis
                sample = {key: value.flip(sample_axis) for key, value in sample.items()}
                if axis == left_right_axis:
                    sample = {key: self.mirror[value.long()] if key in LABEL_KEYS else value
                              for key, value in sample.items()}
        self.monai.set_random_state(seed=int(rng.integers(2**31)))
        with plain_tensors():
            return self.monai(sample)


# ---- datasets --------------------------------------------------------------------------------------


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
