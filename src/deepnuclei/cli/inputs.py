"""A dataset's files: each session's inputs checked, its labels renumbered and tabled, BIDS validation and the
results folders described as BIDS-Derivatives."""

from __future__ import annotations

import argparse

from .options import add_command, log


def validate_inputs(args: argparse.Namespace) -> None:
    from ..io import write_json
    from ..validate import validate_subject

    labels = {space: path for space, path in (("SWI", args.swi_labels), ("T1w", args.t1_labels)) if path}
    record = validate_subject(args.t1 or None, args.magnitudes, args.phases, args.sidecars, labels, args.lookup or None,
                              args.outside_view, args.ignore_labels, args.chimap or None)
    write_json(args.out, record)
    for note in record["notes"]:
        log.warning("%s", note)
    if record["existing_qsm"]:
        existing = record["existing_qsm"]
        log.info("%s: existing QSM map in %s (from %s), reference: %s", existing["source"], existing["unit"],
                 existing["unit_from"], existing["reference"])
    log.info("inputs valid: %d echoes, labels checked in %s", len(record["echo_times_s"]),
             ", ".join(record["label_voxels"]) or "no space")


def relabel(args: argparse.Namespace) -> None:
    from ..labels import relabel_file

    structures = relabel_file(args.labels, args.lookup or None, args.out, args.ignore, args.out_lookup)
    log.info("%s: %s in the package's numbering", args.out, ", ".join(structures) or "no structure")


def bids_derivative(args: argparse.Namespace) -> None:
    from ..derivatives import write_derivative

    written = write_derivative(args.root, args.kind, args.bids_dir, args.results, args.method, args.model, args.lookup)
    log.info("%s as a BIDS-Derivatives dataset: %s", args.root, ", ".join(path.name for path in written))


def bids_validator(args: argparse.Namespace) -> None:
    from ..bids_check import run_bids_validator

    run_bids_validator(args.bids_dir, args.out_json, args.out_text)


def labels_lookup(args: argparse.Namespace) -> None:
    from ..io import write_text_atomic
    from ..labels import ALL_STRUCTURES, dataset_lookup, dseg_tsv

    table = dseg_tsv([s.name for s in ALL_STRUCTURES]) if args.all else dataset_lookup(args.lookups, args.ignore)
    write_text_atomic(args.out, table)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command(subparsers, "validate-inputs", validate_inputs, "check a subject's input files before any heavy step")
    # nargs "?" and "*": the workflow passes these options with no value when a session has no such file
    sub.add_argument("--t1", nargs="?")
    sub.add_argument("--magnitudes", nargs="*", default=[], help="one per echo, in echo order")
    sub.add_argument("--phases", nargs="*", default=[])
    sub.add_argument("--sidecars", nargs="*", default=[], help="phase JSON sidecars (EchoTime, MagneticFieldStrength)")
    sub.add_argument("--swi-labels", nargs="?", help="reference labels on the SWI grid")
    sub.add_argument("--t1-labels", nargs="?", help="reference labels on the T1 grid")
    sub.add_argument("--lookup", nargs="?", help="the labels' dseg.tsv (default: the package's table)")
    sub.add_argument("--outside-view", nargs="*", default=[], metavar="STRUCTURE",
                     help="structures of dseg.tsv outside a partial field of view: their labels may be absent")
    sub.add_argument("--ignore-labels", nargs="*", default=[], metavar="NAME",
                     help="dseg.tsv names that are no structure of deepnuclei (config labels.ignore)")
    sub.add_argument("--chimap", nargs="?", help="an existing QSM map used instead of the phase (config qsm.input)")
    sub.add_argument("--out", required=True, help="JSON record of what was checked")

    sub = add_command(subparsers, "relabel", relabel,
                      "renumber a dataset's label map to the package's values by structure name")
    sub.add_argument("--labels", required=True, help="the dataset's label map")
    # nargs="?": the workflow passes it with an empty value when a dataset has no dseg.tsv
    sub.add_argument("--lookup", nargs="?", help="its dseg.tsv (default: the map is in the package's numbering)")
    sub.add_argument("--ignore", nargs="*", default=[], metavar="NAME",
                     help="dseg.tsv names of structures deepnuclei does not segment: they become background")
    sub.add_argument("--out", required=True, help="the label map in the package's numbering")
    sub.add_argument("--out-lookup", help="dseg.tsv of the structures it holds")

    sub = add_command(subparsers, "bids-derivative", bids_derivative, "a results folder as a BIDS-Derivatives "
                      "dataset: its description, .bidsignore, top-level sidecars, label table")
    sub.add_argument("--root", required=True, help="the results folder (results/qsm, results/segmentations/atlas, ...)")
    sub.add_argument("--kind", required=True, choices=["qsm", "registration", "segmentations", "measures"])
    sub.add_argument("--bids-dir", required=True, help="the input BIDS dataset (SourceDatasets)")
    sub.add_argument("--results", required=True, help="the results folder, whose datasets the maps cite (DatasetLinks)")
    sub.add_argument("--method", help="segmentations: the method")
    sub.add_argument("--model", help="segmentations: a model's weights file (bundle or checkpoint), for its SHA-256")
    sub.add_argument("--lookup", help="segmentations: the dseg.tsv of the method's numbering")

    sub = add_command(subparsers, "bids-validator", bids_validator,
                      "the BIDS reference validator's report (never fails for the dataset)")
    sub.add_argument("--bids-dir", required=True)
    sub.add_argument("--out-json", required=True, help="the validator's JSON report (or why it could not run)")
    sub.add_argument("--out-text", required=True, help="a summary: errors and warnings counted by code")

    sub = add_command(subparsers, "labels-lookup", labels_lookup,
                      "the dseg.tsv (package numbering) of the structures a dataset labels")
    sub.add_argument("--lookups", nargs="*", default=[], help="the dataset's dseg.tsv files (none: the package's table)")
    sub.add_argument("--ignore", nargs="*", default=[], metavar="NAME", help="names that are no structure of ours")
    sub.add_argument("--all", action="store_true", help="every structure of the package's numbering, GP included "
                                                        "(the segmentations' table)")
    sub.add_argument("--out", required=True)
