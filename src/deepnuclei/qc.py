"""Quality-control pictures: three orthogonal slices with label overlays and mask outlines."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from .io import read_volume, voxel_sizes  # noqa: E402
from .labels import STRUCTURES  # noqa: E402

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    os.replace(temporary, path)
    return path


def segmentation_overlays(image_path: str | os.PathLike, labels: dict[str, str | os.PathLike],
                          out_path: str | os.PathLike, title: str = "") -> Path:
    """Each method's labels (`labels`: name -> dseg path, the reference first) over one image, a row
    per method, all cut through the first label map's centre so that rows compare."""
    image, affine = read_volume(image_path)
    maps = {name: read_volume(path, dtype=np.uint8)[0] for name, path in labels.items()}
    panels = [Panel(name, image, affine, labels=label_map) for name, label_map in maps.items()]
    return three_view_figure(panels, out_path, centre_of(next(iter(maps.values())), image.shape), title)
