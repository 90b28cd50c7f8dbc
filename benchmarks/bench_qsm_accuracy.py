"""Score every QSM method on cases made by another group's forward model (`qsm_cases.py`, qsm-forward).

Each case is simulated once into `--cache` (BIDS, with the true susceptibility, brain mask and labels
under `derivatives/truth`); each method of the config's `qsm.methods` (and any `--extra` QSMParams
overrides) reconstructs it with `deepnuclei.qsm.pipeline.run_qsm`, as the workflow does. Scores, in
the truth's brain mask where the method's susceptibility is valid, both maps demeaned there: NRMSE,
HFEN, XSIM (QSM-CI's scorer), the mean error per nucleus (both sides pooled, ppb), the share of the
brain scored, the QSM's own QC measures (`qc_shading_ppb`, `qc_brain_kept`: no truth needed) and the
wall time. Writes `qsm_accuracy.tsv`, `qsm_accuracy.md` and a QC figure per
case and method into `--out`.

    make bench-qsm                                   # every case, every configured method
    .venv/bin/python benchmarks/bench_qsm_accuracy.py --cases 3T-thick --methods sharptv vsharptv
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import qsm_cases  # noqa: E402

from deepnuclei.metrics import demeaned, qsm_metrics  # noqa: E402
from deepnuclei.qsm.pipeline import QSMParams, run_qsm  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NUCLEI = ("CN", "PUT", "GP", "THA", "SN", "RN", "STN", "DN")
NUCLEUS_LABELS = {nucleus: [label for name, label in qsm_cases.STRUCTURE_LABELS.items() if name.startswith(nucleus + "_")]
                  for nucleus in NUCLEI}


def build_cases(cases: list[qsm_cases.Case], cache: Path) -> dict[str, Path]:
    """Simulate the cases not yet in `cache`, sharing the head model and its field where they can."""
    folders = {case.name: cache / f"sub-{case.name.replace('-', '')}" for case in cases}
    groups = defaultdict(list)
    for case in cases:
        done = folders[case.name] / "case.json"
        if not done.exists() or json.loads(done.read_text()) != json.loads(json.dumps(qsm_cases.asdict(case))):
            groups[qsm_cases.model_key(case)].append(case)
    for key, group in groups.items():
        model = qsm_cases.head_model(*key)
        fields = {}
        for case in group:
            key = qsm_cases.field_key(case)
            if key not in fields:
                fields[key] = qsm_cases.shimmed_field(model, case)
            start = time.perf_counter()
            qsm_cases.simulate(case, cache, model, fields[key])
            print(f"simulated {case.name} in {time.perf_counter() - start:.0f} s", flush=True)
    return folders


def nucleus_errors(chi: np.ndarray, truth: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Mean error per nucleus (ppb, both sides pooled) of the maps demeaned in `mask`."""
    chi, truth = demeaned(chi, mask), demeaned(truth, mask)
    errors = {}
    for nucleus, values in NUCLEUS_LABELS.items():
        region = np.isin(labels, values) & mask
        if region.any():
            errors[nucleus] = 1000.0 * float(chi[region].mean() - truth[region].mean())
    return errors


def score(folder: Path, method: str, params: QSMParams, out: Path) -> dict:
    subject = folder.name
    echoes, phases, sidecars = qsm_cases.echo_files(folder)
    stem = out / folder.name / f"{subject}_desc-{method}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = run_qsm(echoes, phases, sidecars, f"{stem}_Chimap.nii.gz", f"{stem}_mask.nii.gz",
                     f"{stem}_localfield.nii.gz", f"{stem}_qc.png", params)
    seconds = time.perf_counter() - start
    truth = qsm_cases.truth(folder, "Chimap").astype(np.float32)
    brain = qsm_cases.truth(folder, "mask") > 0
    labels = qsm_cases.truth(folder, "dseg")
    scored = brain & result["mask"]
    metrics = qsm_metrics(result["chi"], truth, scored)
    errors = nucleus_errors(result["chi"], truth, labels, scored)
    return {"case": json.loads((folder / "case.json").read_text())["name"], "method": method,
            "nrmse": metrics["nrmse_percent"] / 100, "hfen": metrics["hfen_percent"] / 100, "xsim": metrics["xsim"],
            **{f"{nucleus}_ppb": errors.get(nucleus, np.nan) for nucleus in NUCLEI},
            "max_abs_ppb": max(abs(value) for value in errors.values()), "brain_scored": scored.sum() / brain.sum(),
            "qc_shading_ppb": result["qc"]["shading_ppb"], "qc_brain_kept": result["qc"]["brain_kept_fraction"],
            "seconds": seconds}


def configured_methods(config_path: Path) -> dict[str, QSMParams]:
    config = yaml.safe_load(config_path.read_text())["qsm"]
    return {name: QSMParams.from_config(overrides or {}) for name, overrides in config["methods"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(qsm_cases.CASES), choices=[*qsm_cases.CASES, "quick-3T"])
    parser.add_argument("--methods", nargs="+", help="names from the config's qsm.methods (default: all)")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=JSON",
                        help='another method as QSMParams overrides, e.g. lbv=\'{"background": "lbv"}\'')
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--cache", type=Path, default=ROOT / "resources" / "qsm_benchmark")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "qsm_accuracy")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    methods = configured_methods(args.config)
    methods = {name: methods[name] for name in (args.methods or methods)}
    for extra in args.extra:
        name, overrides = extra.split("=", 1)
        methods[name] = QSMParams.from_config(json.loads(overrides))
    cases = [qsm_cases.QUICK if name == "quick-3T" else qsm_cases.CASES[name] for name in args.cases]
    folders = build_cases(cases, args.cache)
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)
    for case in cases:
        for method, params in methods.items():
            rows.append(score(folders[case.name], method, params, args.out))
            row = rows[-1]
            print(f"{case.name:<16} {method:<12} NRMSE {row['nrmse']:.2f}  HFEN {row['hfen']:.2f}  XSIM "
                  f"{row['xsim']:.2f}  max |nucleus error| {row['max_abs_ppb']:.0f} ppb  {row['seconds']:.0f} s",
                  flush=True)
            table = pd.DataFrame(rows)  # rewritten after every score: an interrupted run keeps what it did
            table.to_csv(args.out / "qsm_accuracy.tsv", sep="\t", index=False, float_format="%.4g")
            (args.out / "qsm_accuracy.md").write_text(table.to_markdown(index=False, floatfmt=".2f") + "\n")
    print(f"wrote {args.out / 'qsm_accuracy.tsv'} and qsm_accuracy.md; torch threads {args.threads}")


if __name__ == "__main__":
    main()
