"""Every model by name, with the input contract that training and inference read.

Adding a model is one file in this package and one `ModelSpec` in `MODELS`.

A 2D model becomes 2.5D with the option `context_slices` (odd k): it sees each slice with its k // 2
neighbours on either side stacked as channels (`volumes.context_stacks`) and predicts the centre slice.
The spec reads that option, not the builder: the network just has k times the image channels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import pandas as pd
import torch
from torch import nn

from .dbresunet import PAPER_RATE, DBResUNet
from .linus import LiNUS
from .monai_nets import residual_unet
from .resunet import ResUNet
from .torchvision_nets import TorchvisionSegmentation
from .unet import UNet
from .vnet import VNet


@dataclass(frozen=True)
class ModelSpec:
    """How to build a model and what it takes in."""

    name: str
    builder: Callable[..., nn.Module]  # builder(in_channels=..., n_classes=..., **options)
    dims: int  # 2: the network sees slices of the volume, 3: patches
    inputs: tuple[str, ...]  # default input images (BIDS suffixes), one channel each, in this order
    n_classes: int  # default number of output channels, background included
    patch_size: tuple[int, ...]  # slice or patch size for training and sliding-window inference, voxels
    size_multiple: int  # every input side must be a multiple of this
    slice_axis: int | None = None  # 2D models: the volume axis that slices are taken across
    global_patch: bool = False  # forward(local, global): also takes the patch at options["rate"]
    options: Mapping[str, Any] = field(default_factory=dict)  # builder keywords, the paper's setting; context_slices
    paper: str = ""  # the paper table the model appears in
    paper_params: int | None = None

    def __post_init__(self) -> None:
        context = self.context_slices
        if context != 1 and (self.dims != 2 or context < 1 or context % 2 == 0):
            raise ValueError(f"{self.name}: context_slices must be odd and positive on a 2D model, not {context}")

    @property
    def in_channels(self) -> int:
        return len(self.inputs)

    @property
    def context_slices(self) -> int:
        """2D models: slices the network sees stacked as channels, the predicted one in the middle."""
        return int(self.options.get("context_slices", 1))

    def network_channels(self, in_channels: int | None = None) -> int:
        """The network's input channels: `context_slices` slices of each of the image's channels."""
        return (self.in_channels if in_channels is None else in_channels) * self.context_slices

    @property
    def global_rate(self) -> tuple[float, ...] | None:
        """Per-axis downsampling of the image the global patch is taken from, if one is needed."""
        return tuple(self.options["rate"]) if self.global_patch else None

    def with_options(self, **overrides: Any) -> ModelSpec:
        return replace(self, options={**self.options, **overrides})

    def build(self, in_channels: int | None = None, n_classes: int | None = None) -> nn.Module:
        """The network for `in_channels` image channels (default: the spec's inputs)."""
        return self.builder(
            in_channels=self.network_channels(in_channels),
            n_classes=self.n_classes if n_classes is None else n_classes,
            **{key: value for key, value in self.options.items() if key not in SPEC_OPTIONS},
        )


SPEC_OPTIONS = frozenset({"context_slices"})  # options of the input contract, not builder keywords

# LiNUS paper: T1 slices of 182 × 218 × 182 (1 mm) volumes, padded to multiples of 16; STN vs background
LINUS_SLICES = dict(dims=2, inputs=("T1w",), n_classes=2, patch_size=(192, 224), slice_axis=2)
# its 3D baselines: the patch size is not given in the paper
LINUS_PATCHES = dict(dims=3, inputs=("T1w",), n_classes=2, patch_size=(96, 96, 96), size_multiple=16)
# DB-ResUNet paper: T1 + QSM patches of 64 slices × 128 × 128, here in volume-axis order (x, y, z), z the slab
# axis; background + 7 nuclei × left/right
DB_PATCHES = dict(dims=3, inputs=("T1w", "Chimap"), n_classes=15, patch_size=(128, 128, 64), size_multiple=16)

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "linus", LiNUS, size_multiple=16, paper="LiNUS Table II", paper_params=222_698, **LINUS_SLICES
        ),
        ModelSpec(
            # the paper's proposed fix (§IV-C) for the slice-to-slice discontinuities of its 2D predictions
            "linus25d", LiNUS, size_multiple=16, options={"context_slices": 5}, **LINUS_SLICES
        ),
        ModelSpec(
            "unet2d",
            partial(UNet, 2),
            size_multiple=16,
            # Ronneberger's U-Net (transposed-conv upsampling) at widths 56 to 896; 64 to 1024 give 31.0 M
            options={"widths": (56, 112, 224, 448, 896)},
            paper="LiNUS Table II",
            paper_params=24_474_098,
            **LINUS_SLICES,
        ),
        ModelSpec(
            "fcn",
            partial(TorchvisionSegmentation, "fcn"),
            size_multiple=1,  # torchvision interpolates the logits back to the input size
            paper="LiNUS Table II",
            paper_params=33_024_800,
            **LINUS_SLICES,
        ),
        ModelSpec(
            "deeplabv3",
            partial(TorchvisionSegmentation, "deeplabv3"),
            size_multiple=1,
            paper="LiNUS Table II",
            paper_params=39_722_200,
            **LINUS_SLICES,
        ),
        ModelSpec(
            "lraspp",
            partial(TorchvisionSegmentation, "lraspp"),
            size_multiple=1,
            paper="LiNUS Table II",
            paper_params=3_270_557,
            **LINUS_SLICES,
        ),
        ModelSpec(
            "vnet",
            VNet,
            # Milletari's width 16 with one convolution per stage; its 1-2-3-3-3 / 3-3-2-1 stages give
            # 65 M at width 16, and 20.6 M or 25.5 M at widths 9 or 10
            options={"encoder_convs": (1,) * 5, "decoder_convs": (1,) * 4},
            paper="LiNUS Table II",
            paper_params=22_571_507,
            **LINUS_PATCHES,
        ),
        ModelSpec(
            "unet3d_linus",
            partial(residual_unet, 3),
            options={"widths": (4, 8, 16, 32, 64)},
            paper="LiNUS Table II",
            paper_params=305_770,
            **LINUS_PATCHES,
        ),
        ModelSpec(
            "unet3d",
            partial(UNet, 3),
            # widths 32 to 512; transposed convolutions of kernel 3 (as MONAI's) give the paper's
            # 26 M, kernel 2 gives 22.6 M
            options={"widths": (32, 64, 128, 256, 512), "up_kernel": 3},
            paper="DB-ResUNet Table II",
            paper_params=26_000_000,
            **DB_PATCHES,
        ),
        ModelSpec("resunet", ResUNet, paper="DB-ResUNet Table II", paper_params=5_700_000, **DB_PATCHES),
        ModelSpec(
            "dbresunet",
            DBResUNet,
            global_patch=True,
            options={"rate": PAPER_RATE},
            paper="DB-ResUNet Table II",
            paper_params=4_500_000,
            **DB_PATCHES,
        ),
    )
}


def list_models() -> list[str]:
    return list(MODELS)


def get_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise KeyError(f"unknown model '{name}'; known: {', '.join(MODELS)}")
    return MODELS[name]


def build_model(
    name: str, in_channels: int | None = None, n_classes: int | None = None, **options: Any
) -> nn.Module:
    """The named model; channels default to its contract, `options` override its paper setting."""
    return get_spec(name).with_options(**options).build(in_channels, n_classes)


def count_parameters(model: nn.Module) -> int:
    """Learnable parameters only: spectral-norm vectors and batch-norm statistics are buffers."""
    return sum(parameter.numel() for parameter in model.parameters())


def parameters_of(spec: ModelSpec, in_channels: int | None = None, n_classes: int | None = None) -> int:
    """The parameter count of a spec, built on the meta device: shapes only, no memory or initialisation."""
    with torch.device("meta"):
        return count_parameters(spec.build(in_channels, n_classes))


def models_table() -> pd.DataFrame:
    """Each model in its paper setting: parameters, float32 bytes, and the paper's count."""
    rows = []
    for spec in MODELS.values():
        params = parameters_of(spec)
        rows.append(
            {
                "model": spec.name,
                "paper": spec.paper,
                "dims": spec.dims,
                "in_channels": spec.in_channels,
                "context_slices": spec.context_slices,
                "n_classes": spec.n_classes,
                "params": params,
                "bytes_float32": 4 * params,
                "paper_params": spec.paper_params,
                "difference_percent": (
                    round(100 * (params / spec.paper_params - 1), 2) if spec.paper_params else None
                ),
            }
        )
    return pd.DataFrame(rows)
