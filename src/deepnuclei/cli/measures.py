"""Nucleus measures: volume, centre of mass and susceptibility of each session's labels, and the group tables."""

from __future__ import annotations

import argparse

from .options import add_command, log


def measures(args: argparse.Namespace) -> None:
    from ..io import InputError, read_json
    from ..measures import write_cases_measures
    from ..plan_files import MeasuresCase

    cases = [MeasuresCase.from_json(case) for case in read_json(args.plan) if case["subject"] == args.subject]
    if not cases:
        raise InputError(args.plan, f"no measures case of sub-{args.subject}")
    for method, table in write_cases_measures(cases).items():
        log.info("%s on sub-%s, volume (mm3) and mean susceptibility (ppb) per structure:\n%s", method, args.subject,
                 table.set_index("structure")[["volume_mm3", "chi_mean_ppb"]].to_string())
    if args.qc:
        from ..qc import cases_qc

        cases_qc(args.qc, cases, f"sub-{args.subject}")


def merge_measures(args: argparse.Namespace) -> None:
    from ..measures import merge_measures as merge

    table = merge(args.plan, args.out_tsv, args.out_csv, args.out_qsmxt, args.out_figure)
    log.info("%d rows: %d sessions x methods", len(table), len(table.groupby(["participant_id", "session_id", "method"],
                                                                            dropna=False)))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command(subparsers, "measures", measures, "volume, centre of mass and susceptibility of every structure "
                                                        "of one session's label maps, every method's (a TSV and a QSMxT "
                                                        "CSV each), and their QC picture")
    sub.add_argument("--plan", required=True, help="plan file measures.json: JSON list of {subject, method, "
                                                   "t1_labels, t1, swi_labels, qsm, lookup, task, out, qsmxt, ...}")
    sub.add_argument("--subject", required=True, help="the session key (sub-<key>): its cases are measured")
    sub.add_argument("--qc", help="PNG: the cases' labels over the session's T1 and QSM, a row per method")

    sub = add_command(subparsers, "merge-measures", merge_measures,
                      "the group tables of nucleus measures: long TSV and wide CSV")
    sub.add_argument("--plan", required=True, help="plan file measures.json: JSON list of {participant, session, "
                                                   "method, out, ...}")
    sub.add_argument("--out-tsv", required=True, help="every session x method x structure (BIDS TSV, n/a)")
    sub.add_argument("--out-csv", required=True, help="a row per session x method, a column per structure and "
                                                      "measure (CSV, NA)")
    sub.add_argument("--out-qsmxt", help="every case's QSMxT statistics (CSV, NA; the cases' `qsmxt` files)")
    sub.add_argument("--out-figure", help="PNG: the susceptibility and volume of every case with their intervals")
