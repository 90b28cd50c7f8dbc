"""Training data: splits, crops, the global patch geometry, augmentation, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from deepnuclei.augment import Augmentation, Augmenter, mirror_permutation
from deepnuclei.data import PatchDataset, SliceDataset, Subject, load_subject
from deepnuclei.io import InputError, save_volume
from deepnuclei.train import loader_workers
from deepnuclei.volumes import GlobalView, block_average, block_majority, crop, crop_interpolated


def ball_subject(name: str = "s", shape=(24, 24, 24), centre=(8, 12, 12), radius: float = 3.0,
                 channels: int = 2) -> Subject:
    """Background 0.2, a ball of label 1 (left STN in task 'stn') at 0.8."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    inside = ((grid - np.array(centre)[:, None, None, None]) ** 2).sum(0) <= radius**2
    image = np.repeat(np.where(inside, 0.8, 0.2).astype(np.float32)[None], channels, 0)
    return Subject(name, torch.from_numpy(image), torch.from_numpy(inside.astype(np.uint8)), np.eye(4))


def test_crop_fills_outside_with_zeros() -> None:
    array = torch.arange(1, 17.0).reshape(1, 4, 4)
    box = crop(array, (-1, 2), (3, 3))
    assert box.shape == (1, 3, 3)
    assert torch.equal(box[0, 0], torch.zeros(3))  # row -1
    assert torch.equal(box[0, 1], torch.tensor([3.0, 4.0, 0.0]))
    assert crop(array, (10, 10), (2, 2)).abs().sum() == 0


def test_crop_interpolated_is_exact_on_whole_voxels_and_linear_between() -> None:
    array = torch.rand(2, 6, 7, 8)
    assert torch.equal(crop_interpolated(array, (1.0, 2.0, 0.0), (3, 3, 3)), crop(array, (1, 2, 0), (3, 3, 3)))
    half = crop_interpolated(array, (1.5, 2.0, 0.0), (3, 3, 3))
    expected = (crop(array, (1, 2, 0), (3, 3, 3)) + crop(array, (2, 2, 0), (3, 3, 3))) / 2
    torch.testing.assert_close(half, expected)


def test_block_average_and_majority() -> None:
    labels = torch.tensor([[0, 1, 1, 2, 2]], dtype=torch.uint8)  # one row; blocks of 2 along the row
    average = block_average(labels[None].float(), (1, 2))
    torch.testing.assert_close(average, torch.tensor([[[0.5, 1.5, 1.0]]]))  # last block zero-padded
    # (0, 1): a tie, to the lower class; (2, outside): 2, as the padding counts for no class
    assert block_majority(labels, (1, 2), 3).tolist() == [[0, 1, 2]]


@pytest.mark.parametrize("local_start", [(0, 24, 24), (0, 25, 23)])  # whole and half-voxel global starts
def test_global_patch_shares_the_local_patch_centre(local_start) -> None:
    shape, size, rate = (8, 64, 64), (8, 16, 16), (1, 2, 2)
    coordinates = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in shape], indexing="ij"))
    view = GlobalView.of(coordinates, rate)
    local = crop(coordinates, local_start, size)
    global_patch = view.patch(local_start, size)
    # block averages of coordinates are the block centres, so the patch means are the patch centres
    torch.testing.assert_close(global_patch.mean((1, 2, 3)), local.mean((1, 2, 3)))
    extent = global_patch.amax((1, 2, 3)) - global_patch.amin((1, 2, 3))
    torch.testing.assert_close(extent[1:], torch.tensor([30.0, 30.0]))  # rate times the field of view


def test_mirror_permutation_swaps_left_and_right() -> None:
    assert mirror_permutation("stn").tolist() == [0, 2, 1]
    swap = mirror_permutation("nuclei7")
    assert swap[0] == 0 and torch.equal(swap[swap], torch.arange(15)) and (swap[1:] != torch.arange(1, 15)).all()


def test_flip_across_the_left_right_axis_swaps_classes() -> None:
    augmenter = Augmenter(Augmentation(flip_axes=(0,)), ["image", "label"], "stn", (0, 1, 2))
    label = torch.zeros(1, 4, 2, 2)
    label[0, 0] = 1  # left STN at x = 0
    sample = {"image": label.clone(), "label": label}
    outcomes = {
        tuple(out["label"][0, :, 0, 0].tolist())
        for seed in range(8)
        for out in [augmenter(dict(sample), np.random.default_rng(seed), left_right_axis=0)]
    }
    assert outcomes == {(1, 0, 0, 0), (0, 0, 0, 2)}  # unflipped, or mirrored and now right STN


def test_patch_dataset_is_reproducible_and_oversamples_foreground() -> None:
    subjects = [ball_subject("a"), ball_subject("b", centre=(14, 10, 12))]
    always = PatchDataset(subjects, (8, 8, 8), 16, "stn", seed=3, foreground_fraction=1.0, rate=(2, 2, 2))
    samples = [always[i] for i in range(16)]
    assert all((sample["label"] > 0).any() for sample in samples)
    assert set(samples[0]) == {"image", "label", "global_image", "global_label"}
    assert all(value.shape[-3:] == (8, 8, 8) for value in samples[0].values())
    assert samples[0]["label"].dtype == torch.int64 and samples[0]["image"].dtype == torch.float32
    assert all(torch.equal(samples[1][key], always[1][key]) for key in samples[1])
    always.set_epoch(1)
    assert not torch.equal(always[1]["image"], samples[1]["image"])
    never = PatchDataset(subjects, (8, 8, 8), 32, "stn", seed=3, foreground_fraction=0.0)
    assert sum(bool((never[i]["label"] > 0).any()) for i in range(32)) < 24


def test_augmented_patches_keep_images_and_labels_aligned() -> None:
    augmentation = Augmentation(flip_axes=(0, 1, 2), rotate_degrees=30, rotation_axis=2, scale=0.1)
    dataset = PatchDataset([ball_subject(radius=4)], (8, 8, 8), 8, "stn", foreground_fraction=1.0, rate=(2, 2, 1),
                           augmentation=augmentation)
    assert dataset.sample_size == (12, 12, 8)  # enlarged in the rotation plane
    for index in range(8):
        sample = dataset[index]
        for prefix in ("", "global_"):
            image, label = sample[f"{prefix}image"][0], sample[f"{prefix}label"]
            assert image.shape == label.shape == (8, 8, 8)
            if (label > 0).any() and (label == 0).any():
                assert image[label > 0].mean() > image[label == 0].mean() + 0.2


def test_slice_dataset_pads_slices_and_oversamples_foreground() -> None:
    subject = ball_subject(shape=(20, 24, 30), channels=1)
    plain = SliceDataset([subject], slice_axis=2, size_multiple=16, length=4, task="stn")
    sample = plain[0]
    assert sample["image"].shape == (1, 32, 32) and sample["label"].shape == (32, 32)
    assert sample["image"][:, 20:].abs().max() == 0 and sample["image"][:, :, 24:].abs().max() == 0
    augmentation = Augmentation(rotate_degrees=10, scale=0.1, elastic_magnitude=1.0, noise_std=0.01)
    dataset = SliceDataset([subject], 2, 16, 12, "stn", foreground_fraction=1.0, augmentation=augmentation)
    for index in range(12):
        sample = dataset[index]
        image, label = sample["image"][0], sample["label"]
        assert image.shape == label.shape == (32, 32)
        assert (label > 0).any() and image[label > 0].mean() > image[label == 0].mean() + 0.3


def test_loader_workers_draw_the_same_batches_as_the_main_process() -> None:
    """Samples are seeded by (seed, epoch, index), so data-loading processes (the default beside a GPU)
    change no batch, augmentation included."""
    augmentation = Augmentation(rotate_degrees=10, scale=0.1, elastic_magnitude=1.0, noise_std=0.01)
    dataset = SliceDataset([ball_subject(shape=(20, 24, 30), channels=1)], 2, 16, 8, "stn", seed=5,
                           augmentation=augmentation)
    dataset.set_epoch(2)
    batches = [list(DataLoader(dataset, batch_size=4, num_workers=workers)) for workers in (0, 2)]
    for in_main, in_workers in zip(*batches):
        assert all(torch.equal(in_main[key], in_workers[key]) for key in in_main)
    assert loader_workers(None, torch.device("cpu")) == 0 and loader_workers(3, torch.device("cpu")) == 3


def test_slice_crops_hold_the_structure_in_foreground_samples() -> None:
    subject = ball_subject(shape=(40, 48, 30), centre=(30, 10, 15), channels=1)
    dataset = SliceDataset([subject], 2, 16, 40, "stn", foreground_fraction=0.5, crop_size=(12, 16))
    foreground = 0
    for index in range(40):
        sample = dataset[index]
        assert sample["image"].shape == (1, 16, 16) and sample["label"].shape == (16, 16)  # rounded up to 16
        foreground += bool(sample["label"].any())
        if sample["label"].any():  # the crop cuts the image where the labels are: the ball is bright there
            assert sample["image"][0][sample["label"] > 0].min() == pytest.approx(0.8)
    assert 10 <= foreground <= 35  # about half, by the foreground fraction (the rest may catch it by chance)


def test_load_subject_reads_channels_and_remaps_labels(tmp_path) -> None:
    affine = np.diag([1.25, 1.25, 2.0, 1.0])
    dseg = np.zeros((6, 7, 8), np.int16)
    dseg[1, 1, 1], dseg[2, 2, 2], dseg[3, 3, 3] = 17, 18, 5  # STN_L, STN_R, GPe_L
    paths = [save_volume(tmp_path / f"{name}.nii.gz", np.random.rand(6, 7, 8), affine) for name in ("t1", "qsm")]
    save_volume(tmp_path / "dseg.nii.gz", dseg, affine, np.int16)
    subject = load_subject("01", paths, tmp_path / "dseg.nii.gz", "stn")
    assert subject.image.shape == (2, 6, 7, 8)
    assert subject.labels[1, 1, 1] == 1 and subject.labels[2, 2, 2] == 2 and subject.labels[3, 3, 3] == 0
    assert subject.left_right_axis == 0
    save_volume(tmp_path / "small.nii.gz", np.zeros((6, 7, 7)), affine)
    with pytest.raises(InputError, match="small.nii.gz"):
        load_subject("01", [paths[0], tmp_path / "small.nii.gz"], None, "stn")


def test_intensity_augmentation_changes_each_channel_on_its_own_and_leaves_the_labels() -> None:
    """Scale, shift, shading and blur: images differ from sample to sample, channels independently, labels not."""
    augmentation = Augmentation(intensity_scale=0.3, intensity_shift=0.1, bias_field=0.3, blur_sigma=1.0)
    augmenter = Augmenter(augmentation, ["image", "label"], "stn", (0, 1, 2))
    image = torch.full((2, 12, 12, 12), 0.5)
    label = (torch.rand(1, 12, 12, 12) > 0.5).float()
    means = []
    for seed in range(8):
        sample = augmenter({"image": image.clone(), "label": label.clone()}, np.random.default_rng(seed), 0)
        torch.testing.assert_close(sample["label"], label)
        means.append(sample["image"].mean(dim=(1, 2, 3)))
    means = torch.stack(means)
    assert means.std(dim=0).min() > 0.02  # each channel varies between samples
    assert not torch.allclose(means[:, 0], means[:, 1], atol=1e-3)  # and not in step with the other


def test_spots_are_smooth_local_bumps_of_the_amplitude_asked_for() -> None:
    """Each sample gets 1 to 3 Gaussian spots per channel, at most the amplitude each, most of the image untouched."""
    augmenter = Augmenter(Augmentation(spots=0.4), ["image", "label"], "stn", (0, 1, 2))
    image, label = torch.zeros(2, 48, 48, 24), torch.zeros(1, 48, 48, 24)
    for seed in range(6):
        sample = augmenter({"image": image.clone(), "label": label.clone()}, np.random.default_rng(seed), 0)
        added = sample["image"]
        assert torch.equal(sample["label"], label)
        assert 0 < added.abs().max() <= 3 * 0.4 + 1e-6
        assert (added.abs() > 0.05).float().mean() < 0.1  # spots, not a shading
        gradient = (added[:, 1:] - added[:, :-1]).abs().max()
        assert gradient < 0.4 / 1.5  # smooth: sd at least 1.5 voxels
