"""2.5D LiNUS: the spec's channels, the datasets' and inference's slice stacks, a tiny training, and
the 3D-consistency metrics that compare it with 2D LiNUS."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers.training import blob_subjects

from deepnuclei.data import SliceDataset, Subject
from deepnuclei.volumes import context_stacks, pad_to_multiple
from deepnuclei.infer import ModelInfo, load_model, predict, predict_logits, segment_files
from deepnuclei.io import read_volume, save_volume
from deepnuclei.metrics import connected_components, consecutive_slice_dice, slice_consistency
from deepnuclei.models import get_spec, models_table, parameters_of
from deepnuclei.models.linus import LINUS_WIDTHS
from deepnuclei.train import train

TINY_WIDTHS = (4, 8, 8, 8, 8)


pytestmark = pytest.mark.usefixtures("seeded_single_thread")


# ---- the spec ---------------------------------------------------------------------------------------


def test_spec_builds_k_slices_of_every_channel_and_lists_its_parameters() -> None:
    spec = get_spec("linus25d")
    assert spec.context_slices == 5 and spec.dims == 2
    model = spec.build(in_channels=2)
    assert next(module for module in model.modules() if isinstance(module, torch.nn.Conv2d)).in_channels == 10
    extra_first_conv_weights = (5 - 1) * 3 * 3 * LINUS_WIDTHS[0]
    assert parameters_of(spec) == parameters_of(get_spec("linus")) + extra_first_conv_weights
    row = models_table().set_index("model").loc["linus25d"]
    assert (row.in_channels, row.context_slices, row.params) == (1, 5, parameters_of(spec))


@pytest.mark.parametrize("name, context", [("linus25d", 4), ("linus25d", -1), ("resunet", 3)])
def test_context_slices_are_odd_and_for_2d_models_only(name: str, context: int) -> None:
    with pytest.raises(ValueError, match="context_slices"):
        get_spec(name).with_options(context_slices=context)


def test_model_info_round_trips_the_context_through_a_checkpoint_record() -> None:
    info = ModelInfo("linus25d", "stn", 2, (32, 32), {"widths": TINY_WIDTHS, "context_slices": 3})
    restored = ModelInfo.from_dict(json.loads(json.dumps(info.as_dict())))
    assert restored.spec.context_slices == 3
    assert restored.build()(torch.rand(1, 6, 32, 32)).shape == (1, 3, 32, 32)  # background, STN_L, STN_R


# ---- slice stacks: training samples and inference ---------------------------------------------------


def test_stacks_hold_each_channels_neighbours_in_order_with_zeros_past_the_ends() -> None:
    slices = torch.tensor([1.0, 2.0, 3.0, 4.0])[:, None, None, None] * torch.tensor([1.0, 100.0])[:, None, None]
    stacks = context_stacks(slices, torch.tensor([0, 3]), 3)
    assert stacks.shape == (2, 6, 1, 1)
    assert stacks.flatten(1).tolist() == [[0, 1, 2, 0, 100, 200], [3, 4, 0, 300, 400, 0]]


def numbered_subject(shape=(20, 18, 6), channels: int = 2) -> Subject:
    """Each voxel's value is 100 * channel + slice + 1 (slices across axis 2); a ball labelled 1."""
    image = 100 * torch.arange(channels)[:, None, None, None] + torch.arange(1, shape[2] + 1) + torch.zeros(shape)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    ball = ((grid - np.array([10, 9, 3])[:, None, None, None]) ** 2).sum(0) <= 9
    return Subject("s", image.float(), torch.from_numpy(ball.astype(np.uint8)), np.eye(4))


def test_dataset_stacks_the_sampled_slice_with_its_neighbours_and_keeps_its_label() -> None:
    subject, context = numbered_subject(), 5
    common = dict(slice_axis=2, size_multiple=16, length=24, task="stn", crop_size=(16, 16))
    plain, stacked = SliceDataset([subject], **common), SliceDataset([subject], **common, context_slices=context)
    centres = [channel * context + context // 2 for channel in range(2)]
    sampled = set()
    for index in range(len(plain)):
        one, many = plain[index], stacked[index]
        assert many["image"].shape == (2 * context, 16, 16)
        torch.testing.assert_close(many["image"][centres], one["image"])  # the same draws: context takes none
        assert torch.equal(many["label"], one["label"])
        inside = one["image"][0] > 0  # the crop may leave the slice
        centre = int(one["image"][0][inside][0]) - 1
        sampled.add(centre)
        for channel in range(2):
            for offset in range(context):
                neighbour = centre + offset - context // 2
                expected = 100 * channel + neighbour + 1 if 0 <= neighbour < 6 else 0
                assert torch.all(many["image"][channel * context + offset][inside] == expected)
    assert {0, 5} <= sampled  # both ends, where the stacks hold zeros


def tiny_model(context: int = 3, channels: int = 2) -> tuple[torch.nn.Module, ModelInfo]:
    info = ModelInfo("linus25d", "stn", channels, (32, 32), {"widths": TINY_WIDTHS, "context_slices": context})
    return info.build().eval(), info


def forward_of_each_stack(model: torch.nn.Module, image: torch.Tensor, context: int) -> torch.Tensor:
    """(classes, *volume): each slice across axis 2 stacked by hand with its neighbours, padded and passed."""
    half, depth = context // 2, image.shape[-1]
    logits = []
    for centre in range(depth):
        stack = [image[channel, ..., centre + offset] if 0 <= centre + offset < depth else torch.zeros(20, 24)
                 for channel in range(len(image)) for offset in range(-half, half + 1)]
        logits.append(model(pad_to_multiple(torch.stack(stack)[None], 16, dims=2))[0, :, :20, :24])
    return torch.stack(logits, dim=-1)


def test_slice_inference_is_the_forward_pass_of_each_stack() -> None:
    model, info = tiny_model()
    image = torch.rand(2, 20, 24, 5)
    with torch.inference_mode():
        logits = predict_logits(model, info, image, batch_size=2)
        direct = forward_of_each_stack(model, image, 3)
    assert logits.shape == (3, 20, 24, 5)
    torch.testing.assert_close(logits, direct, rtol=1e-4, atol=1e-5)


def test_only_slices_with_a_blank_stack_share_the_blank_pass() -> None:
    model, info = tiny_model()
    image = torch.rand(2, 20, 24, 8)
    image[..., [0, 1, 3, 6, 7]] = 0  # blank stacks: slices 0 (beyond the end, 0, 1) and 7; of 1, 3, 6 not
    passed = []
    model.register_forward_pre_hook(lambda module, inputs: passed.append(len(inputs[0])))
    with torch.inference_mode():
        logits = predict_logits(model, info, image, batch_size=4)
        passed_by_predict = sum(passed)
        direct = forward_of_each_stack(model, image, 3)
    assert passed_by_predict == 1 + 6  # the blank stack, then each slice whose stack has signal
    torch.testing.assert_close(logits, direct, rtol=1e-4, atol=1e-5)


# ---- training and segmentation ----------------------------------------------------------------------


def test_linus25d_trains_and_segments_files(tmp_path) -> None:
    subjects = blob_subjects(2, channels=1)
    config = dict(task="stn", max_epochs=1, iterations_per_epoch=2, batch_size=4, patch_size=(16, 16))
    summary = train("linus25d", {"widths": TINY_WIDTHS, "context_slices": 3}, subjects[:1], subjects[1:],
                    tmp_path / "run", config)
    assert summary["epochs"] == 1
    model, info = load_model(tmp_path / "run" / "checkpoint_best.pt", torch.device("cpu"))
    assert info.spec.context_slices == 3 and info.in_channels == 1
    labels = predict(model, info, subjects[1].image).labels
    image = save_volume(tmp_path / "image.nii.gz", subjects[1].image[0].numpy(), np.eye(4))
    segment_files(tmp_path / "run" / "checkpoint_best.pt", [image], tmp_path / "dseg.nii.gz",
                  tmp_path / "infer.json", device=torch.device("cpu"))
    written = read_volume(tmp_path / "dseg.nii.gz", dtype=np.uint8)[0]
    assert written.shape == labels.shape == (32, 32, 32)
    assert np.array_equal(written > 0, labels > 0)


# ---- 3D consistency -----------------------------------------------------------------------------------


def cylinder(first: int = 2, last: int = 8) -> np.ndarray:
    """A 4 x 4 square on slices first..last across axis 2 of a 10^3 grid."""
    mask = np.zeros((10, 10, 10), bool)
    mask[3:7, 3:7, first : last + 1] = True
    return mask


def test_a_cylinder_is_consistent_from_slice_to_slice_and_in_one_piece() -> None:
    assert consecutive_slice_dice(cylinder(), axis=2) == 1.0
    assert connected_components(cylinder()) == 1
    assert consecutive_slice_dice(cylinder(), axis=0) == 1.0  # across the other axes: the same squares


def test_a_missed_middle_slice_splits_the_structure_and_lowers_the_dice() -> None:
    mask = cylinder()
    mask[..., 5] = False
    assert consecutive_slice_dice(mask, axis=2) == pytest.approx(4 / 6)  # pairs 4-5 and 5-6 of 6 score 0
    assert connected_components(mask) == 2


def test_a_shifted_slice_halves_the_dice_of_its_two_pairs() -> None:
    mask = cylinder()
    mask[..., 5] = np.roll(mask[..., 5], 2, axis=0)  # half of the square moves off its neighbours
    assert consecutive_slice_dice(mask, axis=2) == pytest.approx((4 + 2 * 0.5) / 6)
    assert connected_components(mask) == 1


def test_components_are_26_connected_and_single_slices_have_no_pairs() -> None:
    corners = np.zeros((6, 6, 6), bool)
    corners[1:3, 1:3, 1:3] = corners[3:5, 3:5, 3:5] = True  # touching at a corner only
    assert connected_components(corners) == 1
    assert np.isnan(consecutive_slice_dice(cylinder(4, 4), axis=2))
    assert connected_components(np.zeros((4, 4, 4), bool)) == 0


def test_slice_consistency_scores_each_structure_of_a_label_map() -> None:
    labels = cylinder().astype(np.uint8)
    labels[..., 5] = 0
    labels[0, 0, 0] = 2
    rows = slice_consistency(labels, {"STN_L": (1,), "STN": (1, 2), "GPi_L": (3,)}, axis=2)
    assert [row["structure"] for row in rows] == ["STN_L", "STN", "GPi_L"]
    assert rows[0]["slice_dice"] == pytest.approx(4 / 6) and rows[0]["components"] == 2
    assert rows[1]["components"] == 3
    assert np.isnan(rows[2]["slice_dice"]) and rows[2]["components"] == 0
