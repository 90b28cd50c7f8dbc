# Shared helpers: subject list and every path of the workflow, from one place.

import json
import re
from pathlib import Path

BIDS = Path(config["bids_dir"])
RESULTS = Path(config["results_dir"])
DEMO = config["demo"]
DEMO_ROOT = Path(DEMO["root"])
TRUTH = DEMO_ROOT / "truth"
TEMPLATE_DIR = DEMO_ROOT / "template"
ECHOES = list(range(1, len(DEMO["echo_times_s"]) + 1)) if DEMO["enabled"] else []


# Further cohorts (config `cohorts`): subjects <prefix>01, <prefix>02, ... in the same dataset,
# simulated (demo) and prepared with their own settings over the main ones, with their own splits.
# The subject wildcard carries the cohort, so every per-subject rule serves them unchanged.
COHORTS = config["cohorts"]
MAIN_COHORT = "main"


def cohort_of(subject):
    for name, cohort in COHORTS.items():
        if re.fullmatch(rf"{re.escape(cohort['prefix'])}\d+", subject):
            return name
    return MAIN_COHORT


def discover_subjects():
    """The main cohort's subjects: the config's list, the demo's, or every sub-* of the dataset that
    belongs to no other cohort."""
    if config["subjects"]:
        return list(config["subjects"])
    if DEMO["enabled"]:
        return [f"{number:02d}" for number in range(1, DEMO["n_subjects"] + 1)]
    found = sorted(path.name[len("sub-"):] for path in BIDS.glob("sub-*") if path.is_dir())
    found = [subject for subject in found if cohort_of(subject) == MAIN_COHORT]
    if not found:
        raise WorkflowError(f"{BIDS}: no sub-* folders; set bids_dir or subjects in the config")
    return found


SUBJECTS = discover_subjects()


def cohort_subjects(cohort):
    if cohort == MAIN_COHORT:
        return SUBJECTS
    return [f"{COHORTS[cohort]['prefix']}{number:02d}" for number in range(1, COHORTS[cohort]["n_subjects"] + 1)]


def cohort_overrides(subject, section, default=None):
    """A section of the subject's cohort entry (`demo`, `preprocess`, `qsm`, `outside_view`); the
    default for the main cohort or where the entry has none."""
    cohort = cohort_of(subject)
    return default if cohort == MAIN_COHORT else COHORTS[cohort].get(section, default)


def cohort_settings(subject, section):
    """A config section (`demo`, `preprocess`) for a subject: its cohort's overrides over the main one."""
    return {**config[section], **cohort_overrides(subject, section, {})}


def qsm_settings(subject, method):
    """QSMParams keys of a method for a subject: its cohort's `qsm` overrides over the method's own."""
    return {**QSM["methods"][method], **cohort_overrides(subject, "qsm", {})}


def outside_view(subject):
    """Structures outside the field of view of the subject's cohort: validation lets their labels be absent."""
    return cohort_overrides(subject, "outside_view", [])


def split(role, cohort=MAIN_COHORT):
    """Subjects of a role (train / validation / test) of a cohort, in subject order as its counts say."""
    counts = config["splits"] if cohort == MAIN_COHORT else COHORTS[cohort]["splits"]
    subjects = cohort_subjects(cohort)
    if len(subjects) < counts["train"] + counts["validation"] + 1:
        raise WorkflowError(f"cohort {cohort}: splits need more than {counts['train'] + counts['validation']} "
                            f"subjects, found {len(subjects)}")
    bounds = {"train": (0, counts["train"]), "validation": (counts["train"], counts["train"] + counts["validation"])}
    start = counts["train"] + counts["validation"]
    bounds["test"] = (start, start + counts["test"])
    low, high = bounds[role]
    return subjects[low:high]


EVALUATED = split("test")  # the papers report test subjects only

wildcard_constraints:
    subject="[A-Za-z0-9]+",
    echo="[0-9]+",


def bids(subject, suffix, datatype="anat", **entities):
    """Path of a BIDS input: bids(s, "T1w.nii.gz"), bids(s, "T2starw.nii.gz", echo=1, part="mag")."""
    name = "_".join([f"sub-{subject}"] + [f"{key}-{value}" for key, value in entities.items()] + [suffix])
    return str(BIDS / f"sub-{subject}" / datatype / name)


def reference_labels(subject, space):
    return str(BIDS / "derivatives" / "labels" / f"sub-{subject}" / "anat" / f"sub-{subject}_space-{space}_dseg.nii.gz")


def result(stage, subject, suffix, **entities):
    """Path of a per-subject output: results/<stage>/sub-<id>/sub-<id>_<entities>_<suffix>."""
    name = "_".join([f"sub-{subject}"] + [f"{key}-{value}" for key, value in entities.items()] + [suffix])
    return str(RESULTS / stage / f"sub-{subject}" / name)


def log_path(rule_name, subject="all"):
    return str(RESULTS / "logs" / rule_name / f"sub-{subject}.log")


def benchmark_path(rule_name, subject="all"):
    return str(RESULTS / "benchmarks" / rule_name / f"sub-{subject}.tsv")


def as_json(section):
    """A config section as a single-quoted-safe JSON string for a shell argument."""
    text = json.dumps(section, sort_keys=True)
    if "'" in text:
        raise WorkflowError(f"config values must not contain single quotes: {text}")
    return text


def attempt_scaled(amount):
    """A resource (memory in MB, runtime in minutes) that grows with each retry of a failed job."""
    return lambda wildcards, attempt: amount * attempt


def truth(subject, suffix):
    return str(TRUTH / f"sub-{subject}" / f"sub-{subject}_{suffix}")


def demo_targets():
    return [str(BIDS / "dataset_description.json")] + expand(
        str(RESULTS / "qc" / "demo" / "sub-{subject}_demo.png"), subject=SUBJECTS
    )


def segmentation(method, subject, space):
    """Where every method (atlas or model) writes its labels: one place and format for evaluation."""
    return result(f"segmentations/{method}", subject, f"space-{space}_dseg.nii.gz")


# ---- registration (workflow/rules/registration.smk)

REGISTRATION = config["registration"]
XFM_ENTITIES = {"from": "T1w", "to": "SWI", "mode": "image"}


def swi_echoes(subject):
    """The subject's SWI echo numbers: the demo's configured echoes, else those on disk."""
    echoes = ECHOES
    if not echoes:
        found = BIDS.glob(f"sub-{subject}/anat/sub-{subject}_echo-*_part-mag_T2starw.nii.gz")
        echoes = sorted(int(path.name.split("_echo-")[1].split("_")[0]) for path in found)
    if not echoes:
        raise WorkflowError(f"{BIDS / f'sub-{subject}' / 'anat'}: no *_echo-<n>_part-mag_T2starw.nii.gz files")
    return echoes


def swi_files(subject, part, extension="nii.gz"):
    """One file per echo, in echo order: part is mag or phase; extension nii.gz or json (sidecars)."""
    return [bids(subject, f"T2starw.{extension}", echo=echo, part=part) for echo in swi_echoes(subject)]


def swi_magnitudes(subject):
    return swi_files(subject, "mag")


def registration_transform(subject, method=REGISTRATION["method"]):
    return result("registration", subject, "xfm.tfm", desc=method, **XFM_ENTITIES)


def t1_in_swi(subject):
    return result("registration", subject, "T1w.nii.gz", space="SWI")


def registration_qc(subject):
    return str(RESULTS / "qc" / "registration" / f"sub-{subject}_registration.png")


def tre_cases():
    """What results/registration/tre.csv scores: every subject and method against the demo's truth."""
    return [
        {"subject": subject, "method": method, "transform": registration_transform(subject, method),
         "record": result("registration", subject, "registration.json", desc=method),
         "truth": truth(subject, "from-T1w_to-SWI_mode-image_xfm.tfm"), "mask": truth(subject, "space-SWI_mask.nii.gz")}
        for subject in SUBJECTS
        for method in REGISTRATION["tre_methods"]
    ]


def registration_targets():
    targets = [t1_in_swi(subject) for subject in SUBJECTS] + [registration_qc(subject) for subject in SUBJECTS]
    if DEMO["enabled"] and REGISTRATION["tre_methods"]:
        targets.append(str(RESULTS / "registration" / "tre.csv"))
    return targets


# ---- input checks (workflow/rules/qsm.smk: validate_inputs, which QSM and registration wait for)


def validation_record(subject):
    return str(RESULTS / "validation" / f"sub-{subject}_inputs.json")


def present(path):
    """[path] when the dataset has the file (the demo makes every file), else []: an optional input."""
    return [str(path)] if DEMO["enabled"] or Path(path).exists() else []


def validation_inputs(wildcards):
    """Every file of a subject that validate_inputs checks; reference labels and lookup where present."""
    subject = wildcards.subject
    return {"t1": bids(subject, "T1w.nii.gz"), "magnitudes": swi_files(subject, "mag"),
            "phases": swi_files(subject, "phase"), "sidecars": swi_files(subject, "phase", "json"),
            "swi_labels": present(reference_labels(subject, "SWI")),
            "t1_labels": present(reference_labels(subject, "T1w")),
            "lookup": present(BIDS / "derivatives" / "labels" / "dseg.tsv")}


# ---- model inputs (workflow/rules/preprocess.smk)

PREPROCESS = config["preprocess"]
QSM = config["qsm"]


def qsm_output(subject, suffix, method=QSM["method"]):
    """QSM outputs per method: `Chimap.nii.gz` (ppm), `mask.nii.gz`, `localfield.nii.gz` (ppm)."""
    return result("qsm", subject, suffix, space="SWI", desc=method)


def qsm_qc(subject, method=QSM["method"]):
    return str(RESULTS / "qc" / "qsm" / f"sub-{subject}_desc-{method}_qsm.png")


def qsm_targets():
    targets = [qsm_qc(subject) for subject in SUBJECTS]
    if DEMO["enabled"]:
        targets.append(qsm_metrics_table())
    return targets


def qsm_metrics_table(cohort=MAIN_COHORT):
    """The QSM metrics against the simulated truth: qsm_metrics.csv, qsm_metrics_<cohort>.csv for the others."""
    suffix = "" if cohort == MAIN_COHORT else f"_{cohort}"
    return str(RESULTS / "qsm" / f"qsm_metrics{suffix}.csv")


def qsm_metric_cases(cohort_suffix=""):
    """Every subject of the cohort named by the table's suffix ('' or '_<cohort>'), with every evaluated method."""
    cohort = cohort_suffix[1:] or MAIN_COHORT
    return [{"subject": subject, "method": method, "chi": qsm_output(subject, "Chimap.nii.gz", method),
             "mask": qsm_output(subject, "mask.nii.gz", method), "truth": truth(subject, "space-SWI_Chimap.nii.gz"),
             "dseg": truth(subject, "space-SWI_dseg.nii.gz"), "truth_mask": truth(subject, "space-SWI_mask.nii.gz")}
            for subject in cohort_subjects(cohort) for method in QSM["evaluate"]]


def preprocessed(subject, suffix):
    """A model-input file: `Chimap.nii.gz`, `T1w.nii.gz`, `dseg.nii.gz`, or the record `padding.json`."""
    return result("preprocess", subject, suffix, space="SWI", desc="model")


def preprocess_targets():
    labelled = [subject for subject in SUBJECTS if DEMO["enabled"] or Path(reference_labels(subject, "SWI")).exists()]
    return expand(preprocessed("{subject}", "{suffix}"), subject=SUBJECTS, suffix=["Chimap.nii.gz", "T1w.nii.gz"]) + [
        preprocessed(subject, "dseg.nii.gz") for subject in labelled
    ]


# ---- models (workflow/rules/models.smk)

ABLATIONS = config["ablations"]


def ablation_variants():
    """DB-ResUNet Tables III and IV as models: the `ablations.model` entry with another global-branch
    rate, or other inputs, named after what changed."""
    if not (ABLATIONS["rates"] or ABLATIONS["inputs"]):
        return {}, {}
    name = ABLATIONS["model"]
    if name not in config["models"]:
        raise WorkflowError(f"ablations.model '{name}' is not a key of the config's models")
    base = config["models"][name]
    rates = {f"{name}-rate{'x'.join(map(str, rate))}": {**base, "options": {**base.get("options", {}), "rate": rate}}
             for rate in ABLATIONS["rates"]}
    inputs = {f"{name}-in-{'-'.join(channels)}": {**base, "inputs": channels} for channels in ABLATIONS["inputs"]}
    return {**rates, **inputs}, {"rate": [name, *rates], "inputs": [name, *inputs]}


ABLATION_MODELS, ABLATION_METHODS = ablation_variants()
EXPERIMENTS = config["linus_experiments"]
MAIN_MODELS = {**config["models"], **ABLATION_MODELS}  # the main cohort's tables, figures and report
MODELS = {**MAIN_MODELS, **EXPERIMENTS["models"]}  # every model the train / infer rules can make
MODEL_DIR = RESULTS / "models"


def model_file(model, name):
    """A trained model's folder: summary.json, log.csv, curves.png, checkpoint_{best,last}.pt."""
    return str(MODEL_DIR / model / name)


def model_inputs(model, subject):
    """A subject's model-input files, in the model's channel order."""
    return [preprocessed(subject, f"{suffix}.nii.gz") for suffix in MODELS[model]["inputs"]]


def model_split(model, role):
    """A model's subjects of a role, from the cohort it trains and is tested on."""
    return split(role, MODELS[model].get("cohort", MAIN_COHORT))


def training_cases(model):
    """The files a model trains and validates on, as `deepnuclei train --cases` reads them."""
    return {role: [{"subject": subject, "channels": model_inputs(model, subject),
                    "labels": preprocessed(subject, "dseg.nii.gz")} for subject in model_split(model, role)]
            for role in ("train", "validation")}


def training_inputs(wildcards):
    cases = training_cases(wildcards.model)
    return [path for role in cases.values() for case in role for path in (*case["channels"], case["labels"])]


def inference_record(model, subject):
    return result(f"segmentations/{model}", subject, "inference.json")


def model_targets():
    return [segmentation(model, subject, "T1w") for model in MAIN_MODELS for subject in EVALUATED]


def jlf_atlas_subjects():
    """The training subjects that serve as atlases of joint label fusion: the first `jlf_atlases`."""
    return split("train")[: config["atlas"]["jlf_atlases"]]


def evaluated_methods():
    return list(config["atlas"]["methods"]) + list(MAIN_MODELS)


def overlap_case(method, subject):
    """One method on one subject; susceptibility is read from the QSM the models saw."""
    return {"subject": subject, "method": method, "prediction": segmentation(method, subject, "SWI"),
            "reference": reference_labels(subject, "SWI"), "qsm": qsm_output(subject, "Chimap.nii.gz"),
            **({"task": MODELS[method]["task"]} if method in MODELS else {})}


def overlap_cases():
    """Every method on every evaluated subject."""
    return [overlap_case(method, subject) for method in evaluated_methods() for subject in EVALUATED]


ATLAS_RULES = {"atlas": "atlas_single", "atlas-jlf": "atlas_jlf"}


def timing_cases():
    """Where each method's time per subject was recorded: the Snakemake benchmark of the job that
    segmented it and, for models, the inference record (network time, device)."""
    cases = [{"method": method, "subject": subject, "benchmark": benchmark_path(ATLAS_RULES[method], subject)}
             for method in config["atlas"]["methods"] for subject in EVALUATED]
    cases += [{"method": model, "subject": subject, "benchmark": benchmark_path(f"infer_{model}", subject),
               "record": inference_record(model, subject)} for model in MAIN_MODELS for subject in EVALUATED]
    return cases


EVALUATION = RESULTS / "evaluation"
EVALUATION_TABLES = ["dice_nuclei", "dice_stn", "stn_methods", "efficiency", "localization_stn", "localization_all",
                     "summary"] + [f"ablation_{kind}" for kind in ABLATION_METHODS]


def evaluation_table(name, extension):
    return str(EVALUATION / f"{name}.{extension}")


def evaluation_figure(stem, extension):
    return str(EVALUATION / "figures" / f"{stem}.{extension}")


def figure_stems():
    """As deepnuclei.figures.figure_stems: the box plot, then scatter and Bland-Altman plots per model."""
    return ["dice_boxplot"] + [f"{kind}_{quantity}_{model}" for model in MAIN_MODELS for kind in ("scatter", "bland_altman")
                               for quantity in ("volume", "susceptibility")]


def overlay_figure(subject):
    return str(RESULTS / "qc" / "segmentations" / f"sub-{subject}_segmentations.png")


def overlay_labels(subject):
    """Name -> label map for `deepnuclei overlays`: the reference first, then every method."""
    return {"reference": reference_labels(subject, "SWI"),
            **{method: segmentation(method, subject, "SWI") for method in evaluated_methods()}}


def evaluation_targets():
    return ([evaluation_table(name, extension) for name in EVALUATION_TABLES for extension in ("csv", "md", "tex")]
            + [evaluation_figure(stem, extension) for stem in figure_stems() for extension in ("png", "svg")]
            + [overlay_figure(subject) for subject in EVALUATED])


# ---- the LiNUS paper's further experiments (workflow/rules/experiments.smk)

EXPERIMENT_TABLES = {"resolution": "linus_resolution", "targets": "linus_targets", "optimizers": "linus_optimizers",
                     "slices": "linus_2d_vs_25d"}  # config list -> table
LINUS_TABLES = ["linus_cohorts", *EXPERIMENT_TABLES.values()]


def experiment_methods():
    """Every model the experiment tables compare, in first-named order."""
    methods = list(dict.fromkeys(method for kind in EXPERIMENT_TABLES for method in EXPERIMENTS[kind]))
    unknown = [method for method in methods if method not in MODELS]
    if unknown:
        raise WorkflowError(f"linus_experiments names {unknown}: not models of the config (models or linus_experiments.models)")
    return methods


def experiment_cases():
    """Every experiment model on the test subjects of its cohort."""
    return [overlap_case(method, subject) for method in experiment_methods() for subject in model_split(method, "test")]


def experiment_timing_cases():
    return [{"method": case["method"], "subject": case["subject"],
             "benchmark": benchmark_path(f"infer_{case['method']}", case["subject"]),
             "record": inference_record(case["method"], case["subject"])} for case in experiment_cases()]


def experiment_cohorts():
    """Per cohort of the experiments: its first test subject's T1 and model input (Table VI reads the
    image dimensions and spacing from them) and its number of subjects."""
    cohorts = dict.fromkeys(MODELS[method].get("cohort", MAIN_COHORT) for method in experiment_methods())
    first_tested = {cohort: split("test", cohort)[0] for cohort in cohorts}
    return {cohort: {"subjects": len(cohort_subjects(cohort)), "t1": bids(subject, "T1w.nii.gz"),
                     "model_input": preprocessed(subject, "Chimap.nii.gz")} for cohort, subject in first_tested.items()}


OVERLAP_CASES = {"overlap": overlap_cases, "linus_experiments_overlap": experiment_cases}


def all_targets():
    targets = []
    if DEMO["enabled"]:
        targets += demo_targets()
    targets += registration_targets()
    targets += qsm_targets()
    targets += preprocess_targets()
    targets += model_targets()
    targets += evaluation_targets()
    return targets
