"""Training of any registry model on labelled subjects, resumable, on GPU when present.

The settings start from one of two recipes, the papers' (`RECIPES`), and the config overrides any
of them. The recipe follows the paper whose table a model is trained for, read from its task
(`TASK_RECIPES`): LiNUS's for the binary STN and GPi tasks (Dice + cross-entropy, batch 128, 200 epochs,
cosine annealing 1e-3 -> 1e-4, rotation / scaling / elastic / noise augmentation), its 3D baselines
V-Net and U-Net3D included, since the LiNUS paper compared every Table II model in its own setting;
DB-ResUNet's for the 7 nuclei (weighted cross-entropy 0.1 / 0.4 plus λg = 1 times the auxiliary loss,
Adam 3e-4 with betas (0.9, 0.99) and weight decay 3e-5, batch 4, learning rate × √0.1 on a
validation-loss plateau, stop below 1e-6, flips on three axes and in-plane rotation ± 30°).

Two readings of the papers: the DB-ResUNet text reduces the learning rate "by a factor of √0.1"; its text
layer puts the "√" on a line of its own before "by a factor of 0.1" (pdftotext's rendering of the radical),
so we read the factor as √0.1 ≈ 0.316: five reductions from 3e-4 before the stop below 1e-6, where 0.1 would
give three (`plateau_factor: 0.1` switches to that reading). The LiNUS paper gives no batch size or elastic
deformation for its 3D baselines: a 3D model on LiNUS's recipe takes `PATCH_ADAPTATION` (DB-ResUNet's batch
of 4 patches, no elastic deformation) over it. docs/reproduce.md lists every such assumption.

`Trainer` runs the epochs; every epoch it writes the checkpoints a rerun resumes from (`checkpoints`),
`log.csv` and `curves.png` (`training_log`), and at the end `summary.json`.

`optimizer` is Adam by default, or "mist": our reading of the MI-ST optimizer that the LiNUS paper
prefers to Adam (see `optim.MIST`), which takes one backward pass per sub-batch of each batch.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, MultiStepLR, ReduceLROnPlateau
from torch.utils.data import DataLoader
from tqdm import tqdm

from .augment import Augmentation
from .checkpoints import Checkpoints, initial_weights, input_fingerprint
from .data import EpochDataset, PatchDataset, SliceDataset, Subject, load_subject
from .evaluate import dice
from .infer import WINDOW_OVERLAP, ModelInfo, default_device, label_map, native_half_precision, predict_logits
from .io import write_json
from .labels import task_classes
from .losses import SegmentationLoss, criterion
from .models import ModelSpec, count_parameters, get_spec
from .optim import MIST
from .plan_files import TrainPlan
from .progress import minutes
from .training_log import TrainingLog
from .training_range import anatomy_statistics, input_statistics, training_range

log = logging.getLogger(__name__)

RECIPES: dict[str, dict[str, Any]] = {
    "linus": dict(
        task="stn", max_epochs=200, batch_size=128, loss="dice_ce", class_weights=None, lr=1e-3,
        betas=(0.9, 0.999), weight_decay=0.0, schedule="cosine", min_lr=1e-4,
        # the paper names the transforms, not their sizes
        augmentation=dict(
            rotate_degrees=15.0, scale=0.1, elastic_magnitude=2.0, noise_std=0.02, probability=0.5
        ),
    ),
    "dbresunet": dict(
        # no epoch count in the paper: it stops when the learning rate falls below 1e-6
        task="nuclei7", max_epochs=1000, batch_size=4, loss="ce", class_weights=(0.1, 0.4), aux_weight=1.0,
        lr=3e-4, betas=(0.9, 0.99), weight_decay=3e-5, schedule="plateau", plateau_factor=math.sqrt(0.1),
        stop_lr=1e-6,
        # rotation in the slab's plane: the model inputs are (x, y, z) volumes, z the slab axis
        augmentation=dict(flip_axes=(0, 1, 2), rotate_degrees=30.0, rotation_axis=2),
    ),
}
TASK_RECIPES = {"stn": "linus", "gpi": "linus", "nuclei7": "dbresunet"}
PATCH_ADAPTATION = dict(batch_size=4, augmentation=dict(elastic_magnitude=0.0))  # LiNUS's recipe on 3D patches
TUPLES = ("patch_size", "betas", "class_weights", "step_epochs")


@dataclass(frozen=True)
class TrainConfig:
    task: str
    seed: int = 0
    max_epochs: int = 200
    iterations_per_epoch: int | None = None  # None: one pass (2D: every slice; 3D: a tiling of every volume)
    epoch_seconds: float | None = None  # wall-clock budget of an epoch's iterations (breaks determinism)
    batch_size: int = 4
    patch_size: tuple[int, ...] | None = None  # 3D: volume-axis order, None: the spec's; 2D: crops, None: whole slices
    foreground_fraction: float = 0.5
    loss: str = "ce"  # "ce" or "dice_ce"
    class_weights: tuple[float, float] | None = None  # cross-entropy weights (background, foreground)
    aux_weight: float = 1.0  # λg
    optimizer: str = "adam"  # "adam" or "mist" (optim.MIST, no CUDA mixed precision)
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's
    weight_decay: float = 0.0  # Adam: L2 in the gradient; MI-ST: decoupled
    sub_batches: int = 2  # MI-ST: gradients per step whose agreement steers it
    momentum: float = 0.9  # MI-ST: μ
    schedule: str = "plateau"  # "plateau" (on validation loss), "cosine" (to min_lr at max_epochs) or "step"
    min_lr: float = 0.0
    plateau_factor: float = 0.1
    plateau_patience: int = 10
    step_epochs: tuple[int, ...] = ()  # step: the epochs after which the learning rate is multiplied by step_factor
    step_factor: float = 0.1
    stop_lr: float = 0.0  # stop once the learning rate falls below this
    augmentation: Augmentation = field(default_factory=Augmentation)
    overlap: float = WINDOW_OVERLAP  # validation: sliding-window overlap (3D), as inference's
    validate_every: int = 1  # epochs between validations (and after the last epoch); a plateau counts validations
    inference_batch_size: int | None = None  # validation: slices or windows per forward pass
    amp: bool = True  # mixed precision where the device has it natively (`half_precision`)
    num_workers: int | None = None  # data-loading processes; None: 0 on CPU, several beside a GPU

    @classmethod
    def from_dict(cls, spec: ModelSpec, config: dict[str, Any]) -> TrainConfig:
        """The recipe named by config['recipe'] (default: the task's, `TASK_RECIPES`; without a task,
        'linus' for slice models and 'dbresunet' for patch models) with the config's keys over it."""
        config = dict(config)
        default = TASK_RECIPES.get(config.get("task"), "linus" if spec.dims == 2 else "dbresunet")
        recipe = dict(RECIPES[config.pop("recipe", default)])
        if spec.dims == 3 and recipe["augmentation"].get("elastic_magnitude"):
            recipe.update(PATCH_ADAPTATION, augmentation={**recipe["augmentation"], **PATCH_ADAPTATION["augmentation"]})
        unknown = set(config) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}")
        augmentation = {**recipe["augmentation"], **config.pop("augmentation", {})}
        augmentation["flip_axes"] = tuple(augmentation.get("flip_axes", ()))
        merged = {**recipe, **config, "augmentation": Augmentation(**augmentation)}
        for key in TUPLES:  # lists in YAML and JSON
            merged[key] = None if merged.get(key) is None else tuple(merged[key])
        settings = cls(**merged)
        if settings.validate_every < 1:
            raise ValueError(f"validate_every must be at least 1, not {settings.validate_every}")
        if settings.batch_size < 2:
            raise ValueError("batch_size must be at least 2 (batch norm, DeepLabV3)")
        if settings.optimizer == "mist" and not 1 <= settings.sub_batches <= settings.batch_size // 2:
            raise ValueError(f"optimizer 'mist' needs 1 <= sub_batches <= batch_size / 2 (batch norm in every "
                             f"sub-batch), not sub_batches {settings.sub_batches} of batch_size {settings.batch_size}")
        return settings


def dice_per_class(predicted: torch.Tensor, truth: torch.Tensor, n_classes: int) -> np.ndarray:
    """Dice of each foreground class; NaN where the class is in neither map."""
    pairs = (truth.long() * n_classes + predicted.long()).flatten()
    confusion = torch.bincount(pairs, minlength=n_classes**2).reshape(n_classes, n_classes).double()
    return dice(confusion.diagonal().cpu().numpy(), (confusion.sum(0) + confusion.sum(1)).cpu().numpy())[1:]


def split_batch(batch: dict[str, torch.Tensor], parts: int) -> list[dict[str, torch.Tensor]]:
    """`parts` sub-batches of near-equal sizes along the batch axis."""
    pieces = {key: torch.tensor_split(value, parts) for key, value in batch.items()}
    return [{key: chunks[part] for key, chunks in pieces.items()} for part in range(parts)]


def configure_determinism(device: torch.device) -> None:
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
        # the cross-entropy kernels have no deterministic CUDA version: say so once, not every epoch
        warnings.filterwarnings("once", message=".*does not have a deterministic implementation")


def half_precision(settings: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast type with `amp` where the device computes in 16 bits natively, None for float32.
    A CPU with bfloat16 instructions (AVX512-BF16, AMX): bfloat16, which needs no loss scaling (on 2
    cores a DB-ResUNet step 1.7 times faster than in float32, LiNUS's channels-last step 1.5 times:
    benchmarks/bench_training_step.py). CUDA: float16 with loss scaling; for MI-ST bfloat16, since
    GradScaler unscales and checks `.grad` only, where MI-ST's sub-batch gradients no longer are."""
    if not (settings.amp and native_half_precision(device)):
        return None
    if device.type == "cpu" or settings.optimizer == "mist":
        return torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else None
    return torch.float16


def loader_workers(requested: int | None, device: torch.device) -> int:
    """Data-loading processes: on CPU the training threads already use the cores; beside a GPU the
    augmentation would starve it (LiNUS on an H100: 8.7 iterations/s with none). Samples are seeded by
    (seed, epoch, index), so the workers change no sample."""
    if requested is not None:
        return requested
    return 0 if device.type == "cpu" else min(8, max((os.cpu_count() or 1) - 1, 0))


def subjects_range(subjects: Sequence[Subject], task: str) -> dict[str, Any]:
    """`training_range.training_range` of labelled subjects: what inference compares new sessions with."""
    classes = task_classes(task)
    return training_range([input_statistics(subject.image.numpy()) for subject in subjects],
                          [anatomy_statistics(subject.labels.numpy(), subject.affine, classes) for subject in subjects],
                          classes)


def tiles_per_volume(shape: Sequence[int], patch_size: Sequence[int]) -> int:
    return math.prod(math.ceil(extent / size) for extent, size in zip(shape, patch_size))


def make_optimizer(settings: TrainConfig, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if settings.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay)
    if settings.optimizer == "mist":
        return MIST(parameters, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    raise ValueError(f"unknown optimizer '{settings.optimizer}'; use 'adam' or 'mist'")


def make_scheduler(settings: TrainConfig, optimizer: torch.optim.Optimizer) -> LRScheduler | ReduceLROnPlateau:
    if settings.schedule == "cosine":
        return CosineAnnealingLR(optimizer, settings.max_epochs, settings.min_lr)
    if settings.schedule == "plateau":
        return ReduceLROnPlateau(optimizer, factor=settings.plateau_factor, patience=settings.plateau_patience)
    if settings.schedule == "step":
        return MultiStepLR(optimizer, list(settings.step_epochs), settings.step_factor)
    raise ValueError(f"unknown schedule '{settings.schedule}'; use 'cosine', 'plateau' or 'step'")


def make_dataset(settings: TrainConfig, spec: ModelSpec, patch_size: Sequence[int],
                 subjects: Sequence[Subject]) -> EpochDataset:
    """The training samples of an epoch: slices for a 2D `spec`, patches of `patch_size` for a 3D one."""
    common = dict(
        task=settings.task,
        seed=settings.seed,
        foreground_fraction=settings.foreground_fraction,
        augmentation=settings.augmentation,
    )
    if spec.dims == 2:
        n_slices = sum(subject.image.shape[spec.slice_axis + 1] for subject in subjects)
        return SliceDataset(subjects, spec.slice_axis, spec.size_multiple, samples_per_epoch(settings, n_slices),
                            **common, crop_size=settings.patch_size, context_slices=spec.context_slices)
    n_tiles = sum(tiles_per_volume(subject.image.shape[1:], patch_size) for subject in subjects)
    return PatchDataset(subjects, patch_size, samples_per_epoch(settings, n_tiles), rate=spec.global_rate, **common)


def samples_per_epoch(settings: TrainConfig, samples_in_one_pass: int) -> int:
    batch = settings.batch_size
    return batch * (settings.iterations_per_epoch or math.ceil(samples_in_one_pass / batch))


class Trainer:
    """One model's training run in `out_dir`; `run()` trains (or resumes) to the end."""

    def __init__(self, spec_name: str, options: dict[str, Any], train_subjects: Sequence[Subject],
                 val_subjects: Sequence[Subject], out_dir: str | os.PathLike, config: dict[str, Any],
                 fingerprint: str = "", init: str | os.PathLike | None = None) -> None:
        self.settings = settings = TrainConfig.from_dict(get_spec(spec_name), config)
        spec = get_spec(spec_name).with_options(**options)
        self.info = ModelInfo(spec.name, settings.task, int(train_subjects[0].image.shape[0]),
                              settings.patch_size or spec.patch_size, dict(spec.options))
        self.spec, self.val_subjects, self.out_dir = spec, list(val_subjects), Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.device = default_device()
        self.half_precision = half_precision(settings, self.device)  # once: autocast() runs every batch
        configure_determinism(self.device)
        torch.manual_seed(settings.seed)
        # channels-last: oneDNN's fast layout for narrow convolutions (benchmarks/bench_training_step.py, one
        # CPU thread: LiNUS 0.19 s a step instead of 0.23, DB-ResUNet 0.80 instead of 0.97)
        self.layout = torch.channels_last if spec.dims == 2 else torch.channels_last_3d
        self.model = self.info.build().to(self.device, memory_format=self.layout)
        self.optimizer = make_optimizer(settings, self.model.parameters())
        self.scheduler = make_scheduler(settings, self.optimizer)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.half_precision == torch.float16)
        main_loss = criterion(settings.loss, self.info.n_classes, settings.class_weights)
        self.loss = SegmentationLoss(main_loss, settings.aux_weight).to(self.device)
        self.dataset = make_dataset(settings, spec, self.info.patch_size, train_subjects)
        training_range = subjects_range([*train_subjects, *val_subjects], settings.task)
        self.history = TrainingLog(self.out_dir, self.info.model, settings.max_epochs)
        self.best_score = -math.inf
        self.init = None if init is None else str(init)  # the bundle or checkpoint it was fine-tuned from
        if init is not None:  # a resumed run then replaces these weights with its own
            self.model.load_state_dict(initial_weights(init, self.info))
            log.info("%s starts from the weights of %s", self.info.model, init)
        resumed_parts = dict(model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, scaler=self.scaler)
        self.checkpoints = Checkpoints(self.out_dir, self.info, fingerprint, asdict(settings), resumed_parts,
                                       training_range)
        if (resumed := self.checkpoints.resume()) is not None:
            self.history.rows, self.best_score = resumed

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.half_precision, enabled=self.half_precision is not None)

    @property
    def epoch(self) -> int:
        return len(self.history.rows)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    # ---- one epoch ---------------------------------------------------------------------------------

    def train_epoch(self) -> tuple[float, int]:
        """Mean training loss and iterations of the next epoch."""
        self.model.train()
        self.dataset.set_epoch(self.epoch + 1)
        settings = self.settings
        loader = DataLoader(self.dataset, batch_size=settings.batch_size,
                            num_workers=loader_workers(settings.num_workers, self.device),
                            drop_last=True, pin_memory=self.device.type == "cuda")
        started, losses = time.perf_counter(), []
        progress = tqdm(loader, desc=f"{self.info.model} epoch {self.epoch + 1}", leave=False, mininterval=2.0)
        for batch in progress:
            on_device = {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}
            losses.append(self.step(on_device))
            progress.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
            if settings.epoch_seconds is not None and time.perf_counter() - started > settings.epoch_seconds:
                break
        progress.close()
        return float(np.mean(losses)), len(losses)

    def batch_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = [batch["image"]] + ([batch["global_image"]] if self.spec.global_patch else [])
        inputs = [tensor.contiguous(memory_format=self.layout) for tensor in inputs]
        with self.autocast():
            return self.loss(self.model(*inputs), batch["label"], batch.get("global_label"))

    def step(self, batch: dict[str, torch.Tensor]) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        if isinstance(self.optimizer, MIST):
            return self.steered_step(batch)
        loss = self.batch_loss(batch)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()

    def steered_step(self, batch: dict[str, torch.Tensor]) -> float:
        """MI-ST: a backward pass per sub-batch, then one step on their steered gradients; the
        sub-batches' mean loss."""
        losses = []
        for part in split_batch(batch, self.settings.sub_batches):
            loss = self.batch_loss(part)
            loss.backward()
            self.optimizer.accumulate()
            losses.append(loss.item() * len(part["label"]))
        self.optimizer.step()
        return sum(losses) / len(batch["label"])

    def validate(self) -> tuple[float, float]:
        """Mean loss (main output) and mean Dice over the classes and the validation subjects, on
        whole volumes as inference sees them; NaN without validation subjects."""
        if not self.val_subjects:
            return math.nan, math.nan
        self.model.eval()
        losses, dices = [], []
        with torch.inference_mode(), self.autocast():
            for subject in self.val_subjects:
                image = subject.image.to(self.device, torch.float32)
                labels = subject.labels.to(self.device).long()
                logits = predict_logits(self.model, self.info, image, self.settings.overlap,
                                        self.settings.inference_batch_size)
                losses.append(self.loss.main(logits[None].float(), labels[None]).item())
                dices.append(dice_per_class(label_map(logits), labels, self.info.n_classes))
        return float(np.mean(losses)), float(np.nanmean(dices))

    def step_scheduler(self, monitored_loss: float | None) -> None:
        """A plateau steps on the monitored loss, and not at all without one (an epoch left unvalidated:
        a plateau counts validations); other schedules step every epoch."""
        if not isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step()
        elif monitored_loss is not None:
            self.scheduler.step(monitored_loss)

    def finished(self) -> str | None:
        """Why training is over, or None."""
        if self.epoch >= self.settings.max_epochs:
            return f"reached max_epochs {self.settings.max_epochs}"
        if self.lr < self.settings.stop_lr:
            return f"learning rate {self.lr:.1e} below stop_lr {self.settings.stop_lr:.1e}"
        return None

    def skips_validation(self, epoch: int) -> bool:
        """Whether epoch `epoch` (from 1) goes without its validation: all but every `validate_every`-th
        and the last. A validation costs a tenth of a demo epoch on one CPU thread."""
        every = self.settings.validate_every
        return bool(self.val_subjects) and epoch % every != 0 and epoch < self.settings.max_epochs

    def run_epoch(self) -> dict[str, float]:
        started, lr = time.perf_counter(), self.lr
        train_loss, iterations = self.train_epoch()
        skipped = self.skips_validation(self.epoch + 1)  # no score, no plateau step
        val_loss, val_dice = (math.nan, math.nan) if skipped else self.validate()
        self.step_scheduler(None if skipped else train_loss if math.isnan(val_loss) else val_loss)
        row = {
            "epoch": self.epoch + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_dice": val_dice,
            "lr": lr,
            "iterations": iterations,
            "seconds": time.perf_counter() - started,
        }
        self.history.rows.append(row)
        score = -train_loss if math.isnan(val_dice) else val_dice  # no validation subjects: training loss
        best = not skipped and score > self.best_score
        if best:
            self.best_score = score
        self.checkpoints.save(self.history.rows, self.best_score, best)
        return row

    # ---- outputs -----------------------------------------------------------------------------------

    def summary(self, stop_reason: str | None) -> dict[str, Any]:
        table = self.history.table()
        validated = table.val_dice.notna().any()
        best = table.loc[table.val_dice.idxmax() if validated else table.train_loss.idxmin()]
        record = {
            "model": self.info.model,
            "task": self.info.task,
            "device": str(self.device),
            "parameters": count_parameters(self.model),
            "epochs": self.epoch,
            "best_epoch": int(best.epoch),
            "best_val_dice": None if math.isnan(best.val_dice) else float(best.val_dice),
            "stop_reason": stop_reason,
            "init": self.init,
            "train_seconds": float(table.seconds.sum()),
            "checkpoint_best": str(self.checkpoints.best),
            "checkpoint_last": str(self.checkpoints.last),
        }
        write_json(self.out_dir / "summary.json", record)
        return record

    def run(self, stop_after_epoch: int | None = None) -> dict[str, Any]:
        """Train until finished (or until `stop_after_epoch`, which stands in for a killed run)."""
        log.info("%s on %s: %d parameters, %d samples per epoch, starting at epoch %d", self.info.model,
                 self.device, count_parameters(self.model), len(self.dataset), self.epoch + 1)
        while (reason := self.finished()) is None and self.epoch != stop_after_epoch:
            row = self.run_epoch()
            self.history.write()
            self.history.write_progress()
            validation = ("not validated" if math.isnan(row["val_loss"]) else
                          f"validation loss {row['val_loss']:.4f}, Dice {row['val_dice']:.3f}")
            log.info("%s epoch %d/%d: loss %.4f, %s, lr %.1e, %d iterations, %.1f s, ~%s left", self.info.model,
                     row["epoch"], self.settings.max_epochs, row["train_loss"], validation, row["lr"],
                     row["iterations"], row["seconds"], minutes(self.history.seconds_left()))
        self.history.write()  # also after a resumed run with no epoch left: Snakemake removes a rerun job's outputs first
        return self.summary(reason)


def train(spec_name: str, options: dict[str, Any], train_subjects: Sequence[Subject],
          val_subjects: Sequence[Subject], out_dir: str | os.PathLike, config: dict[str, Any],
          stop_after_epoch: int | None = None, fingerprint: str = "",
          init: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train (or resume training) the registry model `spec_name` with builder `options` over its
    paper setting, from random weights or those of `init` (a bundle or checkpoint), and return the
    summary (also in `out_dir`/summary.json)."""
    trainer = Trainer(spec_name, options, train_subjects, val_subjects, out_dir, config, fingerprint, init)
    return trainer.run(stop_after_epoch)


def train_from_files(plan: TrainPlan, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Train a configured model (the plan's `model`, a `models:` entry of the workflow config: architecture,
    inputs, task, options, training) on the files of its training and validation cases, resuming a killed
    run on the same files."""
    model, task = plan.model, plan.model["task"]
    subjects = {role: [load_subject(case.subject, case.channels, case.labels, task) for case in role_cases]
                for role, role_cases in (("train", plan.cases.train), ("validation", plan.cases.validation))}
    if not subjects["train"]:
        raise ValueError(f"no training subjects for {model['architecture']}: check the config's splits")
    paths = plan.cases.paths() + ([model["init"]] if model.get("init") else [])  # another bundle to start from: another run
    return train(model["architecture"], model.get("options", {}), subjects["train"], subjects["validation"],
                 out_dir, {"task": task, **model.get("training", {})}, fingerprint=input_fingerprint(model, paths),
                 init=model.get("init"))
