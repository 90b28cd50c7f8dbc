"""The `deepnuclei` command: one subcommand per workflow step, each a thin call into a stage module.

Snakemake rules call these; they also work by hand, e.g. `deepnuclei demo-template --out-dir t/`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .io import InputError

log = logging.getLogger("deepnuclei")


def demo_template(args: argparse.Namespace) -> None:
    from .demo.template import export_template_images, prepare_template, save_template

    template = prepare_template()
    save_template(template, Path(args.out_dir) / "template.npz")
    export_template_images(template, args.out_dir)


def demo_subject(args: argparse.Namespace) -> None:
    from .demo.cohort import generate_subject
    from .demo.template import load_template

    record = generate_subject(load_template(args.template), args.subject, json.loads(args.settings),
                              Path(args.bids_dir), Path(args.truth_dir), Path(args.qc) if args.qc else None)
    volumes = ", ".join(f"{name} {volume:.0f}" for name, volume in record["volume_mm3_t1"].items())
    log.info("sub-%s volumes (mm3, T1 space): %s", args.subject, volumes)


def demo_dataset(args: argparse.Namespace) -> None:
    from .demo.cohort import write_dataset_files

    write_dataset_files(Path(args.bids_dir), json.loads(args.settings))


def models(args: argparse.Namespace) -> None:
    from .models import models_table

    table = models_table()
    print(table.to_markdown(index=False) if args.markdown else table.to_string(index=False))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepnuclei", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, function: Callable[[argparse.Namespace], None], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(function=function)
        return sub

    sub = command("demo-template", demo_template, "prepare the template and atlas the demo cohort is built from")
    sub.add_argument("--out-dir", required=True)

    sub = command("demo-subject", demo_subject, "simulate one demo subject (BIDS files + truth)")
    sub.add_argument("subject", help="subject label, digits (e.g. 01)")
    sub.add_argument("--template", required=True, help="template.npz from demo-template")
    sub.add_argument("--bids-dir", required=True)
    sub.add_argument("--truth-dir", required=True)
    sub.add_argument("--qc", help="QC PNG to write")
    sub.add_argument("--settings", required=True, help="the config's demo section as JSON")

    sub = command("demo-dataset", demo_dataset, "write the demo dataset's BIDS description files")
    sub.add_argument("--bids-dir", required=True)
    sub.add_argument("--settings", required=True, help="the config's demo section as JSON")
    sub = command("models", models, "print every model: dims, channels, parameters, bytes, the paper's count")
    sub.add_argument("--markdown", action="store_true", help="as a Markdown table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        args.function(args)
    except InputError as error:
        log.error("bad input: %s", error)
        return 2
    log.info("%s done in %.1f s", args.command, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
