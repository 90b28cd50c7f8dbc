# Paths and targets. Every decision about the dataset (sessions, roles, what each method segments and
# scores, case lists) is deepnuclei.plan's, made once here and written as files under results/plan/ that
# rules pass by path; the `subject` wildcard is a session key (sub-<key>: "01" or "01_ses-02"), beside it
# `session_dir` its folder (sub-<session_dir>: "01" or "01/ses-02"; deepnuclei.layout).

import re
from pathlib import Path

from deepnuclei.derivatives import bids_uris, dataset_links
from deepnuclei.io import InputError
from deepnuclei.layout import SESSION_DIR, SESSION_KEY, SPACES, folder_key, session_constraint, sidecar
from deepnuclei.plan import EXISTING_QSM, MAIN_COHORT, PlanError, make_plan, plan_files, write_plan_files

BIDS = Path(config["bids_dir"])
RESULTS = Path(config["results_dir"])
DEMO = config["demo"]
# Sessions are simulated, reconstructed, registered and prepared before the atlas baselines and the evaluation
# take a core (priority 0): on a few cores the models' test sessions are then ready when training ends.
PREPARATION_PRIORITY = 1
DEMO_ROOT = Path(DEMO["root"])
TEMPLATE_DIR = DEMO_ROOT / "template"
ECHOES = list(range(1, len(DEMO["echo_times_s"]) + 1)) if DEMO["enabled"] else []
QSM = config["qsm"]
REGISTRATION = config["registration"]

try:
    PLAN = make_plan(config)
    PLAN_CONTENTS = plan_files(PLAN)
except (PlanError, InputError) as error:  # one line: the file or setting, and what is wrong
    raise WorkflowError(str(error))
LAYOUT = PLAN.layout
PLAN_FILES = write_plan_files(PLAN, PLAN_CONTENTS)
SESSIONS = PLAN.sessions
SUBJECTS = PLAN.cohort_sessions()  # the main cohort's sessions
MODELS = PLAN.models
MAIN_MODELS = PLAN.main_models
EVALUATION = RESULTS / "evaluation"
DATASET_LINKS = dataset_links(RESULTS, BIDS)

wildcard_constraints:
    subject=SESSION_KEY,
    session_dir=SESSION_DIR,
    participant="[A-Za-z0-9]+",
    echo="[0-9]+",
    space="|".join(SPACES),

# ---- paths (deepnuclei.layout) and the session's own files (the plan's)

result = LAYOUT.result
log_path = LAYOUT.log
benchmark_path = LAYOUT.benchmark
validation_record = LAYOUT.validation_record
registration_record = LAYOUT.registration_record
registration_qc = LAYOUT.registration_qc
overlay_figure = LAYOUT.overlay_figure
t1_in_swi = LAYOUT.t1_in_swi
preprocessed = LAYOUT.preprocessed
segmentation = LAYOUT.segmentation
inference_record = LAYOUT.inference_record
model_file = LAYOUT.model_file
model_bundle = LAYOUT.model_bundle


def source_uris(dataset, paths):
    """`--sources` of a map of the results dataset `dataset` (qsm, registration, segmentations/<method>): its
    input files as BIDS URIs, for its sidecar."""
    return " ".join(bids_uris(paths, DATASET_LINKS, RESULTS / dataset))


def plan_file(name):
    return PLAN_FILES[name]


def plan_paths(name, key):
    """One path of every case of a plan file's case list (the rule's inputs, beside the plan file)."""
    return [getattr(case, key) for case in PLAN_CONTENTS[name]]


def session(wildcards):
    return SESSIONS[wildcards.subject]


def validation_inputs(subject, labels):
    """The files of a session that validate_inputs checks: SWI (or its existing QSM map) and T1 where it has
    them, and (`labels`) its reference labels and their lookup, checked against those images' grids."""
    found = SESSIONS[subject]
    return {"t1": found.t1 or [], "magnitudes": found.magnitudes, "phases": found.phases, "sidecars": found.sidecars,
            "chimap": found.chimap or [],
            "swi_labels": found.labels.get("SWI", []) if labels else [],
            "t1_labels": found.labels.get("T1w", []) if labels else [],
            "lookup": found.lookup if labels and found.labelled and found.lookup else []}


def qsm_output(subject, suffix, method=None):
    """A QSM file of a session: of `method`, by default the one its SWI-grid steps read (the plan's)."""
    return LAYOUT.qsm(subject, suffix, method or PLAN.qsm_method(subject))


def registration_transform(subject, method=REGISTRATION["method"]):
    return LAYOUT.registration_transform(subject, method)


def bids(subject, suffix, datatype="anat", **entities):
    """A demo input file (the demo rules write them): bids(s, "T2starw.nii.gz", echo=1, part="mag")."""
    name = "_".join([f"sub-{subject}"] + [f"{key}-{value}" for key, value in entities.items()] + [suffix])
    return str(BIDS / f"sub-{subject}" / datatype / name)


def dataset_labels(subject, space):
    """The demo's reference labels as the demo writes them (the dataset's numbering is the package's)."""
    return str(BIDS / "derivatives" / "labels" / f"sub-{subject}" / "anat" / f"sub-{subject}_space-{space}_dseg.nii.gz")


def truth(subject, suffix):
    return PLAN.truth(subject, suffix)


def raise_workflow_error(message):
    raise WorkflowError(message)


def attempt_scaled(amount):
    """A resource (memory in MB, runtime in minutes) that grows with each retry of a failed job."""
    return lambda wildcards, attempt: amount * attempt


def swi_magnitudes(subject):
    if not SESSIONS[subject].has_swi:
        raise WorkflowError(f"sub-{subject} has no SWI images (results/plan/dataset.json lists what it has)")
    return SESSIONS[subject].magnitudes


def grid_image(subject, space):
    """An image on the session's grid of a space: the T1, or the first SWI magnitude."""
    if space == "T1w" and not SESSIONS[subject].has_t1:
        raise WorkflowError(f"sub-{subject} has no T1w image (results/plan/dataset.json lists what it has)")
    return SESSIONS[subject].t1 if space == "T1w" else swi_magnitudes(subject)[0]


def qsm_qc(subject, method=None):
    return LAYOUT.qsm_qc(subject, method or PLAN.qsm_method(subject))


def qsm_metrics_table(cohort=MAIN_COHORT):
    """The QSM metrics against the simulated truth: qsm_metrics.csv, qsm_metrics_<cohort>.csv for the others."""
    suffix = "" if cohort == MAIN_COHORT else f"_{cohort}"
    return str(RESULTS / "qsm" / f"qsm_metrics{suffix}.csv")


def model_inputs(model, subject):
    return PLAN.model_inputs(model, subject)


def training_inputs(wildcards):
    """The training and validation files of a model, and the bundle or checkpoint it starts from (`init`)."""
    plan = PLAN.training_plan(wildcards.model)
    return plan.cases.paths() + ([plan.model["init"]] if plan.model.get("init") else [])


def evaluation_table(name, extension):
    return str(EVALUATION / f"{name}.{extension}")


def evaluation_figure(stem, extension):
    return str(EVALUATION / "figures" / f"{stem}.{extension}")


def figure_stems():
    """As deepnuclei.figures.write_evaluation_figures: the box plot, then scatter and Bland-Altman plots per method
    (atlas baselines too: DB-ResUNet Fig. 8 has its atlas method beside the networks)."""
    return ["dice_boxplot"] + [f"{kind}_{quantity}_{method}" for method in PLAN.evaluated_methods()
                               for kind in ("scatter", "bland_altman") for quantity in ("volume", "susceptibility")]


EVALUATION_TABLES = ["demographics", "dice_nuclei", "dice_stn", "stn_methods", "efficiency", "localization_stn",
                     "localization_stn_voxels", "localization_all",
                     "summary"] + [f"ablation_{kind}" for kind in PLAN.ablation_methods]
EXPERIMENT_TABLES = {"resolution": "linus_resolution", "targets": "linus_targets", "optimizers": "linus_optimizers",
                     "slices": "linus_2d_vs_25d"}  # config list -> table
LINUS_TABLES = ["linus_cohorts", *EXPERIMENT_TABLES.values()]
OVERLAP_TABLES = ["overlap", "linus_experiments_overlap"]


# ---- what the rules read: a model, a case of a plan file, the label maps of a QC picture


def trained_model(model):
    """The input that stands for a model: its bundle (a changed bundle re-runs inference), or its training's
    summary (the checkpoints beside it are no outputs)."""
    return MODELS[model].get("bundle") or model_file(model, "summary.json")


def overlap_inputs(wildcards):
    """The files a session's scoring reads: every case's labels, reference and QSM."""
    cases = PLAN.overlap_sessions(wildcards.cases)[folder_key(wildcards.session_dir)]
    return list(dict.fromkeys(path for case in cases for path in (case.prediction, case.reference, case.qsm) if path))


def measures_inputs(wildcards):
    """The files a session's measures read: every case's label maps, images and lookup, and its intervals' samples."""
    cases = PLAN.measures_sessions()[folder_key(wildcards.session_dir)]
    return list(dict.fromkeys(path for case in cases for path in (case.t1_labels, case.t1, case.swi_labels, case.qsm,
                                                                  case.lookup, *case.swi_samples.values(),
                                                                  *case.qsm_samples.values()) if path))


def qc_labels(subject, space):
    """Name -> label map on one of the session's grids: the reference where labelled, then every method that
    segmented the session."""
    labels = {"reference": PLAN.reference_labels(subject, space)} if space in PLAN.reference_grids(subject) else {}
    for method in PLAN.evaluated_methods():
        if subject in PLAN.segmented_set(method) and space in PLAN.output_spaces(method, subject):
            labels[method] = segmentation(method, subject, space)
    return labels


def overlay_labels(subject):
    """`qc_labels` on the grid of the session's overlay picture: its SWI grid (T1 grid without SWI)."""
    return qc_labels(subject, "SWI" if SESSIONS[subject].has_swi else "T1w")


def derivative_datasets():
    """The results folders that are BIDS-Derivatives datasets: root -> (kind, the segmentation method or None)."""
    datasets = {"qsm": ("qsm", None)} if PLAN.with_swi() else {}
    datasets.update({"registration": ("registration", None)} if PLAN.registered() else {})
    datasets.update({f"segmentations/{method}": ("segmentations", method) for method in PLAN.evaluated_methods()
                     if PLAN.segmented(method)})
    datasets.update({"measures": ("measures", None)} if PLAN_CONTENTS["measures"] else {})
    return datasets


# ---- targets


def segmentation_targets(method):
    return [segmentation(method, key, space) for key in PLAN.segmented(method) for space in PLAN.output_spaces(method, key)]


def all_targets():
    swi, registered = PLAN.with_swi(), PLAN.registered()
    targets = []
    if DEMO["enabled"]:
        targets += [str(BIDS / "dataset_description.json")]
        targets += [str(RESULTS / "qc" / "demo" / f"sub-{key}_demo.png") for key in SUBJECTS]
        targets += [qsm_metrics_table()]
        targets += [str(RESULTS / "registration" / "tre.csv")] if REGISTRATION["tre_methods"] else []
    if config["bids_validator"] and not DEMO["enabled"]:
        targets += [str(RESULTS / "validation" / "bids_validator.txt")]
    targets += [registration_qc(key) for key in registered] + [qsm_qc(key) for key in swi]
    targets += [path for method in PLAN.evaluated_methods() for path in segmentation_targets(method)]
    targets += [str(RESULTS / "segmentations" / "dseg.tsv")]
    if PLAN_CONTENTS["measures"]:  # every segmented (and every labelled) session's nucleus measures and QC picture
        targets += [LAYOUT.measures_table(), LAYOUT.measures_wide(), LAYOUT.measures_qsmxt_table()]
        targets += [LAYOUT.segmentation_qc(key) for key in PLAN.measures_sessions()]
    targets += [str(RESULTS / root / "dataset_description.json") for root in derivative_datasets()]
    targets += [model_bundle(model) for model in config["models"] if model in MODELS and PLAN.trained(model)]
    if PLAN_CONTENTS["overlap"]:
        targets += [evaluation_table(name, extension) for name in EVALUATION_TABLES for extension in ("csv", "md", "tex")]
        targets += [evaluation_figure(stem, extension) for stem in figure_stems() for extension in ("png", "svg")]
        targets += [overlay_figure(key) for key in dict.fromkeys(case.subject for case in PLAN_CONTENTS["overlap"])]
    return targets
