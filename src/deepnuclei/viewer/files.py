"""The viewer's inputs: files confined to one data folder, and model inputs scaled as in training.

Every path the page sends is resolved (`..` and symlinks followed) and refused unless it ends inside
the data folder, so no other file on the machine can be read through the viewer.

Intensities: a file named like a `preprocess` output (`..._desc-model_<suffix>.nii.gz`) is already
clipped and rescaled to [0, 1] and is fed as it is. Any other file is taken to be the model's input
contrast in its own unit (QSM in ppm, T1 in scanner units) and gets the `preprocess:` section's window
(qsm_clip_ppb, t1_clip). It is not padded to the training matrix: inference pads each slice or window
to what the network needs and crops the labels back (`infer.predict`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import Subject, load_subject
from ..io import InputError
from ..preprocess import T1_CLIP_UNIT, qsm_window_ppm, rescale, t1_window

NIFTI_SUFFIXES = (".nii", ".nii.gz")
MODEL_GRID_MARK = "_desc-model_"  # preprocess outputs: already the model's input scale


def is_nifti_name(name: str) -> bool:
    return name.lower().endswith(NIFTI_SUFFIXES)


def check_nifti_file(path: Path, shown: str, max_bytes: int) -> None:
    """A regular file with a NIfTI name, within the size limit; `shown` names it in errors."""
    if not path.is_file():
        raise InputError(shown, "no such file")
    if not is_nifti_name(path.name):
        raise InputError(shown, "not a NIfTI file (.nii or .nii.gz)")
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(shown, f"{size / 2**20:.1f} MiB is over the viewer's limit of {max_bytes / 2**20:.0f} MiB")


@dataclass(frozen=True)
class DataFolder:
    root: Path  # resolved
    max_bytes: int  # largest file the viewer reads

    @classmethod
    def at(cls, root: str | Path, max_bytes: int) -> DataFolder:
        if not Path(root).is_dir():
            raise InputError(root, "the data folder does not exist")
        return cls(Path(root).resolve(), max_bytes)

    def inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.root)

    def resolve(self, relative: str) -> Path:
        """The NIfTI file `relative` names, only if it lies inside the folder once resolved."""
        try:
            path = (self.root / relative).resolve()  # an absolute `relative` replaces the root: checked below
        except (OSError, ValueError) as error:  # ValueError: an embedded NUL byte
            raise InputError(relative, f"not a usable path ({error})") from error
        if not path.is_relative_to(self.root):
            raise InputError(relative, "outside the data folder")
        check_nifti_file(path, relative, self.max_bytes)
        return path

    def files(self) -> list[str]:
        """NIfTI files under the folder (symlinks leading out of it left out), as relative paths."""
        found = (path for path in self.root.rglob("*") if is_nifti_name(path.name) and path.is_file())
        return sorted(path.relative_to(self.root).as_posix() for path in found if self.inside(path))


def channel_paths(path: Path, inputs: Sequence[str]) -> list[Path]:
    """The files a model reads: the opened one for a one-channel model; for several channels, the
    opened file and its siblings that differ only in the BIDS suffix (`..._T1w.nii.gz`, `..._Chimap.nii.gz`)."""
    if len(inputs) == 1:
        return [path]
    match = re.fullmatch(rf"(.*_)({'|'.join(map(re.escape, inputs))})(\.nii(?:\.gz)?)", path.name)
    if match is None:
        raise InputError(path.name, f"the model reads {' + '.join(inputs)}: open one of these files "
                                    "(..._<suffix>.nii.gz) from the data folder, with the others beside it")
    return [path.with_name(f"{match[1]}{suffix}{match[3]}") for suffix in inputs]


def input_window(suffix: str, data: np.ndarray, settings: Mapping) -> tuple[float, float]:
    """The training window of one input contrast; `settings` is the config's `preprocess:` section."""
    if suffix == "Chimap":
        return qsm_window_ppm(settings["qsm_clip_ppb"])
    if suffix == "T1w":
        return t1_window(data, settings["t1_clip"], settings.get("t1_clip_unit", T1_CLIP_UNIT))
    raise ValueError(f"no intensity window for input '{suffix}'")


def model_input(paths: Sequence[Path], inputs: Sequence[str], task: str, settings: Mapping) -> Subject:
    """The model's (channels, *volume) input from its channel files, scaled as in training."""
    subject = load_subject(paths[0].name, paths, None, task)
    if MODEL_GRID_MARK in paths[0].name:
        return subject
    channels = [rescale(channel.numpy(), input_window(suffix, channel.numpy(), settings))
                for suffix, channel in zip(inputs, subject.image, strict=True)]
    return Subject(subject.name, torch.from_numpy(np.stack(channels)), None, subject.affine)
