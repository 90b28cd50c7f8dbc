"""The LiNUS paper's 3D U-Net baseline, taken from MONAI.

MONAI's residual U-Net (two residual units per level) at widths 4 to 64 gives 301,333 parameters
for the paper's 305,770, where the plain U-Net of `unet.py` gives 353,586 with the same widths.
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.nets import UNet


def residual_unet(
    dims: int, in_channels: int, n_classes: int, widths: Sequence[int], residual_units: int = 2
) -> UNet:
    """MONAI's U-Net: strided-convolution downsampling, `residual_units` residual units per level;
    input sides must be multiples of 2**(len(widths) - 1)."""
    return UNet(
        spatial_dims=dims,
        in_channels=in_channels,
        out_channels=n_classes,
        channels=tuple(widths),
        strides=(2,) * (len(widths) - 1),
        num_res_units=residual_units,
    )
