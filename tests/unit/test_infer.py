"""Inference: windows and slices reproduce plain forward passes; label maps, times and files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepnuclei.augment import mirror_permutation
from deepnuclei.infer import (
    ModelInfo,
    for_inference,
    PASSES,
    predict,
    predict_logits,
    reference_values,
    segment_files,
)
from deepnuclei.io import InputError, read_volume, save_volume
from deepnuclei.labels import task_classes
from deepnuclei.preprocess import prepare_inputs
from deepnuclei.volumes import GlobalView, pad_to_multiple

TINY = {
    "linus": ({"widths": (4, 8, 8, 8, 8)}, 1, (32, 32)),
    "resunet": ({"widths": (4, 4, 8, 8, 8)}, 2, (16, 16, 16)),
    "dbresunet": ({"local_widths": (4, 8, 8), "global_widths": (4, 8, 8), "fc_width": 8, "rate": (2, 2, 1)}, 2,
                  (16, 16, 8)),
}


pytestmark = pytest.mark.usefixtures("seeded_single_thread")


def tiny_model(name: str, task: str = "stn") -> tuple[torch.nn.Module, ModelInfo]:
    options, channels, patch = TINY[name]
    info = ModelInfo(name, task, channels, patch, options)
    return info.build().eval(), info


@pytest.mark.parametrize("name", ["resunet", "dbresunet"])
def test_sliding_window_on_one_window_is_the_forward_pass(name: str) -> None:
    model, info = tiny_model(name)
    image = torch.rand(info.in_channels, *info.patch_size)
    with torch.inference_mode():
        windowed = predict_logits(model, info, image)
        inputs = [image[None]]
        if info.spec.global_patch:
            inputs.append(GlobalView.of(image, info.spec.global_rate).patch((0, 0, 0), info.patch_size)[None])
        direct = model(*inputs)
        direct = direct[0] if isinstance(direct, tuple) else direct
    torch.testing.assert_close(windowed, direct[0], rtol=1e-4, atol=1e-5)


def test_slice_inference_is_the_forward_pass_of_each_padded_slice() -> None:
    model, info = tiny_model("linus")
    image = torch.rand(1, 20, 24, 5)  # slices across axis 2, padded to 32 x 32
    with torch.inference_mode():
        logits = predict_logits(model, info, image, batch_size=2)
        direct = model(pad_to_multiple(image[..., 3][None], 16, dims=2))[0, :, :20, :24]
    assert logits.shape == (3, 20, 24, 5)
    torch.testing.assert_close(logits[..., 3], direct, rtol=1e-4, atol=1e-5)


def test_blank_slices_share_one_pass_and_get_its_logits() -> None:
    model, info = tiny_model("linus")
    image = torch.rand(1, 20, 24, 6)
    image[..., [0, 4, 5]] = 0  # blank slices, before, between and after slices with signal
    with torch.inference_mode():
        logits = predict_logits(model, info, image, batch_size=2)
        each_slice = [model(pad_to_multiple(image[..., index][None], 16, dims=2))[0, :, :20, :24] for index in range(6)]
    torch.testing.assert_close(logits, torch.stack(each_slice, dim=-1), rtol=1e-4, atol=1e-5)


def test_inference_form_of_linus_gives_the_trained_forms_outputs() -> None:
    """for_inference folds the spectral norm into the weights; the interpolating upsampling applies
    its 1 x 1 convolution before the interpolation: neither changes the output."""
    model, info = tiny_model("linus")
    image = torch.rand(3, 1, 32, 32)
    with torch.inference_mode():
        trained_form = model(image)
        up = model.decoder.ups[0]
        interpolate_first = up[0](up[1](model.encoder(image)[-1]))
        conv_first = up(model.encoder(image)[-1])
        folded = for_inference(model, dims=2)(image)
    assert not any(torch.nn.utils.parametrize.is_parametrized(module) for module in model.modules())
    torch.testing.assert_close(folded, trained_form, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(conv_first, interpolate_first, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["linus", "dbresunet"])
def test_predict_returns_a_label_map_on_the_input_grid_and_its_time(name: str) -> None:
    model, info = tiny_model(name)
    image = np.random.rand(info.in_channels, 36, 30, 20).astype(np.float32)  # several windows, partly overlapping
    prediction = predict(for_inference(model, info.spec.dims), info, image, largest_component=True)
    assert prediction.labels.shape == (36, 30, 20) and prediction.labels.dtype == np.uint8
    assert prediction.labels.max() < info.n_classes
    assert prediction.inference_seconds > 0 and prediction.cleanup_seconds >= 0


@pytest.mark.parametrize("name", ["linus", "dbresunet"])
def test_flip_averaging_sees_a_mirrored_head_as_the_mirror_with_its_sides_swapped(name: str) -> None:
    """With `flip_axis` the prediction is the mean over the image and its left-right mirror, so the mirrored
    image's labels are the mirror of the image's, left and right swapped, but for rounding at near-ties of an
    untrained network (a plain network's are not)."""
    task = "stn" if name == "linus" else "nuclei7"
    model, info = tiny_model(name, task)
    model = for_inference(model, info.spec.dims)
    image = torch.rand(info.in_channels, 32, 32, 16)
    swap = mirror_permutation(task).numpy()

    def disagreement(flip_axis: int | None) -> float:
        labels, mirrored = (predict(model, info, volume, flip_axis=flip_axis).labels for volume in (image, image.flip(1)))
        return float(np.mean(mirrored != swap[labels[::-1]]))

    flipped, plain = disagreement(0), disagreement(None)
    assert flipped < 1e-3 and plain > 0.05


@pytest.mark.parametrize("name", ["linus", "dbresunet"])
def test_the_passes_are_the_direct_and_the_mirrored_label_maps_of_the_flip_average(name: str) -> None:
    """The segmentation samples of deepnuclei.uncertainty: with the mirror, `predict` gives its averaged labels
    and those of the direct pass (what it gives without) and of the mirror image's, mirrored back, sides swapped."""
    task = "stn" if name == "linus" else "nuclei7"
    model, info = tiny_model(name, task)
    model = for_inference(model, info.spec.dims)
    image = torch.rand(info.in_channels, 32, 32, 16)
    prediction = predict(model, info, image, flip_axis=0)
    assert list(prediction.passes) == list(PASSES[1:]) == ["direct", "mirrored"]
    np.testing.assert_array_equal(prediction.passes["direct"], predict(model, info, image).labels)
    swap = mirror_permutation(task).numpy()
    np.testing.assert_array_equal(prediction.passes["mirrored"], swap[predict(model, info, image.flip(1)).labels[::-1]])
    assert (prediction.passes["direct"] != prediction.passes["mirrored"]).mean() > 0.05  # untrained: two opinions
    assert predict(model, info, image).passes == {}


def test_segment_files_writes_the_passes_beside_the_averaged_labels(tmp_path) -> None:
    """With flip and `out_passes`, the inference job's averaged labels are those it writes without them, and each
    pass's labels are that pass's prediction as the workflow writes labels (reference values, same grid)."""
    model, info = tiny_model("dbresunet", task="nuclei7")
    checkpoint = tmp_path / "checkpoint_best.pt"
    torch.save({"info": info.as_dict(), "model": model.state_dict()}, checkpoint)
    affine = np.array([[1.25, 0, 0, -90], [0, 1.25, 0, -110], [0, 0, 2, -40], [0, 0, 0, 1]])
    channels = [save_volume(tmp_path / f"{name}.nii.gz", np.random.rand(20, 18, 10), affine) for name in ("a", "b")]
    segment_files(checkpoint, channels, tmp_path / "alone_dseg.nii.gz", tmp_path / "alone.json", flip=True)
    passes = {name: tmp_path / f"sub-01_desc-{name}_dseg.nii.gz" for name in PASSES[1:]}
    record = segment_files(checkpoint, channels, tmp_path / "dseg.nii.gz", tmp_path / "infer.json", flip=True,
                           out_passes=passes)
    assert record["passes"] == {name: str(path) for name, path in passes.items()}
    written = {"averaged": read_volume(tmp_path / "dseg.nii.gz", dtype=np.uint8)}
    written.update({name: read_volume(path, dtype=np.uint8) for name, path in passes.items()})
    np.testing.assert_array_equal(written["averaged"][0], read_volume(tmp_path / "alone_dseg.nii.gz", dtype=np.uint8)[0])
    values = np.array([0, *reference_values("nuclei7").values()], dtype=np.uint8)
    model = for_inference(model, info.spec.dims)
    image = torch.stack([torch.as_tensor(read_volume(path)[0], dtype=torch.float32) for path in channels])
    prediction = predict(model, info, image, flip_axis=0)  # axis 0 runs left-right in this affine
    for name in PASSES[1:]:
        np.testing.assert_array_equal(written[name][0], values[prediction.passes[name]])
        np.testing.assert_allclose(written[name][1], affine)
    assert (written["direct"][0] != written["mirrored"][0]).any()
    with pytest.raises(ValueError, match="only with flip"):
        segment_files(checkpoint, channels, tmp_path / "x.nii.gz", tmp_path / "x.json", out_passes=passes)


def test_mixed_precision_on_cpu_mostly_agrees() -> None:
    model, info = tiny_model("resunet")
    image = torch.rand(2, 32, 32, 16)
    exact = predict(model, info, image, mixed_precision=False).labels
    bfloat16 = predict(model, info, image, mixed_precision=True).labels
    assert (exact == bfloat16).mean() > 0.9


def test_segment_files_writes_the_label_map_and_the_time(tmp_path) -> None:
    model, info = tiny_model("dbresunet", task="nuclei7")
    checkpoint = tmp_path / "checkpoint_best.pt"
    torch.save({"info": info.as_dict(), "model": model.state_dict()}, checkpoint)  # what load_model reads
    affine = np.array([[1.25, 0, 0, -90], [0, 1.25, 0, -110], [0, 0, 2, -40], [0, 0, 0, 1]])
    channels = [save_volume(tmp_path / f"{name}.nii.gz", np.random.rand(20, 18, 10), affine) for name in ("a", "b")]
    record = segment_files(checkpoint, channels, tmp_path / "sub-01_dseg.nii.gz", tmp_path / "sub-01_infer.json")
    labels, labels_affine = read_volume(tmp_path / "sub-01_dseg.nii.gz", dtype=np.uint8)
    assert labels.shape == (20, 18, 10)
    assert set(np.unique(labels)) <= {0, *reference_values("nuclei7").values()}
    np.testing.assert_allclose(labels_affine, affine)
    written = json.loads((tmp_path / "sub-01_infer.json").read_text())
    assert written["inference_seconds"] == pytest.approx(record["inference_seconds"])
    assert written["inference_seconds"] > 0
    assert written["label_values"]["GP_L"] == 19 and written["label_values"]["DN_R"] == 16  # GP as one label
    assert written["model"] == "dbresunet" and written["shape"] == [20, 18, 10]
    assert written["parameters"] == sum(parameter.numel() for parameter in model.parameters())  # efficiency tables



def test_segment_files_writes_the_labels_uncleaned(tmp_path, monkeypatch) -> None:
    """The labels as the network gives them: neither paper keeps only each structure's largest component
    (the workflow did, by default, for the networks only and not for the atlas baselines)."""
    def no_clean_up(labels):
        raise AssertionError("segment_files cleaned the labels up")

    monkeypatch.setattr("deepnuclei.infer.keep_largest_components", no_clean_up)
    model, info = tiny_model("dbresunet", task="nuclei7")
    checkpoint = tmp_path / "checkpoint_best.pt"
    torch.save({"info": info.as_dict(), "model": model.state_dict()}, checkpoint)
    channels = [save_volume(tmp_path / f"{name}.nii.gz", np.random.rand(20, 18, 10), np.eye(4)) for name in ("a", "b")]
    segment_files(checkpoint, channels, tmp_path / "sub-01_dseg.nii.gz", tmp_path / "sub-01_infer.json")
    with pytest.raises(AssertionError, match="cleaned"):  # the viewer's option still reaches it
        predict(model, info, torch.rand(2, 20, 18, 10), largest_component=True)


def test_segment_files_puts_the_labels_back_on_the_swi_grid(tmp_path) -> None:
    model, info = tiny_model("linus")
    checkpoint = tmp_path / "checkpoint_best.pt"
    torch.save({"info": info.as_dict(), "model": model.state_dict()}, checkpoint)
    swi_affine = np.diag([1.25, 1.25, 2.0, 1.0])
    qsm = save_volume(tmp_path / "qsm.nii.gz", np.random.rand(14, 18, 6).astype(np.float32), swi_affine)
    t1 = save_volume(tmp_path / "t1.nii.gz", np.random.rand(14, 18, 6).astype(np.float32), swi_affine)
    settings = {"matrix": [16, 16, 8], "qsm_clip_ppb": [-150, 250], "t1_clip": [0, 1]}
    padded = {name: tmp_path / f"model_{name}.nii.gz" for name in ("qsm", "t1")}
    prepare_inputs(qsm, t1, settings, padded["qsm"], padded["t1"], tmp_path / "padding.json")

    segment_files(checkpoint, [padded["t1"]], tmp_path / "dseg.nii.gz", tmp_path / "infer.json",
                  padding_record=tmp_path / "padding.json")
    labels, affine = read_volume(tmp_path / "dseg.nii.gz", dtype=np.uint8)
    assert labels.shape == (14, 18, 6)  # the y axis, longer than the matrix, was cropped and is restored
    np.testing.assert_allclose(affine, swi_affine)
    with pytest.raises(InputError, match="model grid"):  # inputs that are not the record's
        segment_files(checkpoint, [t1], tmp_path / "x.nii.gz", tmp_path / "x.json", padding_record=tmp_path / "padding.json")


def test_segment_files_drops_misplaced_pieces_only_where_asked(tmp_path, monkeypatch) -> None:
    """With `drop_misplaced`, a piece of a structure far from where training put it is not written (the
    network's labels are given here: a caudate where training saw it, and a piece of it far away)."""
    from deepnuclei.infer import Prediction
    from deepnuclei.training_range import anatomy_statistics, input_statistics, training_range

    model, info = tiny_model("dbresunet", task="nuclei7")
    classes = task_classes("nuclei7")
    truth = np.zeros((20, 18, 10), np.uint8)
    truth[2:6, 2:6, 2:5], truth[12:16, 10:14, 5:8] = 1, 2  # CN_L and CN_R where training saw them
    known = training_range([input_statistics(np.random.rand(2, 20, 18, 10))],
                           [anatomy_statistics(truth, np.eye(4), classes)], classes)
    checkpoint = tmp_path / "checkpoint_best.pt"
    torch.save({"info": info.as_dict(), "model": model.state_dict(), "training_range": known}, checkpoint)
    predicted = truth.copy()
    predicted[17:20, 0:3, 0:3] = 1  # CN_L again, 17 mm and more from where it belongs
    monkeypatch.setattr("deepnuclei.infer.predict", lambda *args, **kwargs: Prediction(predicted.copy(), 0.1, 0.0))
    channels = [save_volume(tmp_path / f"{name}.nii.gz", np.random.rand(20, 18, 10), np.eye(4)) for name in ("a", "b")]
    written = {}
    for drop in (False, True):
        record = segment_files(checkpoint, channels, tmp_path / f"{drop}_dseg.nii.gz", tmp_path / f"{drop}.json",
                               drop_misplaced=drop)
        written[drop] = read_volume(tmp_path / f"{drop}_dseg.nii.gz", dtype=np.uint8)[0]
        assert record["drop_misplaced"] is drop
    caudate_left = reference_values("nuclei7")["CN_L"]
    assert (written[False] == caudate_left).sum() == 48 + 27 and (written[True] == caudate_left).sum() == 48
    assert not written[True][17:20, 0:3, 0:3].any()


def test_the_inference_job_writes_the_passes_its_plan_names(tmp_path) -> None:
    """`deepnuclei infer-session` (the workflow's inference job) with inference.flip writes the averaged labels and,
    where the plan file names them (`InferencePlan.passes`), each pass's labels on the SWI grid beside them."""
    from deepnuclei.cli import main
    from deepnuclei.plan_files import InferencePlan, write_plan_file

    model, info = tiny_model("linus")
    checkpoint = tmp_path / "checkpoint_best.pt"
    torch.save({"info": info.as_dict(), "model": model.state_dict()}, checkpoint)
    swi_affine = np.diag([1.25, 1.25, 2.0, 1.0])
    images = {name: save_volume(tmp_path / f"{name}.nii.gz", np.random.rand(14, 18, 6).astype(np.float32), swi_affine)
              for name in ("qsm", "t1")}
    folder = tmp_path / "sub-01"
    settings = {"matrix": [16, 16, 8], "qsm_clip_ppb": [-150, 250], "t1_clip": [0, 1]}
    prepare_inputs(images["qsm"], images["t1"], settings, tmp_path / "model_qsm.nii.gz", folder / "sub-01_T1w.nii.gz",
                   folder / "sub-01_padding.json")
    stem = str(tmp_path / "sub-{subject}" / "sub-{subject}_")
    plan = InferencePlan("linus", str(checkpoint), [stem + "T1w.nii.gz"], stem + "padding.json", stem + "dseg.nii.gz",
                         stem + "other.nii.gz", stem + "inference.json", [], [],
                         {name: stem + f"desc-{name}_dseg.nii.gz" for name in PASSES[1:]})
    write_plan_file(tmp_path / "infer_linus.json", plan)
    write_plan_file(tmp_path / "settings_inference.json", {"overlap": 0.25, "batch_size": 4, "mixed_precision": False,
                                                            "flip": True, "drop_misplaced": False})
    assert main(["infer-session", "--plans", str(tmp_path / "infer_linus.json"), "--subject", "01",
                 "--settings", str(tmp_path / "settings_inference.json"), "--threads", "1"]) == 0
    for name in PASSES[1:]:
        labels, affine = read_volume(folder / f"sub-01_desc-{name}_dseg.nii.gz", dtype=np.uint8)
        assert labels.shape == (14, 18, 6) and set(np.unique(labels)) <= {0, *reference_values("stn").values()}
        np.testing.assert_allclose(affine, swi_affine)
    assert json.loads((folder / "sub-01_inference.json").read_text())["passes"]["mirrored"].endswith(
        "sub-01_desc-mirrored_dseg.nii.gz")
