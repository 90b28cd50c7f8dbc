"""The demo cohort generator: determinism, geometry, phase, anatomy within published ranges."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from skimage.restoration import unwrap_phase

from deepnuclei.demo.anatomy import PUBLISHED_VOLUME_RANGE_MM3
from deepnuclei.demo.cohort import bids_paths, generate_subject, subject_settings, truth_paths
from deepnuclei.io import apply_affine, read_json, read_volume
from deepnuclei.labels import STRUCTURES
from deepnuclei.qsm.forward import field_to_phase

LPS = np.diag([-1.0, -1.0, 1.0])


def centroid_mm(labels: np.ndarray, affine: np.ndarray, label: int) -> np.ndarray:
    return apply_affine(affine, np.argwhere(labels == label).mean(axis=0))


def test_same_seed_same_subject_other_seed_other_subject(template, demo_subject, tmp_path):
    settings = demo_subject["settings"]
    generate_subject(template, "01", settings, tmp_path / "same" / "bids", tmp_path / "same" / "truth")
    generate_subject(template, "01", {**settings, "seed": settings["seed"] + 1}, tmp_path / "other" / "bids",
                     tmp_path / "other" / "truth")
    for key in ("t1", "phase1", "mag2"):
        reference, _ = read_volume(bids_paths(demo_subject["bids"], "01", 3)[key])
        same, _ = read_volume(bids_paths(tmp_path / "same" / "bids", "01", 3)[key])
        other, _ = read_volume(bids_paths(tmp_path / "other" / "bids", "01", 3)[key])
        np.testing.assert_array_equal(reference, same)
        assert not np.array_equal(reference, other)


def test_saved_transform_maps_swi_points_onto_the_same_anatomy_in_t1(demo_subject):
    truth = truth_paths(demo_subject["truth"], "01")
    swi_labels, swi_affine = read_volume(truth["labels_swi"], dtype=np.uint8)
    t1_labels, t1_affine = read_volume(truth["labels_t1"], dtype=np.uint8)
    transform = sitk.ReadTransform(str(truth["transform"]))
    errors = []
    for structure in STRUCTURES:
        if structure.nucleus not in ("CN", "PUT", "THA", "DN"):  # large: centroids barely move with the grid
            continue
        swi_point = centroid_mm(swi_labels, swi_affine, structure.label)
        mapped = LPS @ np.array(transform.TransformPoint((LPS @ swi_point).tolist()))
        errors.append(np.linalg.norm(mapped - centroid_mm(t1_labels, t1_affine, structure.label)))
    assert np.mean(errors) < 0.5, errors
    assert np.max(errors) < 1.0, errors
    # the JSON matrix is the same transform
    record = read_json(truth["json"])
    matrix = np.array(record["swi_world_to_t1_world_ras"])
    point = np.array([10.0, -20.0, 5.0])
    mapped = LPS @ np.array(transform.TransformPoint((LPS @ point).tolist()))
    np.testing.assert_allclose(mapped, apply_affine(matrix, point), atol=1e-6)


def test_phase_is_wrapped_and_sidecars_carry_echo_time_and_field(demo_subject):
    paths = bids_paths(demo_subject["bids"], "01", 3)
    for echo, echo_time in enumerate(demo_subject["settings"]["echo_times_s"], start=1):
        phase, _ = read_volume(paths[f"phase{echo}"])
        assert phase.min() > -np.pi and phase.max() <= np.pi
        assert phase.max() - phase.min() > 6.0  # actually wrapped, not a smooth map
        sidecar = read_json(paths[f"phase{echo}"].with_suffix("").with_suffix(".json"))
        assert sidecar["EchoTime"] == pytest.approx(echo_time)
        assert sidecar["MagneticFieldStrength"] == pytest.approx(3.0)


def test_unwrapping_the_noise_free_phase_recovers_field_times_echo_time(template, tiny_settings, tmp_path):
    settings = tiny_settings(swi_snr=1e12)
    generate_subject(template, "01", settings, tmp_path / "bids", tmp_path / "truth")
    truth = truth_paths(tmp_path / "truth", "01")
    phase, _ = read_volume(bids_paths(tmp_path / "bids", "01", 3)["phase1"])
    mask = read_volume(truth["mask"], dtype=np.uint8)[0] > 0
    total_field = read_volume(truth["total_field"])[0]
    offset = read_volume(truth["phase_offset"])[0]
    expected = field_to_phase(total_field, settings["echo_times_s"][0], settings["b0_tesla"]) + offset
    unwrapped = unwrap_phase(np.ma.masked_array(phase, mask=~mask)).filled(0)
    difference = (unwrapped - expected)[mask]
    difference -= 2 * np.pi * np.round(np.median(difference) / (2 * np.pi))
    assert np.mean(np.abs(difference) < 0.05) > 0.97


def test_every_structure_is_present_with_a_published_volume(demo_subject):
    record = demo_subject["record"]
    for space in ("volume_mm3_t1", "volume_mm3_swi"):
        for structure in STRUCTURES:
            low, high = PUBLISHED_VOLUME_RANGE_MM3[structure.nucleus]
            assert low <= record[space][structure.name] <= high, (space, structure.name)


def test_susceptibility_truth_orders_the_nuclei_as_the_literature(demo_subject):
    truth = truth_paths(demo_subject["truth"], "01")
    chi, _ = read_volume(truth["chi"])
    labels, _ = read_volume(truth["labels_swi"], dtype=np.uint8)
    mean = {s.nucleus: chi[labels == s.label].mean() for s in STRUCTURES if s.hemisphere == "L"}
    assert mean["GPi"] > mean["PUT"] > mean["THA"]
    assert min(mean["SN"], mean["RN"], mean["DN"]) > mean["CN"]
    mask = read_volume(truth["mask"], dtype=np.uint8)[0] > 0
    assert np.median(chi[mask & (labels == 0)]) < 0.01  # white matter is slightly negative, CSF zero


def test_images_show_the_perturbed_nuclei_not_the_template(demo_subject):
    """Putamen is darker than its surroundings in T1 where the subject's labels put it."""
    t1, _ = read_volume(bids_paths(demo_subject["bids"], "01", 3)["t1"])
    labels, _ = read_volume(truth_paths(demo_subject["truth"], "01")["labels_t1"], dtype=np.uint8)
    for structure in STRUCTURES:
        if structure.nucleus != "PUT":
            continue
        inside = labels == structure.label
        ring = ndimage.binary_dilation(inside, iterations=2) & ~inside & (labels == 0)
        assert np.median(t1[inside]) < 0.92 * np.median(t1[ring])


def test_qc_picture_is_written(demo_subject):
    assert demo_subject["qc"].stat().st_size > 20_000


def test_a_varied_cohort_draws_each_subjects_acquisition_within_its_ranges_and_keeps_the_slab(tiny_settings):
    vary = {"b0_tesla": {"choices": [1.5, 7.0]}, "swi_inplane_mm": {"range": [0.8, 1.6]},
            "swi_slice_mm": {"choices": [1.0, 3.0]}, "swi_snr": {"range": [30.0, 60.0]}, "t1_head": {"choices": [True]}}
    settings = tiny_settings(vary=vary)
    extent = np.array(settings["swi_shape"]) * np.array(settings["swi_voxel_mm"])
    drawn = [subject_settings(settings, f"{n:02d}") for n in range(1, 13)]
    assert subject_settings(settings, "03") == drawn[2]  # the seed decides
    assert subject_settings(tiny_settings(), "03") == tiny_settings()  # nothing to vary: the settings as given
    assert {s["b0_tesla"] for s in drawn} == {1.5, 7.0} and all(s["t1_head"] for s in drawn)
    for subject in drawn:
        voxel = np.array(subject["swi_voxel_mm"])
        assert voxel[0] == voxel[1] and 0.8 <= voxel[0] <= 1.6 and voxel[2] in (1.0, 3.0) and 30 <= subject["swi_snr"] <= 60
        np.testing.assert_allclose(np.array(subject["swi_shape"]) * voxel, extent, atol=voxel.max())
        assert subject["swi_oversample"] == [1, 1, int(voxel[2])]  # simulated on 1 mm slices
        # the same phase per ppm at every field: echo times scale by 3 T / B0
        np.testing.assert_allclose(np.array(subject["echo_times_s"]) * subject["b0_tesla"],
                                   np.array(settings["echo_times_s"]) * 3.0)


def test_a_t1_with_a_head_shows_a_bright_scalp_where_the_skull_stripped_one_is_dark(template, tiny_settings, tmp_path):
    images = {}
    for name, head in (("head", True), ("stripped", False)):
        settings = tiny_settings(vary={"t1_head": {"choices": [head]}, "b0_tesla": {"choices": [7.0]}})
        record = generate_subject(template, "01", settings, tmp_path / name / "bids", tmp_path / name / "truth")
        images[name], _ = read_volume(bids_paths(tmp_path / name / "bids", "01", 3)["t1"])
    assert record["acquisition"]["b0_tesla"] == 7.0 and record["drawn"] == {"t1_head": False, "b0_tesla": 7.0}
    labels, _ = read_volume(truth_paths(tmp_path / "head" / "truth", "01")["labels_t1"], dtype=np.uint8)
    assert (images["head"][labels > 0] == images["stripped"][labels > 0]).mean() > 0.9  # the brain alike
    outside = images["stripped"] < 0.1 * 600  # white matter is near 600
    assert (images["head"][outside] > 0.8 * 600).mean() > 0.05  # the scalp
