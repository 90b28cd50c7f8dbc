"""Training losses of both papers, on logits and class-index labels.

LiNUS: Dice + cross-entropy. DB-ResUNet: cross-entropy weighted 0.1 for background and 0.4 for
every foreground class, on the main output plus λg times the same on the auxiliary (global)
output. Models without an auxiliary output take the main term alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.losses import DiceCELoss
from torch import nn

LOSSES = ("ce", "dice_ce")


class DiceCE(DiceCELoss):
    """MONAI's Dice + cross-entropy on softmax of the logits, taking labels without a channel axis.
    Dice is over the whole batch and the foreground classes only: slices or patches without the
    structure would otherwise score a perfect Dice for predicting nothing."""

    def __init__(self, weight: torch.Tensor | None = None) -> None:
        super().__init__(to_onehot_y=True, softmax=True, include_background=False, batch=True, weight=weight)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return super().forward(logits, labels[:, None])


def class_weights(n_classes: int, background: float, foreground: float) -> torch.Tensor:
    return torch.tensor([background] + [foreground] * (n_classes - 1))


def criterion(name: str, n_classes: int, weights: Sequence[float] | None = None) -> nn.Module:
    """`ce` or `dice_ce` on (logits, labels); `weights` (background, foreground) weight the
    cross-entropy."""
    weight = None if weights is None else class_weights(n_classes, *weights)
    if name == "ce":
        return nn.CrossEntropyLoss(weight=weight)
    if name == "dice_ce":
        return DiceCE(weight)
    raise ValueError(f"unknown loss '{name}'; use one of {LOSSES}")


class SegmentationLoss(nn.Module):
    """main(logits, labels) + aux_weight · main(aux logits, global labels), in float32."""

    def __init__(self, main: nn.Module, aux_weight: float = 1.0) -> None:
        super().__init__()
        self.main = main
        self.aux_weight = aux_weight

    def forward(
        self,
        outputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
        labels: torch.Tensor,
        global_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            return self.main(outputs.float(), labels)
        logits, aux_logits = outputs
        main_loss = self.main(logits.float(), labels)
        return main_loss + self.aux_weight * self.main(aux_logits.float(), global_labels)
