"""The `reproduce` target end to end on the tiny cohort: every method of both papers' tables, trained for a
few iterations, the LiNUS experiments on a tiny high-resolution cohort, and the report. About 8 minutes on
2 cores, so not part of `make test`: `make test-reproduce` (CI runs both)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepnuclei.io import read_volume
from deepnuclei.labels import STRUCTURE_BY_NAME
from helpers import TINY_REPRODUCE
from helpers.runs import snakemake

pytestmark = [pytest.mark.slow, pytest.mark.reproduce]

PAPER_TABLES = {  # our table file -> the paper tables whose every row it must hold
    "dice_nuclei": ["DB-ResUNet Table I"], "efficiency": ["DB-ResUNet Table II", "LiNUS Table II", "LiNUS Table III"],
    "ablation_rate": ["DB-ResUNet Table III"], "ablation_inputs": ["DB-ResUNet Table IV"],
    "dice_stn": ["LiNUS Table II"], "stn_methods": ["LiNUS Table II", "LiNUS Table III"],
    "linus_resolution": ["LiNUS Table VII"], "linus_targets": ["LiNUS Table VIII"], "linus_optimizers": ["LiNUS Table IX"]}


def test_reproduce_on_two_tiny_subjects(tmp_path):
    reproduce = snakemake("--cores", "2", "--configfile", *TINY_REPRODUCE, "--", "reproduce", cwd=tmp_path)
    assert reproduce.returncode == 0, reproduce.stderr[-3000:]
    check_linus_experiments(tmp_path / "results" / "evaluation")
    check_every_paper_row(tmp_path / "results")
    hires_qsm = pd.read_csv(tmp_path / "results" / "qsm" / "qsm_metrics_hires.csv", dtype={"subject": str})
    assert set(hires_qsm["subject"]) == {"hr01", "hr02"} and len(hires_qsm) == 6  # a slab inside the head
    sharptv = hires_qsm[hires_qsm["method"] == "sharptv"]
    assert sharptv[["error_ppb_STN_L", "error_ppb_STN_R"]].abs().max().max() < 15
    # nuclei at the slab's edges lose part of their field with the background: up to 52 ppb low (GPe)
    assert sharptv["max_abs_error_ppb"].max() < 65
    report = snakemake("--configfile", *TINY_REPRODUCE, "--report", "results/report.html", "--", "reproduce",
                       cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "results" / "report.html").read_text()
    assert all(name in html for name in ("dice_nuclei.md", "efficiency.md", "scatter_volume_dbresunet.png",
                                         "linus_resolution.md", "linus_2d_vs_25d.md", "nuclei_wide.csv",
                                         "sub-02_segmentations_qc.png"))
    again = snakemake("-n", "--configfile", *TINY_REPRODUCE, "--", "reproduce", cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr


def check_every_paper_row(results: Path) -> None:
    """`reproduce`: each table holds every row of the papers' tables it regenerates (their methods and
    conditions as the papers name them), each with a row of ours beside it (one atlas row stands for both
    papers' registration methods where a table has both); LiNUS Tables IV and V in their voxel form for the
    T1-grid model, the reference centres those of the T1-grid labels."""
    from deepnuclei.tables import REGISTRATION_METHODS, paper_results

    evaluation, reported = results / "evaluation", paper_results()

    def pairs(methods, conditions) -> set[tuple[str, str]]:
        return {("registration" if method in REGISTRATION_METHODS else method, condition)
                for method, condition in zip(methods, conditions)}

    for name, sources in PAPER_TABLES.items():
        table = pd.read_csv(evaluation / f"{name}.csv", keep_default_na=False)
        theirs = table["method"].str.startswith("paper: ")
        expected = reported[reported["source"].isin(sources)]
        assert set(zip(table.loc[theirs, "paper_method"], table.loc[theirs, "condition"])) == set(
            zip(expected["method"], expected["condition"])), name
        missing = pairs(expected["method"], expected["condition"]) - pairs(table.loc[~theirs, "paper_method"],
                                                                            table.loc[~theirs, "condition"])
        assert not missing, (name, missing)
    voxels = pd.read_csv(evaluation / "localization_stn_voxels.csv", dtype={"subject": str})
    assert set(voxels["method"]) == {"linus-t1", "paper: LiNUS"}
    labels = read_volume(results / "labels" / "sub-02" / "sub-02_space-T1w_dseg.nii.gz")[0]
    ours = voxels[(voxels["method"] == "linus-t1") & (voxels["structure"] != "STN_L+STN_R")]
    for structure, row in ours.set_index("structure").iterrows():
        centre = np.argwhere(labels == STRUCTURE_BY_NAME[structure].label).mean(axis=0)
        assert row[["reference_i", "reference_j", "reference_k"]].tolist() == np.round(centre).tolist()
        offset = row[[f"predicted_{a}" for a in "ijk"]].to_numpy(float) - row[[f"reference_{a}" for a in "ijk"]].to_numpy(float)
        if not np.isnan(offset).any():  # the paper's convention: between the rounded indices, 2 mm voxels here
            assert row["distance_mm"] == pytest.approx(2.0 * np.linalg.norm(offset))
    pooled = voxels[voxels["structure"] == "STN_L+STN_R"].set_index("method")["distance_mm"]
    assert pooled["paper: LiNUS"] == pytest.approx(1.699, abs=0.0005)
    assert pooled["linus-t1"] == pytest.approx(ours["distance_mm"].mean(), nan_ok=True)
    efficiency = pd.read_csv(evaluation / "efficiency.csv").set_index("method")
    assert efficiency.loc["paper: DB-ResUNet, DB-ResUNet Table II", "inference_time_gpu_sd"] == pytest.approx(0.056)
    assert {"job_seconds_sd", "network_seconds_sd"} <= set(efficiency.columns)  # NaN here: one test subject
    demographics = pd.read_csv(evaluation / "demographics.csv").set_index("dataset")
    assert demographics.loc["ours: main", ["participants", "listed"]].tolist() == [2, 2]  # the demo's participants.tsv
    assert demographics.loc["paper: TT14", ["participants", "age_mean", "sex_M"]].tolist() == [14, 54.9, 10]


def check_linus_experiments(evaluation: Path) -> None:
    """The tiny run's experiment tables: each model on its cohort's test subject, values from the
    per-subject overlap table, the cohorts' geometry read from their files."""
    overlap = pd.read_csv(evaluation / "linus_experiments_overlap.csv", dtype={"subject": str})
    assert set(zip(overlap["method"], overlap["subject"])) == {
        ("linus", "02"), ("linus25d", "02"), ("linus-hr", "hr02"), ("linus-hr-gpi", "hr02"), ("linus-hr-gpi-mist", "hr02")}
    assert set(overlap.loc[overlap["method"] == "linus-hr-gpi", "structure"]) == {"GPi_L", "GPi_R"}
    targets = pd.read_csv(evaluation / "linus_targets.csv").set_index("method")
    gpi = overlap[overlap["method"] == "linus-hr-gpi"]
    assert targets.loc["linus-hr-gpi", "dice"] == pytest.approx(gpi["dice"].mean())
    cohorts = pd.read_csv(evaluation / "linus_cohorts.csv").set_index("cohort")
    assert cohorts.loc["hires", "model_input_dimensions"] == "64*64*32" and cohorts.loc["main", "subjects"] == 2
    slices = pd.read_csv(evaluation / "linus_2d_vs_25d.csv").set_index("method")
    assert {"linus", "linus25d", "reference labels"} <= set(slices.index)
    assert slices.loc["reference labels", "slice_dice"] > 0.5
