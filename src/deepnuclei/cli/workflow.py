"""The workflow as a whole: its plan without Snakemake, and a finished run's headline."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_command, log


def headline(args: argparse.Namespace) -> None:
    from ..headline import headline as headline_text

    print(headline_text(args.results, args.report))


def plan(args: argparse.Namespace) -> None:
    from snakemake.exceptions import WorkflowError

    from ..plan import PlanError, make_plan, plan_files, write_plan_files
    from ..plan_command import describe, load_config

    try:
        made = make_plan(load_config(args.config))
    except (PlanError, WorkflowError) as error:  # the setting or file at fault, as Snakemake would report it
        raise SystemExit(f"deepnuclei plan: {error}") from None
    written = write_plan_files(made, plan_files(made), args.out)
    log.info("%d plan files in %s", len(written), Path(next(iter(written.values()))).parent)
    if args.print:
        print(describe(made))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command(subparsers, "headline", headline,
                      "where the report is and the run's headline numbers, from its tables")
    sub.add_argument("--results", default="results", help="the run's results_dir")
    sub.add_argument("--report", default="results/report.html")

    sub = add_command(subparsers, "plan", plan, "the workflow's plan without Snakemake: write its files (results/plan/) "
                                                "and sum it up")
    sub.add_argument("--config", action="append", default=[], metavar="FILE",
                     help="a config file merged over config/config.yaml, as snakemake --configfile; repeatable")
    sub.add_argument("--print", action="store_true", help="print the summary: sessions, models, methods, notes")
    sub.add_argument("--out", help="write the plan files here instead of <results_dir>/plan/")
