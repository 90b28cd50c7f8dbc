"""The shipped models on labelled data that another generator made: one table, one command.

The pretrained bundles (config/pretrained.yaml) learn from deepnuclei's own simulator: the MNI152 template
with Talairach labels, a field made by our forward model. The held-out sets come from
benchmarks/transfer_dataset.py instead: the ICBM 2009a template with Neuromorphometrics and Talairach labels
in that dataset's own numbering, the signal from qsm-forward (the QSMxT team's forward model), T1s with
skull and scalp at another intensity scale, each in its own head pose:

    3t-oblique   3 T, 4 echoes 5-23 ms, 0.8 x 0.8 x 2 mm, slab tilted 3-10 degrees
    7t-oblique   7 T, 5 echoes 4-20 ms, 0.8 x 0.8 x 1 mm, slab tilted 15-25 degrees
    3t-thick     3 T, 4 echoes 5-23 ms, 1 x 1 x 3 mm, slab tilted 0-5 degrees

Each set is made once (resources/heldout/<set>/, about 2 minutes and 9 GB per participant), then applied
with config/apply.yaml (the atlas baseline and the bundles, which read only the images) into
results-heldout/<set>/, where the workflow scores every method against the set's own labels on the GRE
grid, matched by name. The table is each nucleus's Dice (left and right averaged, then over participants)
on the GRE grid, per set and method, with the issue's bars: DB-ResUNet at least the atlas on every nucleus,
mean >= 0.80, RN, SN, DN >= 0.70; LiNUS's STN at least the atlas's and >= 0.65.

    .venv/bin/python benchmarks/bench_heldout.py                         # the package's bundles
    .venv/bin/python benchmarks/bench_heldout.py --bundles results/bundles --sets 3t-oblique

Writes results/benchmarks/heldout/heldout.csv (set, method, nucleus, dice) and heldout.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import transfer_dataset

ROOT = Path(__file__).resolve().parents[1]
SETS: dict[str, list[str]] = {
    "3t-oblique": ["--participants", "t01", "t02"],
    "7t-oblique": ["--participants", "s01", "s02", "--b0-tesla", "7", "--swi-voxel-mm", "0.8", "0.8", "1",
                   "--slices", "100", "--tilt-deg", "15", "25", "--echo-times-ms", "4", "8", "12", "16", "20"],
    "3t-thick": ["--participants", "k01", "k02", "--swi-voxel-mm", "1", "1", "3", "--slices", "40",
                 "--tilt-deg", "0", "5"],
}
NUCLEI = ("CN", "GP", "PUT", "THA", "SN", "RN", "DN")
MODELS = {"dbresunet": NUCLEI, "linus": ("STN",)}
BARS_MEAN, BARS_SMALL, BARS_STN = 0.80, 0.70, 0.65
SMALL_NUCLEI = ("RN", "SN", "DN")


def make_set(name: str, out: Path) -> Path:
    bids = out / "bids"
    if not (ROOT / bids / "dataset_description.json").is_file():
        transfer_dataset.main(["--out", str(ROOT / out), "--swi-labels", *SETS[name]])
    return bids


def apply_bundles(bids: Path, results: Path, bundles: str, cores: int, inference: dict[str, bool]) -> None:
    """config/apply.yaml on the set, with the bundles given (`pretrained:<model>` or files in a folder) and
    the `inference` settings given over apply.yaml's."""
    overrides = {"bids_dir": str(bids), "results_dir": str(results), **({"inference": inference} if inference else {}),
                 "models": {model: {"bundle": f"pretrained:{model}" if bundles == "pretrained"
                                    else str(Path(bundles) / f"{model}.zip")} for model in MODELS}}
    settings = ROOT / results / "heldout_config.yaml"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(yaml.safe_dump(overrides))
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["snakemake", "--cores", str(cores), "--configfile", "config/apply.yaml", str(settings),
                    "--logger", "deepnuclei"], cwd=ROOT, env=environment, check=True)


def nucleus_dice(overlap_csv: Path, set_name: str) -> pd.DataFrame:
    """Dice per method and nucleus on the GRE grid: left and right averaged, then participants."""
    overlap = pd.read_csv(overlap_csv)
    overlap = overlap[overlap.space == "SWI"].copy()
    overlap["nucleus"] = overlap.structure.str.rsplit("_", n=1).str[0]
    wanted = overlap.nucleus.isin(NUCLEI + ("STN",))
    per_subject = overlap[wanted].groupby(["method", "nucleus", "subject"]).dice.mean()
    table = per_subject.groupby(["method", "nucleus"]).mean().reset_index()
    table.insert(0, "set", set_name)
    return table


def verdicts(table: pd.DataFrame) -> list[str]:
    """The issue's bars, per set: which hold and which do not."""
    lines = []
    for set_name, rows in table.groupby("set", sort=False):
        dice = rows.set_index(["method", "nucleus"]).dice
        network = dice.get("dbresunet")
        atlas = dice.get("atlas")
        if network is None or atlas is None:
            continue
        losses = [n for n in NUCLEI if n in network and n in atlas and network[n] < atlas[n]]
        small = [n for n in SMALL_NUCLEI if network.get(n, 0.0) < BARS_SMALL]
        mean = float(network.reindex(NUCLEI).mean())
        lines.append(f"- {set_name}: DB-ResUNet mean {mean:.2f} ({'meets' if mean >= BARS_MEAN else 'below'} "
                     f"{BARS_MEAN}); loses to the atlas on {', '.join(losses) or 'no nucleus'}; below "
                     f"{BARS_SMALL}: {', '.join(small) or 'none of RN, SN, DN'}")
        stn = dice.get("linus", pd.Series(dtype=float)).get("STN")
        if stn is not None:
            atlas_stn = atlas.get("STN", float("nan"))
            lines.append(f"- {set_name}: LiNUS STN {stn:.2f} against the atlas's {atlas_stn:.2f} "
                         f"({'meets' if stn >= max(atlas_stn, BARS_STN) else 'misses'} the bar)")
    return lines


def markdown(table: pd.DataFrame) -> str:
    wide = table.pivot_table(index=["set", "method"], columns="nucleus", values="dice", sort=False)
    wide = wide.reindex(columns=[n for n in (*NUCLEI, "STN") if n in wide.columns])
    wide["mean (7 nuclei)"] = wide.reindex(columns=list(NUCLEI)).mean(axis=1, skipna=False)
    body = wide.reset_index().to_markdown(index=False, floatfmt=".2f")
    return (f"Dice on held-out sets (GRE grid, left/right averaged)\n\n{body}\n\n" + "\n".join(verdicts(table)) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--bundles", default="pretrained",
                        help="'pretrained' (the package's bundles) or a folder of <model>.zip")
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                        help="average over the image and its left-right mirror (default: config/apply.yaml's)")
    parser.add_argument("--drop-misplaced", action=argparse.BooleanOptionalAction, default=None,
                        help="drop the pieces of a structure far from where training put it (default: apply.yaml's)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "heldout")
    args = parser.parse_args(argv)
    tables = []
    for name in args.sets:
        bids = make_set(name, Path("resources") / "heldout" / name)
        results = Path("results-heldout") / name
        inference = {key: value for key, value in (("flip", args.flip), ("drop_misplaced", args.drop_misplaced))
                     if value is not None}
        apply_bundles(bids, results, args.bundles, args.cores, inference)
        tables.append(nucleus_dice(ROOT / results / "evaluation" / "overlap.csv", name))
    table = pd.concat(tables, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "heldout.csv", index=False)
    (args.out / "heldout.md").write_text(markdown(table))
    print(markdown(table))


if __name__ == "__main__":
    main()
