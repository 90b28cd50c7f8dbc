"""Scoring and showing the methods: overlap per case and merged, the papers' tables and figures, and the pictures
of every method's labels."""

from __future__ import annotations

import argparse

from .options import add_command, log, name_and_path


def overlap_session(args: argparse.Namespace) -> None:
    from ..evaluate import write_overlap_case
    from ..labels import read_dseg_tsv
    from ..plan_files import OverlapCase

    structures = list(read_dseg_tsv(args.lookup).values())
    cases = [case for case in OverlapCase.read_list(args.plan) if case.subject == args.subject]
    if not cases:
        raise SystemExit(f"{args.plan}: no case of session {args.subject}")
    for case in cases:
        table = write_overlap_case({**case.to_json(), "structures": structures}, case.out, args.largest_component)
        log.info("%s on sub-%s, Dice per structure:\n%s", case.method, case.subject,
                 table.set_index("structure")["dice"].round(3).to_string())


def merge_overlap(args: argparse.Namespace) -> None:
    from ..evaluate import merge_overlap as merge, summary_by_method
    from ..plan_files import OverlapCase

    table = merge([case.out for case in OverlapCase.read_list(args.cases)], args.out_csv, args.out_markdown)
    log.info("mean Dice per structure and method:\n%s", summary_by_method(table).to_string())


def evaluation_tables(args: argparse.Namespace) -> None:
    import pandas as pd

    from ..plan_files import EvaluationPlan
    from ..tables import write_evaluation_tables

    plan = EvaluationPlan.read(args.plan)
    overlap = pd.read_csv(args.overlap, dtype={"subject": str})
    written = write_evaluation_tables(overlap, args.out_dir, plan.timings, plan.ablations, plan.models, plan.participants)
    log.info("wrote %d table files to %s", len(written), args.out_dir)


def linus_tables(args: argparse.Namespace) -> None:
    import pandas as pd

    from ..experiments import write_experiment_tables
    from ..plan_files import ExperimentsPlan

    overlap = pd.read_csv(args.overlap, dtype={"subject": str})
    written = write_experiment_tables(overlap, ExperimentsPlan.read(args.plan), args.out_dir)
    log.info("wrote %d table files to %s", len(written), args.out_dir)


def evaluation_figures(args: argparse.Namespace) -> None:
    import pandas as pd

    from ..figures import write_evaluation_figures

    written = write_evaluation_figures(pd.read_csv(args.overlap, dtype={"subject": str}), args.methods, args.out_dir,
                                       args.qsm_reference, args.workers)
    log.info("wrote %d figure files to %s", len(written), args.out_dir)


def overlays(args: argparse.Namespace) -> None:
    from ..qc import segmentation_overlays

    segmentation_overlays(args.image, dict(args.labels), args.out, args.title)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command(subparsers, "overlap-session", overlap_session,
                      "Dice, precision, recall, distances and volumes of every method that segmented one session, "
                      "against its reference labels (a CSV per method, at its case's `out`)")
    sub.add_argument("--plan", required=True, help="an overlap plan file (overlap.json): its cases")
    sub.add_argument("--subject", required=True, help="the session key (sub-<key>) whose cases to score")
    sub.add_argument("--largest-component", action="store_true",
                     help="also score the labels cleaned up to each structure's largest component (method <method>+lcc)")
    sub.add_argument("--lookup", required=True, help="dseg.tsv of the structures the reference labels hold")

    sub = add_command(subparsers, "merge-overlap", merge_overlap,
                      "one overlap table (CSV + Markdown summary) from per-case CSVs")
    sub.add_argument("--cases", required=True, help="plan file: JSON list of cases, each with its CSV as `out`")
    sub.add_argument("--out-csv", required=True)
    sub.add_argument("--out-markdown", required=True)

    sub = add_command(subparsers, "evaluation-tables", evaluation_tables,
                      "the papers' tables from the overlap table and the benchmarks")
    sub.add_argument("--overlap", required=True, help="overlap.csv from `deepnuclei overlap`")
    sub.add_argument("--plan", required=True, help="plan file evaluation.json: {timings: [{method, subject, "
                                                   "benchmark, record}], models: {...}, ablations: {rate, inputs}, "
                                                   "participants: {tsv, cohorts}}")
    sub.add_argument("--out-dir", required=True)

    sub = add_command(subparsers, "linus-tables", linus_tables,
                      "the LiNUS paper's Tables VI-IX and 2D vs 2.5D on our cohorts")
    sub.add_argument("--overlap", required=True, help="linus_experiments_overlap.csv from `deepnuclei overlap`")
    sub.add_argument("--plan", required=True, help="plan file linus_experiments.json: {experiments, models, cohorts, "
                                                   "timings, slice_cases}")
    sub.add_argument("--out-dir", required=True)

    sub = add_command(subparsers, "evaluation-figures", evaluation_figures,
                      "scatter, Bland-Altman and Dice box plots (PNG + SVG)")
    sub.add_argument("--overlap", required=True, help="overlap.csv from `deepnuclei overlap`")
    sub.add_argument("--methods", nargs="*", default=[], help="models to plot against the reference")
    sub.add_argument("--qsm-reference", default="mask",
                     help="the QSM's qsm.reference (existing: existing maps'), stated on the axes")
    sub.add_argument("--out-dir", required=True)
    sub.add_argument("--workers", type=int, default=1, help="processes drawing the methods' figures")

    sub = add_command(subparsers, "overlays", overlays,
                      "every method's labels over one image, three views, a row per method")
    sub.add_argument("--image", required=True)
    sub.add_argument("--labels", nargs="+", required=True, type=name_and_path, help="NAME=DSEG pairs, the reference first")
    sub.add_argument("--title", default="")
    sub.add_argument("--out", required=True)
