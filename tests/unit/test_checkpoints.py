"""Checkpoints: a rerun resumes from the last one only on the same inputs, settings and model, with its state and
RNG; fine-tuning takes the weights of the same network only."""

from __future__ import annotations

import pytest
import torch

from deepnuclei.checkpoints import Checkpoints, initial_weights
from deepnuclei.infer import ModelInfo

INFO = ModelInfo("linus", "stn", 1, (16, 16), {"widths": [4, 8, 16, 32, 32]})
HISTORY = [{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.4}]


def trained_parts(seed: int) -> dict[str, torch.nn.Module | torch.optim.Optimizer]:
    """A model and its optimizer after one step, different for each seed."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(4, 3)).sum().backward()
    optimizer.step()
    return {"model": model, "optimizer": optimizer}


def test_a_rerun_resumes_the_state_and_rng_of_the_last_checkpoint_on_the_same_inputs_only(tmp_path) -> None:
    saved = trained_parts(0)
    checkpoints = Checkpoints(tmp_path, INFO, "inputs v1", {"lr": 1e-3}, saved, {"subjects": 2})
    checkpoints.save(HISTORY[:1], 0.6, best=True)
    checkpoints.save(HISTORY, 0.6, best=False)  # epoch 2 scored no better
    rng = torch.get_rng_state()
    assert [torch.load(path, weights_only=True)["history"] for path in (checkpoints.best, checkpoints.last)] == [
        HISTORY[:1], HISTORY]
    last = torch.load(checkpoints.last, weights_only=True)
    assert (last["settings"], last["training_range"], last["info"]) == ({"lr": 1e-3}, {"subjects": 2}, INFO.as_dict())

    restored = trained_parts(1)
    assert not torch.equal(restored["model"].weight, saved["model"].weight)
    assert Checkpoints(tmp_path, INFO, "inputs v1", {}, restored, {}).resume() == (HISTORY, 0.6)
    assert torch.equal(restored["model"].weight, saved["model"].weight)
    assert restored["optimizer"].state_dict()["state"][0]["step"] == 1
    assert torch.equal(torch.get_rng_state(), rng)

    fresh = trained_parts(1)
    assert Checkpoints(tmp_path, INFO, "inputs v2", {}, fresh, {}).resume() is None  # other inputs: start over
    assert Checkpoints(tmp_path / "new", INFO, "inputs v1", {}, fresh, {}).resume() is None
    assert not torch.equal(fresh["model"].weight, saved["model"].weight)  # left as it was
    other = ModelInfo("linus", "gpi", 1, (16, 16), INFO.options)
    with pytest.raises(ValueError, match="holds another model"):
        Checkpoints(tmp_path, other, "inputs v1", {}, fresh, {}).resume()


def test_fine_tuning_takes_the_weights_of_the_same_network_whatever_its_patch_size(tmp_path) -> None:
    saved = trained_parts(0)
    checkpoints = Checkpoints(tmp_path, INFO, "", {}, saved, {})
    checkpoints.save(HISTORY, 0.6, best=True)
    weights = initial_weights(checkpoints.best, ModelInfo("linus", "stn", 1, (32, 32), INFO.options))
    assert torch.equal(weights["weight"], saved["model"].weight)
    with pytest.raises(ValueError, match="holds another network"):
        initial_weights(checkpoints.best, ModelInfo("linus", "stn", 1, (16, 16), {"widths": [4, 8, 16, 32, 64]}))
