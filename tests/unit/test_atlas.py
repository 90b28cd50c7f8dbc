"""Atlas baselines on tiny demo subjects (single template; joint label fusion), and the fusion itself."""

from __future__ import annotations

import ants
import numpy as np
import pytest

from deepnuclei.atlas import (AtlasParams, joint_label_fusion, read_ants, read_atlas, region_around, save_labels,
                              segment_with_atlases)
from deepnuclei.io import InputError, read_volume
from deepnuclei.labels import STRUCTURES

LARGE_NUCLEI = ("PUT", "THA", "CN")


def dice_per_nucleus(prediction: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    scores = {}
    for structure in STRUCTURES:
        predicted, true = prediction == structure.label, reference == structure.label
        scores[structure.name] = 2 * np.sum(predicted & true) / max(np.sum(predicted) + np.sum(true), 1)
    return scores


def t1_path(cohort: dict, subject: str) -> str:
    return str(cohort["bids"] / f"sub-{subject}" / "anat" / f"sub-{subject}_T1w.nii.gz")


def labels_path(cohort: dict, subject: str) -> str:
    return str(cohort["truth"] / f"sub-{subject}" / f"sub-{subject}_space-T1w_dseg.nii.gz")


@pytest.fixture(scope="module")
def atlas_results(tiny_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("atlas")
    template = (tiny_cohort["template"] / "tpl-MNI152_T1w.nii.gz", tiny_cohort["template"] / "tpl-MNI152_dseg.nii.gz")
    atlases = {"atlas": [template],
               "atlas-jlf": [(t1_path(tiny_cohort, s), labels_path(tiny_cohort, s)) for s in ("02", "03", "04")]}
    reference = read_volume(labels_path(tiny_cohort, "01"), dtype=np.uint8)[0]
    results = {}
    for name, method_atlases in atlases.items():
        labels = segment_with_atlases(t1_path(tiny_cohort, "01"), method_atlases, AtlasParams())
        path = save_labels(labels, out / f"{name}.nii.gz")
        results[name] = dice_per_nucleus(read_volume(path, dtype=np.uint8)[0], reference)
    return results


@pytest.mark.slow  # the fixture registers 4 atlases: half a minute
def test_single_atlas_segments_each_large_nucleus(atlas_results):
    large = {name: score for name, score in atlas_results["atlas"].items() if name.split("_")[0] in LARGE_NUCLEI}
    assert min(large.values()) >= 0.6, large


@pytest.mark.slow
def test_joint_label_fusion_is_not_worse_on_average(atlas_results):
    assert np.mean(list(atlas_results["atlas-jlf"].values())) >= np.mean(list(atlas_results["atlas"].values()))


def blobs(shift: int) -> np.ndarray:
    """Three boxes with labels 3, 7 and 12 (not contiguous, not starting at 1) on a background of 0."""
    labels = np.zeros((24, 24, 24), dtype=np.float32)
    labels[3 + shift:9 + shift, 3:9, 3:9] = 3
    labels[12:18, 12 + shift:18 + shift, 3:9] = 7
    labels[12:18, 3:9, 12:18 + shift] = 12
    return labels


def test_fusion_keeps_every_label_and_the_background():
    rng = np.random.default_rng(0)

    def image(labels: np.ndarray) -> ants.ANTsImage:
        return ants.from_numpy(labels * 10 + rng.normal(0, 1, labels.shape).astype(np.float32))

    atlas_labels = [blobs(shift) for shift in (0, 1, 2)]
    atlas_labels[2][atlas_labels[2] == 12] = 0  # a label one atlas lacks
    target = blobs(1)
    fused = joint_label_fusion(image(target), [image(labels) for labels in atlas_labels],
                               [ants.from_numpy(labels) for labels in atlas_labels], AtlasParams(jlf_patch_radius=1))
    fused = fused.numpy()
    assert set(np.unique(fused)) == {0, 3, 7, 12}
    for label in (0, 3, 7, 12):
        overlap = 2 * np.sum((fused == label) & (target == label)) / (np.sum(fused == label) + np.sum(target == label))
        assert overlap > 0.9, (label, overlap)


def test_registration_region_is_the_labels_box_widened_within_the_grid():
    labels = np.zeros((30, 30, 30), dtype=np.float32)
    labels[10:15, 1:20, 20:29] = 5
    subject = ants.from_numpy(np.ones_like(labels), spacing=(2.0, 2.0, 2.0))
    region = region_around(subject, [subject.new_image_like(labels)], margin_mm=4.0)  # 2 voxels
    assert region.shape == (2 + 5 + 2, 1 + 19 + 2, 2 + 9 + 1)  # clipped at both ends of the grid


def test_labels_on_another_grid_than_their_image_are_rejected(tiny_cohort):
    with pytest.raises(InputError, match="differs from .*the atlas T1"):
        segment_with_atlases(t1_path(tiny_cohort, "01"),
                             [(tiny_cohort["template"] / "tpl-MNI152_T1w.nii.gz", labels_path(tiny_cohort, "02"))],
                             AtlasParams())


def test_images_stored_with_a_trailing_axis_read_as_the_3d_files(tiny_cohort, with_trailing_axis, tmp_path):
    """ANTs reads an (X, Y, Z, 1) NIfTI as 3D itself; the file checks before it must too."""
    t1, labels = t1_path(tiny_cohort, "02"), labels_path(tiny_cohort, "02")
    t1_4d, labels_4d = with_trailing_axis(t1, tmp_path), with_trailing_axis(labels, tmp_path)
    pairs = [(read_ants(t1), read_ants(t1_4d)), *zip(read_atlas(t1, labels), read_atlas(t1_4d, labels_4d))]
    for three_d, trailing in pairs:
        assert trailing.dimension == 3
        assert np.allclose(trailing.origin, three_d.origin) and np.allclose(trailing.direction, three_d.direction)
        np.testing.assert_array_equal(trailing.numpy(), three_d.numpy())
