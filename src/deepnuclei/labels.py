"""The structures deepnuclei segments, their label values, and the per-task class maps.

The reference label map (`_dseg`) keeps every structure apart, left and right, with GPe and GPi
separate; each segmentation task (the DB-ResUNet paper's 7 nuclei, LiNUS's STN or GPi) is a
remapping of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Structure:
    label: int
    nucleus: str  # abbreviation without side: CN, PUT, GPe, GPi, THA, SN, RN, DN, STN
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
}

STRUCTURES: tuple[Structure, ...] = tuple(
    Structure(2 * index + side_index + 1, nucleus, side, f"{side_name} {NUCLEUS_NAMES[nucleus]}")
    for index, nucleus in enumerate(NUCLEUS_NAMES)
    for side_index, (side, side_name) in enumerate((("L", "left"), ("R", "right")))
)
STRUCTURE_BY_NAME = {structure.name: structure for structure in STRUCTURES}

# Each task lists its classes (in output-channel order after background) and which nuclei of the
# reference map each class takes. GP is the union of GPe and GPi, as annotated in the DB-ResUNet paper.
TASKS: dict[str, dict[str, tuple[str, ...]]] = {
    "nuclei7": {
        f"{nucleus}_{side}": tuple(f"{part}_{side}" for part in parts)
        for nucleus, parts in (
            ("CN", ("CN",)),
            ("GP", ("GPe", "GPi")),
            ("PUT", ("PUT",)),
            ("THA", ("THA",)),
            ("SN", ("SN",)),
            ("RN", ("RN",)),
            ("DN", ("DN",)),
        )
        for side in ("L", "R")
    },
    "stn": {f"STN_{side}": (f"STN_{side}",) for side in ("L", "R")},
    "gpi": {f"GPi_{side}": (f"GPi_{side}",) for side in ("L", "R")},
}


def task_classes(task: str) -> list[str]:
    """Class names of a task, in label order 1..N (0 is background)."""
    if task not in TASKS:
        raise KeyError(f"unknown task '{task}'; known: {sorted(TASKS)}")
    return list(TASKS[task])


def remap_to_task(dseg: np.ndarray, task: str) -> np.ndarray:
    """Turn a reference label map into the task's label map (0 = background, 1..N = classes)."""
    lookup = np.zeros(max(s.label for s in STRUCTURES) + 1, dtype=np.uint8)
    for class_index, sources in enumerate(TASKS[task].values(), start=1):
        for source in sources:
            lookup[STRUCTURE_BY_NAME[source].label] = class_index
    return lookup[np.asarray(dseg, dtype=np.int64)]


def dseg_tsv() -> str:
    """The BIDS `dseg.tsv` lookup table of the reference label map."""
    rows = ["index\tname\tabbreviation\themisphere"]
    rows += [f"{s.label}\t{s.full_name}\t{s.name}\t{s.hemisphere}" for s in STRUCTURES]
    return "\n".join(rows) + "\n"
