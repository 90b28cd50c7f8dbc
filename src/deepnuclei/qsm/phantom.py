"""Analytic QSM phantoms for tests and benchmarks: spheres of known susceptibility inside an
ellipsoidal brain, an air-like source outside it, and multi-echo GRE signals with noise, a receiver
phase offset and a coil bias field.

Fields come from the closed-form field of a magnetised sphere (`forward.sphere_field_analytic`),
summed over spheres, not from the FFT forward model, so reconstructions are checked against physics
rather than against the model they invert.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .forward import field_to_phase, sphere_field_analytic, wrap_phase

AIR_MINUS_TISSUE_PPM = 9.4  # susceptibility of air relative to tissue


@dataclass(frozen=True)
class Sphere:
    centre: tuple[float, float, float]  # as a fraction of the brain's semi-axes, from the brain centre
    radius: float  # as a fraction of the smallest brain semi-axis
    chi_ppm: float


NUCLEI = (
    Sphere((0.35, 0.0, 0.0), 0.22, 0.15),
    Sphere((-0.35, 0.0, 0.0), 0.18, 0.10),
    Sphere((0.0, 0.45, 0.15), 0.16, 0.20),
    Sphere((0.0, -0.4, -0.2), 0.2, -0.04),
)
AIR_POCKET = Sphere((0.55, -0.8, -1.2), 0.35, AIR_MINUS_TISSUE_PPM)  # a sinus-like source below the brain


@dataclass
class Phantom:
    voxel_size_mm: tuple[float, float, float]
    b0_direction: tuple[float, float, float]
    brain_mask: np.ndarray  # bool
    labels: np.ndarray  # 0 outside the nuclei, i + 1 inside nucleus i
    chi: np.ndarray  # ppm, nuclei only (the background source lies outside the brain)
    nuclei_chi_ppm: tuple[float, ...]
    local_field: np.ndarray  # ppm, field of the nuclei
    background_field: np.ndarray  # ppm, field of the outside source and a linear shim residue

    @property
    def total_field(self) -> np.ndarray:
        return self.local_field + self.background_field


def voxel_centres_mm(shape: Sequence[int], voxel_size_mm: Sequence[float]) -> np.ndarray:
    """(..., 3) coordinates of the voxel centres in mm, relative to the volume centre."""
    axes = [(np.arange(n) - (n - 1) / 2) * size for n, size in zip(shape, voxel_size_mm)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def sphere_phantom(
    shape: Sequence[int],
    voxel_size_mm: Sequence[float],
    b0_direction: Sequence[float] = (0.0, 0.0, 1.0),
    brain_fraction: float = 0.42,
    nuclei: Sequence[Sphere] = NUCLEI,
    background_sources: Sequence[Sphere] = (AIR_POCKET,),
    shim_gradient_ppm_per_mm: tuple[float, float, float] = (0.002, -0.001, 0.0015),
) -> Phantom:
    """Spheres of known susceptibility inside an ellipsoidal brain (semi-axes = `brain_fraction` of
    the field of view), with an air-like sphere outside the brain and a linear shim residue."""
    points = voxel_centres_mm(shape, voxel_size_mm).astype(np.float32)
    semi_axes = brain_fraction * np.asarray(shape) * np.asarray(voxel_size_mm)
    brain_mask = np.sum((points / semi_axes) ** 2, axis=-1) <= 1.0
    unit = float(semi_axes.min())

    def place(sphere: Sphere) -> tuple[np.ndarray, float]:
        return np.asarray(sphere.centre) * semi_axes, sphere.radius * unit

    def field_of(sphere: Sphere) -> np.ndarray:
        centre, radius = place(sphere)
        return sphere_field_analytic(points - centre, radius, sphere.chi_ppm, b0_direction).astype(np.float32)

    labels = np.zeros(tuple(shape), np.int16)
    chi = np.zeros(tuple(shape), np.float32)
    for index, sphere in enumerate(nuclei, start=1):
        centre, radius = place(sphere)
        inside = np.sum((points - centre) ** 2, axis=-1) <= radius**2
        labels[inside] = index
        chi[inside] = sphere.chi_ppm
    local_field = sum(field_of(sphere) for sphere in nuclei)
    shim_field = points @ np.asarray(shim_gradient_ppm_per_mm, np.float32)
    background_field = (shim_field + sum(field_of(sphere) for sphere in background_sources)).astype(np.float32)
    return Phantom(
        tuple(float(v) for v in voxel_size_mm), tuple(float(v) for v in b0_direction), brain_mask, labels, chi,
        tuple(s.chi_ppm for s in nuclei), local_field, background_field,
    )


def smooth_phase_offset(shape: Sequence[int], amplitude_rad: float) -> np.ndarray:
    """A smooth receiver phase offset phi0(x) with |phi0| <= amplitude, varying over the whole FOV."""
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    return (amplitude_rad * np.sin(0.8 * np.pi * (x + 0.5 * y)) * np.cos(0.4 * np.pi * z)).astype(np.float32)


def simulate_gre(
    field_ppm: np.ndarray,
    brain_mask: np.ndarray,
    echo_times_s: Sequence[float],
    b0_tesla: float,
    r2star_per_s: float | np.ndarray = 25.0,
    noise: float = 0.02,
    phase_offset_rad: float = 0.5,
    bias: float = 0.4,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-echo magnitudes and wrapped phases (radians), each stacked as (echo, x, y, z).

    Signal exists only in the brain (proton density 1 times a smooth multiplicative bias field);
    complex Gaussian noise of standard deviation `noise` is added everywhere.
    """
    rng = np.random.default_rng(seed)
    shape = field_ppm.shape
    x, y, _ = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    density = brain_mask * np.exp(bias * (x + y) / 2).astype(np.float32)
    offset = smooth_phase_offset(shape, phase_offset_rad)
    magnitudes, phases = [], []
    for echo_time in echo_times_s:
        decay = np.exp(-np.asarray(r2star_per_s) * echo_time)
        phase = offset + field_to_phase(field_ppm, echo_time, b0_tesla)
        signal = density * decay * np.exp(1j * phase)
        signal = signal + noise * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)
        magnitudes.append(np.abs(signal).astype(np.float32))
        phases.append(wrap_phase(np.angle(signal)))
    return np.stack(magnitudes), np.stack(phases)
