"""Bad input files fail with a one-line message naming the file and the problem."""

import gzip

import nibabel as nib
import numpy as np
import pytest

from deepnuclei.io import (
    GRID_TOLERANCE_MM,
    InputError,
    b0_direction_in_voxels,
    check_same_grid,
    load_nifti,
    read_json,
    read_volume,
    save_volume,
)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match="missing.nii.gz: file does not exist"):
        read_volume(tmp_path / "missing.nii.gz")


def test_corrupt_file_is_named(tmp_path):
    path = tmp_path / "corrupt.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti header at all" * 20))
    with pytest.raises(InputError, match="corrupt.nii.gz: not a readable NIfTI"):
        read_volume(path)


def test_truncated_file_is_named(tmp_path):
    path = save_volume(tmp_path / "whole.nii.gz", np.random.rand(20, 20, 20), np.eye(4), np.float32)
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated.nii.gz"):
        read_volume(truncated)


def test_nan_voxels_are_counted(tmp_path):
    data = np.ones((8, 8, 8), dtype=np.float32)
    data[0, 0, :3] = np.nan
    path = save_volume(tmp_path / "nan.nii.gz", data, np.eye(4))
    with pytest.raises(InputError, match="nan.nii.gz: 3 voxels are NaN"):
        read_volume(path)


def test_wrong_dimensionality_is_named(tmp_path):
    path = tmp_path / "four_d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2), dtype=np.float32), np.eye(4)), path)
    with pytest.raises(InputError, match="four_d.nii.gz: expected a 3D image"):
        read_volume(path)


@pytest.mark.parametrize("axes", [1, 2])
def test_trailing_length_one_axes_read_as_3d(tmp_path, with_trailing_axis, axes):
    affine = np.diag([0.5, 0.6, 2.0, 1.0])
    affine[:3, 3] = (-10, 4, 7)
    data = np.random.default_rng(0).integers(-500, 500, (6, 7, 8)).astype(np.int16)
    path = save_volume(tmp_path / "t1.nii.gz", data, affine)
    trailing = with_trailing_axis(path, tmp_path, axes)
    loaded, loaded_affine = read_volume(trailing)
    np.testing.assert_array_equal(loaded, read_volume(path)[0])
    np.testing.assert_allclose(loaded_affine, affine)
    image = load_nifti(trailing)  # callers use the image itself: its shape, data and header are 3D
    assert image.shape == image.dataobj.shape == image.header.get_data_shape() == data.shape
    assert image.header.get_zooms() == (0.5, 0.6, 2.0)


def test_bad_json_is_named(tmp_path):
    path = tmp_path / "sidecar.json"
    path.write_text("{EchoTime: 0.02")
    with pytest.raises(InputError, match="sidecar.json: not valid JSON"):
        read_json(path)


def test_atomic_save_round_trip_leaves_no_temporary_files(tmp_path):
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    data = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    save_volume(tmp_path / "out.nii.gz", data, affine)
    loaded, loaded_affine = read_volume(tmp_path / "out.nii.gz")
    np.testing.assert_array_equal(loaded, data)
    np.testing.assert_allclose(loaded_affine, affine)
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]


def test_b0_direction_in_voxel_axes_of_a_tilted_slab():
    tilt = np.deg2rad(20)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]]) @ np.diag([1, 1, 2])
    np.testing.assert_allclose(b0_direction_in_voxels(affine), [0, np.sin(tilt), np.cos(tilt)], atol=1e-12)


def test_a_grid_check_names_the_file_and_what_differs():
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    check_same_grid("b.nii.gz", (4, 5, 6), affine + GRID_TOLERANCE_MM / 2, (4, 5, 6), affine, "a.nii.gz")
    with pytest.raises(InputError, match=r"^b.nii.gz: shape \(4, 5, 7\) differs from \(4, 5, 6\) of a.nii.gz$"):
        check_same_grid("b.nii.gz", [4, 5, 7], affine, (4, 5, 6), affine, "a.nii.gz")
    moved = affine.copy()
    moved[0, 3] = 2 * GRID_TOLERANCE_MM
    with pytest.raises(InputError, match="^b.nii.gz: affine differs from that of the first echo$"):
        check_same_grid("b.nii.gz", (4, 5, 6), moved, (4, 5, 6), affine, "the first echo")
