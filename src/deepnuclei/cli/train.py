"""The models' side of the workflow: inputs prepared (and their padding undone), training, the model table, and a
trained model bundled for use elsewhere."""

from __future__ import annotations

import argparse

from .options import add_command, add_threads, log


def preprocess(args: argparse.Namespace) -> None:
    from ..io import read_json
    from ..preprocess import prepare_inputs

    record = prepare_inputs(args.qsm, args.t1, read_json(args.settings), args.out_qsm, args.out_t1, args.record)
    log.info("padding %s (cropped: %s), T1 window %s", record["padding"], record["cropped"], record["t1_window"])


def apply_padding(args: argparse.Namespace) -> None:
    from ..preprocess import apply_padding as apply

    apply(args.record, args.input, args.output, args.inverse)


def train(args: argparse.Namespace) -> None:
    import torch

    from ..plan_files import TrainPlan
    from ..train import train_from_files

    torch.set_num_threads(args.threads)
    summary = train_from_files(TrainPlan.read(args.plan), args.out_dir)
    log.info("training summary: %s", summary)


def models(args: argparse.Namespace) -> None:
    from ..models import models_table

    table = models_table()
    print(table.to_markdown(index=False) if args.markdown else table.to_string(index=False))


def export_model(args: argparse.Namespace) -> None:
    from ..bundle import export_model as export
    from ..bundle import summary

    out = export(args.model_dir, args.out)
    print(summary(out))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command(subparsers, "preprocess", preprocess, "pad, clip and rescale QSM and T1 (SWI grid) or the T1 "
                                                            "alone (T1w grid) into model inputs")
    sub.add_argument("--qsm", help="susceptibility map (ppm); without it the T1 alone, on its own grid")
    sub.add_argument("--t1", required=True, help="T1 resampled to the SWI grid, or the T1 itself")
    sub.add_argument("--settings", required=True, help="plan file of the space's settings (results/plan/preprocess_"
                                                       "<space>.json: the config's section, or the bundled models')")
    sub.add_argument("--out-qsm")
    sub.add_argument("--out-t1", required=True)
    sub.add_argument("--record", required=True, help="JSON padding and window record to write")

    sub = add_command(subparsers, "apply-padding", apply_padding,
                      "pad an SWI-grid volume like the model inputs, or undo it")
    sub.add_argument("--record", required=True, help="the record written by `preprocess`")
    sub.add_argument("--input", required=True)
    sub.add_argument("--output", required=True)
    sub.add_argument("--inverse", action="store_true", help="model grid back to the SWI grid")

    sub = add_command(subparsers, "train", train, "train (or resume training) a configured model on preprocessed "
                                                  "subjects")
    sub.add_argument("--plan", required=True, help='the training plan JSON: {"model": the config entry, "cases": '
                                                   '{"train": [...], "validation": [...]} of {subject, channels, labels}}')
    sub.add_argument("--out-dir", required=True, help="checkpoints, log.csv, curves.png and summary.json go here")
    add_threads(sub)

    sub = add_command(subparsers, "models", models,
                      "print every model: dims, channels, parameters, bytes, the paper's count")
    sub.add_argument("--markdown", action="store_true", help="as a Markdown table")

    sub = add_command(subparsers, "export-model", export_model, "bundle a trained model (results/models/<name>) into "
                                                                "one zip that models.<name>.bundle applies elsewhere")
    sub.add_argument("model_dir", help="the trained model's folder, results/models/<name>")
    sub.add_argument("-o", "--out", required=True, help="the bundle to write, <name>.zip")
