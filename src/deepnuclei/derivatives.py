"""The results folders as BIDS-Derivatives datasets, so that the BIDS validator, pybids and bids2table read
them: `results/qsm`, `results/registration`, `results/segmentations/<method>` (one dataset per method: its
files carry no `desc-<method>`) and `results/measures`.

Each gets, at its root, a `dataset_description.json` (`GeneratedBy`: this package's version with its git
commit; `SourceDatasets`: the input BIDS folder), a `.bidsignore` naming the workflow's files that BIDS
has no name for (local fields, transforms, records, tables), and sidecars that BIDS' inheritance principle
applies to every map of the dataset (a top-level `space-SWI_dseg.json` holds for every
`sub-*_space-SWI_dseg.nii.gz`): what the map is, its unit, its grid (`SpatialReference`, which the
validator requires for our spaces, SWI and T1w, that are no template) and, for a model's labels, the
weights file and its SHA-256. What differs per map is in its own sidecar, which the job that writes the map
writes: `Sources`, the files it was made from, as BIDS URIs (`bids:<dataset>:<path>`, the dataset one of the
description's `DatasetLinks`; `bids::<path>` in the map's own dataset): in the QSM's `_Chimap.json` (with
reference, settings, QC), the T1 on the SWI grid's `_T1w.json` and each label map's `_dseg.json`; a model's
`_inference.json` keeps the rest. A segmentation method's dataset also gets its `dseg.tsv`, the numbering of
its labels.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from . import code_version
from .io import sha256, write_json, write_text_atomic
from .layout import sidecar

BIDS_VERSION = "1.10.0"
SWI_GRID = "the session's own SWI grid: that of its first SWI magnitude echo (or existing QSM map) in the source dataset"
T1_GRID = "the session's own T1w image in the source dataset"

# the workflow's files that BIDS has no name for, per kind (.bidsignore patterns)
IGNORED = {
    "qsm": ["*_localfield.nii.gz", "/qsm_metrics*.csv"],
    "registration": ["*_xfm.tfm", "*_registration.json", "/tre.csv"],
    "segmentations": ["*_inference.json"],
    "measures": ["*_nuclei.tsv", "/nuclei.tsv", "*.csv", "/nuclei_intervals.png"],
}


def sidecars(kind: str, method: str | None = None, model: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """The top-level sidecars of a kind of dataset, by file name; `method` (and its `model` weights file)
    for a segmentation method's dataset."""
    if kind == "qsm":
        return {"space-SWI_Chimap.json": {
                    "Description": "Magnetic susceptibility, relative to the reference its own sidecar names "
                                   "(Reference); the QSM method is its desc- entity, its settings in Settings",
                    "Units": "ppm", "SpatialReference": SWI_GRID},
                "space-SWI_mask.json": {"Description": "The voxels where the QSM of the same desc- is valid",
                                        "Type": "Brain", "SpatialReference": SWI_GRID}}
    if kind == "registration":
        return {"space-SWI_T1w.json": {"Description": "The session's T1w resampled on its SWI grid through its "
                                                      "rigid T1w -> SWI transform (the _xfm.tfm beside it)",
                                       "SpatialReference": SWI_GRID}}
    if kind == "segmentations":
        about = {"Description": f"Labels of the method {method}, numbered as the dataset's dseg.tsv"}
        if model:  # what a user needs to know that two runs used the same network
            about.update(Model=str(model), ModelSHA256=sha256(Path(model).read_bytes()))
        return {"space-SWI_dseg.json": {**about, "SpatialReference": SWI_GRID},
                "space-T1w_dseg.json": {**about, "SpatialReference": T1_GRID}}
    return {}


def dataset_links(results: str | os.PathLike, bids_dir: str | os.PathLike) -> dict[str, Path]:
    """The datasets that Sources cite, by their name in a BIDS URI: the results folders that maps are made from
    and the input dataset (`raw`; its derivatives folder, reference labels and existing QSM maps, inside it),
    last: the results folder may lie inside it."""
    results = Path(results)
    return {**{kind: results / kind for kind in ("qsm", "registration", "preprocess")}, "raw": Path(bids_dir)}


def bids_uris(paths: Sequence[str | os.PathLike], links: Mapping[str, Path], own: str | os.PathLike) -> list[str]:
    """Each file as a BIDS URI: `bids::<path>` inside `own` (the citing map's dataset), `bids:<name>:<path>` inside
    a linked dataset, else a file URI. Absolute paths compared, as strings: the config may name a folder
    relative, the plan its files absolute, and every job of a run calls this (no pathlib: planning time)."""
    roots = dataset_roots(own, tuple(links.items()))

    def uri(path: str) -> str:
        for name, root in roots:
            if path.startswith(root):
                return f"bids:{name}:{path[len(root):]}"
        return Path(path).as_uri()

    return [uri(os.path.abspath(path)) for path in paths]


@cache
def dataset_roots(own: str | os.PathLike, links: tuple[tuple[str, Path], ...]) -> list[tuple[str, str]]:
    """`bids_uris`' datasets, the citing one first, each with its absolute folder and a final separator."""
    return [(name, os.path.join(os.path.abspath(root), "")) for name, root in (("", own), *links)]


def write_sources(map_path: str | os.PathLike, sources: Sequence[str]) -> Path:
    """The per-file sidecar of a map that has no record of its own: what it was made from."""
    return write_json(sidecar(map_path), {"Sources": list(sources)})


def derivative_files(kind: str) -> list[str]:
    """The files `write_derivative` writes at the root of a dataset of `kind`."""
    return (["dataset_description.json", ".bidsignore", *sidecars(kind, "")]
            + (["dseg.tsv"] if kind == "segmentations" else []))


def dataset_description(kind: str, bids_dir: str | os.PathLike, results: str | os.PathLike,
                        method: str | None = None) -> dict[str, Any]:
    return {"Name": f"deepnuclei {kind}" + (f" of {method}" if method else ""), "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "deepnuclei", "Version": code_version(),  # with the git commit in a checkout
                             "Description": "QSM, deep-brain-nuclei segmentation and measures from SWI and T1w"}],
            "SourceDatasets": [{"URL": Path(bids_dir).resolve().as_uri()}],
            "DatasetLinks": {name: root.resolve().as_uri() for name, root in dataset_links(results, bids_dir).items()}}


def write_derivative(root: str | os.PathLike, kind: str, bids_dir: str | os.PathLike, results: str | os.PathLike,
                     method: str | None = None, model: str | os.PathLike | None = None,
                     lookup: str | os.PathLike | None = None) -> list[Path]:
    """Make `root` a BIDS-Derivatives dataset of `kind` (`derivative_files`), whose links name the datasets of
    `results` it cites (`dataset_links`); a segmentation method's needs its `lookup` (the dseg.tsv of its
    numbering)."""
    if kind == "segmentations" and not (method and lookup):
        raise ValueError("a segmentation method's dataset needs the method and its label table")
    root = Path(root)
    written = [write_json(root / "dataset_description.json", dataset_description(kind, bids_dir, results, method)),
               write_text_atomic(root / ".bidsignore", "\n".join(IGNORED[kind]) + "\n")]
    written += [write_json(root / name, content) for name, content in sidecars(kind, method, model).items()]
    if lookup:
        written.append(write_text_atomic(root / "dseg.tsv", Path(lookup).read_text()))
    return written
