"""Model inputs: padding that maps back exactly, intensity windows, the written files, and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepnuclei.cli import main
from deepnuclei.io import InputError, apply_affine, load_nifti, read_json, read_volume, save_volume
from deepnuclei.preprocess import Padding, apply_padding, prepare_inputs, rescale, t1_window

SETTINGS = {"matrix": [12, 10, 8], "qsm_clip_ppb": [-150, 250], "t1_clip": [0, 800], "t1_clip_unit": "value"}
SWI_AFFINE = np.array([[1.25, 0, 0, -40], [0, 1.2, -0.5, -60], [0, 0.3, 1.9, -20], [0, 0, 0, 1.0]])


@pytest.mark.parametrize("shape, matrix", [
    ((9, 10, 5), (12, 10, 8)),  # pad, odd and even differences
    ((15, 10, 11), (12, 10, 8)),  # centre-crop
    ((7, 13, 8), (12, 10, 8)),  # both
])
def test_pad_then_unpad_is_exact_where_the_image_was_kept(shape, matrix):
    padding = Padding.centred(shape, matrix)
    image = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    padded = padding.pad(image)
    assert padded.shape == matrix and padded.dtype == image.dtype
    assert padded.sum() == pytest.approx(image[padding._overlap()[0]].sum())
    back = padding.unpad(padded)
    kept = np.zeros(shape, dtype=bool)
    kept[padding._overlap()[0]] = True
    np.testing.assert_array_equal(back[kept], image[kept])
    assert not np.any(back[~kept])
    assert padding.cropped == (not kept.all())
    assert Padding.from_dict(json.loads(json.dumps(padding.to_dict()))) == padding


def test_padding_keeps_every_voxel_at_its_world_position():
    padding = Padding.centred((9, 7, 5), (12, 10, 8))
    padded = padding.pad(np.arange(9 * 7 * 5, dtype=np.int32).reshape(9, 7, 5) + 1)
    index = np.array([4, 2, 3])
    padded_index = index + np.asarray(padding.before)
    assert padded[tuple(padded_index)] == index[0] * 35 + index[1] * 5 + index[2] + 1
    np.testing.assert_allclose(apply_affine(padding.padded_affine(SWI_AFFINE), padded_index),
                               apply_affine(SWI_AFFINE, index))


def test_windows_clip_and_rescale_as_the_paper():
    chi_ppm = np.array([-0.3, -0.15, 0.0, 0.25, 0.4])
    np.testing.assert_allclose(rescale(chi_ppm, (-0.15, 0.25)), [0, 0, 0.375, 1, 1], atol=1e-6)
    t1 = np.concatenate([np.zeros(100), np.linspace(1, 1000, 1000)])
    assert t1_window(t1, (0, 800), "value") == (0.0, 800.0)
    low, high = t1_window(t1, (1, 99), "percentile")  # of the non-zero voxels only
    assert low == pytest.approx(1 + 0.01 * 999, rel=1e-3) and high == pytest.approx(1 + 0.99 * 999, rel=1e-3)
    with pytest.raises(ValueError, match="empty"):
        rescale(t1, (5, 5))


@pytest.fixture
def swi_inputs(tmp_path) -> dict:
    rng = np.random.default_rng(1)
    chi = rng.normal(0, 0.1, (10, 9, 6)).astype(np.float32)
    t1 = rng.uniform(0, 900, (10, 9, 6)).astype(np.float32)
    labels = rng.integers(0, 19, (10, 9, 6)).astype(np.uint8)
    return {"qsm": save_volume(tmp_path / "chi.nii.gz", chi, SWI_AFFINE), "t1": save_volume(tmp_path / "t1.nii.gz", t1, SWI_AFFINE),
            "labels": save_volume(tmp_path / "dseg.nii.gz", labels, SWI_AFFINE, np.uint8), "chi": chi, "t1_data": t1,
            "labels_data": labels, "dir": tmp_path}


def test_model_inputs_are_written_on_the_matrix_and_map_back(swi_inputs):
    out = swi_inputs["dir"]
    record = prepare_inputs(swi_inputs["qsm"], swi_inputs["t1"], SETTINGS, out / "Chimap.nii.gz", out / "T1w.nii.gz",
                            out / "padding.json")
    assert read_json(out / "padding.json") == json.loads(json.dumps(record))
    padding = Padding.from_dict(record["padding"])
    for name, original, window in (("Chimap", swi_inputs["chi"], (-0.15, 0.25)), ("T1w", swi_inputs["t1_data"], (0, 800))):
        data, affine = read_volume(out / f"{name}.nii.gz")
        assert data.shape == tuple(SETTINGS["matrix"]) and data.min() >= 0 and data.max() <= 1
        np.testing.assert_allclose(affine, record["model_affine"])
        np.testing.assert_array_equal(padding.unpad(data), rescale(original, window))
    qsm = read_volume(out / "Chimap.nii.gz")[0]
    assert qsm[0, 0, 0] == pytest.approx(0.375)  # padded voxels read as 0 ppm, like the background


def test_labels_pad_and_predictions_come_back_exactly_through_the_cli(swi_inputs):
    out = swi_inputs["dir"]
    prepare_inputs(swi_inputs["qsm"], swi_inputs["t1"], SETTINGS, out / "Chimap.nii.gz", out / "T1w.nii.gz", out / "padding.json")
    assert main(["apply-padding", "--record", str(out / "padding.json"), "--input", str(swi_inputs["labels"]),
                 "--output", str(out / "dseg_model.nii.gz")]) == 0
    assert main(["apply-padding", "--record", str(out / "padding.json"), "--input", str(out / "dseg_model.nii.gz"),
                 "--output", str(out / "dseg_back.nii.gz"), "--inverse"]) == 0
    assert load_nifti(out / "dseg_back.nii.gz").get_data_dtype() == np.uint8
    back, affine = read_volume(out / "dseg_back.nii.gz", dtype=np.uint8)
    np.testing.assert_array_equal(back, swi_inputs["labels_data"])
    np.testing.assert_allclose(affine, SWI_AFFINE)


def test_inputs_off_the_qsm_grid_are_named(swi_inputs):
    out = swi_inputs["dir"]
    small = save_volume(out / "t1_small.nii.gz", np.ones((10, 9, 5)), SWI_AFFINE)
    with pytest.raises(InputError, match="t1_small.nii.gz: shape"):
        prepare_inputs(swi_inputs["qsm"], small, SETTINGS, out / "q.nii.gz", out / "t.nii.gz", out / "p.json")
    moved = SWI_AFFINE.copy()
    moved[0, 3] += 1.0
    shifted = save_volume(out / "t1_shifted.nii.gz", swi_inputs["t1_data"], moved)
    with pytest.raises(InputError, match="t1_shifted.nii.gz: affine differs"):
        prepare_inputs(swi_inputs["qsm"], shifted, SETTINGS, out / "q.nii.gz", out / "t.nii.gz", out / "p.json")
    with pytest.raises(InputError, match="missing.nii.gz: file does not exist"):
        prepare_inputs(out / "missing.nii.gz", swi_inputs["t1"], SETTINGS, out / "q.nii.gz", out / "t.nii.gz", out / "p.json")
    assert not (out / "q.nii.gz").exists()


def test_padding_a_volume_from_another_grid_is_refused(swi_inputs):
    out = swi_inputs["dir"]
    prepare_inputs(swi_inputs["qsm"], swi_inputs["t1"], SETTINGS, out / "Chimap.nii.gz", out / "T1w.nii.gz", out / "padding.json")
    with pytest.raises(InputError, match="Chimap.nii.gz: shape .* differs from .* of the SWI grid"):
        apply_padding(out / "padding.json", out / "Chimap.nii.gz", out / "twice.nii.gz")
    with pytest.raises(InputError, match="chi.nii.gz: shape .* differs from .* of the model grid"):
        apply_padding(out / "padding.json", swi_inputs["qsm"], out / "x.nii.gz", inverse=True)
