"""T1 -> SWI registration: geometry conventions, accuracy against the demo's true transform, label
round trips, and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from scipy import ndimage
from scipy.spatial.transform import Rotation

from deepnuclei.cli import main
from deepnuclei.io import InputError, apply_affine, read_json, read_volume, save_volume
from deepnuclei.grids import LPS, from_sitk, resample_labels, to_sitk
from deepnuclei.registration import (RegistrationSettings, brain_points_lps, euler_from_matrix, read_magnitudes,
                                     read_transform, register_files, rigid_matrix, target_registration_error,
                                     write_transform)
from helpers import ROOT

DEMO_SETTINGS = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["registration"]
LPS4 = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS for 4x4 matrices


def oblique_affine(voxel_mm, tilt_deg=15.0, origin=(-20.0, -30.0, -10.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("x", tilt_deg, degrees=True).as_matrix() @ np.diag(voxel_mm)
    affine[:3, 3] = origin
    return affine


def rigid(rotation_deg, translation_mm) -> sitk.Euler3DTransform:
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
    matrix[:3, 3] = translation_mm
    return euler_from_matrix(matrix)


def blobs(shape, n_labels=4, seed=0) -> np.ndarray:
    """Smooth random label regions: labels 1..n_labels on a background of 0."""
    field = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((n_labels + 1, *shape)), (0, 2, 2, 1))
    return np.argmax(field, axis=0).astype(np.uint8)


def subject_files(demo_subject) -> dict:
    anat = demo_subject["bids"] / "sub-01" / "anat"
    truth = demo_subject["truth"] / "sub-01"
    return {"t1": anat / "sub-01_T1w.nii.gz", "magnitudes": sorted(anat.glob("sub-01_echo-*_part-mag_T2starw.nii.gz")),
            "truth": truth / "sub-01_from-T1w_to-SWI_mode-image_xfm.tfm", "mask": truth / "sub-01_space-SWI_mask.nii.gz",
            "labels_swi": truth / "sub-01_space-SWI_dseg.nii.gz"}


# ---------------------------------------------------------------- conventions


def test_sitk_images_keep_data_and_world_positions():
    affine = oblique_affine((1.25, 1.25, 2.0))
    data = np.random.default_rng(1).random((5, 6, 7)).astype(np.float32)
    image = to_sitk(data, affine)
    back, back_affine = from_sitk(image)
    np.testing.assert_array_equal(back, data)
    np.testing.assert_allclose(back_affine, affine, atol=1e-12)
    index = (4, 1, 6)
    assert image[index] == data[index]
    np.testing.assert_allclose(image.TransformIndexToPhysicalPoint(index), apply_affine(affine, index) @ LPS, atol=1e-9)


def test_transforms_survive_files_and_invert_exactly(tmp_path):
    transform = rigid((4.0, -3.0, 7.0), (2.0, -5.0, 1.5))
    again = read_transform(write_transform(tmp_path / "t.tfm", transform))
    np.testing.assert_allclose(rigid_matrix(again), rigid_matrix(transform), atol=1e-12)
    points = np.random.default_rng(2).uniform(-80, 80, (50, 3))
    there_and_back = apply_affine(rigid_matrix(transform.GetInverse()), apply_affine(rigid_matrix(transform), points))
    np.testing.assert_allclose(there_and_back, points, atol=1e-9)


def test_tre_is_the_mean_displacement():
    points = np.random.default_rng(3).uniform(-50, 50, (100, 3))
    shifted = rigid((0, 0, 0), (3.0, 4.0, 0.0))
    assert target_registration_error(shifted, rigid((0, 0, 0), (0, 0, 0)), points) == pytest.approx(5.0)
    turned = rigid((0, 0, 90), (0, 0, 0))  # about z through the origin: each point moves sqrt(2) times its xy radius
    expected = np.mean(np.sqrt(2) * np.linalg.norm(points[:, :2], axis=1))
    assert target_registration_error(turned, rigid((0, 0, 0), (0, 0, 0)), points) == pytest.approx(expected)


# ---------------------------------------------------------------- accuracy on a demo subject


def test_cli_registration_recovers_the_true_transform(demo_subject, tmp_path):
    files = subject_files(demo_subject)
    magnitudes = [str(path) for path in files["magnitudes"]]
    transform, record, settings = tmp_path / "xfm.tfm", tmp_path / "registration.json", tmp_path / "settings.json"
    settings.write_text(json.dumps(DEMO_SETTINGS))
    assert main(["register-t1-to-swi", "--t1", str(files["t1"]), "--magnitudes", *magnitudes,
                 "--method", "simpleitk", "--settings", str(settings),
                 "--transform", str(transform), "--record", str(record)]) == 0
    t1_in_swi, qc = tmp_path / "t1_swi.nii.gz", tmp_path / "qc.png"
    assert main(["t1-to-swi", "--t1", str(files["t1"]), "--magnitudes", *magnitudes, "--transform", str(transform),
                 "--out", str(t1_in_swi), "--qc", str(qc), "--sources", "bids:raw:t1.nii.gz"]) == 0
    assert read_json(tmp_path / "t1_swi.json") == {"Sources": ["bids:raw:t1.nii.gz"]}  # its BIDS sidecar
    mask, mask_affine = read_volume(files["mask"])
    error = target_registration_error(read_transform(transform), read_transform(files["truth"]),
                                      brain_points_lps(mask, mask_affine))
    assert error <= 1.0
    t1, affine = read_volume(t1_in_swi)
    assert t1.shape == mask.shape and np.allclose(affine, mask_affine)
    assert np.mean(t1[mask > 0] > 0) > 0.95  # the slab's brain is covered by the moved T1
    assert qc.stat().st_size > 20_000


def test_antspyx_transform_lands_in_the_same_convention(demo_subject, tmp_path):
    files = subject_files(demo_subject)
    settings = RegistrationSettings.from_config(DEMO_SETTINGS, method="antspyx")
    register_files(files["t1"], files["magnitudes"], settings, tmp_path / "xfm.tfm", tmp_path / "record.json")
    mask, mask_affine = read_volume(files["mask"])
    error = target_registration_error(read_transform(tmp_path / "xfm.tfm"), read_transform(files["truth"]),
                                      brain_points_lps(mask, mask_affine))
    assert error <= 1.0


# ---------------------------------------------------------------- label round trips


@pytest.mark.parametrize("interpolation", ["nearest", "label_aware"])
def test_label_round_trip_is_exact_between_corresponding_grids(interpolation):
    """T1 grid = the SWI grid carried by the transform and refined 3 times: every SWI voxel centre lands on
    a T1 voxel centre and back, so SWI -> T1 -> SWI returns every label, whatever the rotation."""
    swi_affine = oblique_affine((1.25, 1.25, 2.0))
    labels = blobs((24, 28, 12))
    transform = rigid((5.0, -8.0, 12.0), (3.3, -2.1, 4.7))  # SWI points -> T1 points (LPS)
    refine = np.diag([1 / 3, 1 / 3, 1 / 3, 1.0])
    refine[:3, 3] = -1 / 3  # T1 index 3i + 1 sits on SWI index i
    t1_affine = LPS4 @ rigid_matrix(transform) @ LPS4 @ swi_affine @ refine
    t1_shape = tuple(3 * n for n in labels.shape)
    in_t1 = resample_labels(labels, swi_affine, transform.GetInverse(), t1_shape, t1_affine, interpolation)
    back = resample_labels(in_t1, t1_affine, transform, labels.shape, swi_affine, interpolation)
    np.testing.assert_array_equal(back, labels)
    assert set(np.unique(in_t1)) == set(np.unique(labels))


@pytest.mark.parametrize("interpolation, reach", [("nearest", 1), ("label_aware", 2)])
def test_label_round_trip_through_the_demo_t1_grid(demo_subject, tmp_path, interpolation, reach):
    """On the real grids (T1 2 mm, SWI 2.5 x 2.5 x 3 mm, oblique) the T1 grid cannot hold every SWI boundary,
    so only voxels farther than the interpolation's reach from another label are guaranteed: one SWI voxel
    for nearest neighbour, two for label-aware (a T1 cell spans up to 3.5 mm). Those must come back exactly."""
    files = subject_files(demo_subject)
    for source, reference, space, out in ((files["labels_swi"], files["t1"], "T1w", "in_t1.nii.gz"),
                                          (tmp_path / "in_t1.nii.gz", files["labels_swi"], "SWI", "back.nii.gz")):
        assert main(["move-labels", "--labels", str(source), "--reference", str(reference), "--transform",
                     str(files["truth"]), "--to", space, "--interpolation", interpolation,
                     "--out", str(tmp_path / out)]) == 0
    labels, swi_affine = read_volume(files["labels_swi"], dtype=np.uint8)
    back, back_affine = read_volume(tmp_path / "back.nii.gz", dtype=np.uint8)
    np.testing.assert_allclose(back_affine, swi_affine)
    size = 2 * reach + 1
    interior = ndimage.maximum_filter(labels, size) == ndimage.minimum_filter(labels, size)
    np.testing.assert_array_equal(back[interior], labels[interior])
    nuclei = labels > 0
    assert np.mean(back[nuclei] == labels[nuclei]) > 0.85  # and most boundary voxels come back too


# ---------------------------------------------------------------- bad inputs


def test_echoes_on_different_grids_are_named(tmp_path):
    first = save_volume(tmp_path / "echo-1.nii.gz", np.ones((6, 6, 4)), np.eye(4))
    second = save_volume(tmp_path / "echo-2.nii.gz", np.ones((6, 6, 5)), np.eye(4))
    with pytest.raises(InputError, match="echo-2.nii.gz: shape"):
        read_magnitudes([first, second])
    shifted = save_volume(tmp_path / "echo-3.nii.gz", np.ones((6, 6, 4)), oblique_affine((1, 1, 1)))
    with pytest.raises(InputError, match="echo-3.nii.gz: affine differs"):
        read_magnitudes([first, shifted])


def test_bad_transform_files_are_named(tmp_path):
    with pytest.raises(InputError, match="missing.tfm: file does not exist"):
        read_transform(tmp_path / "missing.tfm")
    garbage = tmp_path / "garbage.tfm"
    garbage.write_text("not a transform\n")
    with pytest.raises(InputError, match="garbage.tfm: not a readable ITK transform"):
        read_transform(garbage)
    scaling = sitk.AffineTransform(3)
    scaling.SetMatrix((1.1, 0, 0, 0, 1, 0, 0, 0, 1))
    with pytest.raises(InputError, match="scaled.tfm: AffineTransform is not rigid"):
        read_transform(write_transform(tmp_path / "scaled.tfm", scaling))


def test_cli_reports_a_missing_t1_and_fails(tmp_path):
    echo = save_volume(tmp_path / "echo-1.nii.gz", np.ones((6, 6, 4)), np.eye(4))
    (tmp_path / "settings.json").write_text("{}")
    code = main(["register-t1-to-swi", "--t1", str(tmp_path / "no_T1w.nii.gz"), "--magnitudes", str(echo),
                 "--method", "simpleitk", "--settings", str(tmp_path / "settings.json"), "--transform", str(tmp_path / "x.tfm"),
                 "--record", str(tmp_path / "x.json")])
    assert code == 2
    assert not (tmp_path / "x.tfm").exists()


def test_t1_and_swi_stored_with_a_trailing_axis_register_as_the_3d_files(demo_subject, with_trailing_axis, tmp_path):
    files = subject_files(demo_subject)
    settings = RegistrationSettings.from_config(DEMO_SETTINGS, threads=1)  # one thread: a repeatable result
    records = [register_files(t1, magnitudes, settings, tmp_path / f"{name}.tfm", tmp_path / f"{name}.json")
               for name, t1, magnitudes in (
                   ("3d", files["t1"], files["magnitudes"]),
                   ("4d", with_trailing_axis(files["t1"], tmp_path),
                    [with_trailing_axis(path, tmp_path) for path in files["magnitudes"]]))]
    np.testing.assert_array_equal(records[0]["swi_to_t1_lps"], records[1]["swi_to_t1_lps"])
    mask, mask_affine = read_volume(files["mask"])
    error = target_registration_error(read_transform(tmp_path / "4d.tfm"), read_transform(files["truth"]),
                                      brain_points_lps(mask, mask_affine))
    assert error <= 1.0
