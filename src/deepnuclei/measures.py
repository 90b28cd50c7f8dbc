"""Per-subject nucleus measures: each structure's volume, centre of mass and susceptibility (iron), for one
session and one segmentation method (or the reference labels), and the group tables of a cohort.

Which grid each measure comes from (the T1 and the SWI of a session are separate scanner frames: the head
moves between the scans, so the two grids' world coordinates are never mixed):

- volume, voxel count and centre of mass: the label map on the T1 grid where the session has a T1 (world
  mm through the T1's affine, and voxel indices of the T1 image); else the label map on the SWI grid (world
  mm through the SWI affine; no T1 voxel indices);
- susceptibility: the label map on the SWI grid times the QSM map on that grid (ppm in the file, ppb in
  the table): mean, median and sample SD (n - 1) over every voxel of the structure, as the evaluation's
  mean susceptibility; none for sessions without SWI.

Structures: those of the package's label table that the method writes (a model: its task's classes; the
atlas: every structure; joint label fusion and the reference: those the dataset labels), GP per side also
as the union of GPe and GPi where a map holds them apart (as the evaluation scores it). A structure the
method writes but the map lacks has volume 0 and no other value: it is never dropped.

Each mean susceptibility and volume comes with an interval (`interval_columns`, deepnuclei.uncertainty): the
measure's spread over the case's samples on the SWI grid (a network's flip passes x the session's QSM maps),
around the value reported, times the factor shipped for the method's group.

Beside them, the same structures' statistics as QSMxT writes them (`qsmxt_measures`: its column names,
ppm, over the voxels where the QSM is not 0, SD with n), with 5th / 95th percentiles, ppb and volume, so that
a QSMxT user's scripts read our nuclei as they read QSMxT's SynthSeg structures.

Files are BIDS-derivatives TSVs (`n/a` for missing values); the wide group table and the QSMxT tables are CSVs (`NA`), which R's
`read.csv` and pandas' `read_csv` read as missing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from functools import cache, partial

import numpy as np
import pandas as pd
import scipy.ndimage as ndi

from . import uncertainty
from .evaluate import mean_index, ppb_mean, scored_names, scored_structures, union_box
from .io import (
    InputError,
    apply_affine,
    load_nifti,
    read_json,
    read_volume,
    same_grid,
    voxel_volume_mm3,
    write_text_atomic,
)
from .labels import MAX_LABEL, STRUCTURE_BY_NAME, read_dseg_tsv

CHI_COLUMNS = ["chi_mean_ppb", "chi_median_ppb", "chi_sd_ppb"]
WORLD_COLUMNS = ["com_x_mm", "com_y_mm", "com_z_mm"]
INDEX_COLUMNS = ["com_i", "com_j", "com_k"]
# the intervals (`interval_columns`): each measure's bounds, and the samples they were measured on
BOUND_COLUMNS = [f"{measure}_{bound}" for measure in uncertainty.MEASURES for bound in ("lower", "upper")]
COUNT_COLUMNS = ["voxels", "chi_voxels", "interval_samples"]
# every measure of a structure, the columns of the wide table (`<structure>_<measure>`)
MEASURES = ["volume_mm3", *CHI_COLUMNS, *WORLD_COLUMNS, *INDEX_COLUMNS, *COUNT_COLUMNS[:2], *BOUND_COLUMNS,
            "interval_samples"]
COLUMNS = ["structure", "label", "volume_mm3", *CHI_COLUMNS, *WORLD_COLUMNS, *INDEX_COLUMNS, "voxels", "chi_voxels",
           "volume_space", *BOUND_COLUMNS, "interval_samples"]
INTEGER_COLUMNS = ["label", *COUNT_COLUMNS]
ID_COLUMNS = ["participant_id", "session_id", "method"]
RANGE_COLUMNS = ["in_training_range", "range_warnings"]  # a model's session against its training range
DECIMALS = 4
# QSMxT's analysis CSV (`roi,num_voxels,min,max,median,mean,std`, ppm), its newer percentiles, each statistic
# again in ppb, and the structure's volume as in the measures table
QSMXT_STATS = ["min", "max", "median", "mean", "std", "p5", "p95"]
QSMXT_COLUMNS = ["roi", "num_voxels", *QSMXT_STATS, *(f"{stat}_ppb" for stat in QSMXT_STATS), "volume_mm3"]
# the intervals' default sample: the method's labels as written (a network's flip average), on `MeasuresCase.qsm`
AVERAGED = "averaged"

log = logging.getLogger(__name__)


def measured_structures(lookup_names: Sequence[str] | None = None, task: str | None = None) -> list[str]:
    """The structures measured for a method: of the label table's names (a dseg.tsv's abbreviations; None:
    every structure of the package), those of its task (a model's), GP where the table has it as one label
    or as GPe and GPi, in the package's order."""
    return scored_names(None if lookup_names is None else list(lookup_names), task)


def _boxes(labels: np.ndarray) -> list[tuple[slice, ...] | None]:
    """Bounding box of every label value 1..MAX_LABEL (None where absent), found in one pass."""
    return ndi.find_objects(labels, MAX_LABEL)


def _structure_box(boxes: Sequence, values: Sequence[int], shape: Sequence[int]) -> tuple[slice, ...]:
    return union_box([boxes[value - 1] for value in values], shape)


def volume_measures(labels: np.ndarray, affine: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per structure: voxel count, volume (voxels x voxel volume, mm3), centre of mass as the mean voxel index
    of the structure (`com_i/j/k`) and that index through the affine (`com_x/y/z_mm`, world mm)."""
    values = scored_structures()
    voxel_mm3 = voxel_volume_mm3(affine)
    boxes = _boxes(labels)
    measures = {}
    for name in names:
        box = _structure_box(boxes, values[name], labels.shape)
        mask = np.isin(labels[box], values[name])
        count = int(mask.sum())
        centre = mean_index(mask) + [s.start for s in box]
        world = apply_affine(affine, centre)
        measures[name] = {"voxels": count, "volume_mm3": count * voxel_mm3,
                          **dict(zip(INDEX_COLUMNS, map(float, centre))), **dict(zip(WORLD_COLUMNS, map(float, world)))}
    return measures


def _structure_values(labels: np.ndarray, chi_ppm: np.ndarray, names: Sequence[str]):
    """(name, the susceptibility in ppm of every voxel of the structure, float64) for every name."""
    values = scored_structures()
    boxes = _boxes(labels)
    for name in names:
        box = _structure_box(boxes, values[name], labels.shape)
        yield name, np.asarray(chi_ppm[box][np.isin(labels[box], values[name])], dtype=np.float64)


def chi_measures(labels: np.ndarray, chi_ppm: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per structure: mean, median and sample SD (n - 1) of the susceptibility in ppb over its voxels, and
    their number; NaN for an empty structure (and the SD of a single voxel)."""
    measures = {}
    for name, ppm in _structure_values(labels, chi_ppm, names):
        ppb = 1000.0 * ppm
        measures[name] = {"chi_voxels": len(ppb),
                          "chi_mean_ppb": ppb_mean(ppm),
                          "chi_median_ppb": float(np.median(ppb)) if len(ppb) else np.nan,
                          "chi_sd_ppb": float(ppb.std(ddof=1)) if len(ppb) > 1 else np.nan}
    return measures


def qsmxt_measures(labels: np.ndarray, chi_ppm: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per structure, QSMxT's statistics (its `analyse`): over the structure's voxels where the QSM is not 0
    (QSMxT's QSM is 0 outside its mask), their number, min, max, median, mean, the SD with n (numpy's
    default, as QSMxT) and the 5th and 95th percentiles (numpy's linear interpolation), in ppm; NaN without
    such voxels."""
    measures = {}
    for name, ppm in _structure_values(labels, chi_ppm, names):
        ppm = ppm[ppm != 0]
        stats = ([ppm.min(), ppm.max(), np.median(ppm), ppm.mean(), ppm.std(), *np.percentile(ppm, [5, 95])]
                 if len(ppm) else [np.nan] * len(QSMXT_STATS))
        measures[name] = {"num_voxels": len(ppm), **dict(zip(QSMXT_STATS, map(float, stats)))}
    return measures


def read_qsm(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    return read_volume(path, dtype=np.float32)


def interval_samples(names: Sequence[str], labels: Mapping[str, str | os.PathLike],
                     qsm: Mapping[str, str | os.PathLike], read: Callable = read_qsm) -> pd.DataFrame:
    """The intervals' samples (deepnuclei.uncertainty) of one method on one session: per structure, the volume and
    mean susceptibility (ppb) of every label map (`labels`, by name: `averaged` and a network's passes) on every QSM
    map (`qsm`, by method, read by `read`; none: volumes only), all on the SWI grid."""
    maps = {method: read(path) for method, path in qsm.items()}
    rows = []
    for segmentation, path in labels.items():
        label_map, affine = read_volume(path, dtype=np.uint8)
        volumes = volume_measures(label_map, affine, names)
        for method, (chi_ppm, chi_affine) in maps.items() or [("", (None, None))]:
            chis = {}
            if chi_ppm is not None:
                _grid(path, chi_ppm.shape, chi_affine, qsm[method])
                chis = chi_measures(label_map, chi_ppm, names)
            rows += [{"structure": name, "segmentation": segmentation, "qsm": method,
                      "chi_mean_ppb": chis.get(name, {}).get("chi_mean_ppb", np.nan),
                      "volume_mm3": volumes[name]["volume_mm3"]} for name in names]
    return pd.DataFrame(rows, columns=["structure", "segmentation", "qsm", *uncertainty.MEASURES])


def interval_columns(table: pd.DataFrame, samples: pd.DataFrame, default_qsm: str, group: str | None,
                     calibrations: Sequence[uncertainty.Calibration]) -> pd.DataFrame:
    """`BOUND_COLUMNS` and `interval_samples` of a measures table's structures: `uncertainty.intervals` of the
    samples' spread around the table's own estimates (the volume on the T1 grid where the session has one: the
    spread on the SWI grid is applied to it, and the floor is relative to it), with the calibrations of `group`
    (missing bounds without one); a volume's lower bound is at least 0."""
    summary = uncertainty.summarise(samples, ["structure"], {"segmentation": AVERAGED, "qsm": default_qsm})
    reported = table.set_index("structure")
    summary["estimate"] = [reported.at[name, measure] for name, measure in zip(summary.structure, summary.measure)]
    summary["group"] = group
    bounds = uncertainty.intervals(summary, calibrations)
    columns = {}
    for measure in uncertainty.MEASURES:  # a structure without the measure's estimate has no bounds
        rows = bounds[bounds.measure == measure].set_index("structure")
        for bound in ("lower", "upper"):
            columns[f"{measure}_{bound}"] = rows[bound].reindex(table["structure"]).to_numpy(float)
    columns["volume_mm3_lower"] = np.maximum(columns["volume_mm3_lower"], 0.0)  # the atlas's ±100 %: never below 0
    return pd.DataFrame({**columns, "interval_samples": len(samples.groupby(["segmentation", "qsm"]))},
                        index=table.index)


def measures_table(names: Sequence[str], volume_labels: np.ndarray, volume_affine: np.ndarray, volume_space: str,
                   chi_labels: np.ndarray | None = None, chi_ppm: np.ndarray | None = None) -> pd.DataFrame:
    """One row per structure (`COLUMNS`): volume and centre of mass from `volume_labels` on the grid of
    `volume_affine` (`volume_space`: T1w, whose voxel indices are kept, or SWI), susceptibility from
    `chi_labels` and `chi_ppm` on the SWI grid (None: none)."""
    volumes = volume_measures(volume_labels, volume_affine, names)
    chis = chi_measures(chi_labels, chi_ppm, names) if chi_ppm is not None else {}
    rows = []
    for name in names:
        row = {"structure": name, "label": STRUCTURE_BY_NAME[name].label, **volumes[name],
               **chis.get(name, {"chi_voxels": np.nan, **dict.fromkeys(CHI_COLUMNS, np.nan)}),
               "volume_space": volume_space}
        if volume_space != "T1w":
            row.update(dict.fromkeys(INDEX_COLUMNS, np.nan))
        rows.append(row)
    return typed(pd.DataFrame(rows, columns=COLUMNS))


def typed(table: pd.DataFrame) -> pd.DataFrame:
    """Counts and labels as integers that may be missing; measures rounded to `DECIMALS`."""
    table = table.copy()
    for column in INTEGER_COLUMNS:
        if column in table:
            table[column] = table[column].astype("Int64")
    floats = [column for column in table if column in MEASURES and column not in COUNT_COLUMNS]
    table[floats] = table[floats].astype(float).round(DECIMALS)
    return table


def _grid(path: str | os.PathLike, shape: tuple[int, ...], affine: np.ndarray, of: str | os.PathLike) -> None:
    image = load_nifti(path)
    if not same_grid(image.shape, image.affine, shape, affine):
        raise InputError(path, f"not on the grid of {of} (shape {image.shape} vs {shape}, or another affine)")


def session_maps(t1_labels: str | os.PathLike | None = None, swi_labels: str | os.PathLike | None = None,
                 qsm: str | os.PathLike | None = None, t1: str | os.PathLike | None = None) -> tuple:
    """`measures_table`'s maps from one session's files, after `measures_table`'s arguments: the label map of
    the volumes (`t1_labels` on the grid of the native `t1`, whose affine gives world mm, where given, else
    `swi_labels`), its affine and space; the labels on the SWI grid and the QSM `qsm` (ppm, same grid), or
    None where either is missing."""
    if t1_labels is None and swi_labels is None:
        raise ValueError("measures need a label map on the T1 or on the SWI grid")
    chi_labels = chi_ppm = None
    if swi_labels is not None:
        chi_labels, swi_affine = read_volume(swi_labels, dtype=np.uint8)
    if t1_labels is not None:
        labels, affine = read_volume(t1_labels, dtype=np.uint8)
        if t1 is not None:
            image = load_nifti(t1)
            _grid(t1_labels, image.shape, image.affine, t1)
            affine = image.affine
        space = "T1w"
    else:
        labels, affine, space = chi_labels, swi_affine, "SWI"
    if qsm is not None and chi_labels is not None:
        chi_ppm, qsm_affine = read_volume(qsm, dtype=np.float32)
        _grid(swi_labels, chi_ppm.shape, qsm_affine, qsm)
    return labels, affine, space, chi_labels, chi_ppm


def measures_from_files(names: Sequence[str], **files: str | os.PathLike | None) -> pd.DataFrame:
    """`measures_table` of one session's label maps (`session_maps`' keyword arguments: the files)."""
    return measures_table(names, *session_maps(**files))


def qsmxt_table(measures: pd.DataFrame, chi_labels: np.ndarray | None, chi_ppm: np.ndarray | None) -> pd.DataFrame:
    """QSMxT's statistics (`qsmxt_measures`, `QSMXT_COLUMNS`) of the structures of a measures table (a row
    each, `roi` its structure), with its volume; missing statistics without a QSM."""
    names = list(measures["structure"])
    stats = qsmxt_measures(chi_labels, chi_ppm, names) if chi_ppm is not None else {}
    table = pd.DataFrame([{"roi": name, **stats.get(name, {})} for name in names], columns=QSMXT_COLUMNS)
    for stat in QSMXT_STATS:
        table[stat] = table[stat].astype(float).round(DECIMALS + 3)  # ppm: as many digits as the ppb columns
        table[f"{stat}_ppb"] = (1000.0 * table[stat]).round(DECIMALS)
    table["num_voxels"] = table["num_voxels"].astype("Int64")
    table["volume_mm3"] = measures["volume_mm3"].to_numpy()
    return table


def write_tsv(table: pd.DataFrame, path: str | os.PathLike) -> None:
    write_text_atomic(path, table.to_csv(sep="\t", index=False, na_rep="n/a"))


def write_csv(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """A CSV with `NA` for missing values, which R's `read.csv` and pandas' `read_csv` read as missing."""
    write_text_atomic(path, table.to_csv(index=False, na_rep="NA"))


def _read_tsv(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False,
                       dtype={"structure": str, "participant_id": str, "session_id": str, "method": str})


def read_measures(path: str | os.PathLike) -> pd.DataFrame:
    """A measures TSV (per session, or the group's long table) with its integer columns and ids as text."""
    return typed(_read_tsv(path))


def write_session_measures(names: Sequence[str], out: str | os.PathLike, qsmxt_out: str | os.PathLike | None = None,
                           intervals: Callable[[pd.DataFrame], pd.DataFrame] | None = None, **files) -> pd.DataFrame:
    """`measures_from_files` written as a TSV (`session_maps`' keyword arguments: the files), with the columns
    `intervals` gives the table (`case_intervals`), and where `qsmxt_out` is given the same structures'
    `qsmxt_table` as a CSV."""
    maps = session_maps(**files)
    table = measures_table(names, *maps)
    if intervals is not None:
        table = typed(table.assign(**intervals(table)))
    write_tsv(table, out)
    if qsmxt_out:
        write_csv(qsmxt_table(table, *maps[3:]), qsmxt_out)
    return table


def structures_of(lookup: str | os.PathLike, task: str | None = None) -> list[str]:
    """`measured_structures` of a dseg.tsv in the package's numbering (its abbreviations are structure names)."""
    return measured_structures(list(read_dseg_tsv(lookup).values()), task)


def case_intervals(case, names: Sequence[str], calibrations: Sequence[uncertainty.Calibration], read: Callable,
                   table: pd.DataFrame) -> pd.DataFrame:
    """`interval_columns` of a measures case (deepnuclei.plan_files.MeasuresCase: its `swi_samples`,
    `qsm_samples` and `interval_group`; QSM maps read by `read`); says in the log where the bounds are missing or
    rest on one sample."""
    where = f"{case.method} on sub-{case.subject}"
    if not case.swi_samples:  # no labels on the SWI grid, where the samples are measured
        log.warning("%s: no labels on the SWI grid: no interval samples, bounds n/a", where)
        return pd.DataFrame({**dict.fromkeys(BOUND_COLUMNS, np.nan), "interval_samples": 0}, index=table.index)
    if not any(calibration.group == case.interval_group for calibration in calibrations):
        log.warning("%s: no interval factors for this method (group %s): bounds n/a", where, case.interval_group)
    if len(case.swi_samples) * len(case.qsm_samples) == 1:
        log.warning("%s: one segmentation sample on one QSM map: intervals of the floor alone (x its factor), "
                    "narrower than those the factors were learnt for", where)
    samples = interval_samples(names, case.swi_samples, case.qsm_samples, read)
    return interval_columns(table, samples, next(iter(case.qsm_samples), ""), case.interval_group, calibrations)


def write_cases_measures(cases: Sequence,
                         calibrations: Sequence[uncertainty.Calibration] | None = None) -> dict[str, pd.DataFrame]:
    """`write_session_measures` of each case (deepnuclei.plan_files.MeasuresCase: one method's label maps of
    one session, and its files `out` and `qsmxt`) on the structures of its lookup and task, with its intervals
    (`case_intervals`; by default with the package's factors, `uncertainty.read_factors`); method -> table."""
    calibrations = uncertainty.read_factors() if calibrations is None else calibrations
    read = cache(read_qsm)  # a session's QSM maps serve every method's samples
    tables = {}
    for case in cases:
        names = structures_of(case.lookup, case.task)
        tables[case.method] = write_session_measures(
            names, case.out, case.qsmxt, partial(case_intervals, case, names, calibrations, read),
            t1_labels=case.t1_labels, swi_labels=case.swi_labels, qsm=case.qsm, t1=case.t1)
    return tables


# ---- the group tables


def range_flag(record_path: str | os.PathLike | None) -> tuple[object, str]:
    """(`in_training_range`, `range_warnings`) of a model's inference record (`training_range.check_session`):
    True or False and the reasons; missing (NA) for methods that are not models and for unchecked models."""
    if not record_path:
        return pd.NA, ""
    check = read_json(record_path).get("range_check") or {}
    if not check.get("checked"):
        return pd.NA, ""
    return bool(check["in_range"]), "; ".join(check["warnings"])


def _with_ids(table: pd.DataFrame, case: Mapping) -> pd.DataFrame:
    """`participant_id` (sub-<label>), `session_id` (ses-<label>, missing without sessions) and `method`
    before a case's columns."""
    table.insert(0, "method", case["method"])
    table.insert(0, "session_id", f"ses-{case['session']}" if case.get("session") else np.nan)
    table.insert(0, "participant_id", f"sub-{case['participant']}")
    return table


def long_table(cases: Sequence[Mapping]) -> pd.DataFrame:
    """Every case's measures in one table: the ids (`_with_ids`) before each case's columns, and a model's
    training-range flag after them. Cases: {participant, session, method, out, inference_record}."""
    tables = []
    for case in cases:
        table = _read_tsv(case["out"])
        table["in_training_range"], table["range_warnings"] = range_flag(case.get("inference_record"))
        tables.append(_with_ids(table, case))
    if not tables:
        return pd.DataFrame(columns=[*ID_COLUMNS, *COLUMNS, *RANGE_COLUMNS])
    return typed(pd.concat(tables, ignore_index=True))


def qsmxt_group_table(cases: Sequence[Mapping]) -> pd.DataFrame:
    """Every case's QSMxT statistics (its `qsmxt` CSV) in one table, the ids (`_with_ids`) first."""
    tables = [_with_ids(pd.read_csv(case["qsmxt"], dtype={"roi": str}), case) for case in cases]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=[*ID_COLUMNS, *QSMXT_COLUMNS])
    return table.astype({"num_voxels": "Int64"})


def wide_table(long: pd.DataFrame) -> pd.DataFrame:
    """One row per session and method (in the long table's order): the ids, the grid of its volumes, and
    `<structure>_<measure>` for every structure of any method (package order) and measure (`MEASURES`),
    missing where the method does not write the structure."""
    order = list(scored_structures())
    present = sorted(set(long["structure"]), key=order.index)
    columns = [*ID_COLUMNS, "volume_space", *RANGE_COLUMNS, *(f"{name}_{measure}" for name in present for measure in MEASURES)]
    rows = []
    for ids, group in long.groupby(ID_COLUMNS, sort=False, dropna=False):
        row = dict(zip(ID_COLUMNS, ids))
        row.update(group[["volume_space", *RANGE_COLUMNS]].iloc[0].to_dict())
        for record in group.to_dict("records"):
            row.update({f"{record['structure']}_{measure}": record[measure] for measure in MEASURES})
        rows.append(row)
    wide = pd.DataFrame(rows, columns=columns)
    counts = [column for column in columns if column.endswith(tuple(f"_{name}" for name in COUNT_COLUMNS))]
    wide[counts] = wide[counts].astype("Int64")
    return wide


def merge_measures(plan: str | os.PathLike, out_tsv: str | os.PathLike, out_csv: str | os.PathLike,
                   out_qsmxt: str | os.PathLike | None = None,
                   out_figure: str | os.PathLike | None = None) -> pd.DataFrame:
    """The group tables from the plan file of measure cases: the long TSV and the wide CSV, where `out_qsmxt` is
    given the QSMxT statistics of every case (a CSV), and where `out_figure` is given the measures with their
    intervals (`figures.interval_panels`, a PNG)."""
    cases = read_json(plan)
    long = long_table(cases)
    write_tsv(long, out_tsv)
    write_csv(wide_table(long), out_csv)
    if out_qsmxt:
        write_csv(qsmxt_group_table(cases), out_qsmxt)
    if out_figure:
        from .figures import interval_panels, save_figure

        save_figure(interval_panels(long), out_figure, ("png",))
    return long
