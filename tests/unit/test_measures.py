"""Per-subject nucleus measures (deepnuclei.measures) against a direct computation on synthetic maps whose T1
and SWI grids are different oblique, anisotropic frames; the group tables; the session QC picture."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from deepnuclei.cli import main
from deepnuclei.io import InputError, save_volume, write_text_atomic
from deepnuclei.labels import (
    ALL_STRUCTURES,
    STRUCTURE_BY_NAME,
    STRUCTURES,
    TASKS,
    dseg_tsv,
)
from deepnuclei.measures import (
    BOUND_COLUMNS,
    RANGE_COLUMNS,
    COLUMNS,
    MEASURES,
    QSMXT_COLUMNS,
    measures_from_files,
    merge_measures,
    read_measures,
    structures_of,
    write_session_measures,
)
from deepnuclei.qc import outline, segmentation_qc


def oblique(spacing, angles_deg, origin) -> np.ndarray:
    """Rotations about z and x (degrees) times anisotropic voxel sizes, at an origin."""
    a, b = np.radians(angles_deg)
    about_z = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    about_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = about_z @ about_x @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


T1_AFFINE = oblique((0.9, 1.1, 1.3), (25, -10), (-60.0, -80.0, -40.0))
SWI_AFFINE = oblique((0.7, 0.7, 2.5), (-15, 30), (-50.0, -70.0, -20.0))  # the head moved between the scans
LABEL = {name: STRUCTURE_BY_NAME[name].label for name in ("CN_L", "GPe_L", "GPi_L", "STN_R", "RN_L", "GP_L")}


@pytest.fixture
def session(tmp_path) -> dict:
    """A T1-grid and an SWI-grid label map (different shapes and frames), a QSM (ppm) and the T1; RN_L absent."""
    rng = np.random.default_rng(7)
    t1_labels = np.zeros((30, 34, 26), np.uint8)
    t1_labels[3:9, 4:12, 5:8] = LABEL["CN_L"]
    t1_labels[15:18, 20:22, 10:14] = LABEL["GPe_L"]
    t1_labels[18:20, 20:23, 10:12] = LABEL["GPi_L"]
    t1_labels[25, 30, 20] = LABEL["STN_R"]  # one voxel
    swi_labels = np.zeros((40, 36, 12), np.uint8)
    swi_labels[5:15, 6:10, 2:4] = LABEL["CN_L"]
    swi_labels[20:24, 20:25, 6:8] = LABEL["GPe_L"]
    swi_labels[24:26, 20:25, 6:8] = LABEL["GPi_L"]
    swi_labels[30, 30, 10] = LABEL["STN_R"]
    qsm = rng.normal(0.05, 0.04, swi_labels.shape).astype(np.float32)
    files = {"t1_labels": tmp_path / "t1_dseg.nii.gz", "swi_labels": tmp_path / "swi_dseg.nii.gz",
             "qsm": tmp_path / "chi.nii.gz", "t1": tmp_path / "T1w.nii.gz"}
    save_volume(files["t1_labels"], t1_labels, T1_AFFINE, np.uint8)
    save_volume(files["swi_labels"], swi_labels, SWI_AFFINE, np.uint8)
    save_volume(files["qsm"], qsm, SWI_AFFINE, np.float32)
    save_volume(files["t1"], rng.uniform(0, 1, t1_labels.shape), T1_AFFINE, np.float32)
    return {"files": files, "t1_labels": t1_labels, "swi_labels": swi_labels, "qsm": qsm}


def values_of(name: str) -> list[int]:
    return [LABEL["GPe_L"], LABEL["GPi_L"], LABEL["GP_L"]] if name == "GP_L" else [LABEL[name]]


NAMES = ["CN_L", "GPe_L", "GPi_L", "RN_L", "STN_R", "GP_L"]


def test_measures_equal_a_direct_computation_on_two_oblique_anisotropic_grids(session, tmp_path):
    table = write_session_measures(NAMES, tmp_path / "m.tsv", **session["files"])
    assert list(table.columns) == COLUMNS and list(table["structure"]) == NAMES
    rows = read_measures(tmp_path / "m.tsv").set_index("structure")  # what the file holds, as written
    voxel_mm3 = 0.9 * 1.1 * 1.3  # the T1's voxel sizes: rotations keep volumes
    for name in ["CN_L", "GPe_L", "GPi_L", "STN_R", "GP_L"]:
        row = rows.loc[name]
        inside = np.isin(session["t1_labels"], values_of(name))
        indices = np.argwhere(inside).mean(axis=0)
        assert row["label"] == STRUCTURE_BY_NAME[name].label
        assert row["voxels"] == inside.sum() and row["volume_mm3"] == pytest.approx(inside.sum() * voxel_mm3, abs=1e-3)
        np.testing.assert_allclose(row[["com_i", "com_j", "com_k"]].astype(float), indices, atol=1e-4)
        world = T1_AFFINE @ np.append(indices, 1.0)
        np.testing.assert_allclose(row[["com_x_mm", "com_y_mm", "com_z_mm"]].astype(float), world[:3], atol=1e-4)
        ppb = 1000.0 * session["qsm"][np.isin(session["swi_labels"], values_of(name))].astype(np.float64)
        assert row["chi_voxels"] == len(ppb) and row["volume_space"] == "T1w"
        assert row["chi_mean_ppb"] == pytest.approx(ppb.mean(), abs=1e-4)
        assert row["chi_median_ppb"] == pytest.approx(np.median(ppb), abs=1e-4)
        if len(ppb) > 1:
            assert row["chi_sd_ppb"] == pytest.approx(np.std(ppb, ddof=1), abs=1e-4)
    assert np.isnan(rows.loc["STN_R", "chi_sd_ppb"])  # one voxel: no sample SD
    assert rows.loc["GP_L", "voxels"] == rows.loc["GPe_L", "voxels"] + rows.loc["GPi_L", "voxels"]
    # the absent structure: a row with volume 0 and nothing else
    empty = rows.loc["RN_L"]
    assert empty["volume_mm3"] == 0 and empty["voxels"] == 0 and empty["chi_voxels"] == 0
    assert empty[["chi_mean_ppb", "chi_median_ppb", "chi_sd_ppb", "com_x_mm", "com_i"]].isna().all()
    lines = (tmp_path / "m.tsv").read_text().splitlines()
    assert lines[0].split("\t") == COLUMNS
    fields = dict(zip(COLUMNS, lines[1 + NAMES.index("RN_L")].split("\t")))
    assert fields["volume_mm3"] == "0.0" and fields["chi_mean_ppb"] == "n/a" and fields["com_k"] == "n/a"


def test_without_a_t1_volumes_come_from_the_swi_grid_and_without_swi_no_susceptibility(session):
    files = session["files"]
    swi_only = measures_from_files(["CN_L"], swi_labels=files["swi_labels"], qsm=files["qsm"]).iloc[0]
    inside = session["swi_labels"] == LABEL["CN_L"]
    assert swi_only["volume_space"] == "SWI" and swi_only["voxels"] == inside.sum()
    assert swi_only["volume_mm3"] == pytest.approx(inside.sum() * 0.7 * 0.7 * 2.5, abs=1e-3)
    world = SWI_AFFINE @ np.append(np.argwhere(inside).mean(axis=0), 1.0)
    np.testing.assert_allclose(swi_only[["com_x_mm", "com_y_mm", "com_z_mm"]].astype(float), world[:3], atol=1e-4)
    assert swi_only[["com_i", "com_j", "com_k"]].isna().all()  # T1 voxel indices: no T1
    t1_only = measures_from_files(["CN_L"], t1_labels=files["t1_labels"], t1=files["t1"]).iloc[0]
    assert t1_only["voxels"] == (session["t1_labels"] == LABEL["CN_L"]).sum()
    assert t1_only[["chi_mean_ppb", "chi_median_ppb", "chi_sd_ppb", "chi_voxels"]].isna().all()


def test_maps_on_another_grid_are_refused(session, tmp_path):
    files = session["files"]
    save_volume(tmp_path / "moved.nii.gz", session["qsm"], SWI_AFFINE @ np.diag([1, 1, 1.01, 1]), np.float32)
    with pytest.raises(InputError, match="swi_dseg.nii.gz: not on the grid of .*moved.nii.gz"):
        measures_from_files(["CN_L"], swi_labels=files["swi_labels"], qsm=tmp_path / "moved.nii.gz")
    with pytest.raises(InputError, match="t1_dseg.nii.gz: not on the grid of .*chi.nii.gz"):
        measures_from_files(["CN_L"], t1_labels=files["t1_labels"], t1=files["qsm"])


def test_each_method_is_measured_on_the_structures_it_writes(tmp_path):
    write_text_atomic(tmp_path / "all.tsv", dseg_tsv([s.name for s in ALL_STRUCTURES]))
    assert structures_of(tmp_path / "all.tsv", "nuclei7") == [name for name in structures_of(tmp_path / "all.tsv")
                                                             if name in TASKS["nuclei7"]]
    assert set(structures_of(tmp_path / "all.tsv", "nuclei7")) == set(TASKS["nuclei7"])
    assert structures_of(tmp_path / "all.tsv", "stn") == ["STN_L", "STN_R"]
    every = structures_of(tmp_path / "all.tsv")  # the atlas: every structure, GP also as GPe + GPi
    assert set(every) == {s.name for s in ALL_STRUCTURES}
    write_text_atomic(tmp_path / "dataset.tsv", dseg_tsv())  # a dataset with GPe and GPi apart
    assert set(structures_of(tmp_path / "dataset.tsv")) == {s.name for s in STRUCTURES} | {"GP_L", "GP_R"}
    write_text_atomic(tmp_path / "merged.tsv", dseg_tsv(["CN_L", "GP_L"]))  # GP as one label: no GPe / GPi
    assert structures_of(tmp_path / "merged.tsv") == ["CN_L", "GP_L"]


def test_group_tables_long_and_wide_hold_the_same_values(session, tmp_path):
    files = session["files"]
    cases = [{"participant": "01", "session": "pre", "method": "reference", "out": str(tmp_path / "a.tsv")},
             {"participant": "01", "session": "pre", "method": "linus", "out": str(tmp_path / "b.tsv"),
              "inference_record": str(tmp_path / "inference.json")},
             {"participant": "02", "session": "pre", "method": "atlas", "out": str(tmp_path / "c.tsv")}]
    range_check = {"checked": True, "in_range": False, "warnings": ["STN_R: not found", "input channel 0: p50 low"]}
    (tmp_path / "inference.json").write_text(json.dumps({"range_check": range_check}))
    write_session_measures(NAMES, cases[0]["out"], **files)
    write_session_measures(["STN_R"], cases[1]["out"], t1_labels=files["t1_labels"], t1=files["t1"])
    write_session_measures(["CN_L", "GP_L"], cases[2]["out"], swi_labels=files["swi_labels"], qsm=files["qsm"])
    (tmp_path / "measures.json").write_text(json.dumps(cases))
    assert main(["merge-measures", "--plan", str(tmp_path / "measures.json"), "--out-tsv", str(tmp_path / "nuclei.tsv"),
                 "--out-csv", str(tmp_path / "wide.csv"), "--out-figure", str(tmp_path / "intervals.png")]) == 0
    assert matplotlib.image.imread(tmp_path / "intervals.png").shape[0] > 100  # bounds missing here: points alone
    long = read_measures(tmp_path / "nuclei.tsv")
    assert list(long.columns) == ["participant_id", "session_id", "method", *COLUMNS, *RANGE_COLUMNS]
    assert len(long) == len(NAMES) + 1 + 2 and set(long["session_id"]) == {"ses-pre"}
    assert list(long["participant_id"].unique()) == ["sub-01", "sub-02"]
    wide = pd.read_csv(tmp_path / "wide.csv")  # as a statistician loads it: NA is missing
    assert list(wide["method"]) == ["reference", "linus", "atlas"]
    # structures in the package's order, each with every measure
    order = ["CN_L", "GPe_L", "GPi_L", "RN_L", "STN_R", "GP_L"]
    assert list(wide.columns) == ["participant_id", "session_id", "method", "volume_space", *RANGE_COLUMNS,
                                  *(f"{name}_{measure}" for name in order for measure in MEASURES)]
    assert "STN_R_volume_mm3" in wide and "GP_L_chi_mean_ppb" in wide
    for record in long.to_dict("records"):
        row = wide[(wide["participant_id"] == record["participant_id"]) & (wide["method"] == record["method"])].iloc[0]
        for measure in MEASURES:
            expected = record[measure]
            assert row[f"{record['structure']}_{measure}"] == pytest.approx(
                np.nan if pd.isna(expected) else float(expected), nan_ok=True), (record["method"], measure)
    linus = wide[wide["method"] == "linus"].iloc[0]
    assert np.isnan(linus["CN_L_volume_mm3"])  # a structure the method does not write: missing, not 0
    assert list(wide["volume_space"]) == ["T1w", "T1w", "SWI"]
    # a model's session outside its training range is flagged with the reasons; other methods: missing
    assert wide["in_training_range"].tolist()[1] is False and wide["in_training_range"].isna().tolist() == [True, False, True]
    assert linus["range_warnings"] == "STN_R: not found; input channel 0: p50 low"


def test_group_tables_without_sessions_leave_session_id_missing(session, tmp_path):
    write_session_measures(["CN_L"], tmp_path / "a.tsv", **session["files"])
    (tmp_path / "measures.json").write_text(json.dumps(
        [{"participant": "07", "session": None, "method": "atlas", "out": str(tmp_path / "a.tsv")}]))
    merge_measures(tmp_path / "measures.json", tmp_path / "nuclei.tsv", tmp_path / "wide.csv")
    assert (tmp_path / "nuclei.tsv").read_text().splitlines()[1].split("\t")[:3] == ["sub-07", "n/a", "atlas"]
    assert (tmp_path / "wide.csv").read_text().splitlines()[1].startswith("sub-07,NA,atlas,T1w,")


def test_the_measures_command_writes_every_case_of_one_session_in_the_plan(session, tmp_path):
    """One job per session: each of its cases (a method's structures: its lookup and task) to its own
    files, as `write_session_measures` writes them, and their QC picture; another session's cases are left alone."""
    files = {name: str(path) for name, path in session["files"].items()}
    write_text_atomic(tmp_path / "dseg.tsv", dseg_tsv([s.name for s in ALL_STRUCTURES]))

    def case(subject: str, method: str, task: str | None) -> dict:
        return {"subject": subject, "participant": subject, "session": None, "method": method, **files,
                "lookup": str(tmp_path / "dseg.tsv"), "task": task, "out": str(tmp_path / f"{subject}_{method}.tsv"),
                "qsmxt": str(tmp_path / f"{subject}_{method}.csv"), "inference_record": None}

    (tmp_path / "measures.json").write_text(json.dumps([case("01", "atlas", None), case("01", "linus", "stn"),
                                                        case("02", "atlas", None)]))
    assert main(["measures", "--plan", str(tmp_path / "measures.json"), "--subject", "01", "--qc",
                 str(tmp_path / "qc.png")]) == 0
    height, width = matplotlib.image.imread(tmp_path / "qc.png").shape[:2]  # a row per method, 2 grids x 3 views
    assert width / height == pytest.approx((2.5 * 6) / (2.6 * 2 + 0.8), rel=0.02)
    table = read_measures(tmp_path / "01_linus.tsv")
    assert list(table["structure"]) == ["STN_L", "STN_R"]
    assert list(table["voxels"]) == [0, 1] and table["volume_mm3"].iloc[1] == pytest.approx(0.9 * 1.1 * 1.3, abs=1e-4)
    write_session_measures(structures_of(tmp_path / "dseg.tsv"), tmp_path / "direct.tsv", tmp_path / "direct.csv",
                           **session["files"])
    intervals = [*BOUND_COLUMNS, "interval_samples"]  # a case without samples: none (tests/unit/test_intervals.py)
    pd.testing.assert_frame_equal(read_measures(tmp_path / "01_atlas.tsv").drop(columns=intervals),
                                  read_measures(tmp_path / "direct.tsv").drop(columns=intervals))
    assert (tmp_path / "01_atlas.csv").read_text() == (tmp_path / "direct.csv").read_text()
    assert not (tmp_path / "02_atlas.tsv").exists()
    assert main(["measures", "--plan", str(tmp_path / "measures.json"), "--subject", "03"]) != 0  # no case: an error


def test_qsmxt_statistics_are_qsmxts_over_the_nonzero_voxels(tmp_path):
    """CN_L holds 1..100 ppb and 10 voxels outside the QSM mask (0): QSMxT's statistics over the 100, in ppm
    and ppb, known in closed form; GP_L is GPe_L and GPi_L; RN_L, absent, keeps its row."""
    labels = np.zeros((12, 10, 2), np.uint8)
    chi = np.zeros(labels.shape, np.float32)
    labels[:10, :10, 0] = LABEL["CN_L"]
    chi[:10, :10, 0] = np.arange(1, 101).reshape(10, 10) / 1000
    labels[10, :, 0] = LABEL["CN_L"]  # masked out: not counted, as in QSMxT
    labels[:2, :2, 1], chi[:2, :2, 1] = LABEL["GPe_L"], 0.2
    labels[2:4, :2, 1], chi[2:4, :2, 1] = LABEL["GPi_L"], 0.1
    save_volume(tmp_path / "swi_dseg.nii.gz", labels, SWI_AFFINE, np.uint8)
    save_volume(tmp_path / "chi.nii.gz", chi, SWI_AFFINE, np.float32)
    write_session_measures(["CN_L", "RN_L", "GP_L"], tmp_path / "m.tsv", tmp_path / "m.csv",
                           swi_labels=tmp_path / "swi_dseg.nii.gz", qsm=tmp_path / "chi.nii.gz")
    table = pd.read_csv(tmp_path / "m.csv").set_index("roi")
    assert list(table.reset_index().columns) == QSMXT_COLUMNS and list(table.index) == ["CN_L", "RN_L", "GP_L"]
    cn = table.loc["CN_L"]
    expected_ppb = {"min": 1, "max": 100, "median": 50.5, "mean": 50.5, "std": np.sqrt((100**2 - 1) / 12),
                    "p5": 1 + 0.05 * 99, "p95": 1 + 0.95 * 99}  # SD with n; percentiles by linear interpolation
    assert cn["num_voxels"] == 100
    for stat, ppb in expected_ppb.items():
        assert cn[f"{stat}_ppb"] == pytest.approx(ppb, abs=1e-3), stat
        assert cn[stat] == pytest.approx(ppb / 1000, abs=1e-6), stat
    assert cn["volume_mm3"] == pytest.approx(110 * 0.7 * 0.7 * 2.5, abs=1e-3)  # the volume counts every voxel
    gp = table.loc["GP_L"]
    assert gp["num_voxels"] == 8 and gp["median_ppb"] == pytest.approx(150) and gp["std"] == pytest.approx(0.05)
    assert table.loc["RN_L", "num_voxels"] == 0 and table.loc["RN_L", "min":"p95_ppb"].isna().all()


def test_the_group_qsmxt_table_stacks_the_sessions_with_their_ids(session, tmp_path):
    files = session["files"]
    cases = [{"participant": "01", "session": "pre", "method": "atlas", "out": str(tmp_path / "a.tsv"),
              "qsmxt": str(tmp_path / "a.csv")},
             {"participant": "02", "session": None, "method": "linus", "out": str(tmp_path / "b.tsv"),
              "qsmxt": str(tmp_path / "b.csv")}]
    write_session_measures(NAMES, cases[0]["out"], cases[0]["qsmxt"], **files)
    write_session_measures(["STN_R"], cases[1]["out"], cases[1]["qsmxt"], t1_labels=files["t1_labels"], t1=files["t1"])
    (tmp_path / "measures.json").write_text(json.dumps(cases))
    assert main(["merge-measures", "--plan", str(tmp_path / "measures.json"), "--out-tsv", str(tmp_path / "nuclei.tsv"),
                 "--out-csv", str(tmp_path / "wide.csv"), "--out-qsmxt", str(tmp_path / "qsmxt.csv")]) == 0
    group = pd.read_csv(tmp_path / "qsmxt.csv")
    assert list(group.columns) == ["participant_id", "session_id", "method", *QSMXT_COLUMNS]
    assert list(group["roi"]) == [*NAMES, "STN_R"] and list(group["session_id"].fillna("")) == ["ses-pre"] * 6 + [""]
    pd.testing.assert_frame_equal(group.iloc[:6, 3:].reset_index(drop=True), pd.read_csv(tmp_path / "a.csv"),
                                  check_dtype=False)  # NA in the group table makes its counts floats
    without_qsm = group.iloc[6]  # a session without SWI: its volume, no susceptibility
    assert without_qsm["volume_mm3"] > 0 and without_qsm["num_voxels":"p95_ppb"].isna().all()
    ppb = 1000.0 * session["qsm"][session["swi_labels"] == LABEL["CN_L"]].astype(np.float64)
    assert group.loc[0, "mean_ppb"] == pytest.approx(ppb.mean(), abs=1e-4)  # no zeros in this QSM: every voxel


def test_outline_keeps_each_structures_border():
    labels = np.zeros((6, 6), int)
    labels[1:5, 1:5] = 3
    labels[2:4, 2:4] = 5
    edge = outline(labels)
    assert edge[2:4, 2:4].tolist() == [[5, 5], [5, 5]]  # 2 x 2: all border
    assert (edge[1, 1:5] == 3).all() and edge[0].sum() == 0  # the ring of 3 is border; background stays 0
    assert (outline(np.full((4, 4), 2)) == 0).all()


def test_session_qc_has_a_row_per_method_and_the_grids_side_by_side(session, tmp_path):
    files = session["files"]
    out = segmentation_qc(tmp_path / "qc.png", files["t1"], {"reference": files["t1_labels"], "atlas": files["t1_labels"],
                                                             "linus": files["t1_labels"]},
                          files["qsm"], {"reference": files["swi_labels"], "atlas": files["swi_labels"]}, "sub-01")
    height, width = matplotlib.image.imread(out).shape[:2]
    assert width / height == pytest.approx((2.5 * 6) / (2.6 * 3 + 0.8), rel=0.02)  # 3 rows, 2 grids x 3 views
    with pytest.raises(InputError, match="swi_dseg.nii.gz: shape"):
        segmentation_qc(tmp_path / "bad.png", files["t1"], {"atlas": files["swi_labels"]})
