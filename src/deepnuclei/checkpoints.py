"""A training run's checkpoints: what they hold, and whether a rerun resumes from them.

Every epoch writes `checkpoint_last.pt` atomically (model, optimizer, scheduler, scaler, RNG states, history,
best score) and, when the epoch's score is the best so far, `checkpoint_best.pt` (what inference loads). A
rerun in the same folder resumes after the last finished epoch, unless the run's fingerprint (of its settings
and input files, `input_fingerprint`) changed: then it starts over. Samples depend only on (seed, epoch,
index) (see `data`), so on CPU a resumed run gives the same weights as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from .infer import ModelInfo, read_state
from .io import write_atomic

log = logging.getLogger(__name__)

CHECKPOINT_BEST = "checkpoint_best.pt"
CHECKPOINT_LAST = "checkpoint_last.pt"


def input_fingerprint(settings: Any, paths: Sequence[str | os.PathLike]) -> str:
    """A digest of the settings and of each input file's path, size and modification time: a rerun
    after a kill finds the same one and resumes; new data or settings give another and start over."""
    files = [(str(path), os.stat(path).st_size, os.stat(path).st_mtime_ns) for path in paths]
    return hashlib.sha256(json.dumps([settings, files], sort_keys=True).encode()).hexdigest()


def initial_weights(source: str | os.PathLike, info: ModelInfo) -> dict[str, torch.Tensor]:
    """The weights of a bundle or checkpoint of the network `info` describes, to fine-tune from (its patch
    size may differ, its layers may not)."""
    state = read_state(source)
    stored = ModelInfo.from_dict(state["info"])
    layers = [(network.model, network.task, network.in_channels, json.dumps(network.options, sort_keys=True))
              for network in (stored, info)]
    if layers[0] != layers[1]:
        raise ValueError(f"{source} holds another network ({stored.as_dict()}) than the one trained "
                         f"({info.as_dict()}): it cannot initialise it")
    return state["model"]


class Checkpoints:
    """The checkpoints of one run in `out_dir`: of the model `info`, trained with `settings` (a dict) on the inputs
    and settings `fingerprint` digests. `parts` are what a resumed run restores (model, optimizer, scheduler,
    scaler: objects with `state_dict` and `load_state_dict`); every checkpoint also carries the
    `training_range` that inference compares new sessions with."""

    def __init__(self, out_dir: Path, info: ModelInfo, fingerprint: str, settings: dict[str, Any],
                 parts: dict[str, Any], training_range: dict[str, Any]) -> None:
        self.last, self.best = out_dir / CHECKPOINT_LAST, out_dir / CHECKPOINT_BEST
        self.info, self.fingerprint, self.settings = info, fingerprint, settings
        self.parts, self.training_range = parts, training_range

    def save(self, history: list[dict[str, float]], best_score: float, best: bool) -> None:
        """The state after the last epoch of `history` as the last checkpoint, and as the best where `best`."""
        state = {
            "info": self.info.as_dict(),
            "fingerprint": self.fingerprint,
            "settings": self.settings,
            **{name: part.state_dict() for name, part in self.parts.items()},
            "history": history,
            "best_score": best_score,
            "training_range": self.training_range,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }
        if best:  # before the last: a run killed in between redoes the epoch and writes it again
            write_atomic(self.best, partial(torch.save, state))
        write_atomic(self.last, partial(torch.save, state))

    def resume(self) -> tuple[list[dict[str, float]], float] | None:
        """Restore the parts and the RNG states from the last checkpoint and return its history and best
        score; None where the run starts from the beginning (no checkpoint, or other inputs or settings)."""
        if not self.last.exists():
            return None
        # on CPU first: load_state_dict moves each tensor where an uninterrupted run keeps it (Adam's
        # step counts stay on the CPU)
        state = torch.load(self.last, map_location="cpu", weights_only=True)
        if state.get("fingerprint", "") != self.fingerprint:
            log.warning("%s was trained on other inputs or settings: training %s from the start",
                        self.last, self.info.model)
            return None
        stored, wanted = (json.dumps(info, sort_keys=True) for info in (state["info"], self.info.as_dict()))
        if stored != wanted:  # compared as JSON, where tuples and lists are one
            raise ValueError(f"{self.last} holds another model ({state['info']}); "
                             f"remove {self.last.parent} to train {self.info.as_dict()}")
        for name, part in self.parts.items():
            part.load_state_dict(state[name])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([rng.cpu() for rng in state["rng"]["cuda"]])
        log.info("resuming %s after epoch %d from %s", self.info.model, len(state["history"]), self.last)
        return state["history"], state["best_score"]
