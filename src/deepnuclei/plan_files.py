"""The plan files' contracts: one dataclass per file that `deepnuclei.plan` writes under `<results>/plan/`,
and the commands and rules that read them read them through it (`TrainPlan.read(path)`,
`OverlapCase.read_list(path)`), by attribute, not by string key.

Each file's JSON is the dataclass's fields by name (a field marked `OMITTED_WHEN_NONE` is left out when
None), so a file written before these classes existed reads the same, and an unchanged plan is written
byte for byte as before (Snakemake reruns nothing). `schema(kind)` derives a JSON schema from the
dataclass; workflow/schemas/plan/ holds them, one per kind of file, and tests/unit/test_plan_files.py checks
that they match the classes and that every plan file written validates.

A model's entry (`models: {...}`, the config's, or a bundle's) stays a mapping: the config schema and
deepnuclei.train.TrainConfig check it.
"""

from __future__ import annotations

import json
import os
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from .io import read_json, write_text_atomic
from .layout import for_session

OMITTED_WHEN_NONE = {"omitted_when_none": True}  # a field's metadata: no key at all when None
Record = TypeVar("Record", bound="PlanRecord")


class PlanRecord:
    """What every plan file's dataclass can do: read, write, and convert from and to its JSON."""

    @classmethod
    def from_json(cls: type[Record], data: Any) -> Record:
        return decode(cls, data)

    def to_json(self) -> dict[str, Any]:
        return encode(self)

    @classmethod
    def read(cls: type[Record], path: str | os.PathLike) -> Record:
        return decode(cls, read_json(path))

    @classmethod
    def read_list(cls: type[Record], path: str | os.PathLike) -> list[Record]:
        """A case list: a plan file holding a JSON list of this record."""
        return decode(list[cls], read_json(path))


# ---- the files


@dataclass
class SessionRecord(PlanRecord):
    """One session of dataset.json: its files (deepnuclei.plan.Session) and what the plan decided for it."""

    key: str
    participant: str
    session: str | None
    cohort: str
    t1: str | None
    echoes: list[int]
    magnitudes: list[str]
    phases: list[str]
    sidecars: list[str]
    labels: dict[str, str]  # space -> the dataset's label map
    lookup: str | None
    chimap: str | None
    role: str  # train, validation, test or apply
    reference_labels: dict[str, str | None]  # space -> dataset, moved from <space>, or None
    segmented_by: list[str]
    scored_for: list[str]


@dataclass
class DatasetRecord(PlanRecord):
    """dataset.json: the sessions found, their roles, and the notes on what was left out."""

    bids_dir: str
    demo: bool
    sessions: int
    participants: int
    roles: dict[str, int]  # role -> sessions
    notes: list[str]
    subjects: dict[str, SessionRecord]  # session key -> its record


@dataclass
class TrainCase(PlanRecord):
    """One session a model trains (or validates) on."""

    subject: str
    channels: list[str]  # the preprocessed model inputs, in the model's channel order
    labels: str  # the preprocessed reference labels


@dataclass
class TrainCases(PlanRecord):
    """A model's training and validation sessions."""

    train: list[TrainCase]
    validation: list[TrainCase]

    def all(self) -> list[TrainCase]:
        return [*self.train, *self.validation]

    def paths(self) -> list[str]:
        """Every file training reads, in case order."""
        return [path for case in self.all() for path in (*case.channels, case.labels)]


@dataclass
class TrainPlan(PlanRecord):
    """train_<model>.json: what `deepnuclei train --plan` reads."""

    model: dict[str, Any]  # the model's config entry (a bundle's where it is fine-tuned from one)
    cases: TrainCases


@dataclass
class QsmSource(PlanRecord):
    """The QSM that SWI-space models read: `qsm.method` and its settings."""

    method: str
    settings: dict[str, Any]


@dataclass
class PreprocessPlan(PlanRecord):
    """preprocess_<space>[_<cohort>].json: a space's model-input settings (`deepnuclei preprocess --settings`):
    the config's section with the cohort's overrides, or the bundled models' preprocessing."""

    matrix: list[int]
    t1_clip: list[float]
    t1_clip_unit: str
    voxel_mm: list[float] | None = None
    qsm_clip_ppb: list[float] | None = field(default=None, metadata=OMITTED_WHEN_NONE)  # SWI grid only
    orientation: str | None = field(default=None, metadata=OMITTED_WHEN_NONE)  # a bundle's training grid
    qsm: QsmSource | None = field(default=None, metadata=OMITTED_WHEN_NONE)  # SWI grid only


@dataclass
class OverlapCase(PlanRecord):
    """A case of overlap.json and linus_experiments_overlap.json: one method on one session, on its
    evaluation grid."""

    subject: str
    method: str
    space: str
    prediction: str
    reference: str
    qsm: str | None  # the susceptibility map on that grid (SWI only)
    task: str | None  # a model's task: only its structures are scored
    out: str  # the case's CSV


@dataclass
class MeasuresCase(PlanRecord):
    """A case of measures.json: one method's (or `reference`'s) label maps of one session."""

    subject: str
    participant: str
    session: str | None
    method: str
    t1_labels: str | None
    swi_labels: str | None
    qsm: str | None
    t1: str | None
    lookup: str
    task: str | None
    out: str
    qsmxt: str  # the same structures' statistics in QSMxT's columns
    inference_record: str | None
    # the intervals' samples (deepnuclei.uncertainty): label maps on the SWI grid by name (`averaged`: swi_labels;
    # a network's flip passes), QSM maps by method (`qsm`'s first), and the group whose factors they are given
    swi_samples: dict[str, str] = field(default_factory=dict)
    qsm_samples: dict[str, str] = field(default_factory=dict)
    interval_group: str | None = None


@dataclass
class InferencePlan(PlanRecord):
    """infer_<model>.json: one model's part of every inference job (`deepnuclei infer-session --plans`), which
    segments a session with all the models that read its grid. Paths are the rules' templates (`{subject}`, the
    session key, in the session's folder `sub-{session_dir}`: deepnuclei.layout)."""

    model: str
    weights: str  # the model's bundle, or the best checkpoint of this run's training
    inputs: list[str]  # the preprocessed model inputs, in the model's channel order
    padding_record: str  # the preprocess record that takes the labels back to the image grid
    dseg: str  # the labels on the model's own grid
    other: str  # the labels on the session's other grid, where its registration links the two
    record: str  # the inference record
    sources: list[str]  # BIDS URIs of what `dseg` is made from (its sidecar's): the inputs
    other_sources: list[str]  # and of what `other` is made from: `dseg` and the registration
    passes: dict[str, str] = field(default_factory=dict)  # with inference.flip: each pass's labels on `dseg`'s grid

    def for_session(self, subject: str) -> InferencePlan:
        """The plan with one session's paths."""
        def fill(path: str) -> str:
            return for_session(path, subject)

        return InferencePlan(self.model, self.weights, [fill(path) for path in self.inputs], fill(self.padding_record),
                             fill(self.dseg), fill(self.other), fill(self.record), [fill(uri) for uri in self.sources],
                             [fill(uri) for uri in self.other_sources], {name: fill(path) for name, path in self.passes.items()})


@dataclass
class TimingCase(PlanRecord):
    """Where a method's time on one session was recorded: an atlas method's in its job's benchmark, a model's in
    its inference record (one job segments a session with several models)."""

    method: str
    subject: str
    benchmark: str | None = field(default=None, metadata=OMITTED_WHEN_NONE)
    record: str | None = field(default=None, metadata=OMITTED_WHEN_NONE)


@dataclass
class Participants(PlanRecord):
    """Who is in each cohort, for LiNUS Table I's form."""

    tsv: str | None  # the dataset's participants.tsv
    cohorts: dict[str, list[str]]  # cohort -> participant labels


@dataclass
class EvaluationPlan(PlanRecord):
    """evaluation.json: what `deepnuclei evaluation-tables --plan` reads besides the overlap table."""

    timings: list[TimingCase]
    models: dict[str, dict[str, Any]]  # the main tables' models, config entries
    ablations: dict[str, list[str]]  # ablation -> the reference model, then its variants
    participants: Participants


@dataclass
class AtlasCase(PlanRecord):
    """An atlas of joint label fusion (atlas_jlf.json): a training session's T1 and its labels on that grid."""

    t1: str
    labels: str


@dataclass
class TreCase(PlanRecord):
    """tre.json (demo): one registration method on one session against the true transform."""

    subject: str
    method: str
    transform: str
    record: str
    truth: str
    mask: str


@dataclass
class QsmMetricCase(PlanRecord):
    """qsm_metrics[_<cohort>].json (demo): one QSM method on one session against the simulated truth."""

    subject: str
    method: str
    chi: str
    mask: str
    truth: str
    dseg: str
    truth_mask: str


@dataclass
class ExperimentCohort(PlanRecord):
    """A cohort of the LiNUS experiments as Table VI describes it."""

    subjects: int
    t1: str  # its first test session's T1
    model_input: str  # that session's input of the cohort's first experiment model


@dataclass
class ExperimentsPlan(PlanRecord):
    """linus_experiments.json: what `deepnuclei linus-tables --plan` reads besides the overlap table."""

    experiments: dict[str, list[str]]  # experiment kind -> its models
    models: dict[str, dict[str, Any]]  # config entries, with their cohort
    cohorts: dict[str, ExperimentCohort]
    timings: list[TimingCase]
    slice_cases: list[OverlapCase]


# the kind of each plan file, by its name's first word (train_<model>, preprocess_<space>, qsm_metrics_<cohort>)
KINDS: dict[str, Any] = {
    "dataset": DatasetRecord, "train": TrainPlan, "infer": InferencePlan, "preprocess": PreprocessPlan, "overlap": list[OverlapCase],
    "linus_experiments_overlap": list[OverlapCase], "measures": list[MeasuresCase], "evaluation": EvaluationPlan,
    "atlas_jlf": list[AtlasCase], "tre": list[TreCase], "qsm_metrics": list[QsmMetricCase],
    "linus_experiments": ExperimentsPlan,
    "settings": dict[str, Any],  # a config section as a job reads it: the config's schema checks it
}


def kind_of(name: str) -> str:
    """The kind of the plan file `name` (its stem): the longest key of KINDS it is or starts with."""
    for kind in sorted(KINDS, key=len, reverse=True):
        if name == kind or name.startswith(kind + "_"):
            return kind
    raise KeyError(f"{name}: not a plan file's name")


def write_plan_file(path: str | os.PathLike, content: Any) -> bool:
    """Write a plan file's content (a record or a list of them) only when it differs from what is there: an
    unchanged plan keeps its modification time, so Snakemake reruns only the jobs whose plan changed."""
    text = json.dumps(encode(content), indent=1, sort_keys=True) + "\n"
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return False
    write_text_atomic(path, text)
    return True


# ---- the JSON of a dataclass, and its schema


def encode(value: Any) -> Any:
    if is_dataclass(value):
        return {item.name: encode(getattr(value, item.name)) for item in fields(value)
                if not (item.metadata.get("omitted_when_none") and getattr(value, item.name) is None)}
    if isinstance(value, (list, tuple)):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {key: encode(item) for key, item in value.items()}
    return value


def decode(kind: Any, data: Any) -> Any:
    """`data` (JSON) as `kind`: a plan dataclass, a list or dict of them, or plain JSON values (taken as they
    are). A key a dataclass does not know, or a missing field without a default, is an error."""
    if is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        unknown = set(data) - set(hints)
        if unknown:
            raise ValueError(f"{kind.__name__}: unknown keys {sorted(unknown)}")
        return kind(**{name: decode(hints[name], value) for name, value in data.items()})
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin is list:
        return [decode(arguments[0], item) for item in data]
    if origin is dict:
        return {key: decode(arguments[1], item) for key, item in data.items()}
    if origin in (typing.Union, types.UnionType) and data is not None:
        return decode(next(argument for argument in arguments if argument is not type(None)), data)
    return data


JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def schema(kind: Any) -> dict[str, Any]:
    """The JSON schema of `kind`'s JSON (a plan dataclass, a list or dict of them, or plain values)."""
    if is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return {"type": "object", "description": " ".join((kind.__doc__ or kind.__name__).split()),
                "additionalProperties": False,
                "required": [item.name for item in fields(kind) if not item.metadata.get("omitted_when_none")],
                "properties": {item.name: schema(hints[item.name]) for item in fields(kind)}}
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin is list:
        return {"type": "array", "items": schema(arguments[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": schema(arguments[1])}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [schema(argument) for argument in arguments]}
    return {"type": JSON_TYPES[kind]} if kind in JSON_TYPES else {}  # Any: whatever JSON


def schema_file(folder: str | os.PathLike, kind: str) -> Path:
    return Path(folder) / f"{kind}.schema.json"


def schema_text(kind: str) -> str:
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": f"plan file kind {kind}",
                **schema(KINDS[kind])}
    return json.dumps(document, indent=1) + "\n"


def write_schemas(folder: str | os.PathLike) -> None:
    """Write every plan file kind's schema into `folder` (workflow/schemas/plan)."""
    for kind in KINDS:
        write_text_atomic(schema_file(folder, kind), schema_text(kind))
