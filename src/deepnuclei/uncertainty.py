"""Intervals for a nucleus's measures that say how sure they are: segmentation samples x QSM methods, calibrated.

A session's mean susceptibility and volume of a nucleus depend on choices the workflow makes for the user: which
labels (a network's direct pass, its mirrored pass, or their average: with `inference.flip` the inference job
writes all three, `deepnuclei.infer.segment_files`) and which QSM reconstruction (`qsm.method`, `qsm.intervals`).
Measured over every combination (the *samples*), a case has

- a point estimate: the measure of the default labels on the default QSM (what `results/measures/` reports),
- a spread: how far the samples lie from it, below (`estimate - min`) and above (`max - estimate`).

The spread alone is not an interval with a known coverage: the QSM methods share errors (all miss the same
background), and one of them may be far worse than the default (TKD underestimates every iron-rich nucleus), so
the truth may lie outside the samples, or well inside them. The interval is therefore the spread rescaled by a
factor learnt on cases with a known truth (split-conformal prediction): the score of a calibration case is

    |estimate - truth| / (spread on the truth's side + floor),    floor = floor_abs + floor_rel * |estimate|

and the factor is the ceil((n + 1) * coverage)-th smallest of the n scores, so that a new case exchangeable
with the calibration cases lies in `estimate -/+ factor * (spread + floor)` with probability at least
`coverage`. The floor keeps a case without spread (an atlas's volume: one label map) from a zero-width interval:
it is then `factor * floor`, relative to the estimate for the volume. Symmetric intervals (the default,
`SYMMETRIC`) use the larger of the two sides on both; asymmetric ones each side's own spread. Calibration may
also learn how much to trust the spread against the floor (`weights`). Factors are learnt per group of cases (a measure, and whether the method has segmentation
samples: a network, or an atlas with the QSM spread only); benchmarks/bench_uncertainty.py measures the
coverage on data that another generator made, and learns the factors the workflow applies (`read_factors`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

MEASURES = ("chi_mean_ppb", "volume_mm3")
# Floors (`Floor`): 1 ppb for the susceptibility (below what any QSM of the benchmarks gets right), 5 % of the
# volume (about a one-voxel shell of a small nucleus on a 1 mm grid is 20 to 40 %: the factor scales it)
FLOORS = {"chi_mean_ppb": (1.0, 0.0), "volume_mm3": (0.0, 0.05)}
COVERAGE = 0.9
# The default intervals: symmetric, the spread at its full weight. On the held-out sets (docs/measures.md) they
# held the truth as often as the alternatives of bench_uncertainty.py and most evenly across nuclei.
SYMMETRIC = True
# Weights of the spread against the floor that `calibrate` may choose from (the bench's "learnt weight")
WEIGHTS = (0.0, 0.125, 0.25, 0.5, 1.0)
# The factors the workflow applies, learnt by benchmarks/bench_uncertainty.py --write-factors on every calibration
# case (`read_factors`); the groups: `network`, `atlas` and `reference` (true labels: the QSM spread alone)
FACTORS_FILE = Path(__file__).resolve().parent / "data_files" / "interval_factors.json"
FACTORS_VERSION = 1


@dataclass(frozen=True)
class Floor:
    """What a case's spread is raised by before scaling: `absolute` (the measure's unit) + `relative` x |estimate|."""

    absolute: float = 0.0
    relative: float = 0.0

    def of(self, estimate: np.ndarray | float) -> np.ndarray:
        return self.absolute + self.relative * np.abs(np.asarray(estimate, dtype=float))


def floor_of(measure: str) -> Floor:
    return Floor(*FLOORS.get(measure, (0.0, 0.0)))


def summarise(samples: pd.DataFrame, keys: Sequence[str], default: Mapping[str, str],
              measures: Sequence[str] = MEASURES) -> pd.DataFrame:
    """Per case (`keys`) and measure, from a long table of samples (`keys`, the sample's coordinates such as
    `segmentation` and `qsm`, and a column per measure): the estimate (the sample whose coordinates are
    `default`, e.g. {"segmentation": "averaged", "qsm": "sharptv"}), the samples' min and max, the spread below
    and above the estimate (never negative) and the number of samples. Cases without the default sample, or
    where its measure is missing (an empty structure has no susceptibility), are left out."""
    keys = list(keys)
    is_default = np.logical_and.reduce([samples[column] == value for column, value in default.items()])
    rows = []
    for measure in measures:
        values = samples[[*keys, measure]].dropna(subset=[measure])
        grouped = values.groupby(keys, sort=False)[measure]
        stats = grouped.agg(low="min", high="max", samples="count")
        estimate = samples[is_default].dropna(subset=[measure]).set_index(keys)[measure].rename("estimate")
        table = stats.join(estimate, how="inner").reset_index()
        table.insert(len(keys), "measure", measure)
        table["below"] = (table.estimate - table.low).clip(lower=0.0)
        table["above"] = (table.high - table.estimate).clip(lower=0.0)
        rows.append(table[[*keys, "measure", "estimate", "low", "high", "below", "above", "samples"]])
    return pd.concat(rows, ignore_index=True)


def floors_of(summary: pd.DataFrame, floors: Mapping[str, Floor] | None = None) -> np.ndarray:
    """Each case's floor (`Floor.of` its estimate; `floor_of` its measure unless `floors` names one)."""
    floors = floors or {}
    return np.array([floors.get(m, floor_of(m)).of(e) for m, e in zip(summary.measure, summary.estimate)], dtype=float)


def scales(summary: pd.DataFrame, symmetric: bool = False, floors: Mapping[str, Floor] | None = None,
           weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The half-widths, below and above the estimate, that a factor of 1 gives each case: the spread on that
    side (the larger of the two where `symmetric`) times `weight`, plus the measure's floor."""
    floor = floors_of(summary, floors)
    below, above = summary.below.to_numpy(float), summary.above.to_numpy(float)
    if symmetric:
        below = above = np.maximum(below, above)
    return weight * below + floor, weight * above + floor


def scores(summary: pd.DataFrame, truth: Sequence[float] | np.ndarray, symmetric: bool = False,
           floors: Mapping[str, Floor] | None = None, weight: float = 1.0) -> np.ndarray:
    """Each case's conformity score: its error over the scale on the truth's side (`scales`); the smallest
    factor whose interval holds the truth."""
    error = np.asarray(truth, dtype=float) - summary.estimate.to_numpy(float)
    below, above = scales(summary, symmetric, floors, weight)
    scale = np.where(error < 0, below, above)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(error == 0, 0.0, np.abs(error) / scale)


def conformal_quantile(values: Sequence[float] | np.ndarray, coverage: float = COVERAGE) -> float:
    """The split-conformal quantile of the scores: the ceil((n + 1) coverage)-th smallest, so that one more
    exchangeable score is at most it with probability >= coverage; infinite with too few scores (n < coverage /
    (1 - coverage), 9 for 90 %)."""
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must lie strictly between 0 and 1, not {coverage}")
    values = np.sort(np.asarray(values, dtype=float)[~np.isnan(np.asarray(values, dtype=float))])
    rank = math.ceil((len(values) + 1) * coverage)
    return float(values[rank - 1]) if rank <= len(values) else math.inf


@dataclass(frozen=True)
class Calibration:
    """The factor of one group of cases, learnt on `cases` calibration cases for `coverage`."""

    measure: str
    group: str
    factor: float
    cases: int
    coverage: float = COVERAGE
    symmetric: bool = SYMMETRIC
    weight: float = 1.0  # of the spread against the floor (`scales`)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping) -> Calibration:
        return cls(**{field.name: record[field.name] for field in fields(cls) if field.name in record})


def write_factors(path: str | os.PathLike, calibrations: Sequence[Calibration], **about: object) -> None:
    """The factors as the workflow reads them (`read_factors`), with what says where they come from (`about`:
    the command, the date, the models' checksums, the coverage measured, ...)."""
    record = {"version": FACTORS_VERSION, **about, "factors": [c.as_dict() for c in calibrations]}
    Path(path).write_text(json.dumps(record, indent=2) + "\n")


def read_factors(path: str | os.PathLike = FACTORS_FILE) -> list[Calibration]:
    """The calibrations of a factor file (`write_factors`; by default the package's own, `FACTORS_FILE`)."""
    record = json.loads(Path(path).read_text())
    if record.get("version") != FACTORS_VERSION:
        raise ValueError(f"{path}: factor file version {record.get('version')}, not {FACTORS_VERSION}")
    return [Calibration.from_dict(factor) for factor in record["factors"]]


def mean_width(summary: pd.DataFrame, factor: float, symmetric: bool = False,
               floors: Mapping[str, Floor] | None = None, weight: float = 1.0) -> float:
    """The mean width of the cases' intervals in units of their floors (ppb for the susceptibility, 5 % of the
    estimate for the volume: `FLOORS`), so that large nuclei do not decide alone."""
    below, above = scales(summary, symmetric, floors, weight)
    return float(np.mean(factor * (below + above) / floors_of(summary, floors)))


def calibrate(summary: pd.DataFrame, truth: Sequence[float] | np.ndarray, coverage: float = COVERAGE,
              group: str = "group", symmetric: bool = SYMMETRIC, floors: Mapping[str, Floor] | None = None,
              weights: Sequence[float] = (1.0,)) -> list[Calibration]:
    """A factor per measure and value of the `group` column (one group where the column is absent), from cases
    with a known truth (aligned with the summary's rows). With several `weights` of the spread against the
    floor, the one whose calibrated intervals are narrowest on these cases (`mean_width`): how much the
    samples' spread says about the error is learnt with the factor (0: not at all, a width by the floor)."""
    summary = summary.reset_index(drop=True)
    truth = np.asarray(truth, dtype=float)
    groups = summary[group] if group in summary else pd.Series("all", index=summary.index)
    calibrations = []
    for (measure, name), rows in summary.groupby([summary.measure, groups], sort=False).groups.items():
        known = rows[~np.isnan(truth[rows])]
        cases = summary.loc[known]
        candidates = []
        for weight in weights:
            factor = conformal_quantile(scores(cases, truth[known], symmetric, floors, weight), coverage)
            width = mean_width(cases, factor, symmetric, floors, weight) if math.isfinite(factor) else math.inf
            candidates.append((width, weight, factor))
        width, weight, factor = min(candidates, key=lambda candidate: candidate[0])
        calibrations.append(Calibration(measure, name, factor, len(known), coverage, symmetric, weight))
    return calibrations


def intervals(summary: pd.DataFrame, calibrations: Sequence[Calibration], group: str = "group",
              floors: Mapping[str, Floor] | None = None) -> pd.DataFrame:
    """The summary with each case's interval (`lower`, `upper`) and the `factor` and `weight` it was given: the
    estimate -/+ factor x scale (`scales`), with the calibration of its measure and group (NaN where none was
    learnt)."""
    table = summary.reset_index(drop=True).copy()
    groups = table[group] if group in table else pd.Series("all", index=table.index)
    factor = {(c.measure, c.group): c.factor for c in calibrations}
    symmetric = {(c.measure, c.group): c.symmetric for c in calibrations}
    weight = {(c.measure, c.group): c.weight for c in calibrations}
    keys = list(zip(table.measure, groups))
    table["factor"] = [factor.get(key, np.nan) for key in keys]
    table["weight"] = [weight.get(key, np.nan) for key in keys]
    sym = np.array([symmetric.get(key, False) for key in keys])
    spread_below, spread_above = table.below.to_numpy(float), table.above.to_numpy(float)
    wider = np.maximum(spread_below, spread_above)
    floor = floors_of(table, floors)
    below = table.weight.to_numpy(float) * np.where(sym, wider, spread_below) + floor
    above = table.weight.to_numpy(float) * np.where(sym, wider, spread_above) + floor
    with np.errstate(invalid="ignore"):  # an infinite factor times a zero scale
        table["lower"] = table.estimate - table.factor * below
        table["upper"] = table.estimate + table.factor * above
    return table


def covered(table: pd.DataFrame, truth: Sequence[float] | np.ndarray) -> np.ndarray:
    """Whether each interval (`intervals`) holds its truth (bounds included)."""
    truth = np.asarray(truth, dtype=float)
    return (table.lower.to_numpy(float) <= truth) & (truth <= table.upper.to_numpy(float))
