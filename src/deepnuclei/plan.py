"""The workflow's plan: the dataset read once, and every decision taken from it written down as files.

`make_plan(config)` finds the sessions (BIDS participants and sessions, filtered as BIDS apps filter
them), the inputs each has (T1w, SWI echoes with their sidecars, reference labels and their space),
each session's role (train / validation / test, by participant so that no participant's sessions sit on
both sides of a split; `apply` for the rest: segmented, never trained on or scored), which method can
segment and score which session, and the case lists. `write_plan_files` writes them as JSON under
`<results>/plan/`; rules pass those files by path, so no command line grows with the cohort.

The BIDS layer is bids2table: it indexes a dataset into one table of entities (1,000 sessions of
18 files each in about a second here, with the BIDS schema's entity parsing), where pybids builds a SQL
index (reported slow on large datasets) and snakebids pins its own Snakemake. The demo's layout is known before it
is simulated, so its plan is made from the config with the same file names.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import bundle_path, is_bundle, load_bundle
from .labels import check_task, lookup_structures
from .derivatives import bids_uris, dataset_links
from .layout import FLIP_PASSES, MAIN_COHORT, SPACES, SUBJECT, Layout, bids_name, session_key
from .plan_files import (AtlasCase, DatasetRecord, EvaluationPlan, ExperimentCohort, ExperimentsPlan, MeasuresCase,
                         InferencePlan, OverlapCase, Participants, PreprocessPlan, QsmMetricCase, QsmSource, SessionRecord, TimingCase,
                         TrainCase, TrainCases, TrainPlan, TreCase, write_plan_file)

log = logging.getLogger(__name__)

ROLES = ("train", "validation", "test", "apply")
SWI_SUFFIXES = ("T2starw", "MEGRE")  # qsm-forward and QSMxT name multi-echo GRE T2starw; BIDS 1.8+ MEGRE
IMAGE_EXTENSIONS = (".nii.gz", ".nii")
INPUT_KINDS = ("T1w", "swi", "labels", "Chimap")  # the config's bids_filters keys
EXISTING_QSM = "existing"  # the `desc` of a session's QSM taken from an existing map (qsm.input), not reconstructed
# The group of the shipped interval factors (deepnuclei.uncertainty) of each method that is not a model (a model's is
# `network`): the atlas baseline's, and the reference labels' (learnt on true labels: the QSM spread alone)
INTERVAL_GROUPS = {"atlas": "atlas", "reference": "reference"}
PREPROCESS_SECTIONS = {"SWI": "preprocess", "T1w": "preprocess_t1w"}  # each space's model-input settings


class PlanError(ValueError):
    """A dataset or config that the workflow cannot serve, found before any job runs."""


@dataclass
class Session:
    """One acquisition session's input files (paths as found, None / empty where absent)."""

    key: str
    participant: str
    session: str | None
    cohort: str
    t1: str | None = None
    echoes: list[int] = field(default_factory=list)
    magnitudes: list[str] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    sidecars: list[str] = field(default_factory=list)  # of the phase images, in echo order
    labels: dict[str, str] = field(default_factory=dict)  # space -> the dataset's label map
    lookup: str | None = None  # the dataset's dseg.tsv for those labels; None: the package's numbering
    chimap: str | None = None  # an existing QSM map used instead of reconstructing one from the phase (qsm.input)

    @property
    def has_swi(self) -> bool:
        return bool(self.magnitudes)

    @property
    def has_t1(self) -> bool:
        return self.t1 is not None

    @property
    def spaces(self) -> list[str]:
        return [space for space, present in (("SWI", self.has_swi), ("T1w", self.has_t1)) if present]

    @property
    def registered(self) -> bool:
        """T1 -> SWI registration runs where a session has both."""
        return self.has_swi and self.has_t1

    def label_source(self, space: str) -> str | None:
        """Where the reference labels on a space's grid come from: the dataset, moved from the other
        space through the registration, or nowhere."""
        if space in self.labels:
            return "dataset"
        other = "T1w" if space == "SWI" else "SWI"
        return f"moved from {other}" if other in self.labels and self.registered else None

    @property
    def labelled(self) -> bool:
        return bool(self.labels)


# ---- finding the sessions --------------------------------------------------------------------------


def cohort_of(participant: str, cohorts: Mapping[str, Mapping]) -> str:
    for name, cohort in cohorts.items():
        if re.fullmatch(rf"{re.escape(cohort['prefix'])}\d+", participant):
            return name
    return MAIN_COHORT


def label_list(value: str | int | Sequence | None) -> list[str | int]:
    """Participant labels as given in the config or on a command line, without any "sub-" prefix. Snakemake
    reads `--config participant_label=01` as the number 1, so numbers stay numbers (`select_participants`
    matches them to labels of digits)."""
    if value is None or value == "":
        return []
    values = [value] if isinstance(value, (str, int)) else list(value)
    return [item if isinstance(item, int) else str(item).removeprefix("sub-") for item in values]


def demo_sessions(config: Mapping) -> list[Session]:
    """The demo cohort's sessions, from the config: the files the demo rules will write."""
    demo, bids = config["demo"], Path(config["bids_dir"])
    echoes = list(range(1, len(demo["echo_times_s"]) + 1))
    participants = [f"{number:02d}" for number in range(1, demo["n_subjects"] + 1)]
    participants += [f"{cohort['prefix']}{number:02d}" for cohort in config["cohorts"].values()
                     for number in range(1, cohort["n_subjects"] + 1)]
    labels_dir = bids / "derivatives" / "labels"
    sessions = []
    for participant in participants:
        anat = bids / f"sub-{participant}" / "anat"

        def swi(part: str, extension: str, echo: int) -> str:
            return str(anat / bids_name(participant, f"T2starw.{extension}", echo=echo, part=part))

        sessions.append(Session(
            participant, participant, None, cohort_of(participant, config["cohorts"]),
            t1=str(anat / bids_name(participant, "T1w.nii.gz")), echoes=echoes,
            magnitudes=[swi("mag", "nii.gz", echo) for echo in echoes],
            phases=[swi("phase", "nii.gz", echo) for echo in echoes],
            sidecars=[swi("phase", "json", echo) for echo in echoes],
            labels={space: str(labels_dir / f"sub-{participant}" / "anat" / bids_name(participant, "dseg.nii.gz", space=space))
                    for space in SPACES}))  # in the package's numbering: no lookup to map them by
    return sessions


Image = dict[str, str]  # one indexed file: its BIDS entities (sub, ses, echo, part, space, suffix, ext, ...) and path


def index_images(root: Path, participants: Sequence[str]) -> list[Image]:
    """bids2table's index of a BIDS folder: one entry per NIfTI image with its entities (absent ones
    left out) and absolute `path`; empty when the folder does not exist."""
    from bids2table import index_dataset

    if not root.is_dir():
        return []
    table = index_dataset(root, include_subjects=[f"sub-{label}" for label in participants] or None)
    columns = [name for name in table.column_names if name not in {"dataset", "extra_entities", "root"}]
    images = []
    for row in table.select(columns + ["root"]).to_pylist():
        if row["ext"] in IMAGE_EXTENSIONS:
            entities = {name: str(row[name]) for name in columns if row[name] is not None}
            images.append({**entities, "path": str(Path(row["root"]) / row["path"])})
    return images


def filtered(images: Iterable[Image], filters: Mapping[str, Any]) -> list[Image]:
    """Images whose entities match the config's `bids_filters` of one kind (null: the entity must be absent)."""
    return [image for image in images
            if all(image.get(entity) == (None if value is None else str(value)) for entity, value in filters.items())]


def one_series(images: list[Image], what: str, folder: str, kind: str, varying: Sequence[str] = ()) -> list[Image]:
    """The images of one acquisition (one image, or one echo series): candidates that differ in another
    entity are an error naming them and the config key that chooses one."""
    keys = {key for image in images for key in image} - {"path", "ext", *varying}
    differing = sorted(key for key in keys if len({image.get(key) for image in images}) > 1)
    if differing:
        names = ", ".join(sorted(Path(image["path"]).name for image in images)[:6])
        raise PlanError(f"{folder}: several {what} ({names}, differing in {', '.join(differing)}): choose one with the "
                        f"config's bids_filters, e.g. --config 'bids_filters={{{kind}: {{{differing[0]}: ...}}}}'")
    return images


def sidecar_of(image: str) -> str:
    for extension in IMAGE_EXTENSIONS:
        if image.endswith(extension):
            return image[: -len(extension)] + ".json"
    return image + ".json"


def existing_qsm_maps(config: Mapping, images: Sequence[Image], participants: Sequence[str]) -> dict[tuple[str, str], list[Image]]:
    """The `_Chimap` images by session where `qsm.input` uses them: the dataset's own (`images`), or those of
    the derivative folder `qsm.existing_dir` (QSMxT writes <bids_dir>/derivatives/qsmxt)."""
    qsm = config["qsm"]
    if qsm["input"] == "reconstruct":
        return {}
    folder = qsm["existing_dir"]
    if folder is not None and not Path(folder).is_dir():
        raise PlanError(f"{folder}: the folder of existing QSM maps (config qsm.existing_dir) does not exist")
    found = images if folder is None else index_images(Path(folder), participants)
    return by_session(image for image in filtered(found, config["bids_filters"].get("Chimap") or {})
                      if image["suffix"] == "Chimap")


def by_session(images: Iterable[Image]) -> dict[tuple[str, str], list[Image]]:
    grouped: dict[tuple[str, str], list[Image]] = {}
    for image in images:
        grouped.setdefault((image["sub"], image.get("ses", "")), []).append(image)
    return grouped


def bids_sessions(config: Mapping, participants: Sequence[str]) -> tuple[list[Session], list[str]]:
    """Every session of a real BIDS dataset with what it holds, and notes on what was left out."""
    bids = Path(config["bids_dir"])
    if not bids.is_dir():
        raise PlanError(f"{bids}: the BIDS dataset (config bids_dir) does not exist")
    filters = {kind: config["bids_filters"].get(kind) or {} for kind in INPUT_KINDS}
    derivatives = str(bids / "derivatives") + os.sep
    images = [image for image in index_images(bids, participants) if not image["path"].startswith(derivatives)]
    labels_dir = Path(config["labels_dir"] or bids / "derivatives" / "labels")
    label_images = by_session(image for image in filtered(index_images(labels_dir, participants), filters["labels"])
                              if image["suffix"] == "dseg")
    top_lookup = labels_dir / "dseg.tsv"
    chimaps = existing_qsm_maps(config, images, participants)
    sessions, notes = [], []
    for (participant, session), rows in sorted(by_session(images).items()):
        key = session_key(participant, session)
        folder = str(bids / f"sub-{participant}" / (f"ses-{session}" if session else ""))
        found = Session(key, participant, session or None, cohort_of(participant, config["cohorts"]))
        t1 = one_series(filtered((row for row in rows if row["suffix"] == "T1w"), filters["T1w"]), "T1w images",
                        folder, "T1w")
        found.t1 = t1[0]["path"] if t1 else None
        swi = filtered((row for row in rows if row["suffix"] in SWI_SUFFIXES and row.get("part") in ("mag", "phase")),
                       filters["swi"])
        chimap = one_series(chimaps.get((participant, session), []), "existing QSM maps (_Chimap)", folder, "Chimap")
        found.chimap = chimap[0]["path"] if chimap else None
        if swi:
            one_series(swi, "SWI series", folder, "swi", varying=("echo", "part"))
            echoes = {part: {int(row.get("echo", 1)): row["path"] for row in swi if row["part"] == part}
                      for part in ("mag", "phase")}
            if found.chimap is None and sorted(echoes["mag"]) != sorted(echoes["phase"]):
                raise PlanError(f"{folder}: SWI magnitude echoes {sorted(echoes['mag'])} and phase echoes "
                                f"{sorted(echoes['phase'])} differ")
            found.echoes = sorted(echoes["mag"])
            found.magnitudes = [echoes["mag"][echo] for echo in found.echoes]
            if found.chimap is None:  # an existing map replaces the phase: it is neither read nor checked
                found.phases = [echoes["phase"][echo] for echo in found.echoes]
                found.sidecars = [sidecar_of(path) for path in found.phases]
        if found.chimap and not found.has_swi:
            raise PlanError(f"{found.chimap}: an existing QSM map needs the SWI magnitude of its session (its grid, to "
                            f"which the T1 is registered), and {folder} has none")
        if config["qsm"]["input"] == "existing" and found.has_swi and not found.chimap:
            raise PlanError(f"{folder}: no existing QSM map (_Chimap) in {config['qsm']['existing_dir'] or bids} and "
                            f"qsm.input is existing: add one, or set qsm.input: auto to reconstruct it from the phase")
        if not (found.has_t1 or found.has_swi):
            notes.append(f"sub-{key}: no T1w and no SWI images, left out")
            continue
        for space in sorted({image.get("space", "") for image in label_images.get((participant, session), [])}):
            space_images = [image for image in label_images[(participant, session)] if image.get("space", "") == space]
            if space not in SPACES:
                raise PlanError(f"{space_images[0]['path']}: reference labels need a space entity, space-SWI or "
                                f"space-T1w, to say which grid they are on")
            path = one_series(space_images, f"space-{space} label maps", str(labels_dir), "labels")[0]["path"]
            found.labels[space] = path
            beside = Path(sidecar_of(path)).with_suffix(".tsv")
            found.lookup = str(beside) if beside.exists() else str(top_lookup) if top_lookup.exists() else None
        sessions.append(found)
    unused = [image["path"] for image in images if image["suffix"] == "Chimap"]
    if unused and config["qsm"]["input"] == "reconstruct":
        notes.append(f"{len(unused)} existing QSM maps (_Chimap, e.g. {unused[0]}) are not used: qsm.input is "
                     f"reconstruct (auto or existing uses them)")
    return sessions, notes


def matching(labels: Sequence[str | int], known: set[str]) -> tuple[set[str], list[str | int]]:
    """The known participants that `labels` name (a number names the labels of digits with its value), and
    the labels that name none."""
    found, missing = set(), []
    for label in labels:
        named = ({k for k in known if k.isdigit() and int(k) == label} if isinstance(label, int)
                 else {label} & known)
        found |= named
        missing += [] if named else [label]
    return found, missing


def select_participants(sessions: list[Session], include: Sequence[str | int], exclude: Sequence[str | int]
                        ) -> list[Session]:
    known = {session.participant for session in sessions}
    included, missing = matching(include, known)
    if missing:
        raise PlanError(f"participant_label {missing}: no such participants (found {len(known)}, e.g. {sorted(known)[:5]})")
    excluded = matching(exclude, known)[0]
    return [session for session in sessions
            if (not include or session.participant in included) and session.participant not in excluded]


def listed_without_images(config: Mapping, found: Sequence[Session], include: Sequence[str | int],
                          exclude: Sequence[str | int]) -> list[str]:
    """Notes on the participants that participants.tsv lists (within the participant filters) and that have no
    session with images: a scan withheld or a folder misnamed would otherwise shrink the cohort unseen."""
    tsv = Path(config["bids_dir"]) / "participants.tsv"
    if not tsv.is_file():
        return []
    with tsv.open(newline="") as handle:
        listed = {row["participant_id"].removeprefix("sub-") for row in csv.DictReader(handle, delimiter="\t")
                  if row.get("participant_id")}
    if include:
        listed = matching(include, listed)[0]
    missing = listed - matching(exclude, listed)[0] - {session.participant for session in found}
    return [f"sub-{participant}: listed in {tsv} but has no T1w or SWI images, left out" for participant in sorted(missing)]


# ---- models --------------------------------------------------------------------------------------


def ablation_variants(config: Mapping) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """DB-ResUNet Tables III and IV as models: the `ablations.model` entry with another global-branch
    rate, or other inputs, named after what changed; and the methods each ablation table compares."""
    ablations = config["ablations"]
    if not (ablations["rates"] or ablations["inputs"]):
        return {}, {}
    name = ablations["model"]
    if name not in config["models"]:
        raise PlanError(f"ablations.model '{name}' is not a key of the config's models")
    base = config["models"][name]
    if "bundle" in base:
        raise PlanError(f"ablations.model '{name}' comes from a bundle, and ablation variants are trained: set "
                        f"ablations.rates and ablations.inputs to [] (config/apply.yaml does)")
    if base.get("init"):  # a variant is another network than the one the bundle holds
        raise PlanError(f"ablations.model '{name}' is fine-tuned from {base['init']}, and ablation variants are other "
                        f"networks: set models.{name}.init to null to train them all from scratch "
                        f"(config/reproduce.yaml does)")
    rates = {f"{name}-rate{'x'.join(map(str, rate))}": {**base, "options": {**base.get("options", {}), "rate": rate}}
             for rate in ablations["rates"]}
    inputs = {f"{name}-in-{'-'.join(channels)}": {**base, "inputs": channels} for channels in ablations["inputs"]}
    return {**rates, **inputs}, {"rate": [name, *rates], "inputs": [name, *inputs]}


def model_space(model: Mapping) -> str:
    return model.get("space", "SWI")


BUNDLE_DEFINES = ("architecture", "inputs", "task", "space", "options")  # what a fine-tuned model takes from its bundle


def resolve_bundles(models: Mapping[str, dict]) -> tuple[dict[str, dict], dict[str, dict]]:
    """Models given as `{bundle: path}` become the config entries they were trained as; models given an
    `init` bundle (fine-tuning) take its network and inputs, with their own `training` over the bundle's
    recipe. Bundles are checked: a damaged or foreign file stops the plan here, before any job. Returns the
    models and, per model from a bundle, the preprocessing the bundle records, which its inputs must have."""
    resolved, preprocessing = {}, {}
    for name, model in models.items():
        source = model.get("bundle") or model.get("init")
        if source is None or not is_bundle(source):
            resolved[name] = model
            continue
        bundle, source = load_bundle(source), bundle_path(source)
        if "bundle" in model:
            resolved[name] = {**bundle.model, "bundle": str(source)}
        else:
            differing = [key for key in BUNDLE_DEFINES if key in model and model[key] != bundle.model.get(key)]
            if differing:
                raise PlanError(f"models.{name}: init bundle {source} was trained with other {differing}; leave "
                                f"them out (the bundle sets them) or train from scratch")
            training = {**bundle.model.get("training", {}), **model.get("training", {})}
            resolved[name] = {**bundle.model, **model, "training": training, "init": str(source)}
        preprocessing[name] = bundle.preprocess
    return resolved, preprocessing


# ---- the plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InferenceGroup:
    """Sessions that one inference rule serves: the models that read their `space` grid, and whether a registration
    links it to the other grid (the labels then go there too)."""

    space: str
    registered: bool
    models: tuple[str, ...]
    sessions: list[str]


@dataclass(eq=False)  # hashed by identity: its queries are cached
class Plan:
    """Every decision about the dataset: sessions, roles, and what each method segments and scores."""

    config: Mapping
    sessions: dict[str, Session]
    roles: dict[str, str]  # session key -> role
    main_models: dict[str, dict]  # the main cohort's tables: configured models and ablation variants
    models: dict[str, dict]  # every model the rules can train: main ones and the LiNUS experiments'
    ablation_methods: dict[str, list[str]]
    notes: list[str]
    bundled: dict[str, dict] = field(default_factory=dict)  # model -> the preprocessing its bundle (or init) records

    @property
    def ablation_models(self) -> set[str]:
        return {method for methods in self.ablation_methods.values() for method in methods[1:]}

    @property
    def layout(self) -> Layout:
        return Layout.of(self.config["results_dir"])

    @property
    def atlas_methods(self) -> list[str]:
        return list(self.config["atlas"]["methods"])

    @cache
    def cohort_sessions(self, cohort: str = MAIN_COHORT) -> list[str]:
        return [key for key, session in self.sessions.items() if session.cohort == cohort]

    @cache
    def role_sessions(self, role: str, cohort: str = MAIN_COHORT) -> list[str]:
        return [key for key in self.cohort_sessions(cohort) if self.roles[key] == role]

    def with_swi(self, cohort: str = MAIN_COHORT) -> list[str]:
        return [key for key in self.cohort_sessions(cohort) if self.sessions[key].has_swi]

    def sessions_where(self, registered: bool) -> list[str]:
        """Sessions of every cohort with (or without) a T1 -> SWI registration."""
        return [key for key, session in self.sessions.items() if session.registered == registered]

    def registered(self, cohort: str = MAIN_COHORT) -> list[str]:
        return [key for key in self.cohort_sessions(cohort) if self.sessions[key].registered]

    # ---- methods

    @cache
    def native_space(self, method: str) -> str:
        """The grid a method writes its labels on: the model's `space`; T1w for the atlas methods."""
        return model_space(self.models[method]) if method in self.models else "T1w"

    def method_cohort(self, method: str) -> str:
        return self.models.get(method, {}).get("cohort", MAIN_COHORT)

    def trained(self, model: str) -> bool:
        """Whether the run trains the model (else it is applied from a bundle)."""
        return "bundle" not in self.models[model]

    @cache
    def preprocess_settings(self, space: str, cohort: str = MAIN_COHORT) -> PreprocessPlan:
        """The model-input settings of a space: the config's section (with the cohort's overrides), and where
        bundled models read that space, their bundles' preprocessing (matrix, windows, voxel size and
        orientation), which must then agree."""
        settings = self.section(PREPROCESS_SECTIONS[space], cohort)  # a cohort's own grid, e.g. paper.yaml's PD25
        bundled = {name: preprocessing for name, preprocessing in self.bundled.items()
                   if self.native_space(name) == space and self.method_cohort(name) == cohort}
        if len({json.dumps(preprocessing, sort_keys=True) for preprocessing in bundled.values()}) > 1:
            raise PlanError(f"models {sorted(bundled)}: their bundles were trained with different {space} "
                            f"preprocessing ({', '.join(self.models[name].get('bundle') or self.models[name]['init'] for name in bundled)}); "
                            f"apply them in separate runs")
        # the QSM recorded is the one this run makes (a bundle's own is compared with it in check_models)
        settings = PreprocessPlan.from_json({**settings, **next(iter(bundled.values()), {})})
        return replace(settings, qsm=self.qsm_source(cohort) if space == "SWI" else None)

    def cohort_overrides(self, section: str, cohort: str, default: Any = None) -> Any:
        """A section of a cohort's entry (`demo`, `preprocess`, `qsm`, `outside_view`); `default` for the dataset's
        own sessions, which the config's sections describe."""
        return default if cohort == MAIN_COHORT else self.config["cohorts"][cohort].get(section, default)

    def section(self, name: str, cohort: str = MAIN_COHORT) -> dict[str, Any]:
        """A config section with the cohort's overrides of it."""
        return {**self.config[name], **self.cohort_overrides(name, cohort, {})}

    def qsm_settings(self, method: str, cohort: str = MAIN_COHORT) -> dict[str, Any]:
        """A QSM method's settings (`qsm.methods`) with the cohort's `qsm` overrides."""
        return {**self.config["qsm"]["methods"][method], **self.cohort_overrides("qsm", cohort, {})}

    def cohorts(self) -> list[str]:
        return list(dict.fromkeys(session.cohort for session in self.sessions.values()))

    def qsm_method(self, key: str) -> str:
        """The `desc` of the QSM a session's SWI-grid steps read: `existing` for its own map, else qsm.method."""
        return EXISTING_QSM if self.sessions[key].chimap else self.config["qsm"]["method"]

    def qsm_map(self, key: str) -> str:
        return self.layout.qsm(key, "Chimap.nii.gz", self.qsm_method(key))

    def qsm_reference(self) -> str:
        """The susceptibility reference the evaluation figures state: the reconstruction's (qsm.methods), or
        `existing` where a scored session reads an existing map (referenced as its tool chose)."""
        if any(self.sessions[case.subject].chimap for case in self.overlap_cases("overlap")):
            return EXISTING_QSM
        return self.config["qsm"]["methods"][self.config["qsm"]["method"]].get("reference", "mask")  # QSMParams' default

    def qsm_source(self, cohort: str = MAIN_COHORT) -> QsmSource:
        """The QSM that SWI-space models read: `qsm.method` and its settings (with the cohort's overrides)."""
        return QsmSource(self.config["qsm"]["method"], self.qsm_settings(self.config["qsm"]["method"], cohort))

    @cache
    def can_segment(self, method: str, key: str) -> bool:
        session = self.sessions[key]
        if method not in self.models:
            return session.has_t1
        return session.has_t1 if self.native_space(method) == "T1w" else session.registered

    @cache
    def segmented(self, method: str) -> list[str]:
        """Every session of the method's cohort that it can read, but for joint label fusion its own atlases
        (their labels are the reference). Only the sessions they are scored on: for the ablation variants and
        the LiNUS experiments' models, which exist for their tables, and on the demo, whose simulated
        subjects are all labelled (segmenting its training subjects would only cost time)."""
        if (self.config["demo"]["enabled"] or method in self.ablation_models
                or method not in [*self.atlas_methods, *self.main_models]):
            return self.scored(method)
        atlases = self.jlf_atlases() if method == "atlas-jlf" else []
        return [key for key in self.cohort_sessions(self.method_cohort(method))
                if self.can_segment(method, key) and key not in atlases]

    @cache
    def segmented_set(self, method: str) -> frozenset[str]:
        """`segmented` as a set: whether a method segments a session, asked per session by the rules."""
        return frozenset(self.segmented(method))

    def output_spaces(self, method: str, key: str) -> list[str]:
        """The native grid, and the other one where the registration links them."""
        native = self.native_space(method)
        return [native, *([other for other in SPACES if other != native] if self.sessions[key].registered else [])]

    @cache
    def evaluation_space(self, method: str, key: str) -> str:
        """Models are scored on their own grid; atlas methods on the SWI grid where the session has one."""
        if method in self.models:
            return self.native_space(method)
        return "SWI" if self.sessions[key].has_swi and self.sessions[key].label_source("SWI") else "T1w"

    @cache
    def scored(self, method: str) -> list[str]:
        """Test sessions that the method segments and that have reference labels on its evaluation grid."""
        return [key for key in self.role_sessions("test", self.method_cohort(method)) if self.can_segment(method, key)
                and self.sessions[key].label_source(self.evaluation_space(method, key))]

    @cache
    def training_sessions(self, model: str, role: str) -> list[str]:
        space = self.native_space(model)
        return [key for key in self.role_sessions(role, self.method_cohort(model))
                if self.can_segment(model, key) and self.sessions[key].label_source(space)]

    def jlf_atlases(self) -> list[str]:
        """The training sessions that serve as atlases of joint label fusion: the first `jlf_atlases`
        with T1 and reference labels on its grid."""
        usable = [key for key in self.role_sessions("train") if self.sessions[key].has_t1
                  and self.sessions[key].label_source("T1w")]
        return usable[: self.config["atlas"]["jlf_atlases"]]

    # ---- paths that depend on a decision

    def reference_labels(self, key: str, space: str) -> str:
        """The session's reference labels in the package's numbering on a grid: relabelled from the dataset's
        file, or moved from the other grid (desc-moved)."""
        source = self.sessions[key].label_source(space)
        if source is None:
            raise PlanError(f"sub-{key}: no reference labels on the {space} grid")
        return self.layout.reference_labels(key, space, moved=source != "dataset")

    def model_inputs(self, model: str, key: str) -> list[str]:
        space = self.native_space(model)
        return [self.layout.preprocessed(key, f"{suffix}.nii.gz", space) for suffix in self.models[model]["inputs"]]

    def model_weights(self, model: str) -> str:
        """The file inference loads: the model's bundle, or the best checkpoint of this run's training."""
        return self.models[model].get("bundle") or self.layout.model_file(model, "checkpoint_best.pt")

    def inference_plan(self, model: str) -> InferencePlan:
        space, subject = self.native_space(model), SUBJECT
        other = next(other for other in SPACES if other != space)
        inputs, dseg = self.model_inputs(model, subject), self.layout.segmentation(model, subject, space)
        transform = self.layout.registration_transform(subject, self.config["registration"]["method"])
        links = dataset_links(self.layout.results, self.config["bids_dir"])
        own = self.layout.results / "segmentations" / model  # the method's dataset
        return InferencePlan(model, self.model_weights(model), inputs,
                             self.layout.preprocessed(subject, "padding.json", space), dseg,
                             self.layout.segmentation(model, subject, other), self.layout.inference_record(model, subject),
                             bids_uris(inputs, links, own), bids_uris([dseg, transform], links, own),
                             self.flip_passes(model, subject))

    def flip_passes(self, model: str, key: str) -> dict[str, str]:
        """With inference.flip, the labels of a model's direct and mirrored passes on its own grid (the inference
        job writes them beside the averaged ones: segmentation samples for the measures' intervals); else none."""
        space = self.native_space(model)
        return ({name: self.layout.segmentation_pass(model, key, space, name) for name in FLIP_PASSES}
                if self.config["inference"]["flip"] else {})

    @cache
    def inference_groups(self) -> list[InferenceGroup]:
        """The sessions that the same models segment on the same grid, with (or without) the registration that
        takes their labels to the other grid: one inference job per session and group runs them all (a job per
        model and session made 1,000 sessions of config/paper.yaml plan about 9,500 jobs more). In an order that
        the groups' contents set, not their sizes, so that a rule's name (`infer_swi`, `infer_swi_2`) stays its
        group's as a dataset grows: by grid, registered first, most models first."""
        evaluated = set(self.evaluated_methods())
        kinds = ([model for model in self.models if model in evaluated],
                 [model for model in self.models if model not in evaluated])  # the LiNUS experiments': their target
        groups: dict[tuple[str, bool, tuple[str, ...]], list[str]] = {}
        for key, session in self.sessions.items():
            for space in SPACES:
                for kind in kinds:
                    models = tuple(model for model in kind
                                   if self.native_space(model) == space and key in self.segmented_set(model))
                    if models:
                        groups.setdefault((space, session.registered, models), []).append(key)
        found = [InferenceGroup(space, registered, models, keys) for (space, registered, models), keys in groups.items()]
        return sorted(found, key=lambda group: (group.space, not group.registered, -len(group.models), group.models))

    # ---- case lists

    def training_plan(self, model: str) -> TrainPlan:
        """What `deepnuclei train --plan` reads: the model's settings and its training and validation files."""
        space = self.native_space(model)
        cases = {role: [TrainCase(key, self.model_inputs(model, key), self.layout.preprocessed(key, "dseg.nii.gz", space))
                        for key in self.training_sessions(model, role)] for role in ("train", "validation")}
        return TrainPlan(self.models[model], TrainCases(**cases))

    def overlap_case(self, table: str, method: str, key: str) -> OverlapCase:
        """One method on one session, on its evaluation grid; susceptibility from the QSM the models saw."""
        space = self.evaluation_space(method, key)
        return OverlapCase(subject=key, method=method, space=space, prediction=self.layout.segmentation(method, key, space),
                           reference=self.reference_labels(key, space),
                           qsm=self.qsm_map(key) if space == "SWI" else None,
                           task=self.models.get(method, {}).get("task"), out=self.layout.overlap_case(table, method, key))

    def evaluated_methods(self) -> list[str]:
        return self.atlas_methods + list(self.main_models)

    def overlap_cases(self, table: str) -> list[OverlapCase]:
        """`overlap`: every method of the main tables on its scored sessions; `linus_experiments_overlap`:
        every experiment model on its cohort's."""
        methods = self.evaluated_methods() if table == "overlap" else self.experiment_methods()
        return [self.overlap_case(table, method, key) for method in methods for key in self.scored(method)]

    @cache  # the overlap_session rule asks for each session's cases in turn
    def overlap_sessions(self, table: str) -> dict[str, list[OverlapCase]]:
        """`overlap_cases` by session, in their order: one job scores all of a session's methods (a job per
        case made 16 methods x 38 test sessions 608 jobs)."""
        sessions: dict[str, list[OverlapCase]] = {}
        for case in self.overlap_cases(table):
            sessions.setdefault(case.subject, []).append(case)
        return sessions

    # ---- nucleus measures (deepnuclei.measures)

    def segmented_sessions(self) -> list[str]:
        """Sessions of the main cohort that some method of the main tables segments."""
        segmented = {key for method in self.evaluated_methods() for key in self.segmented(method)}
        return [key for key in self.cohort_sessions() if key in segmented]

    def reference_grids(self, key: str) -> list[str]:
        """The grids on which a session has both reference labels and the image (empty: not labelled)."""
        session = self.sessions[key]
        return [space for space in session.spaces if session.label_source(space)]

    @cache
    def measures_case(self, method: str, key: str) -> MeasuresCase:
        """One method's (or, as `reference`, the reference labels') measures on one session: its label maps on
        the T1 grid (volumes, centres of mass; with the native T1 for its affine) and on the SWI grid (with the
        QSM: susceptibility); the dseg.tsv of the structures the method writes, and a model's task."""
        session = self.sessions[key]
        if method == "reference":
            labels = {space: self.reference_labels(key, space) for space in self.reference_grids(key)}
        else:
            labels = {space: self.layout.segmentation(method, key, space) for space in self.output_spaces(method, key)}
        lookup = (self.layout.labels_lookup() if method in ("reference", "atlas-jlf")  # the dataset's structures
                  else self.layout.segmentations_lookup())
        return MeasuresCase(subject=key, participant=session.participant, session=session.session, method=method,
                            t1_labels=labels.get("T1w"), swi_labels=labels.get("SWI"),
                            qsm=self.qsm_map(key) if "SWI" in labels else None,
                            t1=session.t1 if "T1w" in labels else None, lookup=lookup,
                            task=self.models.get(method, {}).get("task"), out=self.layout.measures(method, key),
                            qsmxt=self.layout.measures_qsmxt(method, key),
                            # a model's inference record holds its training-range check, flagged in the tables
                            inference_record=(self.layout.inference_record(method, key) if method in self.models
                                              else None),
                            **self.interval_samples(method, key, labels.get("SWI")))

    def interval_qsm_maps(self, key: str) -> dict[str, str]:
        """The QSM maps whose spread a session's intervals hold, by method: the one the models read (`qsm_map`)
        first, then those of `qsm.intervals` that the session reconstructs (a session's existing map is its only)."""
        methods = [self.qsm_method(key)]
        unknown = sorted(set(self.config["qsm"].get("intervals", [])) - set(self.config["qsm"]["methods"]))
        if unknown:
            raise PlanError(f"qsm.intervals: {', '.join(unknown)} not in qsm.methods")
        if methods[0] != EXISTING_QSM:
            methods += self.config["qsm"].get("intervals", [])
        return {method: self.layout.qsm(key, "Chimap.nii.gz", method) for method in dict.fromkeys(methods)}

    def interval_samples(self, method: str, key: str, swi_labels: str | None) -> dict[str, Any]:
        """A measures case's intervals (`MeasuresCase.swi_samples`, `qsm_samples`, `interval_group`): on the SWI
        grid, the method's labels and, for a model that reads that grid with inference.flip, its two passes; every
        `interval_qsm_maps`; the group of the shipped factors (deepnuclei.uncertainty): `network` for a model,
        `atlas` for the atlas baseline, `reference` (the QSM spread alone) for the reference labels, none for the
        other methods (not calibrated: their bounds are missing)."""
        group = "network" if method in self.models else INTERVAL_GROUPS.get(method)
        if swi_labels is None:  # no susceptibility, and no volume samples on the grid the factors were learnt on
            return {"swi_samples": {}, "qsm_samples": {}, "interval_group": group}
        passes = self.flip_passes(method, key) if method in self.models and self.native_space(method) == "SWI" else {}
        return {"swi_samples": {"averaged": swi_labels, **passes}, "qsm_samples": self.interval_qsm_maps(key),
                "interval_group": group}

    def measures_cases(self) -> list[MeasuresCase]:
        """Per session of the main cohort: the reference where it is labelled, then every method of the main
        tables that segments it."""
        methods = self.evaluated_methods()
        if "reference" in methods:
            raise PlanError("a method may not be named 'reference': the measures of the reference labels are")
        cases = []
        for key in self.cohort_sessions():
            cases += [self.measures_case("reference", key)] if self.reference_grids(key) else []
            cases += [self.measures_case(method, key) for method in methods if key in self.segmented_set(method)]
        return cases

    @cache  # the measures_session rule asks for each session's in turn
    def measures_sessions(self) -> dict[str, list[MeasuresCase]]:
        """`measures_cases` by session, in their order: one job measures all of a session's (a job per case
        made 1,000 sessions plan 12,000 jobs more)."""
        sessions: dict[str, list[MeasuresCase]] = {}
        for case in self.measures_cases():
            sessions.setdefault(case.subject, []).append(case)
        return sessions

    def timing_cases(self, methods: Iterable[str]) -> list[TimingCase]:
        """Where each method's time per subject was recorded: an atlas method's in the benchmark of the job that
        segmented it, a model's in its inference record (its own wall and network time, device)."""
        cases = []
        for method in methods:
            if method in self.models:
                cases += [TimingCase(method, key, record=self.layout.inference_record(method, key))
                          for key in self.scored(method)]
            else:
                rule = {"atlas": "atlas_single", "atlas-jlf": "atlas_jlf"}[method]
                cases += [TimingCase(method, key, benchmark=self.layout.benchmark(rule, key)) for key in self.scored(method)]
        return cases

    def experiment_methods(self) -> list[str]:
        experiments = self.config["linus_experiments"]
        methods = list(dict.fromkeys(method for kind in EXPERIMENT_KINDS for method in experiments[kind]))
        unknown = [method for method in methods if method not in self.models]
        if unknown:
            raise PlanError(f"linus_experiments names {unknown}: not models of the config (models or "
                            f"linus_experiments.models)")
        return methods

    def experiment_cohorts(self) -> dict[str, ExperimentCohort]:
        """Per cohort of the experiments: its first test session's T1 and the model input of its first
        experiment model there (Table VI reads the image dimensions and spacing from them: the QSM on the
        SWI grid, or the T1 on its own) and its number of sessions."""
        first_model = {}
        for method in self.experiment_methods():
            first_model.setdefault(self.method_cohort(method), method)
        described = {}
        for cohort, method in first_model.items():
            tested = self.role_sessions("test", cohort)
            if not tested:
                raise PlanError(f"cohort {cohort}: no test session for the LiNUS experiments")
            described[cohort] = ExperimentCohort(len(self.cohort_sessions(cohort)), self.sessions[tested[0]].t1,
                                                 self.model_inputs(method, tested[0])[0])
        return described

    def experiments_plan(self) -> ExperimentsPlan:
        experiments = self.config["linus_experiments"]
        methods = self.experiment_methods()
        cases = self.overlap_cases("linus_experiments_overlap")
        return ExperimentsPlan(
            experiments={kind: experiments[kind] for kind in EXPERIMENT_KINDS},
            models={method: {**self.models[method], "cohort": self.method_cohort(method)} for method in methods},
            cohorts=self.experiment_cohorts(), timings=self.timing_cases(methods),
            slice_cases=[case for case in cases if case.method in experiments["slices"]])

    # ---- the demo's truth (simulated subjects only)

    def truth(self, key: str, suffix: str) -> str:
        return str(Path(self.config["demo"]["root"]) / "truth" / f"sub-{key}" / f"sub-{key}_{suffix}")

    def tre_cases(self) -> list[TreCase]:
        """What results/registration/tre.csv scores: every registration method against the true transform."""
        return [TreCase(subject=key, method=method, transform=self.layout.registration_transform(key, method),
                        record=self.layout.registration_record(key, method),
                        truth=self.truth(key, "from-T1w_to-SWI_mode-image_xfm.tfm"),
                        mask=self.truth(key, "space-SWI_mask.nii.gz"))
                for key in self.registered() for method in self.config["registration"]["tre_methods"]]

    def qsm_metric_cases(self, cohort: str = MAIN_COHORT) -> list[QsmMetricCase]:
        """Every QSM method the demo scores, on every session of a cohort, against the simulated truth."""
        return [QsmMetricCase(subject=key, method=method, chi=self.layout.qsm(key, "Chimap.nii.gz", method),
                              mask=self.layout.qsm(key, "mask.nii.gz", method),
                              truth=self.truth(key, "space-SWI_Chimap.nii.gz"), dseg=self.truth(key, "space-SWI_dseg.nii.gz"),
                              truth_mask=self.truth(key, "space-SWI_mask.nii.gz"))
                for key in self.with_swi(cohort) for method in self.config["qsm"]["evaluate"]]

    def participants_tsv(self) -> str | None:
        """The dataset's participants.tsv (the demo writes one), None where a real dataset has none."""
        path = Path(self.config["bids_dir"]) / "participants.tsv"
        return str(path) if self.config["demo"]["enabled"] or path.is_file() else None

    def evaluation_plan(self) -> EvaluationPlan:
        cohorts = {cohort: sorted({self.sessions[key].participant for key in self.cohort_sessions(cohort)})
                   for cohort in dict.fromkeys(session.cohort for session in self.sessions.values())}
        return EvaluationPlan(timings=self.timing_cases(self.evaluated_methods()), models=self.main_models,
                              ablations=self.ablation_methods, participants=Participants(self.participants_tsv(), cohorts))

    def session_record(self, key: str) -> SessionRecord:
        """What the plan decided for one session, as `dataset.json` lists it."""
        session = self.sessions[key]
        methods = [method for method in [*self.atlas_methods, *self.models] if key in self.segmented_set(method)]
        return SessionRecord(**asdict(session), role=self.roles[key],
                             reference_labels={space: session.label_source(space) for space in SPACES},
                             segmented_by=methods, scored_for=[method for method in methods if key in self.scored(method)])

    def dataset_record(self) -> DatasetRecord:
        counts = {role: sum(1 for key in self.sessions if self.roles[key] == role) for role in ROLES}
        return DatasetRecord(bids_dir=str(self.config["bids_dir"]), demo=bool(self.config["demo"]["enabled"]),
                             sessions=len(self.sessions), participants=len({s.participant for s in self.sessions.values()}),
                             roles=counts, notes=self.notes, subjects={key: self.session_record(key) for key in self.sessions})


EXPERIMENT_KINDS = ("resolution", "targets", "optimizers", "slices")


def split_subjects(
    subjects: Sequence[str], train: int, validation: int, test: int | None = None
) -> dict[str, list[str]]:
    """Consecutive train / validation / test groups in subject order; `test` None takes the rest."""
    test = len(subjects) - train - validation if test is None else test
    if min(train, validation, test) < 0 or train + validation + test > len(subjects):
        raise ValueError(
            f"splits of {train} / {validation} / {test} subjects need more than the {len(subjects)} given"
        )
    bounds = np.cumsum([0, train, validation, test])
    roles = ("train", "validation", "test")
    return {role: list(subjects[low:high]) for role, low, high in zip(roles, bounds, bounds[1:])}


def assign_roles(sessions: Mapping[str, Session], splits: Mapping[str, int | str], cohort: str) -> dict[str, str]:
    """Roles by participant, in participant order: the labelled ones fill train / validation / test as the
    counts say (`test: all`: every one left; all of a participant's labelled sessions share its role);
    everything else is `apply`."""
    labelled = sorted({session.participant for session in sessions.values() if session.labelled})
    roles = {key: "apply" for key in sessions}
    if not labelled:
        return roles
    needed = splits["train"] + splits["validation"]
    if len(labelled) <= needed:
        raise PlanError(f"cohort {cohort}: splits of {splits['train']} training and {splits['validation']} validation "
                        f"participants need more than {needed} labelled participants, found {len(labelled)}")
    test = len(labelled) - needed if splits["test"] == "all" else min(splits["test"], len(labelled) - needed)
    by_participant = {participant: role for role, members in
                      split_subjects(labelled, splits["train"], splits["validation"], test).items()
                      for participant in members}
    for key, session in sessions.items():
        if session.labelled and session.participant in by_participant:
            roles[key] = by_participant[session.participant]
    return roles


def check_models(plan: Plan, config: Mapping) -> None:
    """Every model must read inputs its space has and find training sessions: a model that cannot be
    trained stops the plan with what is missing."""
    selected = config.get("methods")
    for name, model in plan.models.items():
        if model_space(model) == "T1w" and model["inputs"] != ["T1w"]:
            raise PlanError(f"models.{name}: a model in space T1w reads the T1 only (inputs: [T1w])")
    lookups = {session.lookup for session in plan.sessions.values() if session.labelled}
    labelled = {lookup: lookup_structures(lookup, config["labels"]["ignore"]) for lookup in lookups}
    for name in plan.main_models if selected is None else [m for m in selected if m in plan.main_models]:
        for lookup, structures in labelled.items():
            check_task(plan.models[name]["task"], structures, lookup or "the package's label numbering")
        if not plan.trained(name):
            trained_on, made = plan.bundled[name].get("qsm"), plan.qsm_source().to_json()
            if "Chimap" in plan.models[name]["inputs"] and trained_on and trained_on != made:
                plan.notes.append(f"{plan.models[name]['bundle']}: model {name} was trained on QSM {trained_on}, this run "
                                  f"makes {made}: set qsm.method and qsm.methods alike for the inputs it knows")
            existing = [key for key in plan.segmented(name) if plan.sessions[key].chimap]
            if "Chimap" in plan.models[name]["inputs"] and existing:
                plan.notes.append(f"{plan.models[name]['bundle']}: model {name} was trained on this workflow's QSM and "
                                  f"reads existing maps (qsm.input) in {len(existing)} of its sessions: another "
                                  f"reconstruction can shift its input")
            if not any(plan.can_segment(name, key) for key in plan.cohort_sessions(plan.method_cohort(name))):
                needs = ("a T1w" if plan.native_space(name) == "T1w"
                         else f"both SWI echoes and a T1w (it reads {', '.join(plan.models[name]['inputs'])} on the SWI grid)")
                raise PlanError(f"{plan.models[name]['bundle']}: model {name} needs {needs}, and no session of "
                                f"{config['bids_dir']} has them")
            continue
        if not plan.training_sessions(name, "train"):
            raise PlanError(f"models.{name}: no training session with reference labels on the "
                            f"{plan.native_space(name)} grid in {config['bids_dir']} (roles: "
                            f"{ {role: len(plan.role_sessions(role)) for role in ROLES} }); train it on a labelled "
                            f"dataset or leave it out with --config 'methods=[...]'")
    if "atlas-jlf" in plan.atlas_methods and not plan.jlf_atlases():
        raise PlanError(f"atlas-jlf: no training session with a T1 and reference labels on its grid in "
                        f"{config['bids_dir']} to serve as atlases; leave it out with --config 'methods=[...]'")


def make_plan(config: Mapping) -> Plan:
    """Read the dataset (or the demo's config) once and decide everything."""
    include, exclude = label_list(config.get("participant_label")), label_list(config.get("exclude_participant_label"))
    if EXISTING_QSM in config["qsm"]["methods"]:
        raise PlanError(f"qsm.methods.{EXISTING_QSM}: the name is the desc of existing QSM maps (qsm.input); choose another")
    if config["demo"]["enabled"]:
        found, notes = demo_sessions(config), []
    else:
        # bids2table's own filter takes labels as written; numbers are matched after indexing
        found, notes = bids_sessions(config, [] if any(isinstance(label, int) for label in include) else include)
        notes += listed_without_images(config, found, include, exclude)
    found = select_participants(found, include, exclude)
    if not found:
        raise PlanError(f"{config['bids_dir']}: no sessions with T1w or SWI images (after participant_label / "
                        f"exclude_participant_label)")
    sessions = {session.key: session for session in found}
    roles = {}
    for cohort in dict.fromkeys(session.cohort for session in found):
        splits = config["splits"] if cohort == MAIN_COHORT else config["cohorts"][cohort]["splits"]
        cohort_roles = assign_roles({k: s for k, s in sessions.items() if s.cohort == cohort}, splits, cohort)
        tested = len({sessions[key].participant for key, role in cohort_roles.items() if role == "test"})
        if splits["test"] != "all" and 0 < tested < splits["test"]:
            notes.append(f"cohort {cohort}: splits.test asks for {splits['test']} test participants and "
                         f"{tested} labelled ones remain after training and validation: tested on {tested}")
        roles.update(cohort_roles)
    ablation_models, ablation_methods = ablation_variants(config)
    main_models = {**config["models"], **ablation_models}
    selected = config.get("methods")
    if selected is not None:
        unknown = sorted(set(selected) - set(main_models) - set(config["atlas"]["methods"]))
        if unknown:
            raise PlanError(f"methods {unknown}: not atlas methods or models of the config")
        main_models = {name: model for name, model in main_models.items() if name in selected}
        ablation_methods = {kind: methods for kind, methods in ablation_methods.items()
                            if all(method in main_models for method in methods)}
        config = {**config, "atlas": {**config["atlas"], "methods": [m for m in config["atlas"]["methods"] if m in selected]}}
    main_models, bundled = resolve_bundles(main_models)
    models = {**main_models, **config["linus_experiments"]["models"]}
    plan = Plan(config, sessions, roles, main_models, models, ablation_methods, notes, bundled)
    check_models(plan, config)
    for note in notes:
        log.warning("%s", note)
    return plan


# ---- writing the plan ------------------------------------------------------------------------------


def plan_files(plan: Plan) -> dict[str, Any]:
    """Every plan file by name (under <results>/plan/): the dataset record, one training plan per model,
    the overlap case lists, the evaluation's and the experiments' inputs; the demo's truth case lists."""
    files: dict[str, Any] = {"dataset": plan.dataset_record()}
    for model in plan.models:
        if plan.trained(model) and plan.training_sessions(model, "train"):
            files[f"train_{model}"] = plan.training_plan(model)
    for group in plan.inference_groups():
        for model in group.models:
            files[f"infer_{model}"] = plan.inference_plan(model)
    for cohort in plan.cohorts():
        for space in SPACES:
            files[Path(plan.layout.preprocess_plan(space, cohort)).stem] = plan.preprocess_settings(space, cohort)
    for (name, cohort), settings in settings_files(plan).items():
        files[Path(plan.layout.settings(name, cohort)).stem] = settings
    files["overlap"] = plan.overlap_cases("overlap")
    files["measures"] = plan.measures_cases()
    files["evaluation"] = plan.evaluation_plan()
    files["atlas_jlf"] = [AtlasCase(plan.sessions[key].t1, plan.reference_labels(key, "T1w")) for key in plan.jlf_atlases()]
    if plan.config["demo"]["enabled"]:
        files["tre"] = plan.tre_cases()
        for cohort in dict.fromkeys(session.cohort for session in plan.sessions.values()):
            files[f"qsm_metrics{'' if cohort == MAIN_COHORT else '_' + cohort}"] = plan.qsm_metric_cases(cohort)
    if any(plan.config["linus_experiments"][kind] for kind in EXPERIMENT_KINDS):
        try:
            files["linus_experiments"] = plan.experiments_plan()
            files["linus_experiments_overlap"] = plan.overlap_cases("linus_experiments_overlap")
        except PlanError as error:  # only the `linus_experiments` target needs them: it reports this
            files["dataset"].notes.append(f"linus_experiments: {error}")
    return files


# A job's threads change none of its results: they are left out of its settings, so that changing them reruns nothing
UNTIMED = ("threads",)


def settings_files(plan: Plan) -> dict[tuple[str, str], dict[str, Any]]:
    """The config sections that jobs read as settings files (`--settings FILE`), by name and cohort: registration,
    atlas and inference; each QSM method's and the demo's for every cohort (with its overrides)."""
    def timed(section: Mapping) -> dict[str, Any]:
        return {key: value for key, value in section.items() if key not in UNTIMED}

    files = {(name, MAIN_COHORT): timed(plan.config[name]) for name in ("registration", "atlas", "inference")}
    for cohort in plan.cohorts():
        for method in plan.config["qsm"]["methods"]:
            files[(f"qsm_{method}", cohort)] = plan.qsm_settings(method, cohort)
        if plan.config["demo"]["enabled"]:
            files[("demo", cohort)] = plan.section("demo", cohort)
    return files


def write_plan_files(plan: Plan, files: Mapping[str, Any], folder: str | os.PathLike | None = None) -> dict[str, str]:
    """Write the plan files (`plan_files`' contents) under <results>/plan/, or in `folder`; returns name -> path."""
    written = {}
    for name, content in files.items():
        written[name] = plan.layout.plan_file(name) if folder is None else str(Path(folder) / f"{name}.json")
        write_plan_file(written[name], content)
    return written
