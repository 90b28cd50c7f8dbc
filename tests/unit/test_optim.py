"""MI-ST (`deepnuclei.optim.MIST`): it solves a convex problem, resumes exactly, weights sub-batches by
their agreement, and trains a model through the training code."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR

from deepnuclei.models import get_spec
from deepnuclei.optim import MIST, agreement_weights, l1_normalised
from deepnuclei.train import TrainConfig, train
from helpers.training import TINY_LINUS, blob_subjects, identical

pytestmark = pytest.mark.usefixtures("one_thread")

SUB_BATCHES = 4
STEPS = 300


def least_squares() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A (64 × 5), b = A x*, x*: a noiseless problem whose every sub-batch of rows has the optimum x*."""
    generator = torch.Generator().manual_seed(0)
    matrix, solution = torch.randn(64, 5, generator=generator), torch.randn(5, generator=generator)
    return matrix, matrix @ solution, solution


def fit(x: torch.Tensor, optimizer: MIST, scheduler: CosineAnnealingLR, steps: int) -> None:
    """`steps` MI-ST steps on the least-squares loss, each over SUB_BATCHES sub-batches of rows."""
    matrix, target, _ = least_squares()
    for _ in range(steps):
        for rows, values in zip(matrix.chunk(SUB_BATCHES), target.chunk(SUB_BATCHES)):
            ((rows @ x - values) ** 2).mean().backward()
            optimizer.accumulate()
        optimizer.step()
        scheduler.step()


def least_squares_run(weight_decay: float = 0.0) -> tuple[torch.Tensor, MIST, CosineAnnealingLR]:
    x = torch.zeros(5, requires_grad=True)
    optimizer = MIST([x], lr=0.05, momentum=0.9, weight_decay=weight_decay)
    return x, optimizer, CosineAnnealingLR(optimizer, STEPS)


def test_mist_solves_least_squares() -> None:
    x, optimizer, scheduler = least_squares_run()
    fit(x, optimizer, scheduler, STEPS)
    matrix, target, solution = least_squares()
    assert ((matrix @ x - target) ** 2).mean() < 1e-4
    torch.testing.assert_close(x.detach(), solution, atol=1e-2, rtol=0)
    assert all(state["step"] == STEPS for state in optimizer.state.values())


def test_mist_resumed_from_its_state_dict_continues_exactly() -> None:
    uninterrupted = least_squares_run(weight_decay=0.1)
    fit(*uninterrupted, 20)

    first = least_squares_run(weight_decay=0.1)
    fit(*first, 10)
    saved = io.BytesIO()
    torch.save({"x": first[0].detach(), "optimizer": first[1].state_dict(), "scheduler": first[2].state_dict()}, saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    resumed = least_squares_run(weight_decay=0.1)
    with torch.no_grad():
        resumed[0].copy_(state["x"])
    resumed[1].load_state_dict(state["optimizer"])
    resumed[2].load_state_dict(state["scheduler"])
    fit(*resumed, 10)

    assert torch.equal(resumed[0], uninterrupted[0])
    assert identical(resumed[1].state_dict(), uninterrupted[1].state_dict())
    assert uninterrupted[1].state_dict()["state"][0]["step"] == 20


def test_a_sub_batch_opposed_to_the_consensus_gets_no_weight() -> None:
    """Gradients (2, 0) and (1, 1), and (-3, -1), opposite to their mean direction: the step follows
    the first two, each weighted by its cosine to the mean, not the plain mean of the three."""
    gradients = [torch.tensor(g) for g in ((2.0, 0.0), (1.0, 1.0), (-3.0, -1.0))]
    normalised = torch.stack([l1_normalised(g) for g in gradients])
    weights = agreement_weights([normalised])
    torch.testing.assert_close(weights, torch.tensor([3 / math.sqrt(10), 2 / math.sqrt(5), 0.0]))

    x = torch.zeros(2, requires_grad=True)
    optimizer = MIST([x], lr=1.0, momentum=0.0)
    for gradient in gradients:
        x.grad = gradient.clone()
        optimizer.accumulate()
        assert x.grad is None  # the next backward pass starts from zero
    optimizer.step()
    steered = l1_normalised(weights @ normalised)
    torch.testing.assert_close(optimizer.state[x]["momentum_buffer"], steered)
    assert not torch.allclose(steered, l1_normalised(normalised.mean(0)))
    torch.testing.assert_close(x.detach(), -steered.sign())  # MI-FGSM's signed step
    assert optimizer.pending == [] and "pending" not in str(optimizer.state_dict())


def test_step_without_accumulate_takes_the_gradient_as_one_sub_batch() -> None:
    x = torch.zeros(2, requires_grad=True)
    optimizer = MIST([x], lr=0.1, momentum=0.5)
    # momentum m = (2, 0), then 0.5 m + (2, 0); each step lr sign(m), none where m is 0
    for expected, momentum in (((-0.1, 0.0), (2.0, 0.0)), ((-0.2, 0.0), (3.0, 0.0))):
        x.grad = torch.tensor([4.0, 0.0])
        optimizer.step()
        torch.testing.assert_close(optimizer.state[x]["momentum_buffer"], torch.tensor(momentum))
        torch.testing.assert_close(x.detach(), torch.tensor(expected))


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_mist_trains_the_tiny_linus(tmp_path, schedule: str) -> None:
    subjects = blob_subjects(2, channels=1)
    # lr far below Adam's: MI-ST moves elements with outlying gradients by many times lr (see docs/models.md)
    config = dict(task="stn", max_epochs=4, iterations_per_epoch=4, batch_size=8, lr=3e-5, min_lr=3e-6,
                  optimizer="mist", sub_batches=2, schedule=schedule, plateau_patience=0)
    train("linus", TINY_LINUS, subjects[:1], subjects[1:], tmp_path, config)
    log = pd.read_csv(tmp_path / "log.csv")
    assert log.train_loss.notna().all() and log.train_loss.iloc[-1] < log.train_loss.iloc[0]
    state = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)
    assert state["scheduler"]["last_epoch"] == 4 and log.lr.is_monotonic_decreasing  # it drives MI-ST's lr
    assert {parameter["step"] for parameter in state["optimizer"]["state"].values()} == {16}


def test_mist_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="sub_batches"):
        TrainConfig.from_dict(get_spec("linus"), {"optimizer": "mist", "batch_size": 4, "sub_batches": 3})
