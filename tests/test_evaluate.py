"""Overlap scores on masks with known answers, and the per-structure table from files."""

import numpy as np
import pytest

from deepnuclei.evaluate import overlap, overlap_table, summary_by_method
from deepnuclei.io import InputError, save_volume
from deepnuclei.labels import STRUCTURE_BY_NAME


def test_overlap_of_known_masks():
    reference = np.zeros(10, dtype=bool)
    reference[:4] = True
    prediction = np.zeros(10, dtype=bool)
    prediction[2:8] = True
    scores = overlap(prediction, reference)
    assert scores["dice"] == pytest.approx(2 * 2 / (6 + 4))
    assert scores["precision"] == pytest.approx(2 / 6)
    assert scores["recall"] == pytest.approx(2 / 4)
    assert np.isnan(overlap(np.zeros(3, bool), np.zeros(3, bool))["dice"])


def test_table_scores_gp_as_the_union_of_gpe_and_gpi(tmp_path):
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    reference = np.zeros((8, 8, 8), dtype=np.uint8)
    reference[:4] = STRUCTURE_BY_NAME["GPe_L"].label
    reference[4:6] = STRUCTURE_BY_NAME["GPi_L"].label
    prediction = np.zeros_like(reference)
    prediction[:6] = STRUCTURE_BY_NAME["GPe_L"].label  # GPi taken for GPe: GP still perfect
    save_volume(tmp_path / "ref.nii.gz", reference, affine, np.uint8)
    save_volume(tmp_path / "pred.nii.gz", prediction, affine, np.uint8)
    table = overlap_table([{"subject": "01", "method": "m", "prediction": tmp_path / "pred.nii.gz",
                            "reference": tmp_path / "ref.nii.gz"}])
    row = table.set_index("structure")
    assert row.loc["GP_L", "dice"] == pytest.approx(1.0)
    assert row.loc["GPi_L", "recall"] == pytest.approx(0.0)
    assert row.loc["GPe_L", "volume_mm3"] == pytest.approx(6 * 64 * 2.0)
    assert summary_by_method(table).loc["GP_L", "m"] == 1.0


def test_prediction_on_another_grid_is_rejected(tmp_path):
    save_volume(tmp_path / "ref.nii.gz", np.zeros((4, 4, 4)), np.eye(4), np.uint8)
    save_volume(tmp_path / "pred.nii.gz", np.zeros((4, 4, 5)), np.eye(4), np.uint8)
    with pytest.raises(InputError, match="pred.nii.gz: not on the reference grid"):
        overlap_table([{"subject": "01", "method": "m", "prediction": tmp_path / "pred.nii.gz",
                        "reference": tmp_path / "ref.nii.gz"}])
