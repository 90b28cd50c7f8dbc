"""Multi-echo field fit: phase offset removed, field recovered; single echo; reliability weights."""

import numpy as np
import pytest

from deepnuclei.qsm.background import vsharp
from deepnuclei.qsm.echo import fit_field
from deepnuclei.qsm.phantom import simulate_gre, sphere_phantom

VOXEL = (1.5, 1.5, 2.0)
ECHO_TIMES = (0.005, 0.010, 0.015)


@pytest.fixture(scope="module")
def phantom():
    return sphere_phantom((40, 40, 30), VOXEL)


def centred(values):
    return values - np.median(values)


def test_multi_echo_fit_removes_the_phase_offset_and_recovers_the_field(phantom):
    magnitudes, phases = simulate_gre(phantom.total_field, phantom.brain_mask, ECHO_TIMES, 3.0, noise=0.01,
                                      phase_offset_rad=0.5)
    fit = fit_field(magnitudes, phases, ECHO_TIMES, 3.0, VOXEL, phantom.brain_mask, "quality")
    error_ppb = 1000 * centred((fit.field_ppm - phantom.total_field)[phantom.brain_mask])
    assert np.percentile(np.abs(error_ppb), 95) < 4.0  # the field spans about 1000 ppb
    assert np.ptp(fit.phase_offset_rad[phantom.brain_mask]) > 0.5  # the offset was found, not ignored


def test_echo_order_does_not_matter(phantom):
    magnitudes, phases = simulate_gre(phantom.total_field, phantom.brain_mask, ECHO_TIMES, 3.0, noise=0.01)
    forward = fit_field(magnitudes, phases, ECHO_TIMES, 3.0, VOXEL, phantom.brain_mask, "quality")
    backward = fit_field(magnitudes[::-1], phases[::-1], ECHO_TIMES[::-1], 3.0, VOXEL, phantom.brain_mask, "quality")
    np.testing.assert_allclose(forward.field_ppm, backward.field_ppm, atol=1e-6)


def test_single_echo_works_without_a_phase_offset(phantom):
    magnitudes, phases = simulate_gre(phantom.total_field, phantom.brain_mask, ECHO_TIMES[1:2], 3.0, noise=0.01,
                                      phase_offset_rad=0.0)
    fit = fit_field(magnitudes, phases, ECHO_TIMES[1:2], 3.0, VOXEL, phantom.brain_mask, "quality")
    error_ppb = 1000 * centred((fit.field_ppm - phantom.total_field)[phantom.brain_mask])
    assert np.percentile(np.abs(error_ppb), 95) < 5.0


def test_laplacian_fit_differs_from_the_field_by_what_background_removal_takes_away(phantom):
    magnitudes, phases = simulate_gre(phantom.total_field, phantom.brain_mask, ECHO_TIMES, 3.0, noise=0.0,
                                      phase_offset_rad=0.0)
    fit = fit_field(magnitudes, phases, ECHO_TIMES, 3.0, VOXEL, phantom.brain_mask, "laplacian")
    unwrapping_error = np.std((fit.field_ppm - phantom.total_field)[phantom.brain_mask])
    assert unwrapping_error > 0.03  # ppm: not the field itself
    local, valid = vsharp(fit.field_ppm, phantom.brain_mask, VOXEL)
    expected, _ = vsharp(phantom.total_field, phantom.brain_mask, VOXEL)
    error = centred((local - expected)[valid])
    assert np.sqrt(np.mean(error**2)) < 0.1 * unwrapping_error


def test_reliability_weights_follow_the_magnitude(phantom):
    magnitudes, phases = simulate_gre(phantom.total_field, phantom.brain_mask, ECHO_TIMES, 3.0, bias=1.0)
    fit = fit_field(magnitudes, phases, ECHO_TIMES, 3.0, VOXEL, phantom.brain_mask, "quality")
    mask = phantom.brain_mask
    assert fit.weights[mask].mean() == pytest.approx(1.0, rel=1e-4) and np.all(fit.weights[~mask] == 0)
    correlation = np.corrcoef(fit.weights[mask], magnitudes[0][mask])[0, 1]
    assert correlation > 0.9
