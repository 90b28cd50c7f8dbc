"""The measures' intervals in the workflow (deepnuclei.measures with deepnuclei.uncertainty): the shipped factors,
and a session's bounds from constructed label maps and QSM maps, computed here by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepnuclei import uncertainty
from deepnuclei.io import save_volume, write_text_atomic
from deepnuclei.labels import ALL_STRUCTURES, STRUCTURE_BY_NAME, dseg_tsv
from deepnuclei.measures import BOUND_COLUMNS, read_measures, write_cases_measures
from deepnuclei.plan_files import MeasuresCase

CN_L = STRUCTURE_BY_NAME["CN_L"].label


def test_the_shipped_factors_load_and_cover_networks_atlas_and_reference():
    calibrations = uncertainty.read_factors()
    factor = {(c.measure, c.group): c for c in calibrations}
    for measure in uncertainty.MEASURES:
        for group in ("network", "atlas"):
            assert 0 < factor[measure, group].factor < np.inf and factor[measure, group].cases >= 90  # 3 sets x 32
    assert ("chi_mean_ppb", "reference") in factor and ("volume_mm3", "reference") not in factor  # true labels
    assert all(c.coverage == uncertainty.COVERAGE and c.symmetric and c.weight == 1.0 for c in calibrations)


def test_read_factors_refuses_another_version(tmp_path):
    uncertainty.write_factors(tmp_path / "f.json", uncertainty.read_factors())
    assert uncertainty.read_factors(tmp_path / "f.json") == uncertainty.read_factors()
    (tmp_path / "g.json").write_text('{"version": 0, "factors": []}')
    with pytest.raises(ValueError, match="version 0"):
        uncertainty.read_factors(tmp_path / "g.json")


@pytest.fixture
def maps(tmp_path) -> dict:
    """On a 1 mm SWI grid, CN_L in three label maps (averaged 40 voxels, direct 50, mirrored 30) and two QSM maps
    (sharptv: 50 ppb, 80 ppb in the direct pass's extra slab; tkd: 30 ppb); on a 1 mm T1 grid, CN_L of 72 voxels."""
    swi, t1 = np.eye(4), np.diag([1.0, 1.0, 1.0, 1.0])
    files = {}
    for name, extent in {"averaged": 4, "direct": 5, "mirrored": 3}.items():
        labels = np.zeros((10, 10, 4), np.uint8)
        labels[:extent, :5, :2] = CN_L
        files[name] = str(save_volume(tmp_path / f"{name}_dseg.nii.gz", labels, swi, np.uint8))
    sharptv = np.full((10, 10, 4), 0.05, np.float32)
    sharptv[4] = 0.08
    files["sharptv"] = str(save_volume(tmp_path / "sharptv.nii.gz", sharptv, swi, np.float32))
    files["tkd"] = str(save_volume(tmp_path / "tkd.nii.gz", np.full((10, 10, 4), 0.03, np.float32), swi, np.float32))
    t1_labels = np.zeros((12, 12, 6), np.uint8)
    t1_labels[:6, :6, :2] = CN_L
    files["t1_labels"] = str(save_volume(tmp_path / "t1_dseg.nii.gz", t1_labels, t1, np.uint8))
    files["t1"] = str(save_volume(tmp_path / "t1.nii.gz", np.ones((12, 12, 6), np.float32), t1, np.float32))
    files["lookup"] = str(tmp_path / "dseg.tsv")
    write_text_atomic(files["lookup"], dseg_tsv([s.name for s in ALL_STRUCTURES]))
    return files


def case(files: dict, tmp_path, method: str, samples: list[str], qsm: list[str], group: str | None) -> MeasuresCase:
    return MeasuresCase(subject="01", participant="01", session=None, method=method, t1_labels=files["t1_labels"],
                        swi_labels=files["averaged"], qsm=files["sharptv"], t1=files["t1"], lookup=files["lookup"],
                        task=None, out=str(tmp_path / f"{method}.tsv"), qsmxt=str(tmp_path / f"{method}.csv"),
                        inference_record=None, swi_samples={name: files[name] for name in samples},
                        qsm_samples={name: files[name] for name in qsm}, interval_group=group)


def test_a_networks_interval_is_its_samples_spread_times_the_shipped_factor(maps, tmp_path, caplog):
    """CN_L's samples: susceptibility 50 (the estimate: averaged on sharptv), 56 (direct: 40 x 50 + 10 x 80 over
    50), 50, and 30 on tkd: spread 20 below, 6 above, symmetric 20, floor 1 ppb; volume on the SWI grid 40, 50,
    30: spread 10, around the T1 grid's 72 mm3 reported, floor 5 % of 72. The atlas: one label map, so the QSM
    spread alone and a volume of the floor alone; a method without a group: no bounds."""
    factor = {(c.measure, c.group): c.factor for c in uncertainty.read_factors()}
    cases = [case(maps, tmp_path, "net", ["averaged", "direct", "mirrored"], ["sharptv", "tkd"], "network"),
             case(maps, tmp_path, "atlas", ["averaged"], ["sharptv", "tkd"], "atlas"),
             case(maps, tmp_path, "atlas-jlf", ["averaged"], ["sharptv"], None),
             case(maps, tmp_path, "t1-only", [], [], "network")]  # no labels on the SWI grid
    write_cases_measures(cases)
    net = read_measures(tmp_path / "net.tsv").set_index("structure").loc["CN_L"]
    assert net.chi_mean_ppb == pytest.approx(50) and net.volume_mm3 == pytest.approx(72)
    half = factor["chi_mean_ppb", "network"] * (20 + 1)
    assert (net.chi_mean_ppb_lower, net.chi_mean_ppb_upper) == (pytest.approx(50 - half, abs=1e-4),
                                                               pytest.approx(50 + half, abs=1e-4))
    half = factor["volume_mm3", "network"] * (10 + 0.05 * 72)
    assert (net.volume_mm3_lower, net.volume_mm3_upper) == (pytest.approx(72 - half, abs=1e-4),
                                                           pytest.approx(72 + half, abs=1e-4))
    assert net.interval_samples == 6
    atlas = read_measures(tmp_path / "atlas.tsv").set_index("structure").loc["CN_L"]
    half = factor["chi_mean_ppb", "atlas"] * (20 + 1)
    assert atlas.chi_mean_ppb_upper == pytest.approx(50 + half, abs=1e-4)
    half = factor["volume_mm3", "atlas"] * 0.05 * 72
    assert half > 72 and atlas.volume_mm3_lower == 0  # over 100 %: a volume's lower bound stops at 0
    assert atlas.volume_mm3_upper == pytest.approx(72 + half, abs=1e-4) and atlas.interval_samples == 2
    jlf = read_measures(tmp_path / "atlas-jlf.tsv")
    assert jlf[BOUND_COLUMNS].isna().all().all() and (jlf.interval_samples == 1).all()
    assert "atlas-jlf on sub-01: no interval factors" in caplog.text and "one segmentation sample" in caplog.text
    absent = read_measures(tmp_path / "net.tsv").set_index("structure").loc["RN_L"]  # in no sample
    assert pd.isna(absent.chi_mean_ppb_lower) and (absent.volume_mm3_lower, absent.volume_mm3_upper) == (0, 0)
    t1_only = read_measures(tmp_path / "t1-only.tsv")
    assert t1_only[BOUND_COLUMNS].isna().all().all() and (t1_only.interval_samples == 0).all()
    assert "t1-only on sub-01: no labels on the SWI grid" in caplog.text


def test_the_interval_figure_draws_each_estimate_with_its_bounds():
    from deepnuclei.figures import interval_panels

    long = pd.DataFrame({"participant_id": ["sub-01", "sub-01", "sub-02"], "session_id": [np.nan] * 3,
                         "method": ["net", "net", "net"], "structure": ["CN_L", "CN_R", "CN_L"],
                         "chi_mean_ppb": [50.0, 60.0, 40.0], "chi_mean_ppb_lower": [40.0, np.nan, 35.0],
                         "chi_mean_ppb_upper": [70.0, np.nan, 41.0], "volume_mm3": [36.0, 30.0, 20.0],
                         "volume_mm3_lower": [30.0, 25.0, 10.0], "volume_mm3_upper": [40.0, 35.0, 30.0]})
    figure = interval_panels(long)
    chi, volume = figure.axes[:2]
    assert [ax.get_title() for ax in figure.axes] == ["CN", "CN"]
    left = chi.containers[0]  # net, left: sub-01 then sub-02
    np.testing.assert_allclose(np.asarray(left.lines[0].get_ydata(), float), [50.0, 40.0])
    segments = left.lines[2][0].get_segments()
    assert [tuple(segment[:, 1]) for segment in segments] == [(40.0, 70.0), (35.0, 41.0)]
    np.testing.assert_allclose(np.asarray(volume.containers[1].lines[0].get_ydata(), float), [30.0])
