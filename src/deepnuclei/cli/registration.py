"""Registration: T1 to SWI, images and labels moved between the grids, its error on the demo, and the atlas
baselines (a labelled template, or several fused, registered to each subject)."""

from __future__ import annotations

import argparse

from ..io import InputError
from .options import add_command, add_interpolation, add_settings, add_sources, add_threads, log


def atlas(args: argparse.Namespace) -> None:
    from ..atlas import AtlasParams, save_labels, segment_with_atlases
    from ..derivatives import write_sources
    from ..plan_files import AtlasCase

    atlases = ([(entry.t1, entry.labels) for entry in AtlasCase.read_list(args.atlas_list)]
               if args.atlas_list else [(args.atlas_t1, args.atlas_labels)])
    if not atlases:
        raise InputError(args.atlas_list, "lists no atlas: joint label fusion needs training sessions with T1 labels")
    save_labels(segment_with_atlases(args.t1, atlases, AtlasParams.from_config(args.settings)), args.out)
    write_sources(args.out, args.sources)
    if args.out_swi:
        from ..registration import move_labels_files

        move_labels_files(args.out, args.swi, args.transform, "SWI", args.interpolation, args.out_swi)
        write_sources(args.out_swi, args.swi_sources)


def register_t1_to_swi(args: argparse.Namespace) -> None:
    from ..registration import RegistrationSettings, register_files

    settings = RegistrationSettings.from_config(args.settings, method=args.method, threads=args.threads)
    record = register_files(args.t1, args.magnitudes, settings, args.transform, args.record)
    log.info("%s registration: %.1f s", settings.method, record["seconds"])


def t1_to_swi(args: argparse.Namespace) -> None:
    from ..derivatives import write_sources
    from ..registration import t1_to_swi_files

    t1_to_swi_files(args.t1, args.magnitudes, args.transform, args.fixed_image, args.out, args.qc, args.title)
    write_sources(args.out, args.sources)


def move_labels(args: argparse.Namespace) -> None:
    from ..registration import move_labels_files

    move_labels_files(args.labels, args.reference, args.transform, args.to, args.interpolation, args.out)


def registration_tre(args: argparse.Namespace) -> None:
    import pandas as pd

    from ..io import write_text_atomic
    from ..plan_files import TreCase
    from ..registration import tre_table

    table = pd.DataFrame(tre_table(TreCase.read_list(args.cases)))
    write_text_atomic(args.out, table.to_csv(index=False))
    summary = table.groupby("method")[["tre_mm", "seconds"]].agg(["mean", "max"])
    log.info("TRE (mm) and seconds per method:\n%s", summary.to_string())


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command(subparsers, "atlas", atlas,
                      "segment a subject by registering a labelled template (or several: joint label fusion)")
    sub.add_argument("--t1", required=True, help="the subject's T1w")
    sub.add_argument("--atlas-t1", help="single atlas: template T1")
    sub.add_argument("--atlas-labels", help="single atlas: template labels (dseg values)")
    sub.add_argument("--atlas-list", help="joint label fusion: JSON list of {t1, labels} of atlas subjects")
    sub.add_argument("--out", required=True, help="labels on the subject's T1 grid")
    sub.add_argument("--swi", help="an image on the session's SWI grid: the labels go there too")
    sub.add_argument("--transform", help="the T1-to-SWI .tfm that links the two grids")
    sub.add_argument("--out-swi", help="the labels on the SWI grid")
    add_sources(sub, what="the labels on the T1 grid")
    add_sources(sub, "--swi-sources", "the labels on the SWI grid")
    add_interpolation(sub)
    add_settings(sub, "the config's atlas section")

    sub = add_command(subparsers, "register-t1-to-swi", register_t1_to_swi,
                      "rigid mutual-information registration of a T1 to its SWI")
    sub.add_argument("--t1", required=True)
    sub.add_argument("--magnitudes", nargs="+", required=True, help="SWI magnitude echoes, first echo first")
    sub.add_argument("--method", required=True, choices=["simpleitk", "antspyx"])
    add_settings(sub, "the config's registration section")
    add_threads(sub)
    sub.add_argument("--transform", required=True, help=".tfm to write (ITK: maps SWI points to T1 points)")
    sub.add_argument("--record", required=True, help="JSON record of the run to write")

    sub = add_command(subparsers, "t1-to-swi", t1_to_swi, "resample a T1 onto the SWI grid (linear) and draw the QC "
                                                          "figure")
    sub.add_argument("--t1", required=True)
    sub.add_argument("--magnitudes", nargs="+", required=True, help="SWI magnitude echoes (the grid, and the QC)")
    sub.add_argument("--transform", required=True)
    sub.add_argument("--fixed-image", default="rms", choices=["echo1", "rms"], help="magnitude shown in the QC")
    sub.add_argument("--out", required=True)
    sub.add_argument("--qc", help="QC PNG to write")
    sub.add_argument("--title", default="")
    add_sources(sub)

    sub = add_command(subparsers, "move-labels", move_labels, "move a label map between T1 and SWI space")
    sub.add_argument("--labels", required=True)
    sub.add_argument("--reference", required=True, help="an image on the target grid")
    sub.add_argument("--transform", required=True, help="the T1-to-SWI .tfm")
    sub.add_argument("--to", required=True, choices=["SWI", "T1w"], help="the space the labels move to")
    add_interpolation(sub)
    sub.add_argument("--out", required=True)

    sub = add_command(subparsers, "registration-tre", registration_tre,
                      "registration error against known transforms (demo)")
    sub.add_argument("--cases", required=True,
                     help="plan file: JSON list of {subject, method, transform, record, truth, mask}")
    sub.add_argument("--out", required=True, help="CSV to write")
