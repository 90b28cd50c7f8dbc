"""The structures deepnuclei segments, their label values, the per-task class maps, and the mapping of a
dataset's own label numbering onto the package's by structure name.

The reference label map (`_dseg`) keeps every structure apart, left and right, with GPe and GPi
separate (values 1..18, `STRUCTURES`); a dataset that annotates the globus pallidus as one label (as the
DB-ResUNet paper did) has GP_L, GP_R instead (values 19, 20). Each segmentation task (the DB-ResUNet
paper's 7 nuclei, LiNUS's STN or GPi) is a remapping of it.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import InputError, read_volume, save_volume, write_text_atomic

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Structure:
    label: int
    nucleus: str  # abbreviation without side: CN, PUT, GPe, GPi, THA, SN, RN, DN, STN, GP
    hemisphere: str  # "L" or "R"
    full_name: str

    @property
    def name(self) -> str:
        return f"{self.nucleus}_{self.hemisphere}"


NUCLEUS_NAMES = {
    "CN": "caudate nucleus",
    "PUT": "putamen",
    "GPe": "globus pallidus externus",
    "GPi": "globus pallidus internus",
    "THA": "thalamus",
    "SN": "substantia nigra",
    "RN": "red nucleus",
    "DN": "dentate nucleus",
    "STN": "subthalamic nucleus",
    "GP": "globus pallidus",
}
SIDES = (("L", "left"), ("R", "right"))
# A nucleus some datasets annotate as one label and others as its parts; a reference has one or the other.
PARTS = {"GP": ("GPe", "GPi")}

ALL_STRUCTURES: tuple[Structure, ...] = tuple(
    Structure(2 * index + side_index + 1, nucleus, side, f"{side_name} {NUCLEUS_NAMES[nucleus]}")
    for index, nucleus in enumerate(NUCLEUS_NAMES)
    for side_index, (side, side_name) in enumerate(SIDES)
)
# The structures of a reference that keeps every one apart (what the demo draws and the package's own
# dseg.tsv lists); merged GP follows them in the numbering.
STRUCTURES = tuple(s for s in ALL_STRUCTURES if s.nucleus not in PARTS)
STRUCTURE_BY_NAME = {structure.name: structure for structure in ALL_STRUCTURES}
STRUCTURE_BY_LABEL = {structure.label: structure for structure in ALL_STRUCTURES}
MAX_LABEL = max(STRUCTURE_BY_LABEL)

# Each task lists its classes (in output-channel order after background) and which structures of the
# reference map each class takes; the first is the value a model writes the class with. GP takes GP
# where a dataset annotates it as one label, else the union of GPe and GPi.
TASKS: dict[str, dict[str, tuple[str, ...]]] = {
    "nuclei7": {
        f"{nucleus}_{side}": tuple(f"{part}_{side}" for part in (nucleus, *PARTS.get(nucleus, ())))
        for nucleus in ("CN", "GP", "PUT", "THA", "SN", "RN", "DN")
        for side, _ in SIDES
    },
    "stn": {f"STN_{side}": (f"STN_{side}",) for side, _ in SIDES},
    "gpi": {f"GPi_{side}": (f"GPi_{side}",) for side, _ in SIDES},
}


def task_classes(task: str) -> list[str]:
    """Class names of a task, in label order 1..N (0 is background)."""
    if task not in TASKS:
        raise KeyError(f"unknown task '{task}'; known: {sorted(TASKS)}")
    return list(TASKS[task])


def remap_to_task(dseg: np.ndarray, task: str) -> np.ndarray:
    """Turn a reference label map into the task's label map (0 = background, 1..N = classes)."""
    lookup = np.zeros(MAX_LABEL + 1, dtype=np.uint8)
    for class_index, sources in enumerate(TASKS[task].values(), start=1):
        for source in sources:
            lookup[STRUCTURE_BY_NAME[source].label] = class_index
    return lookup[np.asarray(dseg, dtype=np.int64)]


def dseg_tsv(structures: Iterable[str] | None = None) -> str:
    """The BIDS `dseg.tsv` lookup table of the reference label map (None: every structure kept apart,
    `STRUCTURES`), or of the given structure names, in package order."""
    wanted = [s.name for s in STRUCTURES] if structures is None else set(structures)
    unknown = sorted(set(wanted) - set(STRUCTURE_BY_NAME))
    if unknown:
        raise KeyError(f"unknown structures {unknown}; known: {list(STRUCTURE_BY_NAME)}")
    rows = ["index\tname\tabbreviation\themisphere"]
    rows += [f"{s.label}\t{s.full_name}\t{s.name}\t{s.hemisphere}" for s in ALL_STRUCTURES if s.name in wanted]
    return "\n".join(rows) + "\n"


# ----------------------------------------------------------------------------------- labels by name

def read_dseg_names(path: PathLike) -> dict[int, tuple[str, ...]]:
    """Label value -> its names in a BIDS `dseg.tsv` (columns `index`, `name` and optionally
    `abbreviation`): the abbreviation where present and non-empty, then the name."""
    if not Path(path).exists():
        raise InputError(path, "file does not exist")
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    if not rows or not {"index", "name"} <= set(rows[0]):
        raise InputError(path, "a dseg.tsv needs the columns index and name")
    names = {}
    for row in rows:
        try:
            value = int(row["index"])
        except (TypeError, ValueError) as error:
            raise InputError(path, f"the index column holds a value that is not an integer ({error})") from error
        if value in names:
            raise InputError(path, f"index {value} is listed twice")
        names[value] = tuple(name.strip() for name in (row.get("abbreviation"), row["name"]) if name and name.strip())
        if not names[value]:
            raise InputError(path, f"index {value} has no name")
    return names


def read_dseg_tsv(path: PathLike) -> dict[int, str]:
    """Label value -> the name a BIDS `dseg.tsv` gives it (its abbreviation where present)."""
    return {value: names[0] for value, names in read_dseg_names(path).items()}


def _words(name: str) -> list[str]:
    """Lower-case words of a name, split at anything not a letter or digit ("Left-Caudate", "SN_pc_L")."""
    return re.sub(r"[^a-z0-9]+", " ", name.lower()).split()


SIDE_WORDS = {"l": "L", "left": "L", "lh": "L", "lt": "L", "r": "R", "right": "R", "rh": "R", "rt": "R"}
# Words that say nothing about which nucleus ("Red_N_L", "Left-Thalamus-Proper", "SN pars compacta").
FILLER_WORDS = {"nucleus", "nuclei", "nuc", "n", "proper", "pars", "the"}
_PALLIDUM = ("globus pallidus", "pallidum", "pallidus", "gp")
_EXTERNAL = ("externus", "externa", "external", "lateral", "ext", "e")
_INTERNAL = ("internus", "interna", "internal", "medial", "int", "i")
# Each nucleus's names, as words without side or filler; the pieces of SN (pars compacta and reticulata,
# which AAL3 and CIT168 label apart) are SN: the package segments it whole.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "CN": ("cn", "caudate", "caudatus", "ca"),
    "PUT": ("put", "putamen", "pu"),
    "GP": _PALLIDUM,
    "GPe": ("gpe", *(phrase for p in _PALLIDUM for m in _EXTERNAL for phrase in (f"{p} {m}", f"{m} {p}"))),
    "GPi": ("gpi", *(phrase for p in _PALLIDUM for m in _INTERNAL for phrase in (f"{p} {m}", f"{m} {p}"))),
    "THA": ("tha", "thal", "thalamus"),
    "SN": ("sn", "substantia nigra", "nigra", "snc", "snr", "snpc", "snpr", "sn pc", "sn pr",
           *(f"{base} {part}" for base in ("sn", "substantia nigra") for part in ("compacta", "reticulata"))),
    "RN": ("rn", "red", "ruber"),
    "DN": ("dn", "dentate", "dentatus"),
    "STN": ("stn", "subthalamic"),
}
NUCLEUS_BY_WORDS = {synonym: nucleus for nucleus, synonyms in SYNONYMS.items() for synonym in synonyms}


def match_structure(name: str) -> str | None:
    """The package structure (e.g. "CN_L") a dataset's label name stands for, or None for a name without
    a side or of another structure. Case, spaces, underscores, hyphens and dots do not matter; the side
    comes first or last ("Left-Caudate", "L_Caudate", "Caudate_L", "caudate left", "lh caudate"); the
    nucleus by its package abbreviation, full name or a common synonym ("Pallidum", "Red_N", "SN_pr")."""
    words = _words(name)
    sides = {SIDE_WORDS[word] for word in words[:1] + words[-1:] if word in SIDE_WORDS}
    if len(sides) != 1 or len(words) < 2:
        return None
    core = words[1:] if words[0] in SIDE_WORDS else words[:-1]
    nucleus = NUCLEUS_BY_WORDS.get(" ".join(word for word in core if word not in FILLER_WORDS))
    return None if nucleus is None else f"{nucleus}_{sides.pop()}"


def _normal(name: str) -> str:
    return " ".join(_words(name))


def dataset_mapping(lookup: Mapping[int, str | Sequence[str]], source: PathLike,
                    ignore: Collection[str] = ()) -> dict[int, int]:
    """Each value of a dataset's label map (its dseg.tsv `source`, read by `read_dseg_names` or
    `read_dseg_tsv`) -> the package's value of the structure its name matches (`match_structure`,
    trying each of a label's names), 0 for background (value 0) and the names listed in `ignore`.

    Several values may name one structure when their names differ: the dataset splits what the package
    segments whole (SN_pc_L and SN_pr_L are SN_L), and they merge. One name listed twice, or a side's
    globus pallidus given both as one label and as GPe/GPi, is an error: the table is ambiguous."""
    ignored = {_normal(name) for name in ignore}
    mapping, named_by = {0: 0}, {}
    for value, names in sorted(lookup.items()):
        names = (names,) if isinstance(names, str) else tuple(names)
        if value == 0 or ignored & {_normal(name) for name in names}:
            mapping[value] = 0
            continue
        matches = {match_structure(name) for name in names} - {None}
        if not matches:
            raise InputError(source, f"label {value} '{names[0]}' names no structure deepnuclei knows: expected "
                             f"one of {', '.join(STRUCTURE_BY_NAME)} (other spellings accepted, see "
                             "labels.match_structure); list extra structures in the config's labels.ignore")
        if len(matches) > 1:
            raise InputError(source, f"label {value}: its names {' / '.join(names)} name different structures "
                             f"({', '.join(sorted(matches))})")
        structure = matches.pop()
        twin = next((other for other, (name, matched) in named_by.items()
                     if matched == structure and _normal(name) == _normal(names[0])), None)
        if twin is not None:
            raise InputError(source, f"'{named_by[twin][0]}' (value {twin}) and '{names[0]}' (value {value}) "
                             "are one name listed twice")
        named_by[value] = (names[0], structure)
        mapping[value] = STRUCTURE_BY_NAME[structure].label
    present = dataset_structures(mapping)
    for merged, parts in PARTS.items():
        for side, _ in SIDES:
            both = [name for name in (f"{merged}_{side}", *(f"{part}_{side}" for part in parts)) if name in present]
            if f"{merged}_{side}" in both and len(both) > 1:
                raise InputError(source, f"{merged}_{side} is labelled both as one label and as its parts "
                                 f"({', '.join(both[1:])}); list one of them in the config's labels.ignore")
    return mapping


def dataset_structures(mapping: Mapping[int, int]) -> list[str]:
    """The package structures a dataset's mapping (`dataset_mapping`) gives voxels to, in package order."""
    values = set(mapping.values())
    return [s.name for s in ALL_STRUCTURES if s.label in values]


def lookup_structures(lookup_path: PathLike | None, ignore: Collection[str] = ()) -> list[str]:
    """The package structures a dataset's dseg.tsv labels (None: the package's own table)."""
    if lookup_path is None:
        return [s.name for s in STRUCTURES]
    return dataset_structures(dataset_mapping(read_dseg_names(lookup_path), lookup_path, ignore))


def dataset_lookup(lookup_paths: Sequence[PathLike], ignore: Collection[str] = ()) -> str:
    """The dseg.tsv, in the package numbering, of the structures a dataset's lookups label (their union;
    no lookup: the package's table)."""
    if not lookup_paths:
        return dseg_tsv()
    return dseg_tsv({name for path in lookup_paths for name in lookup_structures(path, ignore)})


def covers(structures: Collection[str], name: str) -> bool:
    """Whether a dataset annotating `structures` has the structure `name`: itself, or, for a nucleus
    annotated as parts in some datasets (GP), all of its parts."""
    nucleus, side = name.rsplit("_", 1)
    return name in structures or (nucleus in PARTS and all(f"{part}_{side}" in structures for part in PARTS[nucleus]))


def missing_for_task(task: str, structures: Collection[str]) -> list[str]:
    """The classes of `task` a dataset annotating `structures` lacks (GP is there as GP or as GPe + GPi)."""
    return [name for name in task_classes(task) if not covers(structures, name)]


def check_task(task: str, structures: Collection[str], source: PathLike) -> None:
    """An `InputError` naming the dataset's lookup `source` when it lacks a structure `task` needs."""
    missing = missing_for_task(task, structures)
    if not missing:
        return
    problem = f"task {task} needs {', '.join(missing)}, which it does not label"
    merged = [name for name in structures if STRUCTURE_BY_NAME[name].nucleus in PARTS]
    if merged and any(STRUCTURE_BY_NAME[name].nucleus in PARTS["GP"] for name in missing):
        problem += (f"; it has GP as one label ({', '.join(merged)}): GPe/GPi tasks are unavailable "
                    "for this dataset")
    raise InputError(source, problem)


def relabel(data: np.ndarray, mapping: Mapping[int, int]) -> np.ndarray:
    """A label map renumbered by `mapping` (uint8); a value the mapping lacks is a `ValueError`."""
    data = np.asarray(data)
    values = np.unique(data)
    unknown = sorted(set(values.tolist()) - set(mapping) - {0})
    if unknown:
        raise ValueError(f"label values {unknown} are not in the mapping")
    table = np.zeros(max(int(values.max(initial=0)), *mapping) + 1, dtype=np.uint8)
    for value, target in mapping.items():
        table[value] = target
    return table[data]


def relabel_file(labels_path: PathLike, lookup_path: PathLike | None, out_path: PathLike,
                 ignore: Collection[str] = (), out_lookup: PathLike | None = None) -> list[str]:
    """Write a dataset's label map in the package numbering (uint8, same grid), mapped by name through
    its dseg.tsv `lookup_path` (None: it is in the package numbering already); and, given `out_lookup`,
    the dseg.tsv of the structures it then holds. Returns those structures."""
    data, affine = read_volume(labels_path, dtype=np.float64)
    if not np.array_equal(data, np.round(data)):
        raise InputError(labels_path, "label values are not integers")
    data = data.astype(np.int64)
    present = set(np.unique(data).tolist()) - {0}
    if lookup_path is None:
        unknown = sorted(present - set(STRUCTURE_BY_LABEL))
        table = "the package's numbering (deepnuclei.labels)"
        mapping = dataset_mapping({v: STRUCTURE_BY_LABEL[v].name for v in present - set(unknown)}, labels_path, ignore)
    else:
        lookup = read_dseg_names(lookup_path)
        unknown = sorted(present - set(lookup))
        table = str(lookup_path)
        mapping = dataset_mapping(lookup, lookup_path, ignore)
    if unknown:
        raise InputError(labels_path, f"label values {unknown} are not in {table}")
    save_volume(out_path, relabel(data, mapping), affine, np.uint8)
    structures = dataset_structures(mapping)
    if out_lookup is not None:
        write_text_atomic(out_lookup, dseg_tsv(structures))
    return structures
