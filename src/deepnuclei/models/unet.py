"""U-Net (Ronneberger 2015; in 3D Çiçek 2016): an encoder and a decoder joined by skips.

The plain model (DoubleConv blocks with batch norm, transposed-convolution upsampling) is the
DB-ResUNet paper's 3D-UNet baseline; LiNUS and ResUNet are this network with other blocks and
upsampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from .blocks import BlockFactory, Decoder, DoubleConv, Encoder, conv


class UNet(nn.Module):
    """U-Net with `len(widths)` levels (`len(widths) - 1` poolings), so input sides must be
    multiples of 2**(len(widths) - 1). Blocks default to DoubleConv with batch norm."""

    def __init__(
        self,
        dims: int,
        in_channels: int,
        n_classes: int,
        widths: Sequence[int],
        up_mode: str = "transpose",
        up_kernel: int = 2,
        encoder_block: BlockFactory | None = None,
        decoder_block: BlockFactory | None = None,
    ) -> None:
        super().__init__()
        encoder_block = encoder_block or partial(DoubleConv, dims)
        self.encoder = Encoder(dims, in_channels, widths, encoder_block)
        self.decoder = Decoder(dims, widths, decoder_block or encoder_block, up_mode, up_kernel)
        self.head = conv(dims, widths[0], n_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(self.encoder(x)))
