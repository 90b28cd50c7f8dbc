"""Blocks shared by the U-Net family: convolution blocks, encoder, decoder, upsampling.

Each takes the number of spatial dimensions, so one definition serves the 2D (LiNUS) and the 3D
(DB-ResUNet paper) networks, and networks are assembled from arguments, as MONAI's are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.networks.layers.factories import Conv, Norm, Pool
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

BlockFactory = Callable[[int, int], nn.Module]  # (in_channels, out_channels) -> block

INTERPOLATION = {2: "bilinear", 3: "trilinear"}


def conv(
    dims: int, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True
) -> nn.Module:
    """A size-preserving convolution (odd kernel, 'same' padding)."""
    return Conv[Conv.CONV, dims](
        in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias
    )


def batch_norm_layer(dims: int, channels: int) -> nn.Module:
    return NarrowBatchNorm3d(channels) if dims == 3 and channels < 8 else Norm[Norm.BATCH, dims](channels)


class NarrowBatchNorm3d(nn.BatchNorm3d):
    """nn.BatchNorm3d that normalises channels-last CPU features in the standard layout: PyTorch's
    channels-last CPU kernel vectorises across channels, which fewer than a vector register's 8 floats leave
    idle. The demo's DB-ResUNet has 4 channels at full resolution: forward and backward on 2 x 64 x 64 x 32,
    one thread of an AMD EPYC, took 16.4 ms in place against 10.4 ms with the two copies; its training step
    3 to 4 % less (benchmarks/bench_training_step.py measures the step). Same parameters, same state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last_3d):
            return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last_3d)
        return super().forward(x)


class DoubleConv(nn.Sequential):
    """The U-Net stage: two 3^d convolutions, each followed by optional batch norm, then ReLU.

    `spectral` puts spectral normalisation on both weights (LiNUS): each forward pass in training
    runs one power iteration and divides the weight by its largest singular value. It adds the
    power-iteration vectors as buffers, not parameters.
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        batch_norm: bool = True,
        spectral: bool = False,
    ) -> None:
        layers: list[nn.Module] = []
        for block_input in (in_channels, out_channels):
            convolution = conv(dims, block_input, out_channels, bias=not batch_norm)  # BN has its own shift
            layers.append(spectral_norm(convolution) if spectral else convolution)
            if batch_norm:
                layers.append(batch_norm_layer(dims, out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """The DB-ResUNet paper's residual block (its Fig. 3): conv-BN-ReLU-conv-BN (3^d kernels,
    stride 1, padding 1) plus a shortcut, a 1^d conv + BN where the width changes, then ReLU."""

    def __init__(self, dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv(dims, in_channels, out_channels, bias=False),
            batch_norm_layer(dims, out_channels),
            nn.ReLU(inplace=True),
            conv(dims, out_channels, out_channels, bias=False),
            batch_norm_layer(dims, out_channels),
        )
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(
                conv(dims, in_channels, out_channels, kernel_size=1, bias=False),
                batch_norm_layer(dims, out_channels),
            )
        )
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.body(x) + self.shortcut(x))


def upsample(dims: int, in_channels: int, out_channels: int, mode: str, kernel_size: int = 2) -> nn.Module:
    """Double the size and set the width: a learnable transposed convolution (`transpose`), or
    a 1^d convolution and parameter-free (bi/tri)linear interpolation (`interpolate`).

    The 1^d convolution runs before the interpolation: both are linear and interpolation weights
    sum to one, so the order does not change the output, and at the coarse level the convolution
    costs a quarter (3D: an eighth) and the interpolation runs on the narrower width."""
    if mode == "transpose":
        # padding and output_padding make the output exactly twice the input for any kernel size
        return Conv[Conv.CONVTRANS, dims](
            in_channels,
            out_channels,
            kernel_size,
            stride=2,
            padding=(kernel_size - 1) // 2,
            output_padding=kernel_size % 2,
        )
    if mode == "interpolate":
        return nn.Sequential(
            conv(dims, in_channels, out_channels, kernel_size=1),
            nn.Upsample(scale_factor=2, mode=INTERPOLATION[dims], align_corners=False),
        )
    raise ValueError(f"unknown upsampling mode '{mode}'; use 'transpose' or 'interpolate'")


def concat(*tensors: torch.Tensor | None) -> torch.Tensor:
    """Concatenate along channels, skipping the absent ones."""
    return torch.cat([tensor for tensor in tensors if tensor is not None], dim=1)


class Encoder(nn.Module):
    """One block per level, max pooling (2) between levels. Returns every level's features,
    finest first: the skips, then the bottleneck."""

    def __init__(self, dims: int, in_channels: int, widths: Sequence[int], block: BlockFactory) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            block(level_input, width) for level_input, width in zip((in_channels, *widths[:-1]), widths)
        )
        self.pool = Pool[Pool.MAX, dims](kernel_size=2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for level, block in enumerate(self.blocks):
            x = block(x if level == 0 else self.pool(x))
            features.append(x)
        return features


class Decoder(nn.Module):
    """From the bottleneck up: upsample to the next finer level's width, concatenate that level's
    skip, and a block back to the level's width. Returns the finest level's features.

    `extra_channels[level]` (default none) are more features joined at each level (DB-ResUNet's
    global branch): at the bottleneck before upsampling, at the other levels with the skip.
    """

    def __init__(
        self,
        dims: int,
        widths: Sequence[int],
        block: BlockFactory,
        up_mode: str = "transpose",
        up_kernel: int = 2,
        extra_channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        extra = tuple(extra_channels) if extra_channels is not None else (0,) * len(widths)
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        below = widths[-1] + extra[-1]
        for level in reversed(range(len(widths) - 1)):
            self.ups.append(upsample(dims, below, widths[level], up_mode, up_kernel))
            self.blocks.append(block(2 * widths[level] + extra[level], widths[level]))
            below = widths[level]

    def forward(
        self, features: Sequence[torch.Tensor], extras: Sequence[torch.Tensor] | None = None
    ) -> torch.Tensor:
        extras = extras if extras is not None else [None] * len(features)
        x = concat(features[-1], extras[-1])
        for up, block, skip, extra in zip(self.ups, self.blocks, features[-2::-1], extras[-2::-1]):
            x = block(concat(up(x), skip, extra))
        return x
