"""Brain mask from magnitude (bias field, noise) and its refinement by phase quality."""

import numpy as np
import pytest

from deepnuclei.qsm.echo import reference_phase
from deepnuclei.qsm.mask import ball, brain_mask, fill_holes, phase_quality, reliable_region
from deepnuclei.qsm.phantom import simulate_gre, sphere_phantom

VOXEL = (1.5, 1.5, 2.0)
ECHO_TIMES = (0.005, 0.010, 0.015)


@pytest.fixture(scope="module")
def acquisition():
    phantom = sphere_phantom((40, 40, 30), VOXEL)
    magnitudes, phases = simulate_gre(phantom.total_field, phantom.brain_mask, ECHO_TIMES, 3.0, noise=0.03, bias=0.8)
    return phantom, magnitudes, phases


def dice(a, b):
    return 2 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def test_mask_finds_the_brain_despite_bias_field_and_noise(acquisition):
    phantom, magnitudes, _ = acquisition
    mask = brain_mask(magnitudes[0], VOXEL)
    assert dice(mask, phantom.brain_mask) > 0.95


def test_erosion_shrinks_the_mask_by_about_its_radius(acquisition):
    phantom, magnitudes, _ = acquisition
    full = brain_mask(magnitudes[0], VOXEL)
    eroded = brain_mask(magnitudes[0], VOXEL, erosion_mm=3.0)
    assert eroded.sum() < full.sum() and not np.any(eroded & ~full)
    semi_axes = 0.42 * np.array([40, 40, 30]) * VOXEL  # the phantom's brain ellipsoid
    expected = np.prod(semi_axes - 3.0) / np.prod(semi_axes)
    assert eroded.sum() / full.sum() == pytest.approx(expected, abs=0.05)


def test_fill_holes_fills_cavities_but_not_openings():
    mask = np.zeros((20, 20, 20), bool)
    mask[2:18, 2:18, 2:18] = True
    mask[8:12, 8:12, 8:12] = False  # a closed cavity
    mask[8:12, 8:12, 15:] = False  # a pit open to the outside
    filled = fill_holes(mask)
    assert filled[10, 10, 10] and not filled[10, 10, 17]


def test_ball_is_anisotropic_in_voxels():
    element = ball(2.0, (1.0, 1.0, 2.0))
    assert element.shape == (5, 5, 3) and element[2, 2, 1] and not element[0, 0, 0]


def test_phase_quality_takes_out_unreliable_phase(acquisition):
    phantom, magnitudes, phases = acquisition
    quality = phase_quality(*reference_phase(magnitudes, phases, ECHO_TIMES))
    assert np.median(quality[phantom.brain_mask]) > 0.8
    assert np.median(quality[~phantom.brain_mask]) < 0.3  # noise: little phase or magnitude coherence
    void = np.zeros(phantom.brain_mask.shape, bool)
    void[10:14, 10:14, 10:14] = True  # inside the brain mask, a signal void: noise phase, noise magnitude
    noise = simulate_gre(np.zeros_like(phantom.total_field), ~void, ECHO_TIMES, 3.0, noise=0.03, seed=2)
    magnitudes, phases = (np.where(void, noisy, clean) for noisy, clean in zip(noise, (magnitudes, phases)))
    quality = phase_quality(*reference_phase(magnitudes, phases, ECHO_TIMES))
    kept = reliable_region(phantom.brain_mask, quality, 0.4)
    assert not kept[11:13, 11:13, 11:13].any()
    assert kept.sum() > 0.97 * phantom.brain_mask.sum()
