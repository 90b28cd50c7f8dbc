"""Label maps in the package's numbering: every structure apart, or GPe and GPi merged into GP."""

from __future__ import annotations

import numpy as np

from deepnuclei.labels import STRUCTURE_BY_NAME, STRUCTURES


SEPARATE = [s.name for s in STRUCTURES]
MERGED = [name for name in SEPARATE if not name.startswith(("GPe", "GPi"))] + ["GP_L", "GP_R"]


def package_map() -> np.ndarray:
    """Every structure kept apart, each a 2 x 5 x 2 box in its own slab of x."""
    labels = np.zeros((2 * len(STRUCTURES), 8, 4), np.uint8)
    for index, structure in enumerate(STRUCTURES):
        labels[2 * index:2 * index + 2, 1:6, 1:3] = structure.label
    return labels


def merge_gp(labels: np.ndarray) -> np.ndarray:
    """The package map with GPe and GPi of each side as that side's GP."""
    merged = labels.copy()
    for side in "LR":
        for part in ("GPe", "GPi"):
            merged[labels == STRUCTURE_BY_NAME[f"{part}_{side}"].label] = STRUCTURE_BY_NAME[f"GP_{side}"].label
    return merged
