"""QSM metrics (QSM-CI's NRMSE, HFEN, XSIM; our per-structure errors) on inputs with known answers."""

import numpy as np
import pytest

from deepnuclei.io import InputError, save_volume
from deepnuclei.labels import STRUCTURE_BY_NAME
from deepnuclei.metrics import qsm_metrics, qsm_metrics_from_files, structure_errors_ppb


@pytest.fixture(scope="module")
def maps():
    rng = np.random.default_rng(0)
    truth = rng.normal(0.0, 0.05, (24, 24, 24))
    truth[8:14, 8:14, 8:14] += 0.15
    mask = np.zeros(truth.shape, bool)
    mask[2:22, 2:22, 2:22] = True
    labels = np.zeros(truth.shape, np.int16)
    labels[8:14, 8:14, 8:14] = STRUCTURE_BY_NAME["GPi_L"].label
    labels[16:20, 4:8, 4:8] = STRUCTURE_BY_NAME["RN_R"].label
    return truth, mask, labels


def test_nrmse_hfen_and_xsim_of_known_errors(maps):
    """The QSM-CI metrics as we call them: percent, demeaned, and XSIM 1 for a perfect map."""
    truth, mask, labels = maps
    assert qsm_metrics(truth, truth, mask)["nrmse_percent"] == pytest.approx(0.0, abs=1e-9)
    assert qsm_metrics(np.zeros_like(truth), truth, mask)["nrmse_percent"] == pytest.approx(100.0)
    assert qsm_metrics(truth.mean() + 0.5 * (truth - truth.mean()), truth, mask)["nrmse_percent"] == pytest.approx(50.0)
    assert qsm_metrics(truth, truth, mask)["xsim"] == pytest.approx(1.0)
    rng = np.random.default_rng(2)
    slightly, badly = (qsm_metrics(truth + rng.normal(0, s, truth.shape), truth, mask) for s in (0.01, 0.1))
    assert 1.0 > slightly["xsim"] > badly["xsim"]
    assert 0 < slightly["hfen_percent"] < badly["hfen_percent"]


def test_structure_errors_are_mean_differences_in_ppb(maps):
    truth, mask, labels = maps
    estimate = truth.copy()
    estimate[labels == STRUCTURE_BY_NAME["GPi_L"].label] += 0.012
    errors = structure_errors_ppb(estimate, truth, labels, mask)
    assert set(errors) == {"GPi_L", "RN_R"}
    assert errors["GPi_L"] == pytest.approx(12.0) and errors["RN_R"] == pytest.approx(0.0, abs=1e-9)


def test_qsm_metrics_ignore_a_constant_offset(maps):
    truth, mask, labels = maps
    row = qsm_metrics(truth + 0.3, truth, mask, labels)
    assert row["nrmse_percent"] == pytest.approx(0.0, abs=1e-9)
    assert row["max_abs_error_ppb"] == pytest.approx(0.0, abs=1e-6)
    assert {"hfen_percent", "xsim", "error_ppb_GPi_L", "error_ppb_RN_R"} <= set(row)


def test_metrics_from_files_check_the_grids(maps, tmp_path):
    truth, mask, labels = maps
    affine = np.eye(4)
    paths = {name: tmp_path / f"{name}.nii.gz" for name in ("chi", "truth", "mask", "dseg", "small")}
    save_volume(paths["chi"], truth, affine, np.float32)
    save_volume(paths["truth"], truth, affine, np.float32)
    save_volume(paths["mask"], mask, affine, np.uint8)
    save_volume(paths["dseg"], labels, affine, np.uint8)
    save_volume(paths["small"], mask[:-1], affine, np.uint8)
    row = qsm_metrics_from_files(paths["chi"], paths["truth"], paths["mask"], paths["dseg"], paths["mask"])
    assert row["nrmse_percent"] == pytest.approx(0.0, abs=1e-4) and row["error_ppb_GPi_L"] == pytest.approx(0, abs=1e-3)
    with pytest.raises(InputError, match="small.nii.gz"):
        qsm_metrics_from_files(paths["chi"], paths["truth"], paths["small"])
