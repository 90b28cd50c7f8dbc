"""Phase unwrapping: quality-guided is exact up to 2 pi k per connected piece; Laplacian is off by a
function harmonic in the mask; the multi-echo Laplacian sum is one solve of the summed Laplacians."""

import numpy as np
import pytest
import torch

from deepnuclei.qsm.forward import field_to_phase, wrap_phase
from deepnuclei.qsm.phantom import sphere_phantom
from deepnuclei.qsm.unwrap import laplacian_sum, unwrap_laplacian, unwrap_quality_guided, wrap

VOXEL = (1.5, 1.5, 2.0)


@pytest.fixture(scope="module")
def phantom():
    return sphere_phantom((40, 40, 30), VOXEL)


def true_phase(phantom, echo_time=0.01):
    """Phase of the total field at 3 T: 10 rad across the brain, steps below pi (not aliased)."""
    return field_to_phase(phantom.total_field, echo_time, 3.0).astype(np.float32)


def discrete_laplacian(volume):
    return sum(np.roll(volume, 1, axis) + np.roll(volume, -1, axis) - 2 * volume for axis in range(3))


def test_wrap_maps_into_minus_pi_to_pi():
    values = np.linspace(-20, 20, 1001)
    wrapped = wrap(values)
    assert np.all(np.abs(wrapped) <= np.pi + 1e-12)
    np.testing.assert_allclose(np.exp(1j * wrapped), np.exp(1j * values), atol=1e-9)


def test_quality_guided_recovers_phase_up_to_one_multiple_of_two_pi(phantom):
    phase = true_phase(phantom)
    assert np.ptp(phase[phantom.brain_mask]) > 3 * np.pi  # the test needs real wraps
    unwrapped = unwrap_quality_guided(wrap_phase(phase), None, phantom.brain_mask)
    cycles = (unwrapped - phase)[phantom.brain_mask] / (2 * np.pi)
    np.testing.assert_allclose(cycles, np.round(cycles[0]), atol=1e-3)


def test_quality_guided_unwraps_each_piece_of_the_mask_on_its_own(phantom):
    phase = true_phase(phantom)
    pieces = phantom.brain_mask.copy()
    pieces[:, 19:21, :] = False  # two halves, no edge between them
    unwrapped = unwrap_quality_guided(wrap_phase(phase), None, pieces)
    for half in (slice(0, 19), slice(21, None)):
        region = np.zeros_like(pieces)
        region[:, half, :] = pieces[:, half, :]
        cycles = (unwrapped - phase)[region] / (2 * np.pi)
        np.testing.assert_allclose(cycles, np.round(cycles[0]), atol=1e-3)


def test_laplacian_error_is_harmonic_inside_the_mask(phantom):
    phase = true_phase(phantom)
    noisy_outside = np.where(phantom.brain_mask, wrap_phase(phase),
                             np.random.default_rng(0).uniform(-np.pi, np.pi, phase.shape)).astype(np.float32)
    error = unwrap_laplacian(noisy_outside, None, phantom.brain_mask) - phase
    interior = phantom.brain_mask & np.roll(phantom.brain_mask, 2, 0) & np.roll(phantom.brain_mask, -2, 0)
    interior &= np.roll(phantom.brain_mask, 2, 1) & np.roll(phantom.brain_mask, -2, 1)
    interior &= np.roll(phantom.brain_mask, 2, 2) & np.roll(phantom.brain_mask, -2, 2)
    assert np.abs(discrete_laplacian(error)[interior]).max() < 1e-3 * np.abs(discrete_laplacian(phase)[interior]).max()


def test_laplacian_with_snap_is_exact_where_its_error_stays_below_pi():
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, 32)] * 3, indexing="ij")
    phase = (15 * np.exp(-(x**2 + y**2 + z**2) / 0.15)).astype(np.float32)  # 2.4 cycles, flat at the edge
    mask = x**2 + y**2 + z**2 < 0.8
    unwrapped = unwrap_laplacian(wrap_phase(phase), None, mask, snap=True)
    cycles = (unwrapped - phase)[mask] / (2 * np.pi)
    np.testing.assert_allclose(cycles, np.round(cycles[0]), atol=1e-3)


def test_laplacian_sum_is_the_weighted_sum_of_single_unwraps(phantom):
    phases = np.stack([wrap_phase(true_phase(phantom, te)) for te in (0.005, 0.01)])
    combined = laplacian_sum(torch.as_tensor(phases), [0.3, 0.7], phantom.brain_mask)
    separate = sum(c * unwrap_laplacian(p, None, phantom.brain_mask) for c, p in zip([0.3, 0.7], phases))
    np.testing.assert_allclose(combined, separate, atol=1e-3)
