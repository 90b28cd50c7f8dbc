"""Where the workflow writes each output: one place for every path, used by the plan (which writes case
lists of paths) and by the Snakemake rules (which use the same functions with "{subject}"-style
wildcards in place of values).

A session key names one acquisition session: the participant label alone ("01") for datasets without
sessions, else "<participant>_ses-<session>" ("01_ses-02"), so that `sub-<key>` is the BIDS file prefix
of every output (`sub-01_ses-02_space-SWI_desc-sharptv_Chimap.nii.gz`) and one wildcard carries both.
A session's files live in BIDS' folder of it, `sub-01/ses-02/` (`sub-01/` without sessions), which no
wildcard value of the key can spell: in the rules' templates ("{subject}") the folder is a second wildcard,
`{session_dir}` ("01/ses-02"), that Snakemake matches beside the key. Snakemake wants every file a rule
names (outputs, log, benchmark) to hold the same wildcards, so a session's logs and QC pictures are in its
folder too; the job that writes a whole folder (`measures_dir`, a path without the key) has the folder
alone, and its log and QC picture are named by it (`named=False`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SPACES = ("SWI", "T1w")
MAIN_COHORT = "main"  # the dataset's own sessions; further demo cohorts have names of their own
SESSION_KEY = "[A-Za-z0-9]+(_ses-[A-Za-z0-9]+)?"  # the workflow's `subject` wildcard
# The two passes of a network whose probabilities inference.flip averages: the image's and its mirror's
FLIP_PASSES = ("direct", "mirrored")
SESSION_DIR = "[A-Za-z0-9]+(/ses-[A-Za-z0-9]+)?"  # its `session_dir` wildcard: the folder below `sub-`
SUBJECT = "{subject}"  # the session key in the rules' templates


def session_folder(key: str) -> str:
    """`sub-<participant>/ses-<session>` (`sub-<participant>` without sessions); of the template "{subject}",
    `sub-{session_dir}`."""
    if key == SUBJECT:
        return "sub-{session_dir}"
    participant, _, session = key.partition("_ses-")
    return f"sub-{participant}/ses-{session}" if session else f"sub-{participant}"


def sidecar(path: str | os.PathLike) -> str:
    """The JSON sidecar of a NIfTI map (BIDS: the same name, `.json`)."""
    return re.sub(r"\.nii(\.gz)?$", ".json", str(path))


def for_session(template: str, key: str) -> str:
    """A path of the rules' templates ("{subject}", `session_folder`) with one session's key and folder."""
    return template.replace(session_folder(SUBJECT), session_folder(key)).replace(SUBJECT, key)


def folder_key(session_dir: str) -> str:
    """The session key of a `session_dir` wildcard's value: "01/ses-02" -> "01_ses-02"."""
    return session_dir.replace("/ses-", "_ses-")


def session_key(participant: str, session: str | None) -> str:
    return participant if not session else f"{participant}_ses-{session}"


def session_constraint(sessions: Sequence[str], others: Sequence[str]) -> str:
    """The `subject` wildcard's pattern for a rule that serves `sessions` where other rules serve `others`: the
    shorter of listing one or excluding the other (a rule of 1,000 listed sessions makes Snakemake's matching of
    every path slow). An excluded key is one followed in a path by `/` or `_` but not `_ses-` (a longer key)."""
    if len(sessions) <= len(others):
        return "|".join(map(re.escape, sessions)) or "(?!)"
    if not others:
        return SESSION_KEY
    return f"(?!(?:{'|'.join(map(re.escape, others))})(?:/|_(?!ses-))){SESSION_KEY}"


def bids_name(key: str, suffix: str, **entities: object) -> str:
    """`sub-<key>_<key>-<value>..._<suffix>` (entities in the order given)."""
    return "_".join([f"sub-{key}", *(f"{name}-{value}" for name, value in entities.items()), suffix])


@dataclass(frozen=True)
class Layout:
    """The results folder's layout. Every method is a name; every per-session file lives in
    `<results>/<stage>/<session_folder>/`."""

    results: Path

    @classmethod
    def of(cls, results: str | os.PathLike) -> Layout:
        return cls(Path(results))

    def result(self, stage: str, key: str, suffix: str, **entities: object) -> str:
        return str(self.results / stage / session_folder(key) / bids_name(key, suffix, **entities))

    def plan_file(self, name: str) -> str:
        return str(self.results / "plan" / f"{name}.json")

    def cohort_plan_file(self, name: str, cohort: str = MAIN_COHORT) -> str:
        """A plan file of the dataset's own sessions (`<name>.json`) or of a further cohort's (`<name>_<cohort>.json`)."""
        return self.plan_file(name + ("" if cohort == MAIN_COHORT else f"_{cohort}"))

    def preprocess_plan(self, space: str, cohort: str = MAIN_COHORT) -> str:
        """The plan file of a space's model-input settings: preprocess_SWI.json, preprocess_T1w[_<cohort>].json."""
        return self.cohort_plan_file(f"preprocess_{space}", cohort)

    def settings(self, name: str, cohort: str = MAIN_COHORT) -> str:
        """The settings file of a job (`deepnuclei.plan.settings_files`): settings_qsm_sharptv.json,
        settings_demo_<cohort>.json, settings_registration.json, ..."""
        return self.cohort_plan_file(f"settings_{name}", cohort)

    def log(self, rule: str, key: str = "all", named: bool = True) -> str:
        """A job's log: `logs/<rule>/sub-all.log` of a job of the whole run; a session's job's in the session's
        folder, `<folder>/sub-<key>.log`, or `<folder>.log` (`named=False`) for a job whose outputs name the
        folder alone (`measures_dir`)."""
        return self._job_file("logs", rule, key, ".log", named)

    def benchmark(self, rule: str, key: str = "all", named: bool = True) -> str:
        """A job's Snakemake benchmark, where `log` puts its log."""
        return self._job_file("benchmarks", rule, key, ".tsv", named)

    def _job_file(self, kind: str, rule: str, key: str, extension: str, named: bool) -> str:
        if key == "all":
            return str(self.results / kind / rule / f"sub-all{extension}")
        folder = self.results / kind / rule / session_folder(key)
        return str(folder / f"sub-{key}{extension}" if named else folder.with_name(folder.name + extension))

    # ---- per session

    def validation_record(self, key: str, checked: str = "inputs") -> str:
        """What validate_inputs found: `inputs` (the images) or `labels` (the reference labels)."""
        return self.result("validation", key, f"{checked}.json")

    def reference_labels(self, key: str, space: str, moved: bool = False) -> str:
        """The dataset's reference labels in the package's numbering (`labels_lookup` lists them); `moved`:
        those made from the other grid's labels through the registration."""
        return self.result("labels", key, "dseg.nii.gz", space=space, **({"desc": "moved"} if moved else {}))

    def labels_lookup(self) -> str:
        """The `dseg.tsv` of the structures the dataset's reference labels hold, in the package's numbering."""
        return str(self.results / "labels" / "dseg.tsv")

    def qsm(self, key: str, suffix: str, method: str) -> str:
        """QSM outputs per method: `Chimap.nii.gz` (ppm), `mask.nii.gz`, `localfield.nii.gz` (ppm), `Chimap.json`."""
        return self.result("qsm", key, suffix, space="SWI", desc=method)

    def registration_transform(self, key: str, method: str) -> str:
        return self.result("registration", key, "xfm.tfm", desc=method, **{"from": "T1w", "to": "SWI", "mode": "image"})

    def registration_record(self, key: str, method: str) -> str:
        return self.result("registration", key, "registration.json", desc=method)

    def t1_in_swi(self, key: str) -> str:
        return self.result("registration", key, "T1w.nii.gz", space="SWI")

    def preprocessed(self, key: str, suffix: str, space: str = "SWI") -> str:
        """A model-input file on the grid of `space`: `Chimap.nii.gz`, `T1w.nii.gz`, `dseg.nii.gz`, or the
        record `padding.json` that maps it back."""
        return self.result("preprocess", key, suffix, space=space, desc="model")

    def segmentation(self, method: str, key: str, space: str) -> str:
        """Where every method (atlas or model) writes its labels, in the package's numbering."""
        return self.result(f"segmentations/{method}", key, f"space-{space}_dseg.nii.gz")

    def segmentation_pass(self, model: str, key: str, space: str, name: str) -> str:
        """A model's labels of one pass (`FLIP_PASSES`) beside the averaged ones that `segmentation` names, on its
        own grid (`sub-<key>_space-SWI_desc-direct_dseg.nii.gz`): segmentation samples for the measures' intervals."""
        return self.result(f"segmentations/{model}", key, "dseg.nii.gz", space=space, desc=name)

    def inference_record(self, model: str, key: str) -> str:
        return self.result(f"segmentations/{model}", key, "inference.json")

    def overlap_dir(self, table: str, key: str) -> str:
        """A session's scores for one overlap table: the file below of every method it scores (one job)."""
        return str(self.results / "evaluation" / "cases" / table / session_folder(key))

    def overlap_case(self, table: str, method: str, key: str) -> str:
        """One method's scores on one session, merged into the overlap table `table`."""
        return self.result(f"evaluation/cases/{table}", key, "overlap.csv", desc=method)

    def segmentations_lookup(self) -> str:
        """The `dseg.tsv` of every segmentation under segmentations/: the package's whole numbering."""
        return str(self.results / "segmentations" / "dseg.tsv")

    def segmentation_qc(self, key: str) -> str:
        """Every method's labels over the session's T1 (and QSM), a row per method; written with its measures,
        named by the folder alone as they are (`measures_dir`)."""
        return str(self.results / "qc" / "measures" / f"{session_folder(key)}_segmentations_qc.png")

    def qsm_qc(self, key: str, method: str) -> str:
        return self.result("qc/qsm", key, "qsm.png", desc=method)

    def registration_qc(self, key: str) -> str:
        return self.result("qc/registration", key, "registration.png")

    def overlay_figure(self, key: str) -> str:
        """The evaluation's picture of a session's reference and methods' labels."""
        return self.result("qc/segmentations", key, "segmentations.png")

    # ---- nucleus measures (deepnuclei.measures)

    def measures_dir(self, key: str) -> str:
        """A session's measures: the two files below of every method that segments it (one job writes them)."""
        return str(self.results / "measures" / session_folder(key))

    def measures(self, method: str, key: str) -> str:
        """One method's (or the reference's) measures of every structure in one session, a TSV."""
        return self.result("measures", key, "nuclei.tsv", desc=method)

    def measures_qsmxt(self, method: str, key: str) -> str:
        """The same structures' statistics in QSMxT's columns (its `_analysis.csv`, `measures.qsmxt_table`), a CSV."""
        return self.result("measures", key, "qsmxt.csv", desc=method)

    def measures_table(self) -> str:
        """Every session x method x structure, long format (TSV)."""
        return str(self.results / "measures" / "nuclei.tsv")

    def measures_wide(self) -> str:
        """One row per session x method, a column per structure and measure (CSV)."""
        return str(self.results / "measures" / "nuclei_wide.csv")

    def measures_intervals_figure(self) -> str:
        """Every session's measures with their intervals, a panel per measure and nucleus (PNG)."""
        return str(self.results / "measures" / "nuclei_intervals.png")

    def measures_qsmxt_table(self) -> str:
        """Every session x method x structure in QSMxT's columns, the ids first (CSV)."""
        return str(self.results / "measures" / "nuclei_qsmxt.csv")

    # ---- models

    def model_file(self, model: str, name: str) -> str:
        """A trained model's folder: summary.json, log.csv, curves.png, checkpoint_{best,last}.pt."""
        return str(self.results / "models" / model / name)

    def model_bundle(self, model: str) -> str:
        """A trained model as one file (`deepnuclei.bundle`), for `models.<name>.bundle` elsewhere."""
        return str(self.results / "bundles" / f"{model}.zip")
