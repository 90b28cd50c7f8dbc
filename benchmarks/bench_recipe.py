"""Which part of the demo's DB-ResUNet recipe decides its red nucleus: the demo's model trained again
with one thing changed at a time, scored per nucleus on the held-out test subjects.

Reads what `make demo` wrote (results/plan/train_dbresunet.json: the model entry and its training and
validation files; results/preprocess/: the test subjects' model inputs and labels) and trains each
variant in results/benchmarks/recipe/<variant>/, resumably (a rerun skips finished variants), one
thread per training and `--jobs` trainings side by side. Each variant is scored with its best
checkpoint, as `infer` uses it (sliding windows at the config's overlap), against the test subjects'
labels on the model grid. The table gives each nucleus's Dice (left and right averaged), how much of
the true red nucleus the model calls substantia nigra (`RN_as_SN`), and the predicted SN volume over
the true one (`SN_volume_ratio`). Atlas rows are copied from results/evaluation/overlap.csv for scale.

    .venv/bin/python benchmarks/bench_recipe.py                     # every variant, 2 at a time
    .venv/bin/python benchmarks/bench_recipe.py --variants demo dice-ce --jobs 1

Writes results/benchmarks/recipe/recipe.csv (per subject and class) and recipe.md (the summary).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

NUCLEI = ("CN", "GP", "PUT", "THA", "SN", "RN", "DN")
QSM_WINDOW_PPB = (-150.0, 250.0)  # config.yaml's preprocess.qsm_clip_ppb: what the inputs were rescaled from
T1_WINDOW = (0.0, 1.6)  # preprocess.t1_clip, in multiples of the head's median

# One change each over the demo's entry (config/config.yaml, models.dbresunet). "training", "options":
# keys over the entry's; "inputs": the channel list; "window": a narrower intensity window of one channel,
# (suffix, low, high) in the channel's unit, applied to the stored [0, 1] inputs.
SINGLE_CHANGES: dict[str, dict[str, Any]] = {
    "dice-ce": {"training": {"loss": "dice_ce"}},
    "weights-equal": {"training": {"class_weights": [1.0, 1.0]}},
    "foreground-0.5": {"training": {"foreground_fraction": 0.5}},
    "qsm-window-narrow": {"window": ["Chimap", -50.0, 200.0]},
    "no-aux-loss": {"training": {"aux_weight": 0.0}},
    "seed-1": {"training": {"seed": 1}},  # the same recipe again: how far two runs differ by chance
    "epochs-30": {"training": {"max_epochs": 30}},  # what the demo's 15 minutes allow
    "qsm-only": {"inputs": ["Chimap"]},
    "lr-3e-3": {"training": {"lr": 3.0e-3}},
    "patch-96": {"training": {"patch_size": [96, 96, 32]}},
    "epochs-x2": {"training": {"max_epochs": 48}},
    "rate-4": {"options": {"rate": [4, 4, 1]}},
    "t1-only": {"inputs": ["T1w"]},
    "t1-window-narrow": {"window": ["T1w", 0.4, 1.2]},
}


def combined(*names: str) -> dict[str, Any]:
    """Several single changes at once (their training and option keys merged)."""
    change: dict[str, Any] = {}
    for name in names:
        for key, value in SINGLE_CHANGES[name].items():
            change[key] = {**change.get(key, {}), **value} if isinstance(value, dict) else value
    return change


# in the order they start: the single changes that bear on RN first, then the Dice term with others
VARIANTS: dict[str, dict[str, Any]] = {
    "demo": {},
    **{name: SINGLE_CHANGES[name] for name in ("dice-ce", "weights-equal", "foreground-0.5", "qsm-window-narrow",
                                               "no-aux-loss")},
    **{f"dice-ce+{name}": combined("dice-ce", name) for name in ("seed-1", "weights-equal", "epochs-30",
                                                                 "foreground-0.5")},
    **{f"no-aux-loss+{name}": combined("no-aux-loss", name) for name in ("seed-1", "epochs-30", "dice-ce")},
    "dice-ce+weights-equal+no-aux-loss": combined("dice-ce", "weights-equal", "no-aux-loss"),
    "dice-ce+weights-equal+no-aux-loss+epochs-30": combined("dice-ce", "weights-equal", "no-aux-loss", "epochs-30"),
    **{name: SINGLE_CHANGES[name] for name in ("seed-1", "qsm-only", "lr-3e-3", "patch-96", "epochs-x2", "rate-4",
                                               "t1-only", "t1-window-narrow")},
    **{f"dice-ce+{name}": combined("dice-ce", name) for name in ("patch-96", "epochs-x2")},
}


def variant_entry(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    entry = copy.deepcopy(base)
    entry["training"].update(change.get("training", {}))
    entry["options"].update(change.get("options", {}))
    if "inputs" in change:
        entry["inputs"] = list(change["inputs"])
    return entry


def windowed(path: str, suffix: str, low: float, high: float, out_dir: Path) -> str:
    """The [0, 1] input at `path` rescaled to the narrower window [low, high] of its channel's unit."""
    out = out_dir / Path(path).name
    if out.exists():  # written once: a new file would change the training fingerprint and restart training
        return str(out)
    full = QSM_WINDOW_PPB if suffix == "Chimap" else T1_WINDOW
    image = nib.load(path)
    values = np.asarray(image.dataobj, dtype=np.float32) * (full[1] - full[0]) + full[0]
    rescaled = np.clip((values - low) / (high - low), 0, 1).astype(np.float32)
    nib.save(nib.Nifti1Image(rescaled, image.affine), out)
    return str(out)


def variant_cases(cases: dict[str, list[dict]], base_inputs: list[str], change: dict[str, Any],
                  out_dir: Path) -> dict[str, list[dict]]:
    """The cases with the variant's channels: a subset of the inputs, or one of them re-windowed."""
    inputs = change.get("inputs", base_inputs)
    window = change.get("window")
    result = {}
    for role, role_cases in cases.items():
        result[role] = []
        for case in role_cases:
            channels = [case["channels"][base_inputs.index(suffix)] for suffix in inputs]
            if window:
                (out_dir / "inputs").mkdir(parents=True, exist_ok=True)
                position = inputs.index(window[0])
                channels[position] = windowed(channels[position], *window, out_dir / "inputs")
            result[role].append({**case, "channels": channels})
    return result


def test_cases(train_cases: dict[str, list[dict]], overlap_plan: list[dict]) -> list[dict]:
    """The test subjects the demo scored DB-ResUNet on: model inputs named as the training cases' are, the
    padding record that takes predictions back to the SWI grid, and the reference labels there."""
    example = train_cases["train"][0]
    subject = example["subject"]
    cases = []
    for case in overlap_plan:
        if case["method"] == "dbresunet" and case["space"] == "SWI":
            swap = lambda path: path.replace(f"sub-{subject}", f"sub-{case['subject']}")  # noqa: E731
            cases.append({"subject": case["subject"], "channels": [swap(path) for path in example["channels"]],
                          "padding": swap(example["labels"]).replace("dseg.nii.gz", "padding.json"),
                          "reference": case["reference"]})
    return cases


def run_variant(name: str, results: str, overlap: float) -> list[dict]:
    """Train variant `name` (or resume it) and score it on the test subjects: rows per subject and class."""
    import torch

    torch.set_num_threads(1)
    from deepnuclei.data import load_subject
    from deepnuclei.infer import load_model, predict
    from deepnuclei.io import read_volume
    from deepnuclei.labels import remap_to_task, task_classes
    from deepnuclei.preprocess import move_by_record
    from deepnuclei.plan_files import TrainPlan
    from deepnuclei.train import train_from_files

    results_dir = Path(results)
    plan = json.loads((results_dir / "plan" / "train_dbresunet.json").read_text())
    overlap_plan = json.loads((results_dir / "plan" / "overlap.json").read_text())
    change = VARIANTS[name]
    out_dir = results_dir / "benchmarks" / "recipe" / name
    out_dir.mkdir(parents=True, exist_ok=True)
    entry = variant_entry(plan["model"], change)
    cases = variant_cases({**plan["cases"], "test": test_cases(plan["cases"], overlap_plan)},
                          plan["model"]["inputs"], change, out_dir)
    training = TrainPlan.from_json({"model": entry, "cases": {role: cases[role] for role in ("train", "validation")}})
    summary = train_from_files(training, out_dir / "model")
    model, info = load_model(out_dir / "model" / "checkpoint_best.pt")
    classes = task_classes(entry["task"])
    rows = []
    for case in cases["test"]:  # scored on the SWI grid, as the demo's evaluation scores
        subject = load_subject(case["subject"], case["channels"], None, entry["task"])
        on_model_grid = predict(model, info, subject.image, overlap=overlap).labels
        predicted, _ = move_by_record(on_model_grid, subject.affine, case["padding"], case["channels"][0], inverse=True)
        truth = remap_to_task(read_volume(case["reference"], dtype=np.int16)[0], entry["task"])
        for index, structure in enumerate(classes, start=1):
            true_mask, predicted_mask = truth == index, predicted == index
            sizes = true_mask.sum() + predicted_mask.sum()
            twin_sn = classes.index(f"SN_{structure[-1]}") + 1
            rows.append({
                "variant": name, "subject": case["subject"], "structure": structure,
                "nucleus": structure[:-2], "dice": 2 * (true_mask & predicted_mask).sum() / sizes if sizes else np.nan,
                "true_voxels": int(true_mask.sum()), "predicted_voxels": int(predicted_mask.sum()),
                "as_sn": int((true_mask & (predicted == twin_sn)).sum()),
                "best_epoch": summary["best_epoch"], "train_seconds": summary["train_seconds"],
            })
    return rows


def summarise(table: pd.DataFrame, atlas: pd.DataFrame | None) -> pd.DataFrame:
    """One row per variant: each nucleus's mean Dice, the mean, RN_as_SN and SN_volume_ratio."""
    dice = table.pivot_table(index="variant", columns="nucleus", values="dice", aggfunc="mean")[list(NUCLEI)]
    dice["mean"] = dice.mean(axis=1)
    rn = table[table.nucleus == "RN"].groupby("variant")
    sn = table[table.nucleus == "SN"].groupby("variant")
    dice["RN_as_SN"] = rn.as_sn.sum() / rn.true_voxels.sum()
    dice["SN_volume_ratio"] = sn.predicted_voxels.sum() / sn.true_voxels.sum()
    dice["minutes"] = table.groupby("variant").train_seconds.first() / 60
    dice = dice.reindex([name for name in VARIANTS if name in dice.index])
    if atlas is not None:
        dice = pd.concat([dice, atlas])
    return dice


def atlas_rows(results_dir: Path, subjects: list[str]) -> pd.DataFrame | None:
    """The atlas baselines' Dice per nucleus on the same subjects, from the demo's evaluation."""
    path = results_dir / "evaluation" / "overlap.csv"
    if not path.exists():
        return None
    overlap = pd.read_csv(path, dtype={"subject": str})
    overlap = overlap[overlap.method.str.startswith("atlas") & overlap.subject.isin(subjects)]
    overlap = overlap.assign(nucleus=overlap.structure.str[:-2])
    rows = overlap[overlap.nucleus.isin(NUCLEI)].pivot_table(index="method", columns="nucleus", values="dice")
    rows = rows[list(NUCLEI)]
    rows["mean"] = rows.mean(axis=1)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--overlap", type=float, default=0.25, help="inference's sliding-window overlap")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = Path(args.results) / "benchmarks" / "recipe"
    out.mkdir(parents=True, exist_ok=True)
    demo_model, demo_copy = Path(args.results) / "models" / "dbresunet", out / "demo" / "model"
    if "demo" in args.variants and demo_model.exists() and not demo_copy.exists():
        shutil.copytree(demo_model, demo_copy)  # the demo run's model is this variant: same settings and files, resumed
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_variant, name, args.results, args.overlap) for name in args.variants]
        for future in as_completed(futures):  # each variant into the tables as it finishes
            summary = record(pd.DataFrame(future.result()), out, Path(args.results))
    print(summary.round(3).to_markdown())


def record(rows: pd.DataFrame, out: Path, results_dir: Path) -> pd.DataFrame:
    """Add one variant's rows to recipe.csv (replacing an earlier run's) and rewrite recipe.md."""
    table_path = out / "recipe.csv"
    if table_path.exists():
        earlier = pd.read_csv(table_path, dtype={"subject": str})
        rows = pd.concat([earlier[~earlier.variant.isin(rows.variant)], rows])
    rows.to_csv(table_path, index=False)
    summary = summarise(rows, atlas_rows(results_dir, sorted(rows.subject.unique())))
    (out / "recipe.md").write_text(summary.round(3).to_markdown() + "\n")
    return summary


if __name__ == "__main__":
    main()
