"""Tiny networks and volumes that train in seconds, and a run to interrupt and resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepnuclei.data import Subject
from deepnuclei.train import train

# small widths so that a run takes seconds; the blob task needs no more
TINY_LINUS = {"widths": (4, 8, 16, 32, 32)}
TINY_DBRESUNET = {"local_widths": (4, 8, 16), "global_widths": (4, 8, 16), "fc_width": 16, "rate": (2, 2, 2)}
TINY_3D = dict(task="stn", batch_size=2, patch_size=(16, 16, 16), lr=3e-3, overlap=0.0)


def blob_subjects(n: int, channels: int, size: int = 32) -> list[Subject]:
    """Noisy volumes (0.3 ± 0.05) with one bright ball (+0.5) of radius 4 labelled 1, placed at random."""
    subjects = []
    for index in range(n):
        rng = np.random.default_rng(index)
        grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"))
        centre = rng.integers(8, size - 8, 3)
        inside = ((grid - centre[:, None, None, None]) ** 2).sum(0) <= 16
        image = (rng.normal(0.3, 0.05, (channels, size, size, size)) + 0.5 * inside).astype(np.float32)
        subjects.append(Subject(f"{index:02d}", torch.from_numpy(image), torch.from_numpy(inside.astype(np.uint8)),
                                np.eye(4)))
    return subjects


RESUME_RUN = dict(max_epochs=6, iterations_per_epoch=3)


def run_resume_case(out_dir: str | Path, **overrides) -> dict:
    subjects = blob_subjects(3, channels=2)
    config = dict(TINY_3D, **RESUME_RUN)
    return train("dbresunet", TINY_DBRESUNET, subjects[:2], subjects[2:], out_dir, config, **overrides)


def identical(first, second) -> bool:
    """Nested state dicts equal, tensors bit for bit."""
    if isinstance(first, torch.Tensor):
        return isinstance(second, torch.Tensor) and torch.equal(first, second)
    if isinstance(first, dict):
        return first.keys() == second.keys() and all(identical(first[key], second[key]) for key in first)
    if isinstance(first, (list, tuple)):
        return len(first) == len(second) and all(identical(a, b) for a, b in zip(first, second))
    return first == second
