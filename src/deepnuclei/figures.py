"""Figures of the evaluation from the overlap table: predicted against reference measurements per nucleus
(the DB-ResUNet paper's Figs. 8 and 10), Bland-Altman plots, and Dice box plots.

Each figure is a matplotlib `Figure` (no pyplot state); the values it plots come from `paired_values` or
`tables.per_nucleus`, so they can be checked against the tables, and read back from the axes' artists.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .io import write_bytes_atomic
from .tables import PAPER_NUCLEI, nucleus_of, per_nucleus

# quantity -> (predicted column, reference column, axis label)
QUANTITIES = {
    "volume": ("volume_mm3", "reference_volume_mm3", "volume (mm³)"),
    "susceptibility": ("susceptibility_ppb", "reference_susceptibility_ppb", "susceptibility (ppb)"),
}
PANEL_COLUMNS = 4
LIMITS_OF_AGREEMENT_SD = 1.96


def paired_values(
    overlap: pd.DataFrame, quantity: str, method: str, nuclei: Sequence[str] = PAPER_NUCLEI
) -> pd.DataFrame:
    """One row per subject and structure of `method` in `nuclei`: subject, structure, nucleus, reference,
    predicted; rows missing either value are left out."""
    if quantity not in QUANTITIES:
        raise KeyError(f"unknown quantity '{quantity}'; known: {sorted(QUANTITIES)}")
    predicted, reference, _ = QUANTITIES[quantity]
    rows = overlap[overlap["method"] == method].assign(nucleus=lambda table: table["structure"].map(nucleus_of))
    rows = rows[rows["nucleus"].isin(nuclei)].rename(columns={predicted: "predicted", reference: "reference"})
    rows = rows.dropna(subset=["predicted", "reference"])
    return rows[["subject", "structure", "nucleus", "reference", "predicted"]].reset_index(drop=True)


def regression(reference: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line predicted = slope * reference + intercept, and Pearson's r (NaN when undefined)."""
    reference, predicted = np.asarray(reference, float), np.asarray(predicted, float)
    if len(reference) < 2 or np.ptp(reference) == 0:
        return np.nan, np.nan, np.nan
    slope, intercept = np.polyfit(reference, predicted, 1)
    r = np.corrcoef(reference, predicted)[0, 1] if np.ptp(predicted) > 0 else np.nan
    return float(slope), float(intercept), float(r)


def _panels(count: int, title: str) -> tuple[Figure, list[Axes]]:
    """A figure with `count` panels in rows of PANEL_COLUMNS, unused cells hidden."""
    columns = min(count, PANEL_COLUMNS)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(3.2 * columns, 3.0 * rows), layout="constrained")
    axes = list(figure.subplots(rows, columns, squeeze=False).ravel())
    for unused in axes[count:]:
        unused.set_visible(False)
    figure.suptitle(title)
    return figure, axes[:count]


# How the QSM was referenced (qsm.reference), said beside every susceptibility axis: the reference shifts
# all of a subject's values by one constant.
QSM_REFERENCES = {"mask": "whole-brain mean = 0", "csf": "ventricular CSF = 0", "region": "given region = 0",
                  "none": "not referenced", "existing": "existing maps: their tools' reference"}


def quantity_label(quantity: str, qsm_reference: str) -> str:
    label = QUANTITIES[quantity][2]
    return f"{label[:-1]}, {QSM_REFERENCES[qsm_reference]})" if quantity == "susceptibility" else label


def scatter_panels(
    overlap: pd.DataFrame, quantity: str, method: str, nuclei: Sequence[str] = PAPER_NUCLEI, qsm_reference: str = "mask"
) -> Figure:
    """Predicted against reference `quantity` (susceptibility or volume), one panel per nucleus with
    left and right of every subject, the identity line, the least-squares line, and r and slope in the title.
    Each panel's first collection holds its points (reference, predicted) in `paired_values` order."""
    values = paired_values(overlap, quantity, method, nuclei)
    label = quantity_label(quantity, qsm_reference)
    figure, axes = _panels(len(nuclei), f"{method}: predicted vs reference {label}")
    for ax, nucleus in zip(axes, nuclei):
        points = values[values["nucleus"] == nucleus]
        ax.scatter(points["reference"], points["predicted"], s=14, label="structures")
        slope, intercept, r = regression(points["reference"], points["predicted"])
        if len(points):
            span = np.array([min(points["reference"].min(), points["predicted"].min()),
                             max(points["reference"].max(), points["predicted"].max())])
            ax.plot(span, span, "k--", linewidth=0.8, label="identity")
            if np.isfinite(slope):
                ax.plot(span, slope * span + intercept, "r-", linewidth=1.0, label="least squares")
        ax.set_title(f"{nucleus}: r = {r:.3f}, slope = {slope:.3f}", fontsize=9)
        ax.set_xlabel(f"reference {label}", fontsize=8)
        ax.set_ylabel(f"predicted {label}", fontsize=8)
    axes[0].legend(fontsize=7, loc="upper left")
    return figure


def bland_altman(
    overlap: pd.DataFrame, quantity: str, method: str, nuclei: Sequence[str] = PAPER_NUCLEI, qsm_reference: str = "mask"
) -> Figure:
    """Difference (predicted - reference) against the mean of both, one panel per nucleus, with the bias
    and the limits of agreement (bias ± 1.96 sample sd) as horizontal lines, in that order."""
    values = paired_values(overlap, quantity, method, nuclei)
    label = quantity_label(quantity, qsm_reference)
    figure, axes = _panels(len(nuclei), f"{method}: Bland-Altman of {label}")
    for ax, nucleus in zip(axes, nuclei):
        points = values[values["nucleus"] == nucleus]
        difference = points["predicted"] - points["reference"]
        ax.scatter((points["predicted"] + points["reference"]) / 2, difference, s=14)
        bias, spread = difference.mean(), LIMITS_OF_AGREEMENT_SD * difference.std()
        for level, colour, style in ((bias, "red", "-"), (bias - spread, "black", "--"), (bias + spread, "black", "--")):
            ax.axhline(level, color=colour, linestyle=style, linewidth=0.8)
        ax.set_title(f"{nucleus}: bias = {bias:.3g}, LoA ± {spread:.3g}", fontsize=9)
        ax.set_xlabel(f"mean {label}", fontsize=8)
        ax.set_ylabel(f"predicted - reference {label}", fontsize=8)
    return figure


def dice_boxplot(overlap: pd.DataFrame, nuclei: Sequence[str] = PAPER_NUCLEI) -> Figure:
    """Dice per subject (left and right averaged) as one box per method within each nucleus' group; the
    boxes are drawn nucleus by nucleus, methods in sorted order."""
    values = per_nucleus(overlap).dropna(subset=["dice"])
    methods = sorted(values["method"].unique())
    width = 0.8 / max(len(methods), 1)
    figure = Figure(figsize=(2.0 + 1.2 * len(nuclei), 3.6), layout="constrained")
    ax = figure.subplots()
    colours = [f"C{index}" for index in range(len(methods))]
    for group, nucleus in enumerate(nuclei):
        for index, method in enumerate(methods):
            dice = values.query("nucleus == @nucleus and method == @method")["dice"].to_numpy()
            ax.boxplot([dice], positions=[group + (index - (len(methods) - 1) / 2) * width], widths=width * 0.9,
                       patch_artist=True, boxprops={"facecolor": colours[index]}, medianprops={"color": "k"},
                       manage_ticks=False)
    ax.set_xticks(range(len(nuclei)), list(nuclei))
    ax.set_ylabel("Dice")
    ax.set_ylim(0, 1)
    ax.legend(handles=[Patch(facecolor=colour, label=method) for colour, method in zip(colours, methods)],
              fontsize=8, loc="lower right")
    return figure


def save_figure(figure: Figure, out_stem: str | os.PathLike, formats: Sequence[str] = ("png", "svg"),
                dpi: int = 150) -> list[Path]:
    """Write the figure as `<stem>.<format>` for each format, each atomically."""
    paths = []
    for file_format in formats:
        buffer = BytesIO()
        figure.savefig(buffer, format=file_format, dpi=dpi)
        paths.append(write_bytes_atomic(Path(out_stem).with_suffix(f".{file_format}"), buffer.getvalue()))
    return paths


def method_figures(overlap: pd.DataFrame, method: str, out_dir: Path, qsm_reference: str = "mask") -> list[Path]:
    """`method`'s predicted vs reference scatter and Bland-Altman plots of volume and susceptibility."""
    written = []
    for quantity in QUANTITIES:
        written += save_figure(scatter_panels(overlap, quantity, method, qsm_reference=qsm_reference),
                               out_dir / f"scatter_{quantity}_{method}")
        written += save_figure(bland_altman(overlap, quantity, method, qsm_reference=qsm_reference),
                               out_dir / f"bland_altman_{quantity}_{method}")
    return written


def write_evaluation_figures(overlap: pd.DataFrame, methods: Sequence[str], out_dir: str | os.PathLike,
                             qsm_reference: str = "mask", workers: int = 1) -> list[Path]:
    """Dice box plots of every method, and `method_figures` of each of `methods`, as PNG and SVG in `out_dir`
    (the workflow's `figure_stems` names the same files); `workers` processes draw the methods' figures
    (matplotlib draws on one core: 17 methods' figures took 120 s in one process)."""
    out_dir = Path(out_dir)
    written = save_figure(dice_boxplot(overlap), out_dir / "dice_boxplot")
    draw = partial(method_figures, overlap, out_dir=out_dir, qsm_reference=qsm_reference)
    if workers > 1 and len(methods) > 1:
        with ProcessPoolExecutor(min(workers, len(methods))) as pool:
            return written + [path for paths in pool.map(draw, methods) for path in paths]
    return written + [path for method in methods for path in draw(method)]


# the measures whose intervals `interval_panels` draws -> axis label
INTERVAL_MEASURES = {"chi_mean_ppb": "mean susceptibility (ppb)", "volume_mm3": "volume (mm³)"}


def interval_panels(long: pd.DataFrame) -> Figure:
    """The group's measures with their intervals (deepnuclei.measures' `<measure>_lower` / `_upper`): a panel per
    measure and nucleus, each session along x (methods side by side, left filled and right open), the estimate
    and a bar from lower to upper; a case without bounds is drawn without a bar. Each panel's containers hold
    one errorbar per method and side, in the long table's order."""
    session = ("_" + long["session_id"].astype(object)).where(long["session_id"].notna(), "")
    long = long.assign(nucleus=long["structure"].map(nucleus_of), case=long["participant_id"] + session)
    nuclei, methods, cases = (list(dict.fromkeys(long[column])) for column in ("nucleus", "method", "case"))
    long = long.assign(position=pd.Categorical(long["case"], categories=cases).codes)  # each session's place on x
    figure, axes = _panels(len(INTERVAL_MEASURES) * len(nuclei), "Measures and their intervals")
    width = 0.8 / max(len(methods), 1)
    panels = ((measure, nucleus) for measure in INTERVAL_MEASURES for nucleus in nuclei)
    for ax, (measure, nucleus) in zip(axes, panels):
        for index, method in enumerate(methods):
            rows = long[(long["nucleus"] == nucleus) & (long["method"] == method)]
            for side, fill, offset in (("L", None, 0.3), ("R", "none", 0.7)):
                points = rows[rows["structure"].str.endswith(f"_{side}")]
                x = points["position"] - 0.4 + (index + offset) * width
                estimate = points[measure].astype(float)
                bars = np.vstack([estimate - points[f"{measure}_lower"].astype(float),
                                  points[f"{measure}_upper"].astype(float) - estimate])
                ax.errorbar(x, estimate, yerr=bars, fmt="o", markersize=3, capsize=2, linewidth=0.8,
                            color=f"C{index}", markerfacecolor=fill, label=method if side == "L" else None)
        ax.set_title(nucleus, fontsize=9)
        ax.set_ylabel(INTERVAL_MEASURES[measure], fontsize=8)
        ax.set_xticks(range(len(cases)), cases if len(cases) <= 20 else [""] * len(cases), fontsize=6, rotation=90)
    if axes:
        axes[0].legend(fontsize=7)
    return figure
