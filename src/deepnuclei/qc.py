"""Quality-control pictures: three orthogonal slices with label overlays and mask outlines."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch

from .io import InputError, read_volume, voxel_sizes, write_atomic  # noqa: E402
from .labels import ALL_STRUCTURES, MAX_LABEL, STRUCTURES  # noqa: E402

VIEW_NAMES = ("sagittal", "coronal", "axial")


@dataclass
class Panel:
    """One row of a QC figure: a grey-scale volume, optionally with labels and a mask outline."""

    title: str
    volume: np.ndarray
    affine: np.ndarray
    labels: np.ndarray | None = None
    outline: np.ndarray | None = None
    window: tuple[float, float] | None = None  # display range; percentiles when None
    colormap: str = "gray"


def _slice(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    return np.take(volume, index, axis=axis).T  # transpose so the second remaining axis is vertical


def _aspect(affine: np.ndarray, axis: int) -> float:
    sizes = np.delete(voxel_sizes(affine), axis)
    return float(sizes[1] / sizes[0])


def centre_of(labels: np.ndarray | None, shape: Sequence[int]) -> tuple[int, ...]:
    """Slice indices through the labels' centre of mass, or the volume centre without labels."""
    if labels is not None and np.any(labels > 0):
        return tuple(int(round(c)) for c in np.argwhere(labels > 0).mean(axis=0))
    return tuple(n // 2 for n in shape)


def label_colormap(n_labels: int) -> ListedColormap:
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, 20))
    return ListedColormap([colours[i % 20] for i in range(max(n_labels, 1))])


def three_view_figure(
    panels: Sequence[Panel], path: str | os.PathLike, centre: Sequence[int] | None = None, title: str = ""
) -> Path:
    """Save a PNG with one row per panel and the sagittal, coronal and axial slices as columns."""
    figure, axes = plt.subplots(len(panels), 3, figsize=(10, 3.3 * len(panels)), squeeze=False)
    for row, panel in zip(axes, panels):
        slices_at = centre or centre_of(panel.labels, panel.volume.shape)
        finite = panel.volume[np.isfinite(panel.volume)]
        low, high = panel.window or tuple(np.percentile(finite, [1, 99.5]))
        for axis, ax in enumerate(row):
            ax.imshow(_slice(panel.volume, axis, slices_at[axis]), cmap=panel.colormap, vmin=low,
                      vmax=high, origin="lower", aspect=_aspect(panel.affine, axis), interpolation="nearest")
            if panel.labels is not None:
                labels = _slice(panel.labels, axis, slices_at[axis]).astype(float)
                n_labels = max(int(panel.labels.max()), len(STRUCTURES)) + 1  # one colour per structure everywhere
                ax.imshow(np.ma.masked_equal(labels, 0), cmap=label_colormap(n_labels), vmin=0,
                          vmax=n_labels - 1, alpha=0.55, origin="lower",
                          aspect=_aspect(panel.affine, axis), interpolation="nearest")
            if panel.outline is not None:
                ax.contour(_slice(panel.outline, axis, slices_at[axis]).astype(float), levels=[0.5],
                           colors="yellow", linewidths=0.7, origin="lower")
            ax.set_title(f"{panel.title}: {VIEW_NAMES[axis]}", fontsize=9)
            ax.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return save_figure(figure, path)


def save_figure(figure: plt.Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write a figure as PNG atomically (`write_atomic`) and close it."""
    written = write_atomic(path, partial(figure.savefig, dpi=dpi))
    plt.close(figure)
    return written


def segmentation_overlays(image_path: str | os.PathLike, labels: dict[str, str | os.PathLike],
                          out_path: str | os.PathLike, title: str = "") -> Path:
    """Each method's labels (`labels`: name -> dseg path, the reference first) over one image, a row
    per method, all cut through the first label map's centre so that rows compare."""
    image, affine = read_volume(image_path)
    maps = {name: read_volume(path, dtype=np.uint8)[0] for name, path in labels.items()}
    panels = [Panel(name, image, affine, labels=label_map) for name, label_map in maps.items()]
    return three_view_figure(panels, out_path, centre_of(next(iter(maps.values())), image.shape), title)


# ---- every method's labels on a session's grids


@dataclass
class Grid:
    """One of a session's grids for `session_qc_figure`: an image and, per row name, the labels on it."""

    name: str
    volume: np.ndarray
    affine: np.ndarray
    labels: dict[str, np.ndarray]


def outline(labels: np.ndarray) -> np.ndarray:
    """A 2D label slice kept only where a 4-neighbour differs: each structure's border, 0 elsewhere."""
    edge = np.zeros(labels.shape, bool)
    for axis in (0, 1):
        differs = np.diff(labels, axis=axis) != 0
        edge[(slice(1, None) if axis == 0 else slice(None), slice(1, None) if axis == 1 else slice(None))] |= differs
        edge[(slice(None, -1) if axis == 0 else slice(None), slice(None, -1) if axis == 1 else slice(None))] |= differs
    return np.where(edge, labels, 0)


def session_qc_figure(grids: Sequence[Grid], rows: Sequence[str], path: str | os.PathLike, title: str = "") -> Path:
    """A row per method (`rows`), three views per grid side by side, cut on each grid through the centre of
    the first row's labels on it that hold any (the reference's, where given first: a method that labels
    the whole head moves no cut): each structure filled faintly and outlined in its colour (one colour per
    structure in every panel), a legend of the structures shown."""
    columns = 3 * len(grids)
    figure, axes = plt.subplots(len(rows), columns, figsize=(2.5 * columns, 2.6 * len(rows) + 0.8), squeeze=False)
    colours = label_colormap(MAX_LABEL + 1)
    shown = set()
    for column, grid in enumerate(grids):
        for labels in grid.labels.values():
            shown |= set(np.unique(labels).tolist())
        first = next((grid.labels[name] for name in rows if name in grid.labels and grid.labels[name].any()), None)
        slices_at = centre_of(first, grid.volume.shape)
        low, high = np.percentile(grid.volume[np.isfinite(grid.volume)], [1, 99.5])
        for row, name in enumerate(rows):
            for axis in range(3):
                ax = axes[row, 3 * column + axis]
                aspect = _aspect(grid.affine, axis)
                ax.imshow(_slice(grid.volume, axis, slices_at[axis]), cmap="gray", vmin=low, vmax=high, origin="lower",
                          aspect=aspect, interpolation="nearest")
                labels = grid.labels.get(name)
                if labels is not None:
                    cut = _slice(labels, axis, slices_at[axis]).astype(int)
                    for layer, alpha in ((cut, 0.25), (outline(cut), 1.0)):
                        ax.imshow(np.ma.masked_equal(layer, 0), cmap=colours, vmin=0, vmax=MAX_LABEL, alpha=alpha,
                                  origin="lower", aspect=aspect, interpolation="nearest")
                ax.set_title(f"{name}: {grid.name} {VIEW_NAMES[axis]}" + ("" if labels is not None else " (no labels)"),
                             fontsize=8)
                ax.axis("off")
    handles = [Patch(color=colours(structure.label), label=structure.name) for structure in ALL_STRUCTURES
               if structure.label in shown]
    if handles:
        figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 10), fontsize=8, frameon=False)
    if title:
        figure.suptitle(title)
    height = figure.get_figheight()
    figure.tight_layout(rect=(0, 0.6 / height, 1, 1 - (0.4 / height if title else 0)))
    return save_figure(figure, path, dpi=90)


def segmentation_qc(out_path: str | os.PathLike, t1_path: str | os.PathLike | None = None,
                    t1_labels: Mapping[str, str | os.PathLike] | None = None, qsm_path: str | os.PathLike | None = None,
                    swi_labels: Mapping[str, str | os.PathLike] | None = None, title: str = "") -> Path:
    """Every method's labels (name -> dseg path, per grid) over the session's T1 and its QSM, a row per
    method (the union of both grids' names, in the order given)."""
    grids = []
    for name, image_path, labels in (("T1w", t1_path, t1_labels or {}), ("QSM", qsm_path, swi_labels or {})):
        if image_path is None:
            continue
        volume, affine = read_volume(image_path, allow_nan=True)
        maps = {}
        for method, label_path in labels.items():
            maps[method] = read_volume(label_path, dtype=np.uint8)[0]
            if maps[method].shape != volume.shape:
                raise InputError(label_path, f"shape {maps[method].shape} differs from {image_path}'s {volume.shape}")
        grids.append(Grid(name, volume, affine, maps))
    if not grids:
        raise ValueError("segmentation QC needs the T1 or the QSM")
    rows = list(dict.fromkeys(name for grid in grids for name in grid.labels))
    return session_qc_figure(grids, rows, out_path, title)


def cases_qc(out_path: str | os.PathLike, cases: Sequence, title: str = "") -> Path:
    """`segmentation_qc` of one session's measures cases (deepnuclei.plan_files.MeasuresCase, the reference
    first): each case's label maps over the T1 and the QSM that its measures read."""
    t1 = next((case.t1 for case in cases if case.t1), None)
    qsm = next((case.qsm for case in cases if case.qsm), None)
    return segmentation_qc(out_path, t1, {case.method: case.t1_labels for case in cases if case.t1_labels}, qsm,
                           {case.method: case.swi_labels for case in cases if case.swi_labels}, title)
