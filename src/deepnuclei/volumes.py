"""Array geometry that training and inference share: boxes cut out of a volume (zero outside it, or at a
fractional start), padding to sizes and multiples, block averages and majorities, 2.5D context stacks, and
DB-ResUNet's global view.

DB-ResUNet's global patch comes from the block average of the image at the model's integer `rate` (voxel j
covers voxels [j*rate, (j+1)*rate)), centred on the local patch's centre; its auxiliary target is the
majority label of each block. 2.5D models see each slice with its neighbours stacked as channels
(`context_stacks`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .models.dbresunet import global_patch_start


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
