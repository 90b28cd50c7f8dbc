"""How often the measures' intervals (deepnuclei.uncertainty) hold the truth, on data our generator did not make.

Two benchmarks, each with the truth known:

* transfer: the three held-out sets of bench_heldout.py (another template, atlases and forward model, each
  session in its own pose), as `make bench-heldout` left them in results-heldout/<set>/ (QSM, preprocessed model
  inputs, the atlas's labels), with the QSM of every configured method (`qsm.methods`; `--make-qsm` runs the
  workflow for the maps they lack, about 2 minutes per session and method on one core). For each session, method (atlas, dbresunet,
  linus) and nucleus the table of samples holds the mean susceptibility and the volume of every segmentation
  sample (a network's `averaged`, `direct` and `mirrored` label maps, as the workflow's inference job writes them,
  `deepnuclei.infer.segment_files`, with the settings of config/apply.yaml; the atlas's one label map) on every
  QSM map. The truth is the mean of the true susceptibility (relative to its mean over the true brain mask, as
  the QSM's reference is its mean over its brain mask) within the true labels, and the true labels' volume, on
  the GRE grid. Coverage is measured
  leave-one-set-out: the factors are learnt on two sets and the intervals scored on the third.
* qsm: the QSM benchmark cases (benchmarks/qsm_cases.py, qsm-forward) as `bench_qsm_accuracy.py --out DIR`
  reconstructed them with every method: the true labels on every method's map (the QSM spread alone),
  leave-one-case-out.

    .venv/bin/python benchmarks/bench_uncertainty.py --make-qsm         # both, 90 %
    .venv/bin/python benchmarks/bench_uncertainty.py --coverage 0.8 --benchmarks transfer
    .venv/bin/python benchmarks/bench_uncertainty.py --write-factors src/deepnuclei/data_files/interval_factors.json

Writes into --out: samples_<benchmark>.tsv (every sample; read back where present), truth_<benchmark>.tsv, intervals.tsv (every held-out case with its interval,
per variant), coverage.tsv and uncertainty.md; the networks' segmentation samples are kept under samples/.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from deepnuclei import uncertainty as unc
from deepnuclei.evaluate import scored_names
from deepnuclei.infer import PASSES, segment_files
from deepnuclei.io import read_json, read_volume, same_grid
from deepnuclei.labels import dataset_mapping, dataset_structures, read_dseg_names, relabel
from deepnuclei.measures import chi_measures, volume_measures

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_heldout import SETS  # noqa: E402

NETWORKS = {"dbresunet": "nuclei7", "linus": "stn"}
ATLASES = ("atlas",)
KEYS = ["set", "session", "method", "structure"]
DEFAULT = {"segmentation": "averaged", "qsm": "sharptv"}
VARIANTS = {  # name: (symmetric, the spread's weights to choose from); the first is the module's default
    "symmetric": (True, (1.0,)),
    "asymmetric": (False, (1.0,)),
    "learnt weight": (True, unc.WEIGHTS),
    "floor only": (True, (0.0,)),
}
DEFAULT_VARIANT = next(iter(VARIANTS))


def config() -> dict:
    settings = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    apply = yaml.safe_load((ROOT / "config" / "apply.yaml").read_text())
    return {"qsm": settings["qsm"], "inference": {**settings["inference"], **apply["inference"]}}


def make_qsm(results_root: Path, bids_root: Path, methods: list[str], cores: int) -> None:
    """The QSM maps of every method that the held-out sets lack, by the workflow (config/apply.yaml on the set,
    `qsm.evaluate` listing every method; only those files asked for, so nothing else is redone)."""
    import os
    import subprocess
    import tempfile

    for set_name in SETS:
        results = results_root / set_name
        targets = [str(results / "qsm" / f"sub-{key}" / f"sub-{key}_space-SWI_desc-{method}_Chimap.nii.gz")
                   for key in sessions(results) for method in methods]
        targets = [target for target in targets if not Path(target).exists()]
        if not targets:
            continue
        overrides = {"bids_dir": str(bids_root / set_name / "bids"), "results_dir": str(results),
                     "qsm": {"evaluate": methods},
                     "models": {model: {"bundle": f"pretrained:{model}"} for model in NETWORKS}}
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as settings:
            yaml.safe_dump(overrides, settings)
        environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        subprocess.run(["snakemake", *targets, "--cores", str(cores), "--configfile", "config/apply.yaml",
                        settings.name], cwd=ROOT, env=environment, check=True)


def sessions(results: Path) -> list[str]:
    return sorted(path.name.removeprefix("sub-") for path in (results / "preprocess").glob("sub-*"))


def truth_maps(bids: Path, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The true labels (package numbering, matched by name through the set's dseg.tsv), susceptibility (ppm)
    and brain mask on the GRE grid, and the grid's affine."""
    folder = bids / "derivatives" / "truth"
    anat = folder / f"sub-{key}" / "anat"
    labels, affine = read_volume(anat / f"sub-{key}_space-SWI_dseg.nii.gz", dtype=np.int64)
    mapping = dataset_mapping(read_dseg_names(folder / "dseg.tsv"), folder / "dseg.tsv")
    chi, _ = read_volume(anat / f"sub-{key}_space-SWI_Chimap.nii.gz")
    brain, _ = read_volume(anat / f"sub-{key}_space-SWI_mask.nii.gz")
    return relabel(labels, mapping), chi, brain > 0, affine


def truth_rows(labels: np.ndarray, chi: np.ndarray, brain: np.ndarray, affine: np.ndarray,
               names: list[str]) -> dict[str, dict[str, float]]:
    """The truth of each structure: mean true susceptibility (ppb, relative to its brain mean) in the true
    labels, and their volume."""
    relative = chi - chi[brain].mean()
    volumes, chis = volume_measures(labels, affine, names), chi_measures(labels, relative, names)
    return {name: {"chi_mean_ppb": chis[name]["chi_mean_ppb"], "volume_mm3": volumes[name]["volume_mm3"]}
            for name in names}


def network_samples(results: Path, key: str, model: str, cache: Path, inference: dict) -> dict[str, Path]:
    """The network's segmentation samples of one session on the SWI grid, as the workflow's inference job writes
    them with `inference.flip` (`segment_files` with `out_passes`; cached); checks that `averaged` is the label
    map the workflow wrote."""
    folder = cache / f"sub-{key}"
    paths = {name: folder / f"sub-{key}_desc-{model}{name}_dseg.nii.gz" for name in PASSES}
    written = results / "segmentations" / model / f"sub-{key}" / f"sub-{key}_space-SWI_dseg.nii.gz"
    if not all(path.exists() for path in paths.values()):
        from deepnuclei.bundle import bundle_path, load_bundle

        bundle = bundle_path(f"pretrained:{model}")
        inputs = load_bundle(bundle).model["inputs"]
        preprocess = results / "preprocess" / f"sub-{key}"
        channels = [preprocess / f"sub-{key}_space-SWI_desc-model_{suffix}.nii.gz" for suffix in inputs]
        record = read_json(written.with_name(f"sub-{key}_inference.json"))  # as the workflow ran it
        segment_files(bundle, channels, paths["averaged"], folder / f"sub-{key}_desc-{model}_inference.json",
                      overlap=inference["overlap"], batch_size=inference["batch_size"],
                      mixed_precision=record["mixed_precision"],
                      padding_record=preprocess / f"sub-{key}_space-SWI_desc-model_padding.json", flip=True,
                      drop_misplaced=inference["drop_misplaced"], out_passes={name: paths[name] for name in PASSES[1:]})
    ours, _ = read_volume(paths["averaged"], dtype=np.uint8)
    theirs, _ = read_volume(written, dtype=np.uint8)
    agreement = float((ours == theirs).mean()) if ours.shape == theirs.shape else float("nan")
    print(f"  {model} sub-{key}: averaged sample agrees with the workflow's labels on {agreement:.6f} of voxels",
          flush=True)
    return paths


def heldout_tables(results_root: Path, bids_root: Path, out: Path, qsm_methods: list[str],
                   inference: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    samples, truths = [], []
    for set_name in SETS:
        results, bids = results_root / set_name, bids_root / set_name / "bids"
        for key in sessions(results):
            print(f"{set_name} sub-{key}", flush=True)
            true_labels, true_chi, brain, grid = truth_maps(bids, key)
            present = dataset_structures({v: v for v in np.unique(true_labels).tolist()})
            qsm = {}
            for method in qsm_methods:
                path = results / "qsm" / f"sub-{key}" / f"sub-{key}_space-SWI_desc-{method}_Chimap.nii.gz"
                if path.exists():
                    qsm[method], affine = read_volume(path)
                    if not same_grid(qsm[method].shape, affine, true_labels.shape, grid):
                        raise SystemExit(f"{path} is not on the truth's grid")
            missing = sorted(set(qsm_methods) - set(qsm))
            if missing:
                print(f"  no QSM of {', '.join(missing)}: those samples are left out", flush=True)
            label_sets = {method: {"averaged": results / "segmentations" / method / f"sub-{key}" /
                                   f"sub-{key}_space-SWI_dseg.nii.gz"} for method in ATLASES}
            for model in NETWORKS:
                label_sets[model] = network_samples(results, key, model, out / "samples" / set_name, inference)
            for method, paths in label_sets.items():
                names = scored_names(present, NETWORKS.get(method))
                truth = truth_rows(true_labels, true_chi, brain, grid, names)
                truths += [{"set": set_name, "session": key, "method": method, "structure": name, **values}
                           for name, values in truth.items()]
                for segmentation, path in paths.items():
                    labels, affine = read_volume(path, dtype=np.uint8)
                    volumes = volume_measures(labels, affine, names)
                    for qsm_method, chi in qsm.items():
                        chis = chi_measures(labels, chi, names)
                        samples += [{"set": set_name, "session": key, "method": method, "structure": name,
                                     "segmentation": segmentation, "qsm": qsm_method,
                                     "chi_mean_ppb": chis[name]["chi_mean_ppb"],
                                     "volume_mm3": volumes[name]["volume_mm3"]} for name in names]
    return pd.DataFrame(samples), pd.DataFrame(truths)


def qsm_case_tables(maps: Path, cache: Path, qsm_methods: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The QSM cases: the true labels on every method's map (`maps`: a bench_qsm_accuracy.py --out folder)."""
    samples, truths = [], []
    for folder in sorted(maps.glob("sub-*")):
        case = folder.name
        anat = cache / "derivatives" / "truth" / case / "anat"
        if not anat.exists():
            continue
        labels, grid = read_volume(anat / f"{case}_dseg.nii.gz", dtype=np.uint8)
        chi, _ = read_volume(anat / f"{case}_Chimap.nii.gz")
        brain, _ = read_volume(anat / f"{case}_mask.nii.gz")
        present = dataset_structures({v: v for v in np.unique(labels).tolist()})
        names = scored_names(present)
        truth = truth_rows(labels, chi, brain > 0, grid, names)
        truths += [{"set": "qsm", "session": case.removeprefix("sub-"), "method": "reference", "structure": name,
                    "chi_mean_ppb": values["chi_mean_ppb"], "volume_mm3": values["volume_mm3"]}
                   for name, values in truth.items()]
        for method in qsm_methods:
            path = folder / f"{case}_desc-{method}_Chimap.nii.gz"
            if path.exists():
                chis = chi_measures(labels, read_volume(path)[0], names)
                samples += [{"set": "qsm", "session": case.removeprefix("sub-"), "method": "reference",
                             "structure": name, "segmentation": "averaged", "qsm": method,
                             "chi_mean_ppb": chis[name]["chi_mean_ppb"], "volume_mm3": np.nan} for name in names]
    return pd.DataFrame(samples), pd.DataFrame(truths)


def with_truth(summary: pd.DataFrame, truths: pd.DataFrame) -> np.ndarray:
    long = truths.melt(id_vars=KEYS, value_vars=list(unc.MEASURES), var_name="measure", value_name="truth")
    return summary.merge(long, on=[*KEYS, "measure"], how="left").truth.to_numpy(float)


def group_of(method: str) -> str:
    return "network" if method in NETWORKS else "atlas" if method in ATLASES else "reference"


def cross_validated(summary: pd.DataFrame, truth: np.ndarray, fold: str, coverage: float) -> pd.DataFrame:
    """Each fold's cases with intervals from factors learnt on the other folds, for every variant."""
    tables = []
    for variant, (symmetric, weights) in VARIANTS.items():
        for held in summary[fold].unique():
            out = (summary[fold] == held).to_numpy()
            calibrations = unc.calibrate(summary[~out], truth[~out], coverage, symmetric=symmetric, weights=weights)
            table = unc.intervals(summary[out], calibrations)
            table["truth"] = truth[out]
            table["covered"] = unc.covered(table, truth[out])
            table["variant"] = variant
            tables.append(table)
    return pd.concat(tables, ignore_index=True)


def binomial_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95 % interval of a proportion."""
    if n == 0:
        return math.nan, math.nan
    p = hits / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def coverage_table(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    rows = []
    for values, rows_ in table.groupby(by, sort=False):
        hits, n = int(rows_.covered.sum()), len(rows_)
        low, high = binomial_interval(hits, n)
        half = (rows_.upper - rows_.lower) / 2
        relative = half / rows_.estimate.abs()
        rows.append({**dict(zip(by, values if isinstance(values, tuple) else (values,))), "cases": n,
                     "coverage": hits / n, "coverage_95ci": f"{low:.2f}-{high:.2f}",
                     "median_half_width": float(half.median()), "median_half_width_rel": float(relative.median()),
                     "median_abs_error": float((rows_.estimate - rows_.truth).abs().median()),
                     "factor_median": float(rows_.factor.median()),
                     "weights": "/".join(f"{w:g}" for w in sorted(rows_.weight.unique()))})
    return pd.DataFrame(rows)


def write_shipped_factors(path: Path, summary: pd.DataFrame, truth: np.ndarray, coverage: float,
                          measured: pd.DataFrame, argv: list[str]) -> list[unc.Calibration]:
    """The factors the workflow applies (`deepnuclei.uncertainty.read_factors`), of the default variant, learnt on
    every case of every benchmark (network and atlas: the three held-out sets; reference: the QSM cases), with
    the coverage the held-out folds measured (`measured`), the command, the date and the bundles' checksums."""
    import datetime
    import hashlib

    from deepnuclei.bundle import bundle_path

    symmetric, weights = VARIANTS[DEFAULT_VARIANT]
    calibrations = unc.calibrate(summary, truth, coverage, symmetric=symmetric, weights=weights)
    rows = measured[measured.variant == DEFAULT_VARIANT]
    unc.write_factors(
        path, calibrations, coverage=coverage, variant=DEFAULT_VARIANT,
        command=" ".join(["benchmarks/bench_uncertainty.py", *argv]),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        bundles={model: hashlib.sha256(Path(bundle_path(f"pretrained:{model}")).read_bytes()).hexdigest()
                 for model in NETWORKS},
        heldout_coverage=[{key: row[key] for key in ("benchmark", "measure", "group", "cases", "coverage",
                                                     "coverage_95ci")} for row in rows.to_dict("records")])
    return calibrations


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results-heldout", help="results-heldout/ of the sets")
    parser.add_argument("--bids", type=Path, default=ROOT / "resources" / "heldout", help="resources/heldout/")
    parser.add_argument("--qsm-maps", type=Path, default=ROOT / "results" / "benchmarks" / "qsm_accuracy",
                        help="a bench_qsm_accuracy.py --out folder (every method's map of every case)")
    parser.add_argument("--qsm-cache", type=Path, default=ROOT / "resources" / "qsm_benchmark",
                        help="its --cache (the cases and their truth)")
    parser.add_argument("--make-qsm", action="store_true",
                        help="reconstruct the QSM methods the held-out sets lack with the workflow first")
    parser.add_argument("--cores", type=int, default=1, help="for --make-qsm")
    parser.add_argument("--benchmarks", nargs="+", choices=["transfer", "qsm"], default=["transfer", "qsm"])
    parser.add_argument("--coverage", type=float, default=unc.COVERAGE)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "uncertainty")
    parser.add_argument("--write-factors", type=Path, metavar="JSON",
                        help="learn the factors on every case and write them there (the package's: "
                             "src/deepnuclei/data_files/interval_factors.json)")
    args = parser.parse_args(argv)
    settings = config()
    methods = list(settings["qsm"]["methods"])
    args.out.mkdir(parents=True, exist_ok=True)
    parts = []
    for benchmark in args.benchmarks:
        samples_path, truth_path = args.out / f"samples_{benchmark}.tsv", args.out / f"truth_{benchmark}.tsv"
        if samples_path.exists() and truth_path.exists():  # delete them to measure anew
            print(f"{benchmark}: samples and truth read from {args.out}")
            parts.append((pd.read_csv(samples_path, sep="\t"), pd.read_csv(truth_path, sep="\t")))
            continue
        if benchmark == "transfer":
            if args.make_qsm:
                make_qsm(args.results, args.bids, methods, args.cores)
            samples, truths = heldout_tables(args.results, args.bids, args.out, methods, settings["inference"])
        else:
            samples, truths = qsm_case_tables(args.qsm_maps, args.qsm_cache, methods)
        samples.to_csv(samples_path, sep="\t", index=False)
        truths.to_csv(truth_path, sep="\t", index=False)
        parts.append((samples, truths))
    samples = pd.concat([part[0] for part in parts], ignore_index=True)
    truths = pd.concat([part[1] for part in parts], ignore_index=True)
    default = {"segmentation": DEFAULT["segmentation"], "qsm": settings["qsm"]["method"]}
    summary = unc.summarise(samples, KEYS, default)
    summary.insert(0, "group", summary.method.map(group_of))
    truth = with_truth(summary, truths)
    known = ~np.isnan(truth)
    summary, truth = summary[known].reset_index(drop=True), truth[known]
    transfer = summary.set != "qsm"
    tables = []
    if transfer.any():
        tables.append(cross_validated(summary[transfer].reset_index(drop=True), truth[transfer.to_numpy()], "set",
                                      args.coverage))
    qsm_rows = ~transfer.to_numpy()
    if qsm_rows.any():
        tables.append(cross_validated(summary[qsm_rows].reset_index(drop=True), truth[qsm_rows], "session",
                                      args.coverage))
    table = pd.concat(tables, ignore_index=True)
    table["benchmark"] = np.where(table.set == "qsm", "qsm (leave one case out)", "transfer (leave one set out)")
    table.to_csv(args.out / "intervals.tsv", sep="\t", index=False)
    overall = coverage_table(table, ["benchmark", "variant", "measure", "group"])
    by_set = coverage_table(table[table.variant == DEFAULT_VARIANT], ["benchmark", "measure", "group", "set"])
    by_method = coverage_table(table[table.variant == DEFAULT_VARIANT], ["benchmark", "measure", "method"])
    nucleus = table.structure.str.rsplit("_", n=1).str[0]
    by_nucleus = coverage_table(table[table.variant == DEFAULT_VARIANT].assign(nucleus=nucleus),
                                ["benchmark", "measure", "group", "nucleus"])
    coverage = pd.concat([overall, by_set, by_method, by_nucleus], ignore_index=True)
    coverage.to_csv(args.out / "coverage.tsv", sep="\t", index=False)
    text = [f"Intervals for {args.coverage:.0%} coverage (deepnuclei.uncertainty), measured on data our generator "
            "did not make\n"]
    for title, part in (("every variant", overall), (f"by set ({DEFAULT_VARIANT})", by_set),
                        (f"by method ({DEFAULT_VARIANT})", by_method), (f"by nucleus ({DEFAULT_VARIANT})", by_nucleus)):
        text += [f"## {title}\n", part.to_markdown(index=False, floatfmt=".3g"), ""]
    (args.out / "uncertainty.md").write_text("\n".join(text))
    print("\n".join(text))
    if args.write_factors:
        calibrations = write_shipped_factors(args.write_factors, summary, truth, args.coverage, overall,
                                             sys.argv[1:] if argv is None else argv)
        print(f"{args.write_factors}: " + ", ".join(f"{c.measure} {c.group} {c.factor:.3g} ({c.cases} cases)"
                                                   for c in calibrations))


if __name__ == "__main__":
    main()
