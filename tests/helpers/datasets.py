"""Small BIDS datasets: empty files laid out as a dataset (what planning reads), a small valid subject with
real images, and the config that runs the tiny models on a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from deepnuclei.io import save_volume
from deepnuclei.labels import STRUCTURES, dseg_tsv
from deepnuclei.layout import bids_name

from . import ROOT
from .runs import merged


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def write_session(bids: Path, participant: str, session: str | None = None, t1: bool = True, echoes: int = 3,
                  labels: tuple[str, ...] = (), suffix: str = "T2starw", **entities: str) -> None:
    """Empty image files of one session: a T1, `echoes` magnitude/phase pairs with sidecars, labels by space."""
    key = participant if session is None else f"{participant}_ses-{session}"
    folder = Path(f"sub-{participant}") / (f"ses-{session}" if session else "") / "anat"
    prefix = {"ses": session} if session else {}
    if t1:
        touch(bids / folder / bids_name(participant, "T1w.nii.gz", **prefix, **entities))
    for echo in range(1, echoes + 1):
        for part in ("mag", "phase"):
            for extension in ("nii.gz", "json"):
                touch(bids / folder / bids_name(participant, f"{suffix}.{extension}", **prefix, echo=echo, part=part))
    for space in labels:
        touch(bids / "derivatives" / "labels" / folder / bids_name(participant, "dseg.nii.gz", **prefix, space=space))
    assert key


def config_for(bids: Path, tmp_path: Path, **changes) -> dict:
    """The default config on a real dataset (no demo), with the tiny test models, plus changes."""
    config = merged(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()),
                    yaml.safe_load((ROOT / "tests" / "config" / "tiny.yaml").read_text()))
    config = merged(config, {"bids_dir": str(bids), "results_dir": str(tmp_path / "results"),
                             "demo": {"enabled": False}, "cohorts": {}, "splits": {"train": 1, "validation": 0, "test": 1},
                             "linus_experiments": {"resolution": [], "targets": [], "optimizers": [], "slices": [],
                                                   "models": {}}})
    config["linus_experiments"]["models"] = {}
    return merged(config, changes) if changes else config


T1_SHAPE = (20, 20, 16)
SWI_SHAPE = (16, 16, 8)
T1_AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
SWI_AFFINE = np.diag([2.5, 2.5, 3.0, 1.0])
ECHO_TIMES = (0.01, 0.02)


def label_map(shape: tuple[int, ...]) -> np.ndarray:
    """Every structure of the package's table as a run of ten voxels, the rest background."""
    labels = np.zeros(int(np.prod(shape)), np.uint8)
    for index, structure in enumerate(STRUCTURES):
        labels[10 * index:10 * index + 10] = structure.label
    return labels.reshape(shape)


def write_subject(bids: Path, subject: str) -> dict[str, Path]:
    """A small valid subject in BIDS layout, its files by role: t1, mag1, mag2, phase1, phase2, json1,
    json2 (the phase sidecars), labels_SWI, labels_T1w and the dataset's lookup table."""
    rng = np.random.default_rng(int(subject))
    anat = bids / f"sub-{subject}" / "anat"
    files = {"t1": save_volume(anat / f"sub-{subject}_T1w.nii.gz", rng.uniform(100, 800, T1_SHAPE), T1_AFFINE,
                               np.float32)}
    for echo, echo_time in enumerate(ECHO_TIMES, start=1):
        stem = anat / f"sub-{subject}_echo-{echo}_part-"
        files[f"mag{echo}"] = save_volume(f"{stem}mag_T2starw.nii.gz", rng.uniform(50, 500, SWI_SHAPE), SWI_AFFINE,
                                          np.float32)
        files[f"phase{echo}"] = save_volume(f"{stem}phase_T2starw.nii.gz", rng.uniform(-np.pi, np.pi, SWI_SHAPE),
                                            SWI_AFFINE, np.float32)
        files[f"json{echo}"] = Path(f"{stem}phase_T2starw.json")
        files[f"json{echo}"].write_text(json.dumps({"EchoTime": echo_time, "MagneticFieldStrength": 3.0}))
    labels = bids / "derivatives" / "labels"
    for space, shape, affine in (("SWI", SWI_SHAPE, SWI_AFFINE), ("T1w", T1_SHAPE, T1_AFFINE)):
        files[f"labels_{space}"] = save_volume(labels / f"sub-{subject}" / "anat" / f"sub-{subject}_space-{space}_dseg.nii.gz",
                                               label_map(shape), affine, np.uint8)
    files["lookup"] = labels / "dseg.tsv"
    files["lookup"].write_text(dseg_tsv())
    return files
