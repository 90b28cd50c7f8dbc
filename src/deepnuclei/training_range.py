"""What a model was trained on, and whether a new session lies inside it.

A network given an image unlike its training images does not fail loudly: it writes labels, and a QSM
with a shading it never saw can send every nucleus into the cerebellum. So training records the range of
its inputs and of its anatomy, the checkpoint and the bundle carry that record, and inference compares
each session with it:

- inputs: per model-input channel, the 5th, 50th and 95th percentiles of its non-zero voxels (the inputs
  are windowed to [0, 1], so these say where the window put the tissue). A session is out of range where a
  percentile lies beyond the training range widened by half its width (at least `INPUT_MARGIN`).
- anatomy of the prediction: per class, its volume and the offset of its centre from the centre of all
  labelled voxels (world mm, on the model grid). A class is out of range where it is missing though every
  training subject had it, where its volume is under half the smallest or over twice the largest seen, or
  where its offset lies more than `OFFSET_MARGIN_MM` beyond the farthest training offset from their mean.

The margins are wide on purpose: the check is there to catch a failed segmentation (a nucleus missing,
doubled, or where no nucleus is), not to grade a good one. Its result is a warning in the log and a flag in
the inference record, the measures tables and the report; it never stops a run.

The same offsets also clean a prediction up where asked (`inference.drop_misplaced`,
`drop_misplaced_pieces`): a network shown an artefact it never saw (a bright sinus at the frontal base in a
QSM of thick slices) may label it as a nucleus 30 mm and more from where any nucleus lies, beside a correct
label of that nucleus. A piece (connected component) of a class whose centre lies beyond that class's
training spread + `OFFSET_MARGIN_MM` is dropped, the rule the check applies to a whole class. Unlike keeping
each class's largest piece, this keeps the right one when the artefact is the larger.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from .io import voxel_volume_mm3

PERCENTILES = (5, 50, 95)
INPUT_MARGIN = 0.05  # of the [0, 1] window
VOLUME_FACTOR = 2.0
OFFSET_MARGIN_MM = 10.0


def input_statistics(image: np.ndarray) -> list[dict[str, float]]:
    """Per channel of (channels, *volume): percentiles of its non-zero voxels, and their fraction."""
    statistics = []
    for channel in np.asarray(image, dtype=np.float32):
        values = channel[channel != 0]
        record = {"nonzero_fraction": float(values.size / channel.size)}
        percentiles = np.percentile(values, PERCENTILES) if values.size else [np.nan] * len(PERCENTILES)
        record.update({f"p{q}": float(value) for q, value in zip(PERCENTILES, percentiles)})
        statistics.append(record)
    return statistics


def anatomy_statistics(labels: np.ndarray, affine: np.ndarray, classes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per class present in `labels` (task class indices, 1..len(classes)): volume (ml) and the offset of its
    centre from the centre of all labelled voxels (world mm). One pass over the map for all classes."""
    labels = np.asarray(labels)
    counts = np.bincount(labels.ravel(), minlength=len(classes) + 1)
    if not counts[1:].any():
        return {}
    present = [index for index in range(1, len(classes) + 1) if counts[index]]
    labelled = labels > 0
    centres = np.array(ndimage.center_of_mass(labelled, labels, present))  # voxel indices
    everything = np.array(ndimage.center_of_mass(labelled))
    voxel_ml = voxel_volume_mm3(affine) / 1000
    return {classes[index - 1]: {"volume_ml": float(counts[index] * voxel_ml),
                                 "offset_mm": [float(v) for v in affine[:3, :3] @ (centre - everything)]}
            for index, centre in zip(present, centres)}


def training_range(inputs: Sequence[list[dict[str, float]]], anatomy: Sequence[dict[str, dict[str, Any]]],
                   classes: Sequence[str]) -> dict[str, Any]:
    """The range of the training subjects' `input_statistics` and `anatomy_statistics` (one each per subject)."""
    channels = [
        {key: [float(np.nanmin([s[c][key] for s in inputs])), float(np.nanmax([s[c][key] for s in inputs]))]
         for key in inputs[0][c]}
        for c in range(len(inputs[0]))
    ]
    structures = {}
    for name in classes:
        seen = [subject[name] for subject in anatomy if name in subject]
        if not seen:
            continue
        volumes = [record["volume_ml"] for record in seen]
        offsets = np.array([record["offset_mm"] for record in seen])
        mean = offsets.mean(0)
        structures[name] = {"volume_ml": [min(volumes), max(volumes)], "always_present": len(seen) == len(anatomy),
                            "offset_mm": [float(v) for v in mean],
                            "offset_spread_mm": float(np.linalg.norm(offsets - mean, axis=1).max())}
    return {"subjects": len(inputs), "inputs": channels, "anatomy": structures}


def range_warnings(known: dict[str, Any], inputs: list[dict[str, float]],
                   anatomy: dict[str, dict[str, Any]]) -> list[str]:
    """Where a session's statistics lie outside `known` (a `training_range`): one line each."""
    warnings = []
    for channel, (seen, value) in enumerate(zip(known["inputs"], inputs)):
        for key in (f"p{q}" for q in PERCENTILES):
            low, high = seen[key]
            margin = max((high - low) / 2, INPUT_MARGIN)
            if not low - margin <= value[key] <= high + margin:
                warnings.append(f"input channel {channel}: {key} {value[key]:.3f} outside the training range "
                                f"[{low:.3f}, {high:.3f}]")
    for name, seen in known["anatomy"].items():
        if name not in anatomy:
            if seen["always_present"]:
                warnings.append(f"{name}: not found, though every training subject had it")
            continue
        volume, (smallest, largest) = anatomy[name]["volume_ml"], seen["volume_ml"]
        if not smallest / VOLUME_FACTOR <= volume <= largest * VOLUME_FACTOR:
            warnings.append(f"{name}: volume {volume:.2f} ml outside the training range [{smallest:.2f}, {largest:.2f}] "
                            f"(x{VOLUME_FACTOR:g} either way)")
        distance = float(np.linalg.norm(np.subtract(anatomy[name]["offset_mm"], seen["offset_mm"])))
        if distance > seen["offset_spread_mm"] + OFFSET_MARGIN_MM:
            warnings.append(f"{name}: centre {distance:.1f} mm from where training put it relative to the other "
                            f"structures (training spread {seen['offset_spread_mm']:.1f} mm)")
    return warnings


def drop_misplaced_pieces(labels: np.ndarray, affine: np.ndarray, classes: Sequence[str],
                          known: dict[str, Any] | None) -> np.ndarray:
    """`labels` (task class indices) without the pieces of each class whose centre lies farther from where
    training put that class (`training_range`'s mean offset from the centre of all labels) than its training
    spread + `OFFSET_MARGIN_MM`. A class all of whose pieces lie too far keeps its nearest one (the range check
    then flags it). The centre of all labels is recomputed from what is kept until nothing more is dropped, so
    that a large misplaced piece cannot pull the reference towards itself. Without a record, `labels` as is."""
    if not known:
        return labels
    labels = np.asarray(labels)
    pieces = {}  # class index -> (piece map, centres in voxels)
    for index, name in enumerate(classes, start=1):
        mask = labels == index
        if name not in known["anatomy"] or not mask.any():
            continue
        piece_map, count = ndimage.label(mask)
        if count > 1:
            pieces[index] = (piece_map, np.array(ndimage.center_of_mass(mask, piece_map, range(1, count + 1))))
    kept = labels.copy()
    for _ in range(len(pieces) + 1):  # until what is kept stops changing (bounded, should it cycle)
        centre = np.array(ndimage.center_of_mass(kept > 0))
        cleaned = labels.copy()
        for index, (piece_map, centres) in pieces.items():
            seen = known["anatomy"][classes[index - 1]]
            distances = np.linalg.norm((centres - centre) @ affine[:3, :3].T - seen["offset_mm"], axis=1)
            misplaced = distances > seen["offset_spread_mm"] + OFFSET_MARGIN_MM
            misplaced[np.argmin(distances)] = False
            cleaned[np.isin(piece_map, np.flatnonzero(misplaced) + 1)] = 0
        if np.array_equal(cleaned, kept):
            break
        kept = cleaned
    return kept


def check_session(known: dict[str, Any] | None, image: np.ndarray, labels: np.ndarray, affine: np.ndarray,
                  classes: Sequence[str]) -> dict[str, Any]:
    """The record inference writes: whether the session is inside the training range, and why not."""
    if not known:
        return {"checked": False, "in_range": None, "warnings": []}
    warnings = range_warnings(known, input_statistics(image), anatomy_statistics(labels, affine, classes))
    return {"checked": True, "in_range": not warnings, "warnings": warnings}

