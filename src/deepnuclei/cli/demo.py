"""The simulated demo cohort: its template, each subject, the dataset's description files."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_command, add_settings, log


def demo_template(args: argparse.Namespace) -> None:
    from ..demo.template import export_template_images, prepare_template, save_template

    template = prepare_template()
    save_template(template, Path(args.out_dir) / "template.npz")
    export_template_images(template, args.out_dir)


def demo_subject(args: argparse.Namespace) -> None:
    from ..demo.cohort import generate_subject
    from ..demo.template import load_template

    record = generate_subject(load_template(args.template), args.subject, args.settings,
                              Path(args.bids_dir), Path(args.truth_dir), Path(args.qc) if args.qc else None)
    volumes = ", ".join(f"{name} {volume:.0f}" for name, volume in record["volume_mm3_t1"].items())
    log.info("sub-%s volumes (mm3, T1 space): %s", args.subject, volumes)


def demo_dataset(args: argparse.Namespace) -> None:
    from ..demo.cohort import write_dataset_files

    write_dataset_files(Path(args.bids_dir), args.settings)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command(subparsers, "demo-template", demo_template,
                      "prepare the template and atlas the demo cohort is built from")
    sub.add_argument("--out-dir", required=True)

    sub = add_command(subparsers, "demo-subject", demo_subject, "simulate one demo subject (BIDS files + truth)")
    sub.add_argument("subject", help="subject label, digits (e.g. 01)")
    sub.add_argument("--template", required=True, help="template.npz from demo-template")
    sub.add_argument("--bids-dir", required=True)
    sub.add_argument("--truth-dir", required=True)
    sub.add_argument("--qc", help="QC PNG to write")
    add_settings(sub, "the config's demo section")

    sub = add_command(subparsers, "demo-dataset", demo_dataset, "write the demo dataset's BIDS description files")
    sub.add_argument("--bids-dir", required=True)
    add_settings(sub, "the config's demo section")
