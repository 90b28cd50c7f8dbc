"""Background field removal on analytic fields: an air-like sphere outside the brain and a shim
gradient are removed; the local field of spheres inside is kept."""

import numpy as np
import pytest
import scipy.ndimage as ndi

from deepnuclei.qsm.background import pdf, vsharp
from deepnuclei.qsm.phantom import sphere_phantom

VOXEL = (1.5, 1.5, 2.0)
B0 = (0.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def phantom():
    return sphere_phantom((40, 40, 32), VOXEL)


def rms(values):
    return float(np.sqrt(np.mean((values - values.mean()) ** 2)))


@pytest.mark.parametrize("method", ["vsharp", "pdf"])
def test_outside_source_field_is_removed(phantom, method):
    mask = phantom.brain_mask
    if method == "vsharp":
        residual, valid = vsharp(phantom.background_field, mask, VOXEL)
    else:
        residual, valid = pdf(phantom.background_field, mask, VOXEL, B0, pad_mm=12.0, max_iter=40)
    assert rms(phantom.background_field[valid]) > 5 * rms(phantom.local_field[valid])  # a big background
    assert rms(residual[valid]) < 0.1 * rms(phantom.local_field[valid])


def test_vsharp_keeps_the_local_field(phantom):
    with_background, valid = vsharp(phantom.total_field, phantom.brain_mask, VOXEL)
    local_only, _ = vsharp(phantom.local_field, phantom.brain_mask, VOXEL)
    assert rms((with_background - local_only)[valid]) < 0.1 * rms(local_only[valid])
    spheres = ndi.binary_dilation(phantom.labels > 0, iterations=2)  # the analytic field is off at voxelised edges
    region = valid & ~spheres
    assert np.corrcoef(local_only[region], phantom.local_field[region])[0, 1] > 0.9


def test_vsharp_valid_mask_is_the_mask_eroded_by_the_smallest_radius(phantom):
    _, valid = vsharp(phantom.total_field, phantom.brain_mask, VOXEL, radii_mm=(9.0, 6.0, 3.0))
    distance = ndi.distance_transform_edt(np.pad(phantom.brain_mask, 1), sampling=VOXEL)[1:-1, 1:-1, 1:-1]
    np.testing.assert_array_equal(valid, distance > 3.0)


def test_pdf_uses_weights_to_ignore_unreliable_voxels(phantom):
    mask = phantom.brain_mask
    corrupted = phantom.background_field.copy()
    bad = np.zeros_like(mask)
    bad[12:16, 12:16, 12:16] = True
    corrupted[bad] += 2.0  # e.g. an unwrapping error
    weights = np.where(bad, 0.0, 1.0)
    residual, _ = pdf(corrupted, mask, VOXEL, B0, weights, pad_mm=12.0, max_iter=40)
    good = mask & ~ndi.binary_dilation(bad, iterations=2)
    assert rms(residual[good]) < 0.1 * rms(phantom.local_field[good])
