"""The LiNUS experiment tables: structure, paper rows, and every value the aggregate of its per-subject rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepnuclei.experiments import REFERENCE, write_experiment_tables
from deepnuclei.plan_files import ExperimentCohort, ExperimentsPlan, OverlapCase, TimingCase
from deepnuclei.io import save_volume
from deepnuclei.labels import STRUCTURE_BY_NAME

EXPERIMENTS = {"resolution": ["linus", "linus-hr"], "targets": ["linus-hr", "linus-hr-gpi"],
               "optimizers": ["linus-hr-gpi", "linus-hr-gpi-mist"], "slices": ["linus", "linus25d"]}
LINUS = {"architecture": "linus", "inputs": ["Chimap"]}
MODELS = {"linus": {**LINUS, "task": "stn", "cohort": "main"},
          "linus25d": {**LINUS, "architecture": "linus25d", "task": "stn", "cohort": "main"},
          "linus-hr": {**LINUS, "task": "stn", "cohort": "hires"}, "linus-hr-gpi": {**LINUS, "task": "gpi", "cohort": "hires"},
          "linus-hr-gpi-mist": {**LINUS, "task": "gpi", "cohort": "hires", "training": {"optimizer": "mist"}}}
SUBJECTS = {"main": ["07", "08"], "hires": ["hr05", "hr06"]}


def overlap_rows(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for method, model in MODELS.items():
        nucleus = "STN" if model["task"] == "stn" else "GPi"
        for subject in SUBJECTS[model["cohort"]]:
            for side in ("L", "R"):
                rows.append({"subject": subject, "method": method, "structure": f"{nucleus}_{side}",
                             "dice": rng.uniform(0.5, 0.9), "precision": rng.uniform(0.5, 0.9),
                             "recall": rng.uniform(0.5, 0.9), "com_error_mm": rng.uniform(0.5, 3)})
    return pd.DataFrame(rows)


def stn_labels(gap: bool) -> np.ndarray:
    """A cylinder of STN_L and one of STN_R across 6 slices (axis 2), a middle slice missing where `gap`."""
    labels = np.zeros((12, 12, 8), np.uint8)
    labels[1:5, 4:8, 1:7] = STRUCTURE_BY_NAME["STN_L"].label
    labels[7:11, 4:8, 1:7] = STRUCTURE_BY_NAME["STN_R"].label
    if gap:
        labels[..., 4] = 0
    return labels


@pytest.fixture
def written(tmp_path, with_trailing_axis):
    rng = np.random.default_rng(0)
    overlap = overlap_rows(rng)
    timings, slice_cases = [], []
    for method, model in MODELS.items():
        for subject in SUBJECTS[model["cohort"]]:
            benchmark = tmp_path / f"{method}_{subject}.tsv"
            benchmark.write_text(f"s\th:m:s\n{rng.uniform(1, 5):.3f}\t0:00:01\n")
            timings.append(TimingCase(method, subject, str(benchmark)))
            if method in EXPERIMENTS["slices"]:
                prediction, reference = tmp_path / f"{method}_{subject}.nii.gz", tmp_path / f"ref_{subject}.nii.gz"
                save_volume(prediction, stn_labels(gap=method == "linus"), np.eye(4), np.uint8)
                save_volume(reference, stn_labels(gap=False), np.eye(4), np.uint8)
                slice_cases.append(OverlapCase(subject, method, "SWI", str(prediction), str(reference), qsm=None,
                                               task=model["task"], out=""))
    cohorts = {}
    for name, voxel in (("main", 1.25), ("hires", 0.5)):
        path = tmp_path / f"{name}.nii.gz"
        save_volume(path, np.zeros((10, 12, 6)), np.diag([voxel, voxel, 2 * voxel, 1]), np.float32)
        if name == "hires":  # a T1 stored as (X, Y, Z, 1) counts as 3D
            path = with_trailing_axis(path, tmp_path)
        cohorts[name] = ExperimentCohort(6, str(path), str(path))
    write_experiment_tables(overlap, ExperimentsPlan(EXPERIMENTS, MODELS, cohorts, timings, slice_cases), tmp_path / "out")
    return overlap, timings, tmp_path / "out"


def test_every_table_in_three_formats(written) -> None:
    _, _, out = written
    for name in ("linus_cohorts", "linus_resolution", "linus_targets", "linus_optimizers", "linus_2d_vs_25d"):
        for extension in ("csv", "md", "tex"):
            assert (out / f"{name}.{extension}").stat().st_size > 0, name
    assert (out / "linus_slice_consistency.csv").exists()


def test_values_are_the_means_of_the_per_subject_rows(written) -> None:
    overlap, timings, out = written
    for name, kind in (("linus_resolution", "resolution"), ("linus_targets", "targets"),
                       ("linus_optimizers", "optimizers")):
        table = pd.read_csv(out / f"{name}.csv")
        ours = table[~table["method"].str.startswith("paper: ")].set_index("method")
        assert sorted(ours.index) == sorted(EXPERIMENTS[kind])
        for method in EXPERIMENTS[kind]:
            rows = overlap[overlap["method"] == method]
            per_subject = rows.groupby("subject")["dice"].mean()
            assert ours.loc[method, "dice"] == pytest.approx(per_subject.mean())
            left = rows[rows["structure"].str.endswith("_L")]["com_error_mm"].mean()
            assert ours.loc[method, "com_error_left_mm"] == pytest.approx(left)
            seconds = [pd.read_csv(case.benchmark, sep="\t")["s"][0] for case in timings if case.method == method]
            assert ours.loc[method, "job_seconds"] == pytest.approx(np.mean(seconds))
            assert ours.loc[method, "cohort"] == MODELS[method]["cohort"]
            assert ours.loc[method, "subjects"] == 2


def test_paper_rows_beside_ours(written) -> None:
    _, _, out = written
    resolution = pd.read_csv(out / "linus_resolution.csv").set_index("method")
    pd25 = resolution.loc[[method for method in resolution.index if "PD25" in method and "paper" in method]]
    assert pd25["dice"].tolist() == [0.8958]
    assert resolution.loc["paper: LiNUS (PD25)", "network_seconds"] == 0.05  # the paper times the network
    optimizers = pd.read_csv(out / "linus_optimizers.csv")
    assert sorted(optimizers.loc[optimizers["method"].str.startswith("paper: "), "dice"]) == [0.9139, 0.9179]
    # each paper row after ours for the same condition: cohort (Table VII), target (VIII), optimizer (IX)
    for name, pairs in (("linus_resolution", [("linus", "TT14"), ("linus-hr", "PD25")]),
                        ("linus_targets", [("linus-hr-gpi", "GPi"), ("linus-hr", "STN")]),
                        ("linus_optimizers", [("linus-hr-gpi-mist", "optimizer MI-ST"), ("linus-hr-gpi", "optimizer Adam")])):
        table = pd.read_csv(out / f"{name}.csv", keep_default_na=False)
        assert list(table["method"]) == [row for method, condition in pairs
                                         for row in (method, f"paper: LiNUS ({condition})")], name
        assert list(table["condition"][::2]) == [condition for _, condition in pairs]
    cohorts = pd.read_csv(out / "linus_cohorts.csv").set_index("cohort")
    assert cohorts.loc["hires", "model_input_spacing_mm"] == "0.5*0.5*1"
    assert cohorts.loc["main", "t1_dimensions"] == cohorts.loc["hires", "t1_dimensions"] == "10*12*6"
    assert cohorts.loc["paper: PD25", "t1_spacing_mm"] == "0.3*0.3*0.3"


def test_consistency_columns_from_the_label_maps(written) -> None:
    _, _, out = written
    table = pd.read_csv(out / "linus_2d_vs_25d.csv").set_index("method")
    # linus: 6 slices with the 4th missing -> pairs (1,2) (2,3) score 1, (3,4) (4,5) score 0, (5,6) 1: mean 0.6
    assert table.loc["linus", "slice_dice"] == pytest.approx(0.6)
    assert table.loc["linus", "components"] == 2
    assert table.loc["linus25d", "slice_dice"] == pytest.approx(1.0) and table.loc["linus25d", "components"] == 1
    assert table.loc[REFERENCE, "components"] == 1
