"""Trained models applied: one session segmented by the workflow, or any image in the web viewer."""

from __future__ import annotations

import argparse

from .options import add_command, add_interpolation, add_settings, add_threads, mixed_precision


def segment(weights: str, inputs: list[str], padding_record: str, out_dseg: str, out_json: str, settings: dict,
            other_grid: str | None, transform: str | None, out_other: str | None, interpolation: str,
            out_passes: dict[str, str] | None = None) -> None:
    """One model on one session: its labels on the inputs' image grid (and its passes', `out_passes`) and, given
    the other grid's image and the registration, there too."""
    from ..infer import segment_files
    from ..io import read_json

    segment_files(weights, inputs, out_dseg, out_json, overlap=settings["overlap"], batch_size=settings["batch_size"],
                  mixed_precision=mixed_precision(settings),
                  padding_record=padding_record, flip=settings["flip"], drop_misplaced=settings["drop_misplaced"],
                  out_passes=out_passes)
    if out_other:
        from ..registration import move_labels_files

        to_space = "T1w" if read_json(padding_record)["space"] == "SWI" else "SWI"
        move_labels_files(out_dseg, other_grid, transform, to_space, interpolation, out_other)


def infer(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    segment(args.checkpoint, args.inputs, args.padding_record, args.out_dseg, args.out_json, args.settings,
            args.other_grid, args.transform, args.out_other, args.interpolation)


def infer_session(args: argparse.Namespace) -> None:
    """The workflow's inference job: one session, every model of the plans (torch and the libraries load once)."""
    import torch

    from ..derivatives import write_sources
    from ..plan_files import InferencePlan

    torch.set_num_threads(args.threads)
    for path in args.plans:
        plan = InferencePlan.read(path).for_session(args.subject)
        segment(plan.weights, plan.inputs, plan.padding_record, plan.dseg, plan.record, args.settings, args.other_grid,
                args.transform, plan.other if args.transform else None, args.interpolation, plan.passes)
        write_sources(plan.dseg, plan.sources)
        if args.transform:
            write_sources(plan.other, plan.other_sources)


def view(args: argparse.Namespace) -> None:
    import torch

    from ..plan_command import load_config
    from ..viewer import create_app, serve

    torch.set_num_threads(args.threads)
    serve(create_app(args.data_dir, args.results, load_config(args.config), args.max_upload_mb), args.port)


def add_inference_options(parser: argparse.ArgumentParser) -> None:
    """What both inference commands take: the config's inference section, and the other grid the labels go to."""
    add_settings(parser, "the config's inference section")
    parser.add_argument("--other-grid", help="an image on the session's other grid (T1 or SWI): the labels go there too")
    parser.add_argument("--transform", help="the T1-to-SWI .tfm that links the two grids")
    add_interpolation(parser)
    add_threads(parser)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command(subparsers, "infer", infer, "segment one subject with a trained model")
    sub.add_argument("--checkpoint", required=True, help="a training checkpoint (.pt) or a model bundle (.zip)")
    sub.add_argument("--inputs", nargs="+", required=True, help="model-input files, in the model's channel order")
    sub.add_argument("--padding-record", help="the preprocess record: write the labels back on the image grid")
    sub.add_argument("--out-dseg", required=True)
    sub.add_argument("--out-json", required=True, help="JSON record with the inference time")
    sub.add_argument("--out-other", help="the labels on the other grid")
    add_inference_options(sub)

    sub = add_command(subparsers, "infer-session", infer_session,
                      "segment one session with every model of the workflow's inference plans")
    sub.add_argument("--plans", nargs="+", required=True, help="plan/infer_<model>.json files")
    sub.add_argument("--subject", required=True, help="the session key their paths are filled with")
    add_inference_options(sub)

    sub = add_command(subparsers, "view", view,
                      "local web viewer on 127.0.0.1: open an MRI, segment it, see the nuclei in three views")
    sub.add_argument("--data-dir", default="results", help="the only folder whose NIfTI files the viewer reads")
    sub.add_argument("--results", default="results", help="trained models are read from its models/<name>/")
    sub.add_argument("--config", action="append", default=[], metavar="FILE",
                     help="a config file merged over config/config.yaml, as snakemake --configfile; repeatable "
                          "(preprocess windows, inference settings, model inputs)")
    sub.add_argument("--port", type=int, default=8765)
    sub.add_argument("--max-upload-mb", type=float, default=256,
                     help="largest file read, uploaded or in the data folder")
    add_threads(sub)
