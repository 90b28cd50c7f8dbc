"""DB-ResUNet (DB-ResUNet paper §II-B, Figs. 2b, 5, 6): a residual 3D U-Net (the local branch)
plus a global branch that sees a patch of the same matrix size from the image downsampled by
`rate`, centred on the same point, so `rate` times the field of view.

At every level the global encoder's features are cropped to the local patch's field of view,
upsampled to the local features' size and concatenated into the local decoder (at the bottleneck
before its first upsampling). An FCN-8s head on the global encoder gives an auxiliary
segmentation on the global patch's grid, which is also cropped, upsampled and concatenated before
the final 1^3 convolution. forward(local, global) returns (main logits, auxiliary logits).

Geometry contract (what the data loader must provide): the downsampled image is the block
average of the original, so its voxel j covers original voxels [j*rate, (j+1)*rate) along each
axis; the global patch starts at `global_patch_start(...)` in that image. The auxiliary target is
the label map on the same global grid.

Widths: the paper gives 4.5 M parameters and no widths, and says both branches have half the
ResUNet's filters: 8 to 128 here. Those branches hold about 2.5 M; FCN-8s's fully connected
layers turned convolutions (fc6, fc7) on the global bottleneck, 512 wide, hold the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import INTERPOLATION, Decoder, Encoder, ResidualBlock, conv, upsample

DBRESUNET_WIDTHS = (8, 16, 32, 64, 128)  # half of ResUNet's
PAPER_RATE = (2, 2, 1)  # volume axes (x, y, z): the paper halves the in-plane axes only, its 64-slice patch is the whole slab


def global_patch_start(
    local_start: Sequence[float], patch_size: Sequence[int], rate: Sequence[float]
) -> tuple[float, ...]:
    """Start (voxel index in the downsampled image) of the global patch that shares the centre of
    the local patch starting at `local_start` (voxel index in the original image). Where it is not
    a whole number the loader has to resample rather than slice."""
    return tuple((start + size / 2) / r - size / 2 for start, size, r in zip(local_start, patch_size, rate))


def interpolation_matrix(n_in: int, n_out: int, rate: float) -> torch.Tensor:
    """(n_out, n_in) weights of linear interpolation along one axis at the centres of `n_out` voxels
    spanning the central 1/rate of `n_in` voxels (align_corners=False), edges clamped (border)."""
    centres = (torch.arange(n_out, dtype=torch.float64) + 0.5) / n_out  # in [0, 1] of the output's span
    position = ((centres - 0.5) / rate + 0.5) * n_in - 0.5  # in input voxel indices
    position = position.clamp(0, n_in - 1)
    below = position.floor().long()
    above = (below + 1).clamp(max=n_in - 1)
    fraction = position - below
    weights = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    weights.index_put_((rows, below), 1 - fraction, accumulate=True)
    weights.index_put_((rows, above), fraction, accumulate=True)
    return weights


def interpolation_window(n_in: int, n_out: int, rate: float) -> tuple[int, int, float, int] | None:
    """(start, stop, scale, offset) such that F.interpolate(..., scale_factor=scale), run on input voxels
    [start, stop) of one axis, samples the central 1/rate of `n_in` voxels at the `n_out` local voxel centres
    from its output voxel `offset` on, as `interpolation_matrix` does; None where no whole-voxel crop and
    offset line up (odd sizes, some fractional rates)."""
    scale = rate * n_out / n_in
    shift = n_in / 2 * (1 - 1 / rate)  # local voxel i sits at input position (i + 0.5) / scale - 0.5 + shift
    first, last = 0.5 / scale - 0.5 + shift, (n_out - 0.5) / scale - 0.5 + shift
    # below `first` interpolate clamps at the crop's edge: the border padding only where the crop starts at 0
    for start in range(max(math.floor(first), 0), -1, -1):
        offset = scale * (shift - start)
        if abs(offset - round(offset)) < 1e-9:
            stop = min(n_in, math.floor(last) + 2)
            if math.floor((stop - start) * scale) >= round(offset) + n_out:
                return start, stop, scale, round(offset)
    return None


def crop_and_upsample(features: torch.Tensor, rate: Sequence[float], size: Sequence[int]) -> torch.Tensor:
    """Resample the central 1/rate (per axis) of global-branch features onto a grid of `size`.

    That central part is the local patch's field of view at any level, since both patches share
    centre and matrix size. Sampling is (bi/tri)linear at the local voxel centres (the
    align_corners=False convention): cropping then upsampling by `rate`, except that the crop
    need not be whole voxels (coarse levels, odd sizes) and its rim interpolates with the real
    neighbours outside it instead of repeating the edge.

    The same as F.grid_sample on an axis-aligned affine grid with border padding. Computed as one
    F.interpolate on a crop with a voxel's margin where the sizes allow (`interpolation_window`), else
    by `resample_per_axis`. On CPU grid_sample's 3D backward pass took a fifth of a DB-ResUNet training
    step; benchmarks/bench_crop_upsample.py times the three on a step's features.
    """
    shape = features.shape[2:]
    if tuple(shape) == tuple(size) and all(r == 1 for r in rate):
        return features
    windows = [interpolation_window(n_in, n_out, r) for n_in, n_out, r in zip(shape, size, rate)]
    if all(windows):
        crop = features[(..., *(slice(start, stop) for start, stop, _, _ in windows))]
        upsampled = F.interpolate(crop, scale_factor=[scale for _, _, scale, _ in windows],
                                  mode=INTERPOLATION[len(size)], align_corners=False, recompute_scale_factor=False)
        return upsampled[(..., *(slice(offset, offset + n) for (_, _, _, offset), n in zip(windows, size)))]
    return resample_per_axis(features, rate, size)


def resample_per_axis(features: torch.Tensor, rate: Sequence[float], size: Sequence[int]) -> torch.Tensor:
    """`crop_and_upsample` for any sizes: one small matrix product per axis (linear interpolation is
    separable)."""
    for axis, (n_out, r) in enumerate(zip(size, rate), start=2):
        n_in = features.shape[axis]
        if n_in == n_out and r == 1:
            continue
        weights = interpolation_matrix(n_in, n_out, r).to(features.device, features.dtype)
        features = (features.movedim(axis, -1) @ weights.T).movedim(-1, axis)
    return features


class FCN8sHead(nn.Module):
    """FCN-8s (Long et al. 2015) on an encoder's three deepest levels: the coarsest goes through
    fc6 (3^d conv) and fc7 (1^d conv) to `fc_width` channels; each level is scored (1^d conv to the
    classes); the coarsest score is upsampled ×2 (learnable transposed convolution) and added to
    the next, twice; the sum is interpolated to the input grid (FCN-8s fixes its last
    upsampling to bilinear)."""

    def __init__(self, dims: int, widths: Sequence[int], n_classes: int, fc_width: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            conv(dims, widths[-1], fc_width),
            nn.ReLU(inplace=True),
            conv(dims, fc_width, fc_width, kernel_size=1),
            nn.ReLU(inplace=True),
        )
        self.scores = nn.ModuleList(
            conv(dims, width, n_classes, kernel_size=1) for width in (*widths[:-1], fc_width)
        )
        self.ups = nn.ModuleList(upsample(dims, n_classes, n_classes, "transpose") for _ in widths[1:])

    def forward(self, features: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """`features`: the levels matching `widths`, finest first."""
        score = self.scores[-1](self.fc(features[-1]))
        for up, score_conv, feature in zip(self.ups, self.scores[-2::-1], features[-2::-1]):
            score = up(score) + score_conv(feature)
        return F.interpolate(score, size=list(size), mode=INTERPOLATION[score.dim() - 2], align_corners=False)


class DBResUNet(nn.Module):
    """forward(local, global): two (batch, in_channels, *patch) tensors of the same size; returns
    the main logits on the local grid and the auxiliary logits on the global grid."""

    def __init__(
        self,
        in_channels: int = 2,
        n_classes: int = 15,
        local_widths: Sequence[int] = DBRESUNET_WIDTHS,
        global_widths: Sequence[int] = DBRESUNET_WIDTHS,
        rate: Sequence[float] = PAPER_RATE,
        fc_width: int = 512,
    ) -> None:
        super().__init__()
        if len(local_widths) != len(global_widths) or len(global_widths) < 3:
            raise ValueError("both branches need the same number of levels, at least three (FCN-8s)")
        block = partial(ResidualBlock, 3)
        self.rate = tuple(rate)
        self.local_encoder = Encoder(3, in_channels, local_widths, block)
        self.global_encoder = Encoder(3, in_channels, global_widths, block)
        self.decoder = Decoder(3, local_widths, block, extra_channels=global_widths)
        self.aux_head = FCN8sHead(3, global_widths[-3:], n_classes, fc_width)
        self.head = conv(3, local_widths[0] + n_classes, n_classes, kernel_size=1)

    def forward(
        self, local_patch: torch.Tensor, global_patch: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if local_patch.shape != global_patch.shape:  # the field-of-view geometry assumes one matrix size
            raise ValueError(
                f"local {tuple(local_patch.shape)} and global {tuple(global_patch.shape)} patches differ"
            )
        local_features = self.local_encoder(local_patch)
        global_features = self.global_encoder(global_patch)
        global_in_view = [
            crop_and_upsample(global_level, self.rate, local_level.shape[2:])
            for local_level, global_level in zip(local_features, global_features)
        ]
        aux_logits = self.aux_head(global_features[-3:], global_patch.shape[2:])
        decoded = self.decoder(local_features, global_in_view)
        aux_in_view = crop_and_upsample(aux_logits, self.rate, decoded.shape[2:])
        return self.head(torch.cat([decoded, aux_in_view], dim=1)), aux_logits
