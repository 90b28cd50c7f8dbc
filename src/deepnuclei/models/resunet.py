"""ResUNet (DB-ResUNet paper §II-A, Fig. 4): a 3D U-Net whose stacked convolutions are residual
blocks (Fig. 3), transposed-convolution upsampling.

The paper gives 5.7 M parameters and no widths; widths 16 to 256 over five levels, half those of
the 3D-UNet baseline, give that count.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from .blocks import ResidualBlock
from .unet import UNet

RESUNET_WIDTHS = (16, 32, 64, 128, 256)


class ResUNet(UNet):
    def __init__(
        self, in_channels: int = 2, n_classes: int = 15, widths: Sequence[int] = RESUNET_WIDTHS
    ) -> None:
        super().__init__(3, in_channels, n_classes, widths, encoder_block=partial(ResidualBlock, 3))
