"""Overlap scores on masks with known answers, and the per-structure table from files."""

import numpy as np
import pytest

from deepnuclei.evaluate import (
    keep_largest_components, mean_ppb, overlap, overlap_table, score_labels, score_structure, summary_by_method,
    surface_distances,
)
from deepnuclei.io import InputError, save_volume
from deepnuclei.labels import STRUCTURE_BY_NAME, TASKS, remap_to_task
from helpers.labels import MERGED, SEPARATE, merge_gp, package_map


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


def test_a_missed_structure_scores_zero_not_nan():
    """An empty prediction of a structure the reference has is a miss: precision 0 (it was NaN, and the
    means dropped it, so a model missing the structure looked better than one finding it badly)."""
    reference = np.zeros(10, dtype=bool)
    reference[:4] = True
    scores = overlap(np.zeros(10, bool), reference)
    assert (scores["dice"], scores["precision"], scores["recall"], scores["missed"]) == (0.0, 0.0, 0.0, True)
    assert not overlap(reference, reference)["missed"] and not overlap(np.zeros(3, bool), np.zeros(3, bool))["missed"]


def test_centres_as_voxel_indices_of_the_whole_grid():
    """LiNUS Tables IV and V give centres as voxel indices: those of the scored grid, not of the crop
    around the structure that the scores are computed in."""
    affine = np.array([[-1.0, 0, 0, 90], [0, 1.0, 0, -126], [0, 0, 1.0, -72], [0, 0, 0, 1]])
    reference = np.zeros((40, 40, 40), dtype=np.uint8)
    reference[10:13, 20:23, 30:33] = STRUCTURE_BY_NAME["STN_L"].label
    prediction = np.roll(reference, 2, axis=0)
    row = {r["structure"]: r for r in score_labels(prediction, reference, affine, names=["STN_L"])}["STN_L"]
    assert (row["reference_com_i"], row["reference_com_j"], row["reference_com_k"]) == pytest.approx((11, 21, 31))
    assert (row["com_i"], row["com_j"], row["com_k"]) == pytest.approx((13, 21, 31))
    assert row["com_error_mm"] == pytest.approx(2.0)


def test_the_papers_distance_is_between_rounded_indices():
    """LiNUS Tables IV and V: the distance between the centres rounded to voxel indices, in mm of the grid
    (here 2 mm along i), beside the distance between the unrounded centres."""
    affine = np.diag([2.0, 1.0, 1.0, 1.0])
    reference = np.zeros((40, 40, 40), dtype=np.uint8)
    reference[10:13, 20:23, 30:33] = STRUCTURE_BY_NAME["STN_L"].label  # centre (11, 21, 31)
    prediction = np.roll(reference, 2, axis=0)
    prediction[15, 21, 31] = STRUCTURE_BY_NAME["STN_L"].label  # centre i = (27 * 13 + 15) / 28 = 13.07
    row = {r["structure"]: r for r in score_labels(prediction, reference, affine, names=["STN_L"])}["STN_L"]
    assert row["com_i"] == pytest.approx(13 + 2 / 28)
    assert row["com_error_mm"] == pytest.approx(2 * (2 + 2 / 28))
    assert row["com_index_error_mm"] == pytest.approx(2 * 2.0)


def test_largest_component_per_label():
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[0:3, 0:3, 0:3] = 1
    labels[7:9, 7:9, 7:9] = 1  # smaller, apart: removed
    labels[0:2, 7:9, 0:2] = 2  # the only component of label 2: kept
    labels[3, 3, 3] = 1  # touches the first block at a corner only: 26-connected, kept
    cleaned = keep_largest_components(labels)
    assert (cleaned == 1).sum() == 28 and (cleaned == 2).sum() == 8 and cleaned[8, 8, 8] == 0


def test_clean_up_is_scored_as_its_own_rows(tmp_path):
    """With the clean-up, each case is scored as written and cleaned up (method <method>+lcc); without it,
    as written only."""
    label = STRUCTURE_BY_NAME["RN_L"].label
    reference = np.zeros((12, 12, 12), dtype=np.uint8)
    reference[2:6, 2:6, 2:6] = label
    prediction = reference.copy()
    prediction[9:11, 9:11, 9:11] = label  # a stray island: lowers precision until cleaned up
    save_volume(tmp_path / "ref.nii.gz", reference, np.eye(4), np.uint8)
    save_volume(tmp_path / "pred.nii.gz", prediction, np.eye(4), np.uint8)
    case = {"subject": "01", "method": "atlas", "prediction": tmp_path / "pred.nii.gz",
            "reference": tmp_path / "ref.nii.gz", "space": "T1w"}
    table = overlap_table([case], largest_component=True).set_index(["method", "structure"])
    assert table.loc[("atlas", "RN_L"), "precision"] == pytest.approx(64 / 72)
    assert table.loc[("atlas+lcc", "RN_L"), "precision"] == pytest.approx(1.0)
    assert set(table["space"]) == {"T1w"}
    assert set(overlap_table([case])["method"]) == {"atlas"}


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
    # a model's task limits the rows to what it segments: the 7-nucleus models have GP, not GPe / GPi
    modelled = overlap_table([{"subject": "01", "method": "net", "prediction": tmp_path / "pred.nii.gz",
                               "reference": tmp_path / "ref.nii.gz", "task": "nuclei7"}])
    assert set(modelled["structure"]) == set(TASKS["nuclei7"])


def test_prediction_on_another_grid_is_rejected(tmp_path):
    save_volume(tmp_path / "ref.nii.gz", np.zeros((4, 4, 4)), np.eye(4), np.uint8)
    save_volume(tmp_path / "pred.nii.gz", np.zeros((4, 4, 5)), np.eye(4), np.uint8)
    with pytest.raises(InputError, match="pred.nii.gz: not on the reference grid"):
        overlap_table([{"subject": "01", "method": "m", "prediction": tmp_path / "pred.nii.gz",
                        "reference": tmp_path / "ref.nii.gz"}])


def _oblique_affine(spacing: tuple[float, float, float], origin: tuple[float, float, float]) -> np.ndarray:
    """Rotation about z by 30 degrees and about x by 20 degrees, times anisotropic voxel sizes."""
    a, b = np.radians(30), np.radians(20)
    about_z = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    about_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = about_x @ about_z @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def test_scores_of_two_cubes_with_a_known_intersection():
    label = STRUCTURE_BY_NAME["PUT_R"].label
    reference = np.zeros((30, 30, 30), dtype=np.uint8)
    reference[5:15, 5:15, 5:15] = label
    prediction = np.zeros_like(reference)
    prediction[8:18, 5:15, 5:15] = label  # 7 x 10 x 10 shared voxels
    row = {r["structure"]: r for r in score_labels(prediction, reference, np.diag([0.5, 0.5, 2.0, 1.0]))}["PUT_R"]
    assert row["dice"] == pytest.approx(2 * 700 / 2000)
    assert row["precision"] == row["recall"] == pytest.approx(0.7)
    assert row["volume_mm3"] == row["reference_volume_mm3"] == pytest.approx(1000 * 0.5)
    assert row["com_error_mm"] == pytest.approx(3 * 0.5)


def test_centre_of_mass_error_in_world_coordinates_on_an_oblique_anisotropic_grid():
    affine = _oblique_affine((0.5, 0.8, 2.0), (-40.0, 12.0, 7.5))
    label = STRUCTURE_BY_NAME["STN_L"].label
    reference = np.zeros((40, 30, 12), dtype=np.uint8)
    reference[10:14, 8:13, 3:6] = label
    shift = np.array([5, -3, 2])
    prediction = np.zeros_like(reference)
    prediction[15:19, 5:10, 5:8] = label
    row = {r["structure"]: r for r in score_labels(prediction, reference, affine)}["STN_L"]
    world_shift = affine[:3, :3] @ shift
    assert row["com_error_mm"] == pytest.approx(np.linalg.norm(world_shift))
    reference_com = affine[:3, :3] @ [11.5, 10.0, 4.0] + affine[:3, 3]
    assert [row[f"reference_com_{axis}_mm"] for axis in "xyz"] == pytest.approx(reference_com)
    assert [row[f"com_{axis}_mm"] for axis in "xyz"] == pytest.approx(reference_com + world_shift)
    # every border voxel has its shifted twin on the other border, so no distance exceeds the shift
    assert 0 < row["hd95_mm"] <= np.linalg.norm(world_shift) + 1e-9


def test_surface_distances_of_concentric_spheres():
    spacing = np.array([0.5, 0.5, 1.0])
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip((44, 44, 22), spacing)], indexing="ij"), axis=-1)
    radius = np.linalg.norm(grid - np.array([22 * 0.5, 22 * 0.5, 11.0]), axis=-1)
    outer, inner = radius <= 9.0, radius <= 5.0
    affine = _oblique_affine(tuple(spacing), (3.0, -2.0, 1.0))
    distances = surface_distances(outer, inner, affine)
    assert distances["hd95_mm"] == pytest.approx(4.0, abs=spacing.max())
    assert distances["mean_surface_distance_mm"] == pytest.approx(4.0, abs=spacing.max())
    assert distances["hd95_mm"] == surface_distances(inner, outer, affine)["hd95_mm"]
    assert np.isnan(surface_distances(outer, np.zeros_like(outer), affine)["hd95_mm"])


def test_crop_to_the_bounding_box_changes_no_score():
    affine = _oblique_affine((0.6, 0.6, 1.5), (0.0, 0.0, 0.0))
    rng = np.random.default_rng(3)
    labels = np.where(rng.random((14, 14, 10)) < 0.3, STRUCTURE_BY_NAME["RN_L"].label, 0).astype(np.uint8)
    shifted = np.roll(labels, 1, axis=0)
    cropped = {r.pop("structure"): r for r in score_labels(shifted, labels, affine)}["RN_L"]
    whole = score_structure(shifted > 0, labels > 0, affine)
    assert cropped == pytest.approx(whole, nan_ok=True)


def test_mean_susceptibility_inside_each_mask_from_the_cases_qsm(tmp_path):
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    label = STRUCTURE_BY_NAME["SN_R"].label
    reference = np.zeros((12, 12, 6), dtype=np.uint8)
    reference[2:6, 2:6, 1:3] = label
    prediction = np.zeros_like(reference)
    prediction[4:8, 2:6, 1:3] = label  # half inside the reference
    chi = np.where(reference > 0, 0.12, -0.02).astype(np.float32)  # ppm
    for name, volume in (("ref", reference), ("pred", prediction), ("chi", chi)):
        save_volume(tmp_path / f"{name}.nii.gz", volume, affine)
    case = {"subject": "01", "method": "m", "prediction": tmp_path / "pred.nii.gz",
            "reference": tmp_path / "ref.nii.gz", "qsm": tmp_path / "chi.nii.gz"}
    row = overlap_table([case]).set_index("structure").loc["SN_R"]
    assert row["reference_susceptibility_ppb"] == pytest.approx(120.0)
    assert row["susceptibility_ppb"] == pytest.approx((120.0 - 20.0) / 2)
    without_qsm = overlap_table([{**case, "qsm": None}]).set_index("structure").loc["SN_R"]
    assert np.isnan(without_qsm["susceptibility_ppb"])
    save_volume(tmp_path / "chi.nii.gz", chi[:, :, :5], affine)
    with pytest.raises(InputError, match="chi.nii.gz: not on the reference grid"):
        overlap_table([case])


def test_scores_are_the_same_whether_the_reference_has_gp_apart_or_as_one_label(tmp_path):
    separate, merged = package_map(), merge_gp(package_map())
    model = np.array([0, *(STRUCTURE_BY_NAME[parts[0]].label for parts in TASKS["nuclei7"].values())], np.uint8)
    predictions = {"atlas": np.roll(separate, 1, axis=1),  # GPe and GPi apart, a voxel off
                   "net": model[remap_to_task(np.roll(separate, -1, axis=1), "nuclei7")]}  # GP written as GP
    for name, volume in (("separate", separate), ("merged", merged), *predictions.items()):
        save_volume(tmp_path / f"{name}.nii.gz", volume, np.eye(4), np.uint8)

    def table(reference, structures):
        return overlap_table([{"subject": "01", "method": method, "prediction": tmp_path / f"{method}.nii.gz",
                               "reference": tmp_path / f"{reference}.nii.gz", "structures": structures,
                               "task": "nuclei7" if method == "net" else None} for method in predictions])

    apart, together = table("separate", SEPARATE), table("merged", MERGED)
    assert set(apart["structure"]) == {*SEPARATE, "GP_L", "GP_R"}
    assert set(together["structure"]) == set(MERGED)  # no GPe / GPi rows where the reference has GP as one label
    assert set(together.query("method == 'net'")["structure"]) == set(TASKS["nuclei7"])
    shared = apart.merge(together, on=["method", "structure"], suffixes=("", "_merged"))
    assert len(shared) == len(together)
    assert shared["dice"].tolist() == shared["dice_merged"].tolist()
    assert shared.query("structure == 'GP_L'")["dice"].tolist() == [pytest.approx(0.8)] * 2
    # without the reference's structures, every structure kept apart and GP, as before
    assert set(table("merged", None)["structure"]) == {*SEPARATE, "GP_L", "GP_R"}
    # a reference without STN: no STN rows, for the atlas as for a model
    assert not table("merged", [name for name in MERGED if not name.startswith("STN")])["structure"].str.startswith("STN").any()


def test_the_evaluation_and_the_measures_report_one_mean_susceptibility() -> None:
    """One mean per structure, whichever table reports it: summed in float64 from a float32 map."""
    from deepnuclei.measures import chi_measures

    rng = np.random.default_rng(0)
    chi_ppm = rng.normal(0.1, 0.05, (40, 40, 20)).astype(np.float32)
    labels = np.zeros(chi_ppm.shape, np.uint8)
    labels[5:35, 5:35, 2:18] = STRUCTURE_BY_NAME["THA_L"].label
    measured = chi_measures(labels, chi_ppm, ["THA_L"])["THA_L"]["chi_mean_ppb"]
    assert mean_ppb(chi_ppm, labels == STRUCTURE_BY_NAME["THA_L"].label) == measured
    assert measured == pytest.approx(1000 * chi_ppm[5:35, 5:35, 2:18].astype(np.float64).mean(), rel=1e-12)
