"""Nucleus measures: volume, centre of mass and susceptibility of each session's labels, and the group tables."""

from __future__ import annotations

import argparse

from .options import add_command, log


def measures(args: argparse.Namespace) -> None:
    from ..measures import structures_of, write_session_measures

    table = write_session_measures(structures_of(args.lookup, args.task), args.out, args.out_qsmxt,
                                   t1_labels=args.t1_labels, swi_labels=args.swi_labels, qsm=args.qsm, t1=args.t1)
    log.info("%s on sub-%s, volume (mm3) and mean susceptibility (ppb) per structure:\n%s", args.method, args.subject,
             table.set_index("structure")[["volume_mm3", "chi_mean_ppb"]].to_string())


def merge_measures(args: argparse.Namespace) -> None:
    from ..measures import merge_measures as merge

    table = merge(args.plan, args.out_tsv, args.out_csv, args.out_qsmxt)
    log.info("%d rows: %d sessions x methods", len(table), len(table.groupby(["participant_id", "session_id", "method"],
                                                                            dropna=False)))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command(subparsers, "measures", measures, "volume, centre of mass and susceptibility of every structure "
                                                        "of one session's label maps (a TSV)")
    sub.add_argument("--subject", required=True, help="the session key (sub-<key>), for the log")
    sub.add_argument("--method", required=True, help="the method (or `reference`), for the log")
    sub.add_argument("--t1-labels", help="the labels on the T1 grid: volumes and centres of mass")
    sub.add_argument("--t1", help="the native T1 (its affine: world mm and voxel indices)")
    sub.add_argument("--swi-labels", help="the labels on the SWI grid: susceptibility (volumes without a T1)")
    sub.add_argument("--qsm", help="the susceptibility map (ppm) on the SWI grid")
    sub.add_argument("--lookup", required=True, help="dseg.tsv (package numbering) of the structures the method writes")
    sub.add_argument("--task", help="a model's task: only its structures")
    sub.add_argument("--out", required=True, help="TSV of one row per structure")
    sub.add_argument("--out-qsmxt", help="CSV of the same structures' statistics in QSMxT's columns")

    sub = add_command(subparsers, "merge-measures", merge_measures,
                      "the group tables of nucleus measures: long TSV and wide CSV")
    sub.add_argument("--plan", required=True, help="plan file measures.json: JSON list of {participant, session, "
                                                   "method, out, ...}")
    sub.add_argument("--out-tsv", required=True, help="every session x method x structure (BIDS TSV, n/a)")
    sub.add_argument("--out-csv", required=True, help="a row per session x method, a column per structure and "
                                                      "measure (CSV, NA)")
    sub.add_argument("--out-qsmxt", help="every case's QSMxT statistics (CSV, NA; the cases' `qsmxt` files)")
