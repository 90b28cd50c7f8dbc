"""Trained models applied: one session segmented by the workflow, or any image in the web viewer."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_command, add_interpolation, add_settings, add_threads


def infer(args: argparse.Namespace) -> None:
    import torch

    from ..infer import segment_files
    from ..io import read_json

    torch.set_num_threads(args.threads)
    settings = args.settings
    segment_files(args.checkpoint, args.inputs, args.out_dseg, args.out_json, overlap=settings["overlap"],
                  batch_size=settings["batch_size"],
                  mixed_precision=None if settings["mixed_precision"] == "auto" else settings["mixed_precision"],
                  padding_record=args.padding_record, flip=settings["flip"],
                  drop_misplaced=settings["drop_misplaced"])
    if args.out_other:
        from ..registration import move_labels_files

        to_space = "T1w" if read_json(args.padding_record)["space"] == "SWI" else "SWI"
        move_labels_files(args.out_dseg, args.other_grid, args.transform, to_space, args.interpolation, args.out_other)


def view(args: argparse.Namespace) -> None:
    import torch
    import yaml

    from ..viewer import create_app, serve

    torch.set_num_threads(args.threads)
    config = yaml.safe_load(Path(args.config).read_text())
    serve(create_app(args.data_dir, args.results, config, args.max_upload_mb), args.port)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command(subparsers, "infer", infer, "segment one subject with a trained model")
    sub.add_argument("--checkpoint", required=True, help="a training checkpoint (.pt) or a model bundle (.zip)")
    sub.add_argument("--inputs", nargs="+", required=True, help="model-input files, in the model's channel order")
    sub.add_argument("--padding-record", help="the preprocess record: write the labels back on the image grid")
    add_settings(sub, "the config's inference section")
    sub.add_argument("--out-dseg", required=True)
    sub.add_argument("--out-json", required=True, help="JSON record with the inference time")
    sub.add_argument("--other-grid", help="an image on the session's other grid (T1 or SWI): the labels go there too")
    sub.add_argument("--transform", help="the T1-to-SWI .tfm that links the two grids")
    sub.add_argument("--out-other", help="the labels on the other grid")
    add_interpolation(sub)
    add_threads(sub)

    sub = add_command(subparsers, "view", view,
                      "local web viewer on 127.0.0.1: open an MRI, segment it, see the nuclei in three views")
    sub.add_argument("--data-dir", default="results", help="the only folder whose NIfTI files the viewer reads")
    sub.add_argument("--results", default="results", help="trained models are read from its models/<name>/")
    sub.add_argument("--config", default="config/config.yaml",
                     help="preprocess windows, inference settings, model inputs")
    sub.add_argument("--port", type=int, default=8765)
    sub.add_argument("--max-upload-mb", type=float, default=256,
                     help="largest file read, uploaded or in the data folder")
    add_threads(sub)
