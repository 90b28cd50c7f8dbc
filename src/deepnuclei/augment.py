"""Training-time augmentation: MONAI's random transforms configured from an `Augmentation`, the spots MONAI
lacks, and flips that swap the left and right classes (`mirror_permutation`, which inference's test-time
mirror uses too)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
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

from .labels import task_classes

IMAGE_KEYS = ("image", "global_image")  # a sample's keys, images and labels
LABEL_KEYS = ("label", "global_label")


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
