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


def all_targets():
    targets = []
    if DEMO["enabled"]:
        targets += demo_targets()
    return targets
