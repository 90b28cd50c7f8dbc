"""Atlas baselines on tiny demo subjects: single template (affine + SyN) and joint label fusion."""

from __future__ import annotations

import numpy as np
import pytest

from deepnuclei.atlas import AtlasParams, fuse_atlases, propagate_atlas, save_labels
from deepnuclei.io import InputError, read_volume
from deepnuclei.labels import STRUCTURES


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
    params = AtlasParams()
    single = propagate_atlas(t1_path(tiny_cohort, "01"), tiny_cohort["template"] / "tpl-MNI152_T1w.nii.gz",
                             tiny_cohort["template"] / "tpl-MNI152_dseg.nii.gz", params)
    fused = fuse_atlases(t1_path(tiny_cohort, "01"),
                         [(t1_path(tiny_cohort, s), labels_path(tiny_cohort, s)) for s in ("02", "03", "04")], params)
    reference = read_volume(labels_path(tiny_cohort, "01"), dtype=np.uint8)[0]
    results = {}
    for name, image in (("atlas", single), ("atlas-jlf", fused)):
        path = save_labels(image, out / f"{name}.nii.gz")
        results[name] = dice_per_nucleus(read_volume(path, dtype=np.uint8)[0], reference)
    return results


def test_single_atlas_segments_the_large_nuclei(atlas_results):
    large = [score for name, score in atlas_results["atlas"].items() if name.split("_")[0] in ("PUT", "THA", "CN")]
    assert np.mean(large) >= 0.6, atlas_results["atlas"]


def test_joint_label_fusion_is_not_worse_on_average(atlas_results):
    assert np.mean(list(atlas_results["atlas-jlf"].values())) >= np.mean(list(atlas_results["atlas"].values())) - 0.02


def test_labels_on_another_grid_than_their_image_are_rejected(tiny_cohort, tmp_path):
    with pytest.raises(InputError, match="does not match its image"):
        propagate_atlas(t1_path(tiny_cohort, "01"), tiny_cohort["template"] / "tpl-MNI152_T1w.nii.gz",
                        labels_path(tiny_cohort, "02"), AtlasParams())
