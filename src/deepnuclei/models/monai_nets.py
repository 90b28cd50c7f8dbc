"""The LiNUS paper's baselines taken from MONAI: V-Net (Milletari 2016) and its 2D and 3D U-Nets.

For the U-Nets, MONAI's residual U-Net (two residual units per level) came closest to the paper's
counts: 25.97 M for 24.47 M (2D, widths 64 to 1024) and 301,333 for 305,770 (3D, widths 4 to 64),
where the plain U-Net of `unet.py` gives 31.04 M and 353,586 with the same widths.
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.nets import UNet, VNet


def vnet(in_channels: int = 1, n_classes: int = 2) -> VNet:
    """3D V-Net; input sides must be multiples of 16."""
    return VNet(spatial_dims=3, in_channels=in_channels, out_channels=n_classes)


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
