"""MI-ST, the optimizer that the LiNUS paper prefers to Adam (its Table IX), under our reading.

The paper cites MI-ST (Zhang et al., "Enhancing adversarial attacks: the similar target method",
IJCNN 2024) without saying how it trained a network with it. There it is an attack: MI-FGSM's
momentum on L1-normalised gradients, steered toward a direction on which the gradients of several
models agree (their cosine similarity). `MIST` carries that over to training, sub-batches in place
of models; its docstring states each choice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer


def l1_normalised(gradient: Tensor) -> Tensor:
    """gradient / mean |gradient|: MI-FGSM's g / ||g||_1 times the tensor's size. Zero stays zero."""
    return gradient / gradient.abs().mean().clamp_min(torch.finfo(gradient.dtype).tiny)


def agreement_weights(stacks: Sequence[Tensor]) -> Tensor:
    """Each sub-batch's cosine similarity to the sub-batches' mean direction, clamped at 0.

    `stacks` holds, per parameter tensor, the k sub-batches' gradients stacked on a first axis; the
    similarity is over all parameters together, the whole model's direction."""
    rows = [stack.reshape(len(stack), -1) for stack in stacks]
    means = [row.mean(0) for row in rows]
    dots = sum(row @ mean for row, mean in zip(rows, means))
    norms = sum(row.square().sum(1) for row in rows).sqrt()
    mean_norm = sum(mean.square().sum() for mean in means).sqrt()
    return (dots / (norms * mean_norm).clamp_min(torch.finfo(mean_norm.dtype).tiny)).clamp_min(0)


class MIST(Optimizer):
    """MI-ST for training, our reading (the LiNUS paper gives none).

    The batch is split into k sub-batches; after each one's backward pass, `accumulate()` takes its
    gradients. `step()` then, for every parameter tensor p:

    1. L1-normalises each sub-batch's gradient of p: ĝᵢ = gᵢ / mean|gᵢ| (MI-FGSM's gᵢ / ||gᵢ||₁ times
       the tensor's size), per tensor, so that every step and every layer weighs the same in the
       momentum whatever its gradients' scale.
    2. Weights the sub-batches by wᵢ = max(0, cos(ĝᵢ, mean ĝ)), the cosine over all parameters: the
       step leans toward the sub-batches that agree with the consensus, and one opposed to it does
       not count (MI-ST's similar-target steering).
    3. Accumulates momentum as MI-FGSM: m ← μ m + s / mean|s|, with s = Σᵢ wᵢ ĝᵢ.
    4. Moves p ← p (1 − lr λ) − lr sign(m), MI-FGSM's step. For training this is signed momentum
       (Signum, Bernstein et al. 2018; Lion's step is a sign too), which trains at Adam's learning
       rates: every element moves lr, as Adam's normalised step does. A step lr·m instead, tried
       first, let elements with outlying gradients move 40 to 170 times lr and diverged at Adam's
       rates. Weight decay λ is decoupled (as AdamW): added to the gradient, it would be
       normalised with it, its strength depending on the gradient's size.

    With k = 1 this is momentum on L1-normalised gradients. A step is atomic: the sub-batch
    gradients wait in `pending`, outside `state_dict()`, which holds the momentum and step count.
    `step()` with nothing accumulated takes the current `.grad` as the one sub-batch, so the usual
    backward-then-step loop works too.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3,
                 momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        if min(lr, momentum, weight_decay) < 0:
            raise ValueError(f"lr {lr}, momentum {momentum} and weight_decay {weight_decay} must be >= 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))
        self.pending: list[list[Tensor | None]] = []  # per sub-batch, per parameter

    def members(self) -> list[tuple[Tensor, dict[str, Any]]]:
        """Every parameter with its group, in a fixed order."""
        return [(param, group) for group in self.param_groups for param in group["params"]]

    @torch.no_grad()
    def accumulate(self) -> None:
        """Take the parameters' gradients as one sub-batch's, leaving `.grad` None so that the
        next sub-batch's backward pass starts from zero."""
        params = [param for param, _ in self.members()]
        self.pending.append([param.grad for param in params])
        for param in params:
            param.grad = None

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if not self.pending:
            self.accumulate()
        pending, self.pending = self.pending, []
        members = self.members()
        used = [index for index in range(len(members)) if any(grads[index] is not None for grads in pending)]
        if not used:  # as torch's optimizers: parameters without gradients stay as they are
            return loss
        stacks = [
            torch.stack([torch.zeros_like(members[index][0]) if grads[index] is None else l1_normalised(grads[index])
                         for grads in pending])
            for index in used
        ]
        weights = agreement_weights(stacks)
        for index, stack in zip(used, stacks):
            self.update(*members[index], torch.tensordot(weights, stack, 1))
        return loss

    def update(self, param: Tensor, group: dict[str, Any], steered: Tensor) -> None:
        state = self.state[param]
        momentum = state.setdefault("momentum_buffer", torch.zeros_like(param))
        momentum.mul_(group["momentum"]).add_(l1_normalised(steered))
        param.mul_(1 - group["lr"] * group["weight_decay"]).add_(momentum.sign(), alpha=-group["lr"])
        state["step"] = state.get("step", 0) + 1
