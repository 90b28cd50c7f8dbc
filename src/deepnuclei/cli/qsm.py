"""Susceptibility maps: from the phase, from an existing map, and scored against the demo's truth."""

from __future__ import annotations

import argparse

from .options import add_command, add_settings, add_sources, add_threads, log


def qsm(args: argparse.Namespace) -> None:
    import torch

    from ..qsm.pipeline import QSMParams, run_qsm

    torch.set_num_threads(args.threads)
    result = run_qsm(args.magnitudes, args.phases, args.sidecars, args.out_chi, args.out_mask, args.out_field,
                     args.qc, QSMParams.from_config(args.settings), out_record=args.out_record, sources=args.sources)
    log.info("QSM step times (s): %s", {step: round(seconds, 2) for step, seconds in result["timings_s"].items()})


def existing_qsm(args: argparse.Namespace) -> None:
    from ..io import read_json
    from ..qsm.existing import import_existing_qsm

    checked = read_json(args.validated)["existing_qsm"]
    import_existing_qsm(checked, args.magnitudes, args.out_chi, args.out_record, args.qc, args.sources)
    log.info("%s (%s) written in ppm: %s", checked["source"], checked["unit"], args.out_chi)


def qsm_metrics(args: argparse.Namespace) -> None:
    import pandas as pd

    from ..io import write_text_atomic
    from ..metrics import qsm_metrics_from_files
    from ..plan_files import QsmMetricCase

    rows = [{"subject": case.subject, "method": case.method,
             **qsm_metrics_from_files(case.chi, case.truth, case.mask, case.dseg, case.truth_mask)}
            for case in QsmMetricCase.read_list(args.cases)]
    write_text_atomic(args.out, pd.DataFrame(rows).round(3).to_csv(index=False))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command(subparsers, "qsm", qsm, "susceptibility map from multi-echo SWI magnitude and phase")
    sub.add_argument("--magnitudes", nargs="+", required=True, help="one per echo, in echo order")
    sub.add_argument("--phases", nargs="+", required=True)
    sub.add_argument("--sidecars", nargs="+", required=True, help="phase JSON sidecars (EchoTime, MagneticFieldStrength)")
    add_settings(sub, "QSMParams overrides")
    add_threads(sub)
    sub.add_argument("--out-chi", required=True)
    sub.add_argument("--out-mask", required=True)
    sub.add_argument("--out-field", required=True)
    sub.add_argument("--qc", required=True)
    sub.add_argument("--out-record", required=True, help="JSON: units, reference, settings, step times, QC measures")
    add_sources(sub)

    sub = add_command(subparsers, "existing-qsm", existing_qsm,
                      "an existing QSM map (its unit as validate-inputs found it) in ppm")
    sub.add_argument("--validated", required=True, help="validate-inputs' record of the session (existing_qsm)")
    sub.add_argument("--magnitudes", nargs="+", required=True, help="the SWI magnitudes on its grid (QC picture)")
    sub.add_argument("--out-chi", required=True)
    sub.add_argument("--out-record", required=True, help="JSON: units, reference, source and its unit")
    add_sources(sub)
    sub.add_argument("--qc", required=True)

    sub = add_command(subparsers, "qsm-metrics", qsm_metrics,
                      "QSM challenge metrics against the demo's true susceptibility")
    sub.add_argument("--cases", required=True,
                     help="plan file: JSON list of {subject, method, chi, mask, truth, dseg, truth_mask}")
    sub.add_argument("--out", required=True)
