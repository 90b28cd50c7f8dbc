"""The `deepnuclei` command: one subcommand per workflow step, each a thin call into a stage module.

Snakemake rules call these; they also work by hand, e.g. `deepnuclei demo-template --out-dir t/`.
"""

from __future__ import annotations

import argparse
import ctypes
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


def validate_inputs(args: argparse.Namespace) -> None:
    from .io import write_json
    from .validate import validate_subject

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
    from .labels import relabel_file

    structures = relabel_file(args.labels, args.lookup or None, args.out, args.ignore, args.out_lookup)
    log.info("%s: %s in the package's numbering", args.out, ", ".join(structures) or "no structure")


def bids_validator(args: argparse.Namespace) -> None:
    from .bids_check import run_bids_validator

    run_bids_validator(args.bids_dir, args.out_json, args.out_text)


def bids_derivative(args: argparse.Namespace) -> None:
    from .derivatives import write_derivative

    written = write_derivative(args.root, args.kind, args.bids_dir, args.method, args.model, args.lookup)
    log.info("%s as a BIDS-Derivatives dataset: %s", args.root, ", ".join(path.name for path in written))


def labels_lookup(args: argparse.Namespace) -> None:
    from .io import write_text_atomic
    from .labels import ALL_STRUCTURES, dataset_lookup, dseg_tsv

    table = dseg_tsv([s.name for s in ALL_STRUCTURES]) if args.all else dataset_lookup(args.lookups, args.ignore)
    write_text_atomic(args.out, table)


def qsm(args: argparse.Namespace) -> None:
    import torch

    from .qsm.pipeline import QSMParams, run_qsm

    torch.set_num_threads(args.threads)
    result = run_qsm(args.magnitudes, args.phases, args.sidecars, args.out_chi, args.out_mask, args.out_field,
                     args.qc, QSMParams.from_config(json.loads(args.settings)), out_record=args.out_record)
    log.info("QSM step times (s): %s", {step: round(seconds, 2) for step, seconds in result["timings_s"].items()})


def existing_qsm(args: argparse.Namespace) -> None:
    from .io import read_json
    from .qsm.existing import import_existing_qsm

    checked = read_json(args.validated)["existing_qsm"]
    import_existing_qsm(checked, args.magnitudes, args.out_chi, args.out_record, args.qc)
    log.info("%s (%s) written in ppm: %s", checked["source"], checked["unit"], args.out_chi)


def qsm_metrics(args: argparse.Namespace) -> None:
    import pandas as pd

    from .io import write_text_atomic
    from .metrics import qsm_metrics_from_files
    from .plan_files import QsmMetricCase

    rows = [{"subject": case.subject, "method": case.method,
             **qsm_metrics_from_files(case.chi, case.truth, case.mask, case.dseg, case.truth_mask)}
            for case in QsmMetricCase.read_list(args.cases)]
    write_text_atomic(args.out, pd.DataFrame(rows).round(3).to_csv(index=False))


def atlas(args: argparse.Namespace) -> None:
    from .atlas import AtlasParams, save_labels, segment_with_atlases
    from .plan_files import AtlasCase

    atlases = ([(entry.t1, entry.labels) for entry in AtlasCase.read_list(args.atlas_list)]
               if args.atlas_list else [(args.atlas_t1, args.atlas_labels)])
    if not atlases:
        raise InputError(args.atlas_list, "lists no atlas: joint label fusion needs training sessions with T1 labels")
    save_labels(segment_with_atlases(args.t1, atlases, AtlasParams.from_config(json.loads(args.settings))), args.out)


def register_t1_to_swi(args: argparse.Namespace) -> None:
    from .registration import RegistrationSettings, register_files

    settings = RegistrationSettings.from_config(json.loads(args.settings), method=args.method, threads=args.threads)
    record = register_files(args.t1, args.magnitudes, settings, args.transform, args.record)
    log.info("%s registration: %.1f s", settings.method, record["seconds"])


def t1_to_swi(args: argparse.Namespace) -> None:
    from .registration import t1_to_swi_files

    t1_to_swi_files(args.t1, args.magnitudes, args.transform, args.fixed_image, args.out, args.qc, args.title)


def move_labels(args: argparse.Namespace) -> None:
    from .registration import move_labels_files

    move_labels_files(args.labels, args.reference, args.transform, args.to, args.interpolation, args.out)


def registration_tre(args: argparse.Namespace) -> None:
    import pandas as pd

    from .io import write_text_atomic
    from .plan_files import TreCase
    from .registration import tre_table

    table = pd.DataFrame(tre_table(TreCase.read_list(args.cases)))
    write_text_atomic(args.out, table.to_csv(index=False))
    summary = table.groupby("method")[["tre_mm", "seconds"]].agg(["mean", "max"])
    log.info("TRE (mm) and seconds per method:\n%s", summary.to_string())


def preprocess(args: argparse.Namespace) -> None:
    from .io import read_json
    from .preprocess import prepare_inputs

    record = prepare_inputs(args.qsm, args.t1, read_json(args.settings), args.out_qsm, args.out_t1, args.record)
    log.info("padding %s (cropped: %s), T1 window %s", record["padding"], record["cropped"], record["t1_window"])


def export_model(args: argparse.Namespace) -> None:
    from .bundle import export_model as export
    from .bundle import summary

    out = export(args.model_dir, args.out)
    print(summary(out))


def apply_padding(args: argparse.Namespace) -> None:
    from .preprocess import apply_padding as apply

    apply(args.record, args.input, args.output, args.inverse)


def overlap_case(args: argparse.Namespace) -> None:
    from .evaluate import write_overlap_case
    from .labels import read_dseg_tsv

    case = {"subject": args.subject, "method": args.method, "prediction": args.prediction, "reference": args.reference,
            "qsm": args.qsm, "task": args.task, "space": args.space, "structures": list(read_dseg_tsv(args.lookup).values())}
    table = write_overlap_case(case, args.out, args.largest_component)
    log.info("%s on sub-%s, Dice per structure:\n%s", args.method, args.subject,
             table.set_index("structure")["dice"].round(3).to_string())


def merge_overlap(args: argparse.Namespace) -> None:
    from .evaluate import merge_overlap as merge, summary_by_method
    from .plan_files import OverlapCase

    table = merge([case.out for case in OverlapCase.read_list(args.cases)], args.out_csv, args.out_markdown)
    log.info("mean Dice per structure and method:\n%s", summary_by_method(table).to_string())


def evaluation_tables(args: argparse.Namespace) -> None:
    import pandas as pd

    from .plan_files import EvaluationPlan
    from .tables import write_evaluation_tables

    plan = EvaluationPlan.read(args.plan)
    overlap = pd.read_csv(args.overlap, dtype={"subject": str})
    written = write_evaluation_tables(overlap, args.out_dir, plan.timings, plan.ablations, plan.models, plan.participants)
    log.info("wrote %d table files to %s", len(written), args.out_dir)


def linus_tables(args: argparse.Namespace) -> None:
    import pandas as pd

    from .experiments import write_experiment_tables
    from .plan_files import ExperimentsPlan

    overlap = pd.read_csv(args.overlap, dtype={"subject": str})
    written = write_experiment_tables(overlap, ExperimentsPlan.read(args.plan), args.out_dir)
    log.info("wrote %d table files to %s", len(written), args.out_dir)


def evaluation_figures(args: argparse.Namespace) -> None:
    import pandas as pd

    from .figures import write_evaluation_figures

    written = write_evaluation_figures(pd.read_csv(args.overlap, dtype={"subject": str}), args.methods, args.out_dir,
                                       args.qsm_reference, args.workers)
    log.info("wrote %d figure files to %s", len(written), args.out_dir)


def overlays(args: argparse.Namespace) -> None:
    from .qc import segmentation_overlays

    labels = dict(pair.split("=", 1) for pair in args.labels)
    segmentation_overlays(args.image, labels, args.out, args.title)


def measures(args: argparse.Namespace) -> None:
    from .io import read_json
    from .measures import write_cases_measures
    from .plan_files import MeasuresCase

    cases = [MeasuresCase.from_json(case) for case in read_json(args.plan) if case["subject"] == args.subject]
    if not cases:
        raise InputError(args.plan, f"no measures case of sub-{args.subject}")
    for method, table in write_cases_measures(cases).items():
        log.info("%s on sub-%s, volume (mm3) and mean susceptibility (ppb) per structure:\n%s", method, args.subject,
                 table.set_index("structure")[["volume_mm3", "chi_mean_ppb"]].to_string())
    if args.qc:
        from .qc import cases_qc

        cases_qc(args.qc, cases, f"sub-{args.subject}")


def merge_measures(args: argparse.Namespace) -> None:
    from .measures import merge_measures as merge

    table = merge(args.plan, args.out_tsv, args.out_csv, args.out_qsmxt)
    log.info("%d rows: %d sessions x methods", len(table), len(table.groupby(["participant_id", "session_id", "method"],
                                                                            dropna=False)))


def segmentation_qc(args: argparse.Namespace) -> None:
    from .qc import segmentation_qc as draw

    def pairs(values: Sequence[str]) -> dict[str, str]:
        return dict(value.split("=", 1) for value in values)

    draw(args.out, args.t1, pairs(args.t1_labels), args.qsm, pairs(args.swi_labels), args.title)


def train(args: argparse.Namespace) -> None:
    import torch

    from .plan_files import TrainPlan
    from .train import train_from_files

    torch.set_num_threads(args.threads)
    summary = train_from_files(TrainPlan.read(args.plan), args.out_dir)
    log.info("training summary: %s", summary)


def infer(args: argparse.Namespace) -> None:
    import torch

    from .infer import segment_files
    from .io import read_json

    torch.set_num_threads(args.threads)
    settings = json.loads(args.settings)
    segment_files(args.checkpoint, args.inputs, args.out_dseg, args.out_json, overlap=settings["overlap"],
                  batch_size=settings["batch_size"],
                  mixed_precision=None if settings["mixed_precision"] == "auto" else settings["mixed_precision"],
                  padding_record=args.padding_record, flip=settings["flip"])
    if args.out_other:
        from .registration import move_labels_files

        to_space = "T1w" if read_json(args.padding_record)["space"] == "SWI" else "SWI"
        move_labels_files(args.out_dseg, args.other_grid, args.transform, to_space, args.interpolation, args.out_other)


def models(args: argparse.Namespace) -> None:
    from .models import models_table

    table = models_table()
    print(table.to_markdown(index=False) if args.markdown else table.to_string(index=False))


def view(args: argparse.Namespace) -> None:
    import torch
    import yaml

    from .viewer import create_app, serve

    torch.set_num_threads(args.threads)
    config = yaml.safe_load(Path(args.config).read_text())
    serve(create_app(args.data_dir, args.results, config, args.max_upload_mb), args.port)


def plan(args: argparse.Namespace) -> None:
    from snakemake.exceptions import WorkflowError

    from .plan import PlanError, make_plan, plan_files, write_plan_files
    from .plan_command import describe, load_config

    try:
        made = make_plan(load_config(args.config))
    except (PlanError, WorkflowError) as error:  # the setting or file at fault, as Snakemake would report it
        raise SystemExit(f"deepnuclei plan: {error}") from None
    written = write_plan_files(made, plan_files(made), args.out)
    log.info("%d plan files in %s", len(written), Path(next(iter(written.values()))).parent)
    if args.print:
        print(describe(made))


def headline(args: argparse.Namespace) -> None:
    from .headline import headline as headline_text

    print(headline_text(args.results, args.report))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepnuclei", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, function: Callable[[argparse.Namespace], None], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(function=function)
        return sub

    sub = command("headline", headline, "where the report is and the run's headline numbers, from its tables")
    sub.add_argument("--results", default="results", help="the run's results_dir")
    sub.add_argument("--report", default="results/report.html")

    sub = command("plan", plan, "the workflow's plan without Snakemake: write its files (results/plan/) and "
                                "sum it up")
    sub.add_argument("--config", action="append", default=[], metavar="FILE",
                     help="a config file merged over config/config.yaml, as snakemake --configfile; repeatable")
    sub.add_argument("--print", action="store_true", help="print the summary: sessions, models, methods, notes")
    sub.add_argument("--out", help="write the plan files here instead of <results_dir>/plan/")

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

    sub = command("validate-inputs", validate_inputs, "check a subject's input files before any heavy step")
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

    sub = command("relabel", relabel, "renumber a dataset's label map to the package's values by structure name")
    sub.add_argument("--labels", required=True, help="the dataset's label map")
    # nargs="?": the workflow passes it with an empty value when a dataset has no dseg.tsv
    sub.add_argument("--lookup", nargs="?", help="its dseg.tsv (default: the map is in the package's numbering)")
    sub.add_argument("--ignore", nargs="*", default=[], metavar="NAME",
                     help="dseg.tsv names of structures deepnuclei does not segment: they become background")
    sub.add_argument("--out", required=True, help="the label map in the package's numbering")
    sub.add_argument("--out-lookup", help="dseg.tsv of the structures it holds")

    sub = command("bids-derivative", bids_derivative, "a results folder as a BIDS-Derivatives dataset: its "
                                                      "description, .bidsignore, top-level sidecars, label table")
    sub.add_argument("--root", required=True, help="the results folder (results/qsm, results/segmentations/atlas, ...)")
    sub.add_argument("--kind", required=True, choices=["qsm", "registration", "segmentations", "measures"])
    sub.add_argument("--bids-dir", required=True, help="the input BIDS dataset (SourceDatasets)")
    sub.add_argument("--method", help="segmentations: the method")
    sub.add_argument("--model", help="segmentations: a model's weights file (bundle or checkpoint), for its SHA-256")
    sub.add_argument("--lookup", help="segmentations: the dseg.tsv of the method's numbering")

    sub = command("bids-validator", bids_validator, "the BIDS reference validator's report (never fails for the dataset)")
    sub.add_argument("--bids-dir", required=True)
    sub.add_argument("--out-json", required=True, help="the validator's JSON report (or why it could not run)")
    sub.add_argument("--out-text", required=True, help="a summary: errors and warnings counted by code")

    sub = command("labels-lookup", labels_lookup, "the dseg.tsv (package numbering) of the structures a dataset labels")
    sub.add_argument("--lookups", nargs="*", default=[], help="the dataset's dseg.tsv files (none: the package's table)")
    sub.add_argument("--ignore", nargs="*", default=[], metavar="NAME", help="names that are no structure of ours")
    sub.add_argument("--all", action="store_true", help="every structure of the package's numbering, GP included "
                                                        "(the segmentations' table)")
    sub.add_argument("--out", required=True)

    sub = command("qsm", qsm, "susceptibility map from multi-echo SWI magnitude and phase")
    sub.add_argument("--magnitudes", nargs="+", required=True, help="one per echo, in echo order")
    sub.add_argument("--phases", nargs="+", required=True)
    sub.add_argument("--sidecars", nargs="+", required=True, help="phase JSON sidecars (EchoTime, MagneticFieldStrength)")
    sub.add_argument("--settings", required=True, help="QSMParams overrides as JSON")
    sub.add_argument("--threads", type=int, default=2)
    sub.add_argument("--out-chi", required=True)
    sub.add_argument("--out-mask", required=True)
    sub.add_argument("--out-field", required=True)
    sub.add_argument("--qc", required=True)
    sub.add_argument("--out-record", required=True, help="JSON: units, reference, settings, step times, QC measures")

    sub = command("existing-qsm", existing_qsm, "an existing QSM map (its unit as validate-inputs found it) in ppm")
    sub.add_argument("--validated", required=True, help="validate-inputs' record of the session (existing_qsm)")
    sub.add_argument("--magnitudes", nargs="+", required=True, help="the SWI magnitudes on its grid (QC picture)")
    sub.add_argument("--out-chi", required=True)
    sub.add_argument("--out-record", required=True, help="JSON: units, reference, source and its unit")
    sub.add_argument("--qc", required=True)

    sub = command("qsm-metrics", qsm_metrics, "QSM challenge metrics against the demo's true susceptibility")
    sub.add_argument("--cases", required=True, help="plan file: JSON list of {subject, method, chi, mask, truth, dseg, truth_mask}")
    sub.add_argument("--out", required=True)

    sub = command("atlas", atlas, "segment a subject by registering a labelled template (or several: joint label fusion)")
    sub.add_argument("--t1", required=True, help="the subject's T1w")
    sub.add_argument("--atlas-t1", help="single atlas: template T1")
    sub.add_argument("--atlas-labels", help="single atlas: template labels (dseg values)")
    sub.add_argument("--atlas-list", help="joint label fusion: JSON list of {t1, labels} of atlas subjects")
    sub.add_argument("--out", required=True, help="labels on the subject's T1 grid")
    sub.add_argument("--settings", required=True, help="the config's atlas section as JSON")

    sub = command("register-t1-to-swi", register_t1_to_swi, "rigid mutual-information registration of a T1 to its SWI")
    sub.add_argument("--t1", required=True)
    sub.add_argument("--magnitudes", nargs="+", required=True, help="SWI magnitude echoes, first echo first")
    sub.add_argument("--method", required=True, choices=["simpleitk", "antspyx"])
    sub.add_argument("--settings", required=True, help="the config's registration section as JSON")
    sub.add_argument("--threads", type=int, default=2)
    sub.add_argument("--transform", required=True, help=".tfm to write (ITK: maps SWI points to T1 points)")
    sub.add_argument("--record", required=True, help="JSON record of the run to write")

    sub = command("t1-to-swi", t1_to_swi, "resample a T1 onto the SWI grid (linear) and draw the QC figure")
    sub.add_argument("--t1", required=True)
    sub.add_argument("--magnitudes", nargs="+", required=True, help="SWI magnitude echoes (the grid, and the QC)")
    sub.add_argument("--transform", required=True)
    sub.add_argument("--fixed-image", default="rms", choices=["echo1", "rms"], help="magnitude shown in the QC")
    sub.add_argument("--out", required=True)
    sub.add_argument("--qc", help="QC PNG to write")
    sub.add_argument("--title", default="")

    sub = command("move-labels", move_labels, "move a label map between T1 and SWI space")
    sub.add_argument("--labels", required=True)
    sub.add_argument("--reference", required=True, help="an image on the target grid")
    sub.add_argument("--transform", required=True, help="the T1-to-SWI .tfm")
    sub.add_argument("--to", required=True, choices=["SWI", "T1w"], help="the space the labels move to")
    sub.add_argument("--interpolation", default="label_aware", choices=["nearest", "label_aware"])
    sub.add_argument("--out", required=True)

    sub = command("registration-tre", registration_tre, "registration error against known transforms (demo)")
    sub.add_argument("--cases", required=True,
                     help="plan file: JSON list of {subject, method, transform, record, truth, mask}")
    sub.add_argument("--out", required=True, help="CSV to write")

    sub = command("preprocess", preprocess, "pad, clip and rescale QSM and T1 (SWI grid) or the T1 alone (T1w "
                                            "grid) into model inputs")
    sub.add_argument("--qsm", help="susceptibility map (ppm); without it the T1 alone, on its own grid")
    sub.add_argument("--t1", required=True, help="T1 resampled to the SWI grid, or the T1 itself")
    sub.add_argument("--settings", required=True, help="plan file of the space's settings (results/plan/preprocess_<space>"
                                                       ".json: the config's section, or the bundled models')")
    sub.add_argument("--out-qsm")
    sub.add_argument("--out-t1", required=True)
    sub.add_argument("--record", required=True, help="JSON padding and window record to write")

    sub = command("export-model", export_model, "bundle a trained model (results/models/<name>) into one zip that "
                                                "models.<name>.bundle applies elsewhere")
    sub.add_argument("model_dir", help="the trained model's folder, results/models/<name>")
    sub.add_argument("-o", "--out", required=True, help="the bundle to write, <name>.zip")

    sub = command("apply-padding", apply_padding, "pad an SWI-grid volume like the model inputs, or undo it")
    sub.add_argument("--record", required=True, help="the record written by `preprocess`")
    sub.add_argument("--input", required=True)
    sub.add_argument("--output", required=True)
    sub.add_argument("--inverse", action="store_true", help="model grid back to the SWI grid")

    sub = command("overlap-case", overlap_case, "Dice, precision, recall, distances and volumes of one segmentation "
                                                "against the reference labels")
    sub.add_argument("--subject", required=True, help="the session key (sub-<key>)")
    sub.add_argument("--method", required=True)
    sub.add_argument("--prediction", required=True, help="the method's labels, in the package's numbering")
    sub.add_argument("--reference", required=True, help="the reference labels on the same grid")
    sub.add_argument("--qsm", help="susceptibility map (ppm) on that grid, for mean susceptibilities")
    sub.add_argument("--task", help="a model's task: only its structures are scored")
    sub.add_argument("--space", default="", help="the grid's name (SWI, T1w), kept as a column")
    sub.add_argument("--largest-component", action="store_true",
                     help="also score the labels cleaned up to each structure's largest component (method <method>+lcc)")
    sub.add_argument("--lookup", required=True, help="dseg.tsv of the structures the reference labels hold")
    sub.add_argument("--out", required=True, help="CSV of one row per structure")

    sub = command("merge-overlap", merge_overlap, "one overlap table (CSV + Markdown summary) from per-case CSVs")
    sub.add_argument("--cases", required=True, help="plan file: JSON list of cases, each with its CSV as `out`")
    sub.add_argument("--out-csv", required=True)
    sub.add_argument("--out-markdown", required=True)

    sub = command("evaluation-tables", evaluation_tables, "the papers' tables from the overlap table and the benchmarks")
    sub.add_argument("--overlap", required=True, help="overlap.csv from `deepnuclei overlap`")
    sub.add_argument("--plan", required=True, help="plan file evaluation.json: {timings: [{method, subject, "
                                                   "benchmark, record}], models: {...}, ablations: {rate, inputs}, "
                                                   "participants: {tsv, cohorts}}")
    sub.add_argument("--out-dir", required=True)

    sub = command("linus-tables", linus_tables, "the LiNUS paper's Tables VI-IX and 2D vs 2.5D on our cohorts")
    sub.add_argument("--overlap", required=True, help="linus_experiments_overlap.csv from `deepnuclei overlap`")
    sub.add_argument("--plan", required=True, help="plan file linus_experiments.json: {experiments, models, cohorts, "
                                                   "timings, slice_cases}")
    sub.add_argument("--out-dir", required=True)

    sub = command("evaluation-figures", evaluation_figures, "scatter, Bland-Altman and Dice box plots (PNG + SVG)")
    sub.add_argument("--overlap", required=True, help="overlap.csv from `deepnuclei overlap`")
    sub.add_argument("--methods", nargs="*", default=[], help="models to plot against the reference")
    sub.add_argument("--qsm-reference", default="mask",
                     help="the QSM's qsm.reference (existing: existing maps'), stated on the axes")
    sub.add_argument("--out-dir", required=True)
    sub.add_argument("--workers", type=int, default=1, help="processes drawing the methods' figures")

    sub = command("overlays", overlays, "every method's labels over one image, three views, a row per method")
    sub.add_argument("--image", required=True)
    sub.add_argument("--labels", nargs="+", required=True, help="NAME=DSEG pairs, the reference first")
    sub.add_argument("--title", default="")
    sub.add_argument("--out", required=True)

    sub = command("measures", measures, "volume, centre of mass and susceptibility of every structure of one "
                                        "session's label maps, every method's (a TSV and a QSMxT CSV each), and "
                                        "their QC picture")
    sub.add_argument("--plan", required=True, help="plan file measures.json: JSON list of {subject, method, "
                                                   "t1_labels, t1, swi_labels, qsm, lookup, task, out, qsmxt, ...}")
    sub.add_argument("--subject", required=True, help="the session key (sub-<key>): its cases are measured")
    sub.add_argument("--qc", help="PNG: the cases' labels over the session's T1 and QSM, a row per method")

    sub = command("merge-measures", merge_measures, "the group tables of nucleus measures: long TSV and wide CSV")
    sub.add_argument("--plan", required=True, help="plan file measures.json: JSON list of {participant, session, "
                                                   "method, out, ...}")
    sub.add_argument("--out-tsv", required=True, help="every session x method x structure (BIDS TSV, n/a)")
    sub.add_argument("--out-csv", required=True, help="a row per session x method, a column per structure and "
                                                      "measure (CSV, NA)")
    sub.add_argument("--out-qsmxt", help="every case's QSMxT statistics (CSV, NA; the cases' `qsmxt` files)")

    sub = command("segmentation-qc", segmentation_qc, "every method's labels over a session's T1 and QSM, a row per "
                                                      "method")
    sub.add_argument("--t1", help="the native T1")
    sub.add_argument("--t1-labels", nargs="*", default=[], help="NAME=DSEG pairs on the T1 grid")
    sub.add_argument("--qsm", help="the susceptibility map")
    sub.add_argument("--swi-labels", nargs="*", default=[], help="NAME=DSEG pairs on the SWI grid")
    sub.add_argument("--title", default="")
    sub.add_argument("--out", required=True)

    sub = command("train", train, "train (or resume training) a configured model on preprocessed subjects")
    sub.add_argument("--plan", required=True, help='the training plan JSON: {"model": the config entry, "cases": '
                                                   '{"train": [...], "validation": [...]} of {subject, channels, labels}}')
    sub.add_argument("--out-dir", required=True, help="checkpoints, log.csv, curves.png and summary.json go here")
    sub.add_argument("--threads", type=int, default=2)

    sub = command("infer", infer, "segment one subject with a trained model")
    sub.add_argument("--checkpoint", required=True, help="a training checkpoint (.pt) or a model bundle (.zip)")
    sub.add_argument("--inputs", nargs="+", required=True, help="model-input files, in the model's channel order")
    sub.add_argument("--padding-record", help="the preprocess record: write the labels back on the image grid")
    sub.add_argument("--settings", required=True, help="the config's inference section as JSON")
    sub.add_argument("--out-dseg", required=True)
    sub.add_argument("--out-json", required=True, help="JSON record with the inference time")
    sub.add_argument("--other-grid", help="an image on the session's other grid (T1 or SWI): the labels go there too")
    sub.add_argument("--transform", help="the T1-to-SWI .tfm that links the two grids")
    sub.add_argument("--out-other", help="the labels on the other grid")
    sub.add_argument("--interpolation", default="label_aware", choices=["nearest", "label_aware"])
    sub.add_argument("--threads", type=int, default=2)

    sub = command("models", models, "print every model: dims, channels, parameters, bytes, the paper's count")
    sub.add_argument("--markdown", action="store_true", help="as a Markdown table")

    sub = command("view", view, "local web viewer on 127.0.0.1: open an MRI, segment it, see the nuclei in three views")
    sub.add_argument("--data-dir", default="results", help="the only folder whose NIfTI files the viewer reads")
    sub.add_argument("--results", default="results", help="trained models are read from its models/<name>/")
    sub.add_argument("--config", default="config/config.yaml",
                     help="preprocess windows, inference settings, model inputs")
    sub.add_argument("--port", type=int, default=8765)
    sub.add_argument("--max-upload-mb", type=float, default=256,
                     help="largest file read, uploaded or in the data folder")
    sub.add_argument("--threads", type=int, default=2)
    return parser


GLIBC_MALLOC_OPTIONS = {  # mallopt's option numbers (malloc.h) -> bytes
    -3: 32 << 20,  # M_MMAP_THRESHOLD: blocks up to 32 MiB from the heap, not each its own mapping
    -1: 1 << 30,  # M_TRIM_THRESHOLD: freed heap kept up to 1 GiB, not handed back to the system
    -2: 64 << 20,  # M_TOP_PAD: the heap grown 64 MiB at a time
}


def keep_freed_memory() -> None:
    """Have glibc's malloc reuse freed memory instead of returning it to the system: every training step
    frees and reallocates activations of megabytes, and numpy's volumes come and go alike; each returned
    block comes back as page faults. On one CPU thread of the demo machine a DB-ResUNet training step took
    687 ms instead of 796 to 813, the simulation of a subject 13.7 s instead of 15.1, a QSM 10.5 s instead of
    11.2, each with a half to a third of the system time. Nothing elsewhere than glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    for option, value in GLIBC_MALLOC_OPTIONS.items():
        libc.mallopt(option, value)


def main(argv: Sequence[str] | None = None) -> int:
    keep_freed_memory()
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
