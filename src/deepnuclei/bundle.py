"""Model bundles: a trained model as one file that another machine or dataset can use without training.

A bundle is a zip holding `manifest.json` and `weights.pt` (the best checkpoint's weights and the
`infer.ModelInfo` that rebuilds the network). The manifest says everything inference needs to read a new
dataset as the model was trained: the config entry (architecture, options, inputs, task, space), the
preprocessing (matrix, clip windows and their units, and the voxel size and axis orientation of the
training images, to which a new dataset's images are resampled and from which its labels are resampled
back), the label table of the outputs, the training fingerprint (training sessions, settings, code
version) and the validation and test scores. The weights' SHA-256 is checked on every load, and a bundle
of an unknown or newer format is refused, each with one line naming the file.

nnU-Net's `nnUNetv2_export_model_to_zip` is the model for this; its zips hold nnU-Net's own plans and
cannot carry ours, so the format is our own, versioned by `FORMAT_VERSION`.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from . import __version__, code_version
from .io import InputError, read_json, sha256, voxel_sizes, write_bytes_atomic
from .labels import task_classes
from .layout import MAIN_COHORT, Layout
from .plan_files import PreprocessPlan, TrainPlan

FORMAT = "deepnuclei-model-bundle"
FORMAT_VERSION = 1
MANIFEST, WEIGHTS = "manifest.json", "weights.pt"
MODEL_KEYS = ("architecture", "inputs", "task", "space", "options", "training")  # the config entry kept


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]
    weights: bytes

    @property
    def model(self) -> dict[str, Any]:
        """The model's config entry as trained (architecture, inputs, task, space, options, training)."""
        return self.manifest["model"]

    @property
    def preprocess(self) -> dict[str, Any]:
        return self.manifest["preprocess"]

    def state(self, device: Any = "cpu") -> dict[str, Any]:
        """The checkpoint as `infer.load_model` reads it: `info` and `model` weights."""
        import torch  # not at import: the plan reads bundles when Snakemake starts

        return torch.load(io.BytesIO(self.weights), map_location=device, weights_only=True)


def training_grid(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The voxel size (median per axis) and axis orientation (the most common) of the images the model
    was trained on, from their `preprocess` records: what a new dataset is resampled to."""
    affines = [np.asarray(record.get("resampled_affine") or record["image_affine"]) for record in records]
    sizes = np.median([voxel_sizes(affine) for affine in affines], axis=0)
    orientations = Counter("".join(nib.aff2axcodes(affine)) for affine in affines)
    return {"voxel_mm": [round(float(size), 4) for size in sizes], "orientation": orientations.most_common(1)[0][0]}


def test_scores(overlap_csv: Path, method: str) -> dict[str, Any]:
    """Mean Dice per structure of `method` on the test sessions of the run's evaluation, if it ran."""
    if not overlap_csv.exists():
        return {}
    table = pd.read_csv(overlap_csv)
    rows = table[table.method == method]
    if rows.empty:
        return {}
    dice = rows.groupby("structure").dice.mean().round(4)
    return {"sessions": int(rows.subject.nunique()), "dice": {name: float(value) for name, value in dice.items()},
            "mean_dice": round(float(dice.mean()), 4)}


def export_model(model_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Bundle the trained model in `<results>/models/<name>/` (its best checkpoint, its training plan under
    `<results>/plan/`, the preprocess records of its training images, its scores) into `out`."""
    model_dir = Path(model_dir)
    name, results = model_dir.name, model_dir.parent.parent
    layout = Layout.of(results)
    checkpoint = model_dir / "checkpoint_best.pt"
    plan_path = Path(layout.plan_file(f"train_{name}"))
    for path in (checkpoint, model_dir / "summary.json", plan_path):
        if not path.exists():
            raise InputError(path, f"missing: is {model_dir} a trained model of a deepnuclei run?")
    plan, summary = TrainPlan.read(plan_path), read_json(model_dir / "summary.json")
    model = {key: plan.model[key] for key in MODEL_KEYS if key in plan.model}
    space = model.get("space", "SWI")
    preprocess_path = Path(layout.preprocess_plan(space, plan.model.get("cohort", MAIN_COHORT)))
    if not preprocess_path.exists():
        raise InputError(preprocess_path, "missing: the preprocessing the model was trained with")
    records = [read_json(layout.preprocessed(case.subject, "padding.json", space)) for case in plan.cases.all()]
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    buffer = io.BytesIO()
    torch.save({"info": state["info"], "model": state["model"], "training_range": state.get("training_range")}, buffer)
    weights = buffer.getvalue()
    task = model["task"]
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "info": state["info"],
        "preprocess": {**PreprocessPlan.read(preprocess_path).to_json(), **training_grid(records)},
        "labels": [{"index": index, "name": structure} for index, structure in enumerate(task_classes(task), 1)],
        "training_range": state.get("training_range"),  # readable without torch; inference reads the weights' copy
        "fingerprint": {"training": state.get("fingerprint", ""), "code_version": code_version(),
                        "train_sessions": [case.subject for case in plan.cases.train],
                        "validation_sessions": [case.subject for case in plan.cases.validation],
                        "settings_sha256": sha256(json.dumps(plan.model, sort_keys=True).encode())},
        "scores": {"validation": {"best_val_dice": summary.get("best_val_dice"), "best_epoch": summary.get("best_epoch"),
                                  "epochs": summary.get("epochs")},
                   "test": test_scores(results / "evaluation" / "overlap.csv", name)},
        "weights": {"file": WEIGHTS, "sha256": sha256(weights), "bytes": len(weights)},
    }
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(MANIFEST, json.dumps(manifest, indent=1))
        bundle.writestr(WEIGHTS, weights)
    return write_bytes_atomic(out, archive.getvalue())


PRETRAINED = "pretrained:"  # `pretrained:<model>` names a bundle shipped in the package (deepnuclei/pretrained/)
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def bundle_path(source: str | os.PathLike) -> Path:
    """The file a bundle setting names: a path, or `pretrained:<model>` for the package's own."""
    text = str(source)
    if text.startswith(PRETRAINED):
        return PRETRAINED_DIR / f"{text.removeprefix(PRETRAINED)}.zip"
    return Path(source)


def load_bundle(path: str | os.PathLike) -> Bundle:
    """A bundle, checked: a zip with a manifest of a format this version reads and weights whose SHA-256
    matches the manifest's; anything else is an `InputError` naming the file."""
    path = bundle_path(path)
    if not path.is_file():
        raise InputError(path, "no such model bundle")
    try:
        with zipfile.ZipFile(path) as bundle:
            manifest = json.loads(bundle.read(MANIFEST))
            if manifest.get("format") != FORMAT:
                raise InputError(path, f"not a deepnuclei model bundle (format {manifest.get('format')!r})")
            version = manifest.get("format_version")
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise InputError(path, f"bundle format {version} is newer than this deepnuclei {__version__} reads "
                                       f"({FORMAT_VERSION}): update deepnuclei")
            weights = bundle.read(manifest["weights"]["file"])
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise InputError(path, f"not a readable zip (truncated or damaged download?): {error}") from None
    except KeyError as error:
        raise InputError(path, f"incomplete bundle, missing: {error.args[0]}") from None
    except json.JSONDecodeError as error:
        raise InputError(path, f"damaged manifest: {error}") from None
    if sha256(weights) != manifest["weights"]["sha256"]:
        raise InputError(path, "checksum mismatch: the weights are not those the bundle was made with")
    return Bundle(path, manifest, weights)


def is_bundle(path: str | os.PathLike) -> bool:
    return str(path).startswith(PRETRAINED) or Path(path).suffix == ".zip"


def summary(path: str | os.PathLike) -> str:
    """A few lines about a bundle, for `deepnuclei export-model` and the viewer."""
    bundle = load_bundle(path)
    manifest, size = bundle.manifest, Path(path).stat().st_size
    preprocess = manifest["preprocess"]
    test = manifest["scores"].get("test", {})
    lines = [(f"{manifest['name']}: {manifest['model']['architecture']} ({manifest['model']['task']}), inputs "
              f"{manifest['model']['inputs']}, space {manifest['model'].get('space', 'SWI')}"),
             (f"  trained at {preprocess['voxel_mm']} mm, {preprocess['orientation']}, matrix {preprocess['matrix']}; "
              f"code {manifest['fingerprint']['code_version']}"),
             f"  validation Dice {manifest['scores']['validation'].get('best_val_dice')}"
             + (f", test mean Dice {test['mean_dice']} on {test['sessions']} sessions" if test else ""),
             f"  {size / 1e6:.2f} MB, weights sha256 {manifest['weights']['sha256'][:16]}..."]
    return "\n".join(lines)
