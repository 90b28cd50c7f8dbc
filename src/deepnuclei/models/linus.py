"""LiNUS (LiNUS paper §II-B): a lightweight 2D U-Net for the STN.

Encoder stages are DoubleConv blocks (two 3 × 3 conv + ReLU) under spectral normalisation instead
of batch norm; four downsamplings; the decoder upsamples bilinearly instead of by transposed
convolution, with a 1 × 1 convolution setting the width so that the skip concatenation is
balanced as in U-Net; 1 × 1 output head.

The paper gives no widths. Doubling widths capped at the fourth level (7, 14, 28, 56, 56; the cap
is the usual bilinear U-Net convention, as bilinear upsampling cannot halve channels) give 230,820
parameters, 3.6 % above the paper's 222,698; of the widths c·(1, 2, 4, 8, 16) and c·(1, 2, 4, 8, 8)
in this design no other c comes within 14 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from .blocks import DoubleConv
from .unet import UNet

LINUS_WIDTHS = (7, 14, 28, 56, 56)


class LiNUS(UNet):
    def __init__(
        self, in_channels: int = 1, n_classes: int = 2, widths: Sequence[int] = LINUS_WIDTHS
    ) -> None:
        super().__init__(
            dims=2,
            in_channels=in_channels,
            n_classes=n_classes,
            widths=widths,
            up_mode="interpolate",
            # the paper puts spectral normalisation on the encoder; without any normalisation the
            # decoder convolutions keep their bias
            encoder_block=partial(DoubleConv, 2, batch_norm=False, spectral=True),
            decoder_block=partial(DoubleConv, 2, batch_norm=False),
        )
