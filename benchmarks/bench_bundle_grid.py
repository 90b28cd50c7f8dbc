"""What a bundle's preprocessing is worth on a dataset acquired otherwise than its training data.

After `make bench-heldout` (bundles applied to benchmarks/transfer_dataset.py's labelled sets, results-heldout/<set>),
this segments each test session again from the same QSM and registered T1 in three ways and scores each
against the session's reference labels on the SWI grid:

- `before`: as the workflow read such a dataset before bundles: its own grid, and the T1 window as
  intensities (`t1_clip: [0, 800]`, the demo's former default; the bundled model itself was trained with
  the scale-free window, so this shows what another scanner's T1 scale does to a fixed window);
- `native grid`: the bundle's scale-free T1 window, the dataset's own grid;
- `bundle`: the bundle's preprocessing as the workflow applies it (resampled to the trained voxel size).

    .venv/bin/python benchmarks/bench_bundle_grid.py --results results-heldout/3t-oblique --bundles results/bundles/linus.zip results/bundles/dbresunet.zip

Writes `<results>/benchmarks/bundle_grid.md` (mean Dice per model and way, and per structure).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from deepnuclei.bundle import load_bundle
from deepnuclei.infer import reference_values, segment_files
from deepnuclei.io import read_json, read_volume, write_text_atomic
from deepnuclei.layout import Layout
from deepnuclei.preprocess import prepare_inputs

WAYS = {
    "before": {"voxel_mm": None, "orientation": None, "t1_clip": [0, 800], "t1_clip_unit": "value"},
    "native grid": {"voxel_mm": None, "orientation": None},
    "bundle": {},
}


def dice(predicted: np.ndarray, reference: np.ndarray, value: int) -> float:
    both = np.sum(predicted == value) + np.sum(reference == value)
    return float(2 * np.sum((predicted == value) & (reference == value)) / both) if both else float("nan")


def score(bundle_path: Path, layout: Layout, key: str, moved: bool, qsm_method: str, work: Path) -> list[dict]:
    bundle = load_bundle(bundle_path)
    name, task = bundle.manifest["name"], bundle.model["task"]
    reference, _ = read_volume(layout.reference_labels(key, "SWI", moved=moved))
    rows = []
    for way, changes in WAYS.items():
        settings, out = {**bundle.preprocess, **changes}, work / f"{name}_{key}_{way.replace(' ', '_')}"
        inputs = {"Chimap": str(out) + "_Chimap.nii.gz", "T1w": str(out) + "_T1w.nii.gz"}
        prepare_inputs(layout.qsm(key, "Chimap.nii.gz", qsm_method), layout.t1_in_swi(key), settings,
                       inputs["Chimap"], inputs["T1w"], str(out) + "_padding.json")
        segment_files(bundle_path, [inputs[suffix] for suffix in bundle.model["inputs"]], str(out) + "_dseg.nii.gz",
                      str(out) + "_inference.json", padding_record=str(out) + "_padding.json")
        predicted, _ = read_volume(str(out) + "_dseg.nii.gz")
        rows += [{"model": name, "session": key, "way": way, "structure": structure,
                  "dice": dice(predicted, reference, value)} for structure, value in reference_values(task).items()]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results-heldout/3t-oblique"))
    parser.add_argument("--bundles", type=Path, nargs="+", required=True)
    parser.add_argument("--qsm-method", default="sharptv")
    options = parser.parse_args()
    layout = Layout.of(options.results)
    plan = read_json(layout.plan_file("dataset"))
    sessions = {key: record["reference_labels"]["SWI"] != "dataset" for key, record in plan["subjects"].items()
                if record["role"] == "test" and record["reference_labels"]["SWI"]}  # key -> labels moved from T1
    with tempfile.TemporaryDirectory() as work:
        table = pd.DataFrame([row for bundle in options.bundles for key, moved in sessions.items()
                              for row in score(bundle, layout, key, moved, options.qsm_method, Path(work))])
    means = table.groupby(["model", "way"], sort=False).dice.mean().unstack("way")[list(WAYS)].round(3)
    per_structure = table.groupby(["model", "structure", "way"], sort=False).dice.mean().unstack("way")[list(WAYS)]
    text = (f"Mean Dice over {len(sessions)} sessions ({', '.join(sessions)}):\n\n{means.to_markdown()}\n\n"
            f"Per structure:\n\n{per_structure.round(3).to_markdown()}\n")
    write_text_atomic(layout.results / "benchmarks" / "bundle_grid.md", text)
    print(text)


if __name__ == "__main__":
    main()
