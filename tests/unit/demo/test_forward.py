"""The dipole forward model against analytic results."""

import numpy as np
import pytest

from deepnuclei.qsm.forward import (
    dipole_kernel,
    field_to_phase,
    forward_field,
    phase_to_field,
    sphere_field_analytic,
    wrap_phase,
)


def test_dipole_kernel_extremes_and_zero_mean():
    kernel = dipole_kernel((64, 64, 64), (1.0, 1.0, 1.0)).cpu().numpy()
    assert kernel[0, 0, 0] == 0
    assert kernel.max() == pytest.approx(1 / 3, abs=1e-6)
    assert kernel.min() == pytest.approx(-2 / 3, abs=1e-6)
    assert abs(kernel.mean()) < 0.01  # the mean of cos^2 over the sphere is 1/3


def test_dipole_kernel_follows_an_oblique_b0():
    direction = np.array([0.0, np.sin(0.3), np.cos(0.3)])
    kernel = dipole_kernel((32, 32, 32), (1.0, 1.0, 1.0), direction).cpu().numpy()
    k = np.stack(np.meshgrid(*[np.fft.fftfreq(32)] * 3, indexing="ij"), axis=-1)
    k_squared = np.sum(k**2, axis=-1)
    expected = 1 / 3 - (k @ direction) ** 2 / np.where(k_squared == 0, 1, k_squared)
    expected[0, 0, 0] = 0
    np.testing.assert_allclose(kernel, expected, atol=1e-5)


@pytest.mark.parametrize("voxel", [(1.0, 1.0, 1.0), (0.8, 0.8, 1.6)])
def test_sphere_field_matches_analytic_solution(voxel):
    shape = (96, 96, 64) if voxel[2] > 1 else (96, 96, 96)
    axes = [(np.arange(n) - n / 2) * size for n, size in zip(shape, voxel)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    radius = np.linalg.norm(points, axis=-1)
    chi = (radius <= 10.0).astype(np.float32) * 0.2
    simulated = forward_field(chi, voxel, pad_factor=2.0)
    analytic = sphere_field_analytic(points, 10.0, 0.2)
    shell = (radius > 13) & (radius < 30)
    relative_error = np.linalg.norm(simulated[shell] - analytic[shell]) / np.linalg.norm(analytic[shell])
    assert relative_error < 0.05


def test_phase_field_round_trip_and_wrapping():
    field = np.linspace(-2, 2, 101)
    phase = field_to_phase(field, 0.02, 3.0)
    np.testing.assert_allclose(phase_to_field(phase, 0.02, 3.0), field)
    wrapped = wrap_phase(phase)
    assert wrapped.min() > -np.pi and wrapped.max() <= np.pi
    np.testing.assert_allclose(np.exp(1j * wrapped), np.exp(1j * phase), atol=1e-5)
