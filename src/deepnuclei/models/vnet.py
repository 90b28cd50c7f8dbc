"""V-Net (Milletari et al. 2016): a 3D U-Net of residual stages of 5^3 convolutions, strided
convolutions (2^3, stride 2) down, transposed convolutions up, PReLU activations.

Each stage's convolutions are added to its input; decoder stages work on the concatenation of the
upsampled features and the skip, so at twice the level's width. Departures from the 2016
network: batch norm after every convolution, as in the PyTorch ports (MONAI's, mattmacy's), and
the first stage's input reaches the sum through a 1^3 convolution, where they repeat it across
channels (which needs the width to be a multiple of the input channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import batch_norm_layer, concat, conv

# Milletari's stages: 1, 2, 3, 3 convolutions down to the bottleneck (3), then 3, 3, 2, 1 up
ENCODER_CONVS = (1, 2, 3, 3, 3)
DECODER_CONVS = (3, 3, 2, 1)
KERNEL_SIZE = 5


def normalised(dims: int, layer: nn.Module, channels: int) -> nn.Sequential:
    """`layer` (without bias: batch norm shifts), then batch norm and a per-channel PReLU."""
    return nn.Sequential(layer, batch_norm_layer(dims, channels), nn.PReLU(channels))


class ResidualStage(nn.Module):
    """`n_convs` 5^d convolutions (each with batch norm and PReLU) plus a shortcut, then PReLU."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, n_convs: int) -> None:
        super().__init__()
        stage_inputs = (in_channels,) + (out_channels,) * (n_convs - 1)
        self.convs = nn.Sequential(
            *(
                normalised(dims, conv(dims, stage_input, out_channels, KERNEL_SIZE, bias=False), out_channels)
                for stage_input in stage_inputs
            )
        )
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels
            else conv(dims, in_channels, out_channels, kernel_size=1, bias=False)
        )
        self.activation = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.convs(x) + self.shortcut(x))


class VNet(nn.Module):
    """3D V-Net with `len(encoder_convs)` levels of widths `width`, 2 `width`, 4 `width`, ...; input
    sides must be multiples of 2**(len(encoder_convs) - 1)."""

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 2,
        width: int = 16,
        encoder_convs: Sequence[int] = ENCODER_CONVS,
        decoder_convs: Sequence[int] = DECODER_CONVS,
    ) -> None:
        super().__init__()
        if len(decoder_convs) != len(encoder_convs) - 1:
            raise ValueError("the decoder needs one stage fewer than the encoder")
        widths = [width * 2**level for level in range(len(encoder_convs))]
        self.encoder = nn.ModuleList(
            ResidualStage(3, level_input, level_width, n_convs)
            for level_input, level_width, n_convs in zip((in_channels, *widths[1:]), widths, encoder_convs)
        )
        self.downs = nn.ModuleList(
            normalised(3, nn.Conv3d(finer, coarser, 2, stride=2, bias=False), coarser)
            for finer, coarser in zip(widths, widths[1:])
        )
        self.ups = nn.ModuleList()
        self.decoder = nn.ModuleList()
        below = widths[-1]
        for level, n_convs in zip(reversed(range(len(widths) - 1)), decoder_convs):
            up = nn.ConvTranspose3d(below, widths[level], 2, stride=2, bias=False)
            self.ups.append(normalised(3, up, widths[level]))
            below = 2 * widths[level]  # upsampled features and skip, concatenated
            self.decoder.append(ResidualStage(3, below, below, n_convs))
        self.head = conv(3, below, n_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for stage, down in zip(self.encoder, self.downs):
            skips.append(stage(x))
            x = down(skips[-1])
        x = self.encoder[-1](x)  # the bottleneck
        for up, stage, skip in zip(self.ups, self.decoder, reversed(skips)):
            x = stage(concat(up(x), skip))
        return self.head(x)
