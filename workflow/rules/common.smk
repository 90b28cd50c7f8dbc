# Shared helpers: subject list and every path of the workflow, from one place.

import json
from pathlib import Path

BIDS = Path(config["bids_dir"])
RESULTS = Path(config["results_dir"])
DEMO = config["demo"]
DEMO_ROOT = Path(DEMO["root"])
TRUTH = DEMO_ROOT / "truth"
TEMPLATE_DIR = DEMO_ROOT / "template"
ECHOES = list(range(1, len(DEMO["echo_times_s"]) + 1)) if DEMO["enabled"] else []


def discover_subjects():
    if config["subjects"]:
        return list(config["subjects"])
    if DEMO["enabled"]:
        return [f"{number:02d}" for number in range(1, DEMO["n_subjects"] + 1)]
    found = sorted(path.name[len("sub-"):] for path in BIDS.glob("sub-*") if path.is_dir())
    if not found:
        raise WorkflowError(f"{BIDS}: no sub-* folders; set bids_dir or subjects in the config")
    return found


SUBJECTS = discover_subjects()


def split(role):
    """Subjects of a role (train / validation / test), in subject order as the config's counts say."""
    counts = config["splits"]
    if len(SUBJECTS) < counts["train"] + counts["validation"] + 1:
        raise WorkflowError(f"splits need more than {counts['train'] + counts['validation']} subjects, found {len(SUBJECTS)}")
    bounds = {"train": (0, counts["train"]), "validation": (counts["train"], counts["train"] + counts["validation"])}
    start = counts["train"] + counts["validation"]
    bounds["test"] = (start, start + counts["test"])
    low, high = bounds[role]
    return SUBJECTS[low:high]


EVALUATED = split("validation") + split("test")

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
        targets.append(str(RESULTS / "qsm" / "qsm_metrics.csv"))
    return targets


def qsm_metric_cases():
    return [{"subject": subject, "method": method, "chi": qsm_output(subject, "Chimap.nii.gz", method),
             "mask": qsm_output(subject, "mask.nii.gz", method), "truth": truth(subject, "space-SWI_Chimap.nii.gz"),
             "dseg": truth(subject, "space-SWI_dseg.nii.gz"), "truth_mask": truth(subject, "space-SWI_mask.nii.gz")}
            for subject in SUBJECTS for method in QSM["evaluate"]]


def preprocessed(subject, suffix):
    """A model-input file: `Chimap.nii.gz`, `T1w.nii.gz`, `dseg.nii.gz`, or the record `padding.json`."""
    return result("preprocess", subject, suffix, space="SWI", desc="model")


def preprocess_targets():
    labelled = [subject for subject in SUBJECTS if DEMO["enabled"] or Path(reference_labels(subject, "SWI")).exists()]
    return expand(preprocessed("{subject}", "{suffix}"), subject=SUBJECTS, suffix=["Chimap.nii.gz", "T1w.nii.gz"]) + [
        preprocessed(subject, "dseg.nii.gz") for subject in labelled
    ]


def evaluated_methods():
    return list(config["atlas"]["methods"])


def overlap_cases():
    return [{"subject": subject, "method": method, "prediction": segmentation(method, subject, "SWI"),
             "reference": reference_labels(subject, "SWI")}
            for method in evaluated_methods() for subject in EVALUATED]


def all_targets():
    targets = []
    if DEMO["enabled"]:
        targets += demo_targets()
    targets += registration_targets()
    targets += qsm_targets()
    targets += preprocess_targets()
    targets.append(str(RESULTS / "evaluation" / "overlap.csv"))
    return targets
