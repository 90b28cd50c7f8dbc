"""The LiNUS paper's 2D baselines from torchvision: FCN, DeepLabV3 (ResNet-50 backbones) and
LR-ASPP (MobileNetV3-Large), randomly initialised (nothing is downloaded) and taking any number of
input channels."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision.models import segmentation

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "fcn": segmentation.fcn_resnet50,
    "deeplabv3": segmentation.deeplabv3_resnet50,
    "lraspp": segmentation.lraspp_mobilenet_v3_large,
}


def replace_first_conv(network: nn.Module, in_channels: int) -> None:
    """Swap the network's first convolution (3 input channels in torchvision) for an equal one
    taking `in_channels`."""
    name, first = next(
        (name, module) for name, module in network.named_modules() if isinstance(module, nn.Conv2d)
    )
    parent, _, attribute = name.rpartition(".")
    replacement = nn.Conv2d(
        in_channels,
        first.out_channels,
        first.kernel_size,
        first.stride,
        first.padding,
        first.dilation,
        first.groups,
        bias=first.bias is not None,
    )
    setattr(network.get_submodule(parent), attribute, replacement)


class TorchvisionSegmentation(nn.Module):
    """A torchvision segmentation network whose forward returns the logits at the input size (the
    'out' entry of torchvision's dict; no auxiliary classifier)."""

    def __init__(self, architecture: str, in_channels: int = 1, n_classes: int = 2) -> None:
        super().__init__()
        self.network = ARCHITECTURES[architecture](weights=None, weights_backbone=None, num_classes=n_classes)
        replace_first_conv(self.network, in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)["out"]
