"""The trained models under the results folder, and one subject's segmentation with its measurements.

A model is a folder `models/<name>/` holding `checkpoint_best.pt` (what `deepnuclei train` writes), or
a bundle `bundles/<name>.zip` (`deepnuclei export-model`), listed as `<name>.zip`. A trained folder's input
contrasts come from the config's `models:` entry of that name, else from an ablation's name
(`<model>-in-<suffix>-<suffix>`), else from the architecture's defaults; a bundle's, and its intensity
windows, from its manifest.
"""

from __future__ import annotations

import gzip
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from torch import nn

from ..bundle import load_bundle
from ..cli.options import mixed_precision
from ..data import Subject
from ..evaluate import centre_of_mass
from ..infer import (
    WINDOW_OVERLAP,
    ModelInfo,
    default_device,
    kept_pieces,
    model_from_state,
    predict,
    read_state,
    reference_values,
    warm_up,
)
from ..io import InputError, nifti_image, read_json, voxel_volume_mm3
from ..labels import task_classes

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint_best.pt"


def structure_colours(task: str) -> dict[str, tuple[int, int, int]]:
    """A distinct RGB colour per class (tab10, then tab20's lighter shades), fixed for each task."""
    palette = [*colormaps["tab10"].colors, *colormaps["tab20"].colors[1::2]]
    return {name: tuple(round(255 * channel) for channel in palette[index][:3])
            for index, name in enumerate(task_classes(task))}


@dataclass
class LoadedModel:
    name: str
    mtime_ns: int  # of the checkpoint: a retrained model is reloaded
    model: nn.Module
    info: ModelInfo
    inputs: tuple[str, ...]  # BIDS suffixes, in channel order
    preprocess: dict[str, Any] | None = None  # a bundle's intensity windows; None: the config's
    best_val_dice: float | None = None
    training_range: dict[str, Any] | None = None  # what `inference.drop_misplaced` compares pieces with
    warm: bool = False  # the untimed first pass (kernel selection) done

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "architecture": self.info.model, "task": self.info.task,
                "inputs": list(self.inputs), "classes": task_classes(self.info.task),
                "best_val_dice": self.best_val_dice}


def configured_inputs(name: str, info: ModelInfo, models_config: Mapping[str, Mapping]) -> tuple[str, ...]:
    if name in models_config:
        inputs = tuple(models_config[name]["inputs"])
    elif "-in-" in name:  # the workflow's input ablations (workflow/rules/common.smk)
        inputs = tuple(name.partition("-in-")[2].split("-"))
    else:
        inputs = info.spec.inputs
    if len(inputs) != info.in_channels:
        raise InputError(name, f"reads {info.in_channels} channels of unknown contrasts: add it to the config's models")
    return inputs


class ModelCatalogue:
    """Models found under `models_dir` and bundles in `bundles_dir`, loaded on first use and kept; one
    inference at a time."""

    def __init__(self, models_dir: Path, models_config: Mapping[str, Mapping], bundles_dir: Path | None = None) -> None:
        self.models_dir, self.models_config, self.bundles_dir = models_dir, models_config, bundles_dir
        self.loaded: dict[str, LoadedModel] = {}
        self.lock = threading.Lock()

    def sources(self) -> dict[str, Path]:
        """Every model by the name the page shows: trained folders by name, bundles as `<name>.zip`."""
        found = {path.parent.name: path for path in self.models_dir.glob(f"*/{CHECKPOINT}")}
        if self.bundles_dir is not None:
            found.update({path.name: path for path in self.bundles_dir.glob("*.zip")})
        return dict(sorted(found.items()))

    def names(self) -> list[str]:
        return list(self.sources())

    def get(self, name: str) -> LoadedModel:
        sources = self.sources()
        if name not in sources:  # also keeps the name from reaching outside the folders
            raise InputError(name, f"no trained model or bundle of that name in {self.models_dir} or {self.bundles_dir}")
        path = sources[name]
        mtime_ns = path.stat().st_mtime_ns
        if name not in self.loaded or self.loaded[name].mtime_ns != mtime_ns:
            self.loaded[name] = self.load(name, path, mtime_ns)
        return self.loaded[name]

    def load(self, name: str, path: Path, mtime_ns: int) -> LoadedModel:
        try:
            state = read_state(path)
            model, info = model_from_state(state, default_device())
        except InputError as error:  # a bad bundle: its own message
            raise InputError(name, error.problem) from error
        except Exception as error:  # torch raises many types for a checkpoint being written or corrupt
            raise InputError(name, f"checkpoint cannot be loaded ({error})") from error
        if path.suffix == ".zip":
            manifest = load_bundle(path).manifest
            return LoadedModel(name, mtime_ns, model, info, tuple(manifest["model"]["inputs"]), manifest["preprocess"],
                               manifest["scores"]["validation"].get("best_val_dice"), state.get("training_range"))
        summary = path.parent / "summary.json"
        return LoadedModel(name, mtime_ns, model, info, configured_inputs(name, info, self.models_config),
                           best_val_dice=read_json(summary).get("best_val_dice") if summary.exists() else None,
                           training_range=state.get("training_range"))

    def describe(self) -> list[dict[str, Any]]:
        """Every model, or the reason it cannot be used."""
        described = []
        for name in self.names():
            try:
                with self.lock:
                    described.append(self.get(name).describe())
            except InputError as error:
                described.append({"name": name, "error": error.problem})
        return described


@dataclass(frozen=True)
class Segmentation:
    labels: np.ndarray  # reference label values (`infer.reference_values`), on the input grid
    affine: np.ndarray
    structures: list[dict[str, Any]]  # name, value, colour, voxels, volume_mm3, com_mm
    inference_seconds: float
    cleanup_seconds: float

    def nifti_gz(self) -> bytes:
        # level 1: the label map is mostly zeros, and compressing harder only adds latency
        return gzip.compress(nifti_image(self.labels, self.affine, np.uint8).to_bytes(), compresslevel=1)


def measure(labels: np.ndarray, affine: np.ndarray, task: str) -> list[dict[str, Any]]:
    """Volume (mm³) and centre of mass (world mm, as the evaluation tables compute it) per structure."""
    voxel_mm3 = voxel_volume_mm3(affine)
    colours = structure_colours(task)
    rows = []
    for name, value in reference_values(task).items():
        mask = labels == value
        com = centre_of_mass(mask, affine)
        rows.append({"name": name, "value": value, "colour": colours[name], "voxels": int(mask.sum()),
                     "volume_mm3": float(mask.sum()) * voxel_mm3,
                     "com_mm": None if np.isnan(com).any() else [float(x) for x in com]})
    return rows


def segment(loaded: LoadedModel, subject: Subject, inference: Mapping[str, Any]) -> Segmentation:
    """Labels of one model input with the config's `inference:` settings, as `infer.segment_files` writes them:
    with `flip`, averaged with its left-right mirror's; with `drop_misplaced`, without the pieces that lie where
    training never put their structure; in 16 bits as `mixed_precision` says."""
    batch_size, largest = inference.get("batch_size"), inference.get("largest_component", False)
    precision = mixed_precision(inference)
    if not loaded.warm:
        warm_up(loaded.model, loaded.info, subject.image, batch_size, precision)
        loaded.warm = True
    prediction = predict(loaded.model, loaded.info, subject.image, inference.get("overlap", WINDOW_OVERLAP), batch_size,
                         largest, precision, flip_axis=subject.left_right_axis if inference.get("flip") else None)
    labels = kept_pieces(prediction.labels, subject.affine, loaded.info.task, loaded.training_range,
                         inference.get("drop_misplaced", False))
    labels = np.array([0, *reference_values(loaded.info.task).values()], dtype=np.uint8)[labels]
    return Segmentation(labels, subject.affine, measure(labels, subject.affine, loaded.info.task),
                        prediction.inference_seconds, prediction.cleanup_seconds)

