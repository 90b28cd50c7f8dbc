"""Training: tiny runs learn a bright blob, outputs are written, a killed run resumes exactly."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepnuclei.checkpoints import input_fingerprint
from deepnuclei.data import Subject
from deepnuclei.infer import load_model, predict
from deepnuclei.models import get_spec
from deepnuclei.progress import training_status
from deepnuclei.train import TrainConfig, dice_per_class, train
from helpers import ROOT
from helpers.training import RESUME_RUN, TINY_3D, TINY_DBRESUNET, TINY_LINUS, blob_subjects, identical, run_resume_case

pytestmark = pytest.mark.usefixtures("one_thread")


def foreground_dice(checkpoint: Path, subject: Subject) -> float:
    model, info = load_model(checkpoint)
    labels = predict(model, info, subject.image, overlap=0.0).labels
    predicted, truth = labels > 0, subject.labels.numpy() > 0
    return 2 * (predicted & truth).sum() / (predicted.sum() + truth.sum())


@pytest.mark.slow  # trains to a result: a minute or more
def test_linus_learns_a_bright_blob_and_writes_its_outputs(tmp_path) -> None:
    subjects = blob_subjects(3, channels=1)
    config = dict(task="stn", max_epochs=20, iterations_per_epoch=10, batch_size=16, lr=1e-2, min_lr=3e-3)
    summary = train("linus", TINY_LINUS, subjects[:2], subjects[2:], tmp_path, config)
    assert summary["epochs"] == 20 and summary["stop_reason"].startswith("reached max_epochs")
    log = pd.read_csv(tmp_path / "log.csv")
    assert list(log.epoch) == list(range(1, 21))
    assert list(log.columns) == ["epoch", "train_loss", "val_loss", "val_dice", "lr", "iterations", "seconds"]
    assert log.lr.iloc[0] == pytest.approx(1e-2) and log.lr.is_monotonic_decreasing  # cosine annealing
    assert log.train_loss.iloc[-1] < log.train_loss.iloc[0]
    for name in ("checkpoint_best.pt", "checkpoint_last.pt", "curves.png", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "summary.json").read_text())["best_epoch"] == summary["best_epoch"]
    # what the deepnuclei logger shows while the job runs: here its last state
    assert training_status(tmp_path) == "linus epoch 20/20, ~0 s left"
    assert foreground_dice(tmp_path / "checkpoint_best.pt", subjects[2]) > 0.6


@pytest.fixture
def on_cpu(monkeypatch):
    """Training on the CPU, also where CUDA is present: reproducible results are a CPU contract, since
    CUDA's cross-entropy and pooling backward kernels are not deterministic (two CUDA runs differ)."""
    monkeypatch.setattr("deepnuclei.train.default_device", lambda: torch.device("cpu"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # for child processes


@pytest.mark.slow  # trains to a result: a minute or more
def test_dbresunet_learns_a_bright_blob(tmp_path, on_cpu) -> None:
    """On the CPU: 160 steps are too few for one bar across CUDA's non-deterministic runs (best Dice from
    0.47 to 0.94 on an H100 over seeds, in float16 and float32)."""
    subjects = blob_subjects(3, channels=2)
    config = dict(TINY_3D, max_epochs=16, iterations_per_epoch=10)
    summary = train("dbresunet", TINY_DBRESUNET, subjects[:2], subjects[2:], tmp_path, config)
    assert summary["epochs"] == 16
    assert foreground_dice(tmp_path / "checkpoint_best.pt", subjects[2]) > 0.7


def test_validation_every_other_epoch_changes_no_training_step(tmp_path, on_cpu) -> None:
    """validate_every 2 over 5 epochs validates epochs 2, 4 and 5 (the last); the training losses are those of
    a run validated every epoch, the plateau schedule stepped once per validation, the best checkpoint is a
    validated epoch."""
    subjects = blob_subjects(3, channels=2)
    config = dict(TINY_3D, max_epochs=5, iterations_per_epoch=3, schedule="plateau", plateau_patience=100)
    runs = {every: train("dbresunet", TINY_DBRESUNET, subjects[:2], subjects[2:], tmp_path / str(every),
                         dict(config, validate_every=every)) for every in (1, 2)}
    logs = {every: pd.read_csv(tmp_path / str(every) / "log.csv") for every in runs}
    assert list(logs[2].epoch[logs[2].val_loss.notna()]) == [2, 4, 5]
    assert list(logs[2].train_loss) == list(logs[1].train_loss)
    validated = logs[1].epoch.isin([2, 4, 5])
    assert list(logs[2].val_dice.dropna()) == list(logs[1].val_dice[validated])
    assert runs[2]["best_epoch"] == logs[1].epoch[logs[1].val_dice[validated].idxmax()]  # the first best
    last = torch.load(tmp_path / "2" / "checkpoint_last.pt", weights_only=True)
    assert last["scheduler"]["last_epoch"] == 3


def test_a_step_schedule_is_the_constant_run_until_its_step_then_a_tenth(tmp_path, on_cpu) -> None:
    """schedule step at epoch 2: epochs 1-2 train as a run whose learning rate never falls (the same samples,
    the same losses), epochs 3-4 at step_factor times it (config/pretrained.yaml's DB-ResUNet recipe)."""
    subjects = blob_subjects(3, channels=2)
    config = dict(TINY_3D, max_epochs=4, iterations_per_epoch=3, lr=1e-3)
    settings = {"step": dict(schedule="step", step_epochs=[2], step_factor=0.1),
                "constant": dict(schedule="plateau", plateau_patience=100)}
    for name, schedule in settings.items():
        train("dbresunet", TINY_DBRESUNET, subjects[:2], subjects[2:], tmp_path / name, dict(config, **schedule))
    step, constant = (pd.read_csv(tmp_path / name / "log.csv") for name in settings)
    assert list(step.lr) == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4]) and list(constant.lr) == pytest.approx([1e-3] * 4)
    assert list(step.train_loss[:2]) == list(constant.train_loss[:2])
    assert list(step.train_loss[2:]) != list(constant.train_loss[2:])


def test_a_finished_run_run_again_writes_its_log_and_curves_again(tmp_path, on_cpu) -> None:
    """Snakemake removes a job's outputs before it reruns it (its plan file was rewritten, say): a run that
    resumes with no epoch left still writes log.csv and curves.png, the same log as before."""
    first = run_resume_case(tmp_path)
    log = (tmp_path / "log.csv").read_text()
    for name in ("log.csv", "curves.png"):
        (tmp_path / name).unlink()
    again = run_resume_case(tmp_path)
    assert (tmp_path / "log.csv").read_text() == log and (tmp_path / "curves.png").stat().st_size > 0
    assert again["best_epoch"] == first["best_epoch"] and again["epochs"] == RESUME_RUN["max_epochs"]


CHILD = """
import sys, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
from helpers.training import RESUME_RUN, run_resume_case
run_resume_case({out!r})
"""


def assert_same_state(first: dict, second: dict) -> None:
    for part in ("model", "optimizer", "scheduler", "scaler", "best_score"):
        assert identical(first[part], second[part]), part
    assert [row["train_loss"] for row in first["history"]] == [row["train_loss"] for row in second["history"]]


@pytest.mark.slow  # trains in a process it kills
def test_killed_run_resumes_where_it_stopped_with_the_same_state(tmp_path, on_cpu) -> None:
    killed = tmp_path / "killed"
    script = CHILD.format(tests=str(ROOT / "tests"), out=str(killed))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 80
    while not (killed / "checkpoint_last.pt").exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    epochs_done = len(torch.load(killed / "checkpoint_last.pt", weights_only=True)["history"])
    assert 1 <= epochs_done < RESUME_RUN["max_epochs"]

    resumed = run_resume_case(killed)
    uninterrupted = run_resume_case(tmp_path / "uninterrupted")
    assert resumed["epochs"] == uninterrupted["epochs"] == RESUME_RUN["max_epochs"]
    folders = (killed, tmp_path / "uninterrupted")
    states = [torch.load(folder / "checkpoint_last.pt", weights_only=True) for folder in folders]
    assert_same_state(*states)
    assert list(pd.read_csv(killed / "log.csv").epoch) == list(range(1, RESUME_RUN["max_epochs"] + 1))


def linus_run(tmp_path: Path, folder: str, optimizer: str, **overrides) -> dict:
    """A tiny LiNUS run (cosine schedule, 3 epochs) in `folder`; its last checkpoint and its summary."""
    subjects = blob_subjects(2, channels=1)
    config = dict(task="stn", max_epochs=3, iterations_per_epoch=2, batch_size=4, optimizer=optimizer)
    summary = train("linus", TINY_LINUS, subjects[:1], subjects[1:], tmp_path / folder, config, **overrides)
    return torch.load(tmp_path / folder / "checkpoint_last.pt", weights_only=True) | {"summary": summary}


@pytest.mark.parametrize("optimizer", ["adam", "mist"])
def test_stopped_run_continues_from_epoch_k_as_an_uninterrupted_one(tmp_path, optimizer: str, on_cpu) -> None:
    stopped = linus_run(tmp_path, "stopped", optimizer, stop_after_epoch=2)
    assert len(stopped["history"]) == 2
    reference, resumed = linus_run(tmp_path, "reference", optimizer), linus_run(tmp_path, "stopped", optimizer)
    assert resumed["scheduler"]["last_epoch"] == reference["scheduler"]["last_epoch"] == 3
    assert_same_state(resumed, reference)
    assert linus_run(tmp_path, "stopped", optimizer)["summary"]["epochs"] == 3  # nothing left to do


def placement(state):
    """The nested structure of a state with each tensor replaced by its device and dtype."""
    if isinstance(state, torch.Tensor):
        return state.device, state.dtype
    if isinstance(state, dict):
        return {key: placement(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return [placement(value) for value in state]
    return type(state)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("optimizer", ["adam", "mist"])  # float16 with loss scaling, bfloat16 without
def test_a_run_resumed_on_cuda_keeps_its_state_where_an_uninterrupted_one_does(tmp_path, optimizer: str) -> None:
    linus_run(tmp_path, "stopped", optimizer, stop_after_epoch=2)
    reference, resumed = linus_run(tmp_path, "reference", optimizer), linus_run(tmp_path, "stopped", optimizer)
    for part in ("model", "optimizer", "scheduler", "scaler"):
        assert placement(resumed[part]) == placement(reference[part]), part
    assert bool(reference["scaler"]) == (optimizer == "adam")
    assert np.isfinite([row["train_loss"] for row in resumed["history"]]).all()


def test_config_starts_from_the_papers_recipes() -> None:
    linus = TrainConfig.from_dict(get_spec("linus"), {})
    assert (linus.task, linus.batch_size, linus.max_epochs, linus.loss) == ("stn", 128, 200, "dice_ce")
    assert (linus.schedule, linus.lr, linus.min_lr) == ("cosine", 1e-3, 1e-4)
    db = TrainConfig.from_dict(get_spec("dbresunet"), {"max_epochs": 5, "augmentation": {"rotate_degrees": 10}})
    assert (db.lr, db.betas, db.weight_decay) == (3e-4, (0.9, 0.99), 3e-5)
    assert (db.loss, db.class_weights, db.aux_weight) == ("ce", (0.1, 0.4), 1.0)
    assert (db.schedule, db.stop_lr) == ("plateau", 1e-6)
    # "by a factor of √0.1": five reductions from 3e-4 before the stop below 1e-6 (0.1 would give three)
    assert db.plateau_factor == pytest.approx(0.3162, abs=1e-4)
    assert math.ceil(math.log(db.stop_lr / db.lr) / math.log(db.plateau_factor)) == 5
    assert (db.batch_size, db.max_epochs) == (4, 5)
    assert db.augmentation.flip_axes == (0, 1, 2) and db.augmentation.rotate_degrees == 10
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict(get_spec("unet3d"), {"epochs": 3})


@pytest.mark.parametrize("architecture", ["vnet", "unet3d_linus"])
def test_linus_table_3d_models_train_with_the_linus_recipe(architecture) -> None:
    """The LiNUS paper compared its Table II models (V-Net and U-Net3D too) in its own setting: the task
    chooses the recipe, not the network's dimensions (they trained on DB-ResUNet's before)."""
    settings = TrainConfig.from_dict(get_spec(architecture), {"task": "stn"})
    assert (settings.loss, settings.schedule, settings.lr, settings.min_lr) == ("dice_ce", "cosine", 1e-3, 1e-4)
    assert settings.class_weights is None and settings.augmentation.rotate_degrees == 15.0
    assert settings.batch_size == 4 and settings.augmentation.elastic_magnitude == 0.0  # PATCH_ADAPTATION
    assert TrainConfig.from_dict(get_spec(architecture), {"task": "nuclei7"}).loss == "ce"
    assert TrainConfig.from_dict(get_spec("linus"), {"task": "gpi"}).augmentation.elastic_magnitude == 2.0
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig.from_dict(get_spec("deeplabv3"), {"batch_size": 1})


def test_dice_per_class_ignores_classes_absent_from_both() -> None:
    truth = torch.tensor([0, 1, 1, 2, 0])
    predicted = torch.tensor([0, 1, 0, 2, 2])
    dice = dice_per_class(predicted, truth, 4)
    np.testing.assert_allclose(dice[:2], [2 / 3, 2 / 3])
    assert np.isnan(dice[2])


def test_changed_inputs_start_training_over(tmp_path) -> None:
    subjects = blob_subjects(2, channels=1)
    config = dict(task="stn", max_epochs=2, iterations_per_epoch=1, batch_size=4)
    first = train("linus", TINY_LINUS, subjects[:1], subjects[1:], tmp_path, config, fingerprint="data v1")
    assert first["epochs"] == 2
    same = train("linus", TINY_LINUS, subjects[:1], subjects[1:], tmp_path, config, fingerprint="data v1")
    assert same["epochs"] == 2 and same["train_seconds"] == first["train_seconds"]  # nothing retrained
    changed = train("linus", TINY_LINUS, subjects[:1], subjects[1:], tmp_path, config, fingerprint="data v2")
    assert changed["epochs"] == 2 and changed["train_seconds"] != first["train_seconds"]  # retrained from epoch 1


def test_fingerprint_follows_the_files_and_the_settings(tmp_path) -> None:
    image = tmp_path / "image.nii.gz"
    image.write_bytes(b"one")
    before = input_fingerprint({"lr": 1e-3}, [image])
    assert input_fingerprint({"lr": 1e-3}, [image]) == before
    assert input_fingerprint({"lr": 1e-4}, [image]) != before
    image.write_bytes(b"three")
    assert input_fingerprint({"lr": 1e-3}, [image]) != before


@pytest.mark.slow  # trains to a result: a minute or more
def test_fine_tuning_starts_from_a_trained_model_and_inference_checks_its_training_range(tmp_path) -> None:
    from deepnuclei.infer import read_state
    from deepnuclei.training_range import check_session

    subjects = blob_subjects(3, channels=1)
    config = dict(task="stn", max_epochs=20, iterations_per_epoch=10, batch_size=16, lr=1e-2, min_lr=3e-3)
    train("linus", TINY_LINUS, subjects[:2], subjects[2:], tmp_path / "source", config)
    source = tmp_path / "source" / "checkpoint_best.pt"
    # one epoch at a learning rate too small to learn anything: only the initial weights can segment
    frozen = dict(config, max_epochs=1, lr=1e-7, min_lr=1e-7)
    train("linus", TINY_LINUS, subjects[:2], subjects[2:], tmp_path / "tuned", frozen, init=source)
    train("linus", TINY_LINUS, subjects[:2], subjects[2:], tmp_path / "scratch", frozen)
    assert foreground_dice(tmp_path / "tuned" / "checkpoint_best.pt", subjects[2]) > 0.6
    assert foreground_dice(tmp_path / "scratch" / "checkpoint_best.pt", subjects[2]) < 0.2
    with pytest.raises(ValueError, match="another network"):
        train("linus", {"widths": (4, 8, 16, 32, 64)}, subjects[:2], subjects[2:], tmp_path / "other", frozen, init=source)

    # the checkpoint carries the range of its training subjects: a new session is compared with it
    known = read_state(source)["training_range"]
    assert known["subjects"] == 3 and set(known["anatomy"]) == {"STN_L"}  # the blob is class 1
    assert known["anatomy"]["STN_L"]["volume_ml"][0] == pytest.approx(0.257, abs=0.01)  # 257 voxels of 1 mm
    subject, CLASSES = subjects[2], ["STN_L", "STN_R"]
    inside = check_session(known, subject.image.numpy(), subject.labels.numpy(), subject.affine, CLASSES)
    assert inside == {"checked": True, "in_range": True, "warnings": []}
    darker = check_session(known, 0.4 * subject.image.numpy(), np.zeros_like(subject.labels.numpy()),
                           subject.affine, CLASSES)
    assert not darker["in_range"] and any(w.startswith("input channel 0: p50") for w in darker["warnings"])
    assert "STN_L: not found, though every training subject had it" in darker["warnings"]
