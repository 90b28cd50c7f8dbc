"""Simulated acquisitions of a demo subject: a T1w volume and a multi-echo SWI (GRE) slab.

Each session sees the subject in its own head pose; the SWI slab is oblique and has thick slices.
The SWI signal is simulated on a finer grid than it is sampled on (complex averaging gives intra-voxel
dephasing, and the reconstruction is not handed the forward model's own grid), and its phase sums
a local field (brain susceptibility) and a background field (air, bone and sinuses around the brain).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..io import apply_affine, b0_direction_in_voxels, voxel_sizes
from ..labels import STRUCTURES
from ..qsm.forward import field_to_phase, forward_field, sphere_field_analytic
from .anatomy import (
    NUCLEUS_T1_RATIO,
    TISSUE_CHI_PPM,
    TISSUE_PROTON_DENSITY,
    TISSUE_R2STAR_PER_S,
    SubjectAnatomy,
    nucleus_r2star,
    sample_nuclei,
    sample_template,
    tissue_property,
)
from .template import Template

T1_WHITE_MATTER_LEVEL = 600.0  # scanner-like scale: the paper clips T1 to [0, 800]
SWI_WHITE_MATTER_LEVEL = 1000.0
NUCLEUS_PROTON_DENSITY = 0.80
AIR_CHI_PPM = 9.4  # air relative to tissue (water)
# layers around the brain (mm from its surface): CSF, skull, scalp; beyond is air
CSF_RIM_MM, SKULL_MM, SCALP_MM = 2.0, 8.0, 12.0
HEAD_T1_LEVELS = (0.25, 0.08, 1.1)  # T1w of the CSF rim, skull and scalp (fat) relative to white matter
# air cavities (template mm: centre, radius) that make the background field: frontal and sphenoid
# sinuses and the two ear canals. Spheres, so their field is analytic and exactly harmonic in the brain.
AIR_CAVITIES = (((0.0, 84.0, -2.0), 12.0), ((0.0, 14.0, -48.0), 12.0), ((75.0, -20.0, -38.0), 7.0),
                ((-75.0, -20.0, -38.0), 7.0))
CAVITY_CLEARANCE_MM = 4.0  # a cavity keeps this far from the brain
SHIM_RESIDUAL_PPM = 0.15  # scale of the imperfect-shim field (harmonic polynomial) over 60 mm


@dataclass
class Grid:
    shape: tuple[int, int, int]
    affine: np.ndarray

    def points(self) -> np.ndarray:
        indices = np.indices(self.shape, dtype=np.float32).reshape(3, -1).T
        return apply_affine(self.affine, indices)


def grid_around(centre_mm: np.ndarray, rotation: np.ndarray, voxel_mm, shape) -> Grid:
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(voxel_mm)
    affine[:3, 3] = np.asarray(centre_mm) - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return Grid(tuple(int(n) for n in shape), affine)


@dataclass
class Pose:
    """Head pose of one session: anatomy point = rotation @ world point + translation."""

    rotation: np.ndarray
    translation: np.ndarray

    def to_anatomy(self, world: np.ndarray) -> np.ndarray:
        return world @ self.rotation.T + self.translation

    def to_world(self, anatomy: np.ndarray) -> np.ndarray:
        return (np.asarray(anatomy) - self.translation) @ self.rotation

    def then(self, rotation_deg: np.ndarray, translation_mm: np.ndarray) -> "Pose":
        """This pose after a head movement (rotation about the head, then translation)."""
        motion = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
        return Pose(self.rotation @ motion, self.translation + translation_mm)


def random_pose(rng: np.random.Generator, rotation_deg: float, translation_mm: float) -> Pose:
    angles = rng.uniform(-rotation_deg, rotation_deg, 3)
    return Pose(Rotation.from_euler("xyz", angles, degrees=True).as_matrix(), rng.uniform(-translation_mm, translation_mm, 3))


def smooth_random_field(rng: np.random.Generator, grid: Grid, amplitude: float) -> np.ndarray:
    """A random quadratic polynomial over the grid (coil bias or receiver phase), std = amplitude."""
    coordinates = [np.linspace(-1, 1, n, dtype=np.float32) for n in grid.shape]
    x, y, z = np.meshgrid(*coordinates, indexing="ij")
    terms = [x, y, z, x * y, y * z, x * z, x**2, y**2, z**2]
    field = sum(rng.standard_normal() * term for term in terms)
    return (amplitude * (field - field.mean()) / max(float(field.std()), 1e-9)).astype(np.float32)


def template_points(anatomy: SubjectAnatomy, pose: Pose, grid: Grid) -> np.ndarray:
    return anatomy.deformation.apply(pose.to_anatomy(grid.points()))


def nucleus_values(table: dict[str, float]) -> np.ndarray:
    return np.array([table[s.nucleus] for s in STRUCTURES], dtype=np.float32)


def simulate_t1(rng: np.random.Generator, template: Template, anatomy: SubjectAnatomy, pose: Pose, grid: Grid,
                bias_amplitude: float, snr: float, gain: float = 1.0, head: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """T1w image (float, WM ~ 600 x `gain`) with bias field and Rician noise, and its true label map.

    The template is skull-stripped; `head` paints a CSF rim, skull, scalp and neck around the brain, as an
    unstripped T1 shows them (scalp fat bright, skull and CSF dark)."""
    points = template_points(anatomy, pose, grid)
    intensity = sample_template(template.t1, template, points)
    nuclei = sample_nuclei(template, anatomy, points)
    darkening = nuclei.membership(anatomy.edge_width_mm) * (1 - nucleus_values(NUCLEUS_T1_RATIO)[nuclei.index])
    image = intensity * (1 - darkening) * T1_WHITE_MATTER_LEVEL / template.tissue_levels[2]
    if head:
        distance = sample_template(template.distance_outside_brain, template, points, outside=1e3)
        outside = np.select([distance < CSF_RIM_MM, distance < SKULL_MM, head_mask(points, distance)],
                            HEAD_T1_LEVELS, 0.0) * T1_WHITE_MATTER_LEVEL
        image = np.where(distance < 0.5, image, outside)
    image = gain * image.reshape(grid.shape) * np.exp(smooth_random_field(rng, grid, bias_amplitude))
    sigma = gain * T1_WHITE_MATTER_LEVEL / snr
    noisy = np.abs(image + sigma * rng.standard_normal(grid.shape) + 1j * sigma * rng.standard_normal(grid.shape))
    return noisy.astype(np.float32), nuclei.labels().reshape(grid.shape)


def head_mask(points: np.ndarray, distance_outside_brain: np.ndarray) -> np.ndarray:
    """Brain plus CSF, skull and scalp, plus a neck below the cerebellum (template space)."""
    neck = (points[:, 2] < -45) & (points[:, 0] ** 2 + ((points[:, 1] + 25) / 1.2) ** 2 < 45**2)
    return (distance_outside_brain < SCALP_MM) | neck


def cavity_radius(template: Template, centre: tuple[float, float, float], radius: float) -> float:
    clearance = float(sample_template(template.distance_outside_brain, template, np.array([centre]), outside=1e3)[0])
    return min(radius, clearance - CAVITY_CLEARANCE_MM)


def in_air_cavity(template: Template, points: np.ndarray) -> np.ndarray:
    inside = np.zeros(len(points), dtype=bool)
    for centre, radius in AIR_CAVITIES:
        inside |= np.linalg.norm(points - np.array(centre), axis=1) < cavity_radius(template, centre, radius)
    return inside


@dataclass
class TissueMaps:
    """Per-point tissue properties on the simulation grid."""

    chi_ppm: np.ndarray  # local susceptibility relative to CSF, zero outside the brain
    proton_density: np.ndarray
    r2star: np.ndarray
    brain: np.ndarray


def tissue_maps(template: Template, anatomy: SubjectAnatomy, points: np.ndarray) -> TissueMaps:
    intensity = sample_template(template.t1, template, points)
    distance = sample_template(template.distance_outside_brain, template, points, outside=1e3)
    brain = distance < 0.5
    nuclei = sample_nuclei(template, anatomy, points)
    weight = nuclei.membership(anatomy.edge_width_mm)
    nucleus_chi = np.array([anatomy.chi_ppm[s] for s in STRUCTURES], dtype=np.float32)[nuclei.index]
    levels = template.tissue_levels
    chi = (1 - weight) * tissue_property(intensity, levels, TISSUE_CHI_PPM) + weight * nucleus_chi
    density = (1 - weight) * tissue_property(intensity, levels, TISSUE_PROTON_DENSITY) + weight * NUCLEUS_PROTON_DENSITY
    r2star = (1 - weight) * tissue_property(intensity, levels, TISSUE_R2STAR_PER_S) + weight * nucleus_r2star(nucleus_chi)
    # outside the brain: a CSF rim, the skull (almost no signal), the scalp, then air
    head = head_mask(points, distance) & ~in_air_cavity(template, points)
    outside_density = np.select([distance < CSF_RIM_MM, distance < SKULL_MM, head], [1.0, 0.05, 0.6], 0.0)
    outside_r2star = np.select([distance < CSF_RIM_MM, distance < SKULL_MM], [4.0, 300.0], 30.0)
    return TissueMaps(
        chi_ppm=np.where(brain, chi, 0.0).astype(np.float32),
        proton_density=np.where(brain, density, outside_density).astype(np.float32),
        r2star=np.where(brain, r2star, outside_r2star).astype(np.float32),
        brain=brain,
    )


def refine(grid: Grid, oversample: np.ndarray, margin_voxels: np.ndarray) -> Grid:
    """A finer grid with `oversample` points per voxel and a margin, on the same axes as `grid`."""
    step = 1.0 / oversample
    start = 0.5 * step - 0.5 - margin_voxels * step  # centre of the first fine point, in coarse voxels
    scaling = np.eye(4)
    scaling[:3, :3] = np.diag(step)
    scaling[:3, 3] = start
    shape = np.asarray(grid.shape) * oversample + 2 * margin_voxels
    return Grid(tuple(int(n) for n in shape), grid.affine @ scaling)


def block_mean(volume: np.ndarray, oversample: np.ndarray, margin_voxels: np.ndarray) -> np.ndarray:
    """Average the fine points of each coarse voxel (drops the margin)."""
    core = volume[tuple(slice(m, n - m) for m, n in zip(margin_voxels, volume.shape))]
    shape = []
    for n, factor in zip(core.shape, oversample):
        shape += [n // factor, factor]
    return core.reshape(shape).mean(axis=(1, 3, 5))


@dataclass
class SWIAcquisition:
    magnitudes: list[np.ndarray]
    phases: list[np.ndarray]  # wrapped to (-pi, pi]
    chi_ppm: np.ndarray
    local_field_ppm: np.ndarray
    total_field_ppm: np.ndarray
    phase_offset_rad: np.ndarray
    brain_mask: np.ndarray
    labels: np.ndarray


def simulate_background_field(rng: np.random.Generator, template: Template, pose: Pose, fine: Grid) -> np.ndarray:
    """Background field (ppm): air cavities as uniformly magnetised spheres plus a shim residual.

    Both are analytic and harmonic inside the brain, as a real background field is; a head-in-air
    simulation on a coarse grid is not, once interpolated, and no background removal could undo it."""
    points = fine.points()
    field = np.zeros(len(points))
    for centre, radius in AIR_CAVITIES:
        world_centre = pose.to_world(np.array(centre))
        field += sphere_field_analytic(points - world_centre, cavity_radius(template, centre, radius), AIR_CHI_PPM)
    x, y, z = ((points - pose.to_world(np.zeros(3))) / 60.0).T
    harmonics = (x, y, z, x * y, y * z, x * z, x**2 - z**2, y**2 - z**2)
    field += SHIM_RESIDUAL_PPM * sum(rng.standard_normal() * term for term in harmonics)
    return field.reshape(fine.shape).astype(np.float32)


def simulate_swi(rng: np.random.Generator, template: Template, anatomy: SubjectAnatomy, pose: Pose, swi: Grid,
                 settings: dict) -> SWIAcquisition:
    oversample = np.asarray(settings["swi_oversample"], dtype=int)
    fine_voxel = voxel_sizes(swi.affine) / oversample
    margin = np.array([0, 0, int(np.ceil(settings["swi_margin_mm"] / fine_voxel[2]))])
    fine = refine(swi, oversample, margin)
    points = template_points(anatomy, pose, fine)
    tissue = tissue_maps(template, anatomy, points)
    chi = tissue.chi_ppm.reshape(fine.shape)
    local_field = forward_field(chi, fine_voxel, b0_direction_in_voxels(fine.affine))
    background = simulate_background_field(rng, template, pose, fine) * settings["background_scale"]
    total_field = local_field + background
    phase_offset = smooth_random_field(rng, fine, settings["phase_offset_rad"])
    signal_scale = SWI_WHITE_MATTER_LEVEL / (TISSUE_PROTON_DENSITY[2] * np.exp(-settings["echo_times_s"][0] * TISSUE_R2STAR_PER_S[2]))
    density = tissue.proton_density.reshape(fine.shape) * np.exp(smooth_random_field(rng, fine, settings["bias_amplitude"]))
    sigma = SWI_WHITE_MATTER_LEVEL / settings["swi_snr"]
    magnitudes, phases = [], []
    for echo_time in settings["echo_times_s"]:
        phase = field_to_phase(total_field, echo_time, settings["b0_tesla"]) + phase_offset
        decay = np.exp(-echo_time * tissue.r2star.reshape(fine.shape))
        signal = block_mean(signal_scale * density * decay * np.exp(1j * phase), oversample, margin)
        signal = signal + sigma * (rng.standard_normal(swi.shape) + 1j * rng.standard_normal(swi.shape))
        magnitudes.append(np.abs(signal).astype(np.float32))
        phase = np.angle(signal)
        phases.append(np.where(phase <= -np.pi, np.pi, phase).astype(np.float32))  # (-pi, pi]
    centres = template_points(anatomy, pose, swi)
    return SWIAcquisition(
        magnitudes=magnitudes,
        phases=phases,
        chi_ppm=block_mean(chi, oversample, margin).astype(np.float32),
        local_field_ppm=block_mean(local_field, oversample, margin).astype(np.float32),
        total_field_ppm=block_mean(total_field, oversample, margin).astype(np.float32),
        phase_offset_rad=block_mean(phase_offset, oversample, margin).astype(np.float32),
        brain_mask=block_mean(tissue.brain.reshape(fine.shape).astype(np.float32), oversample, margin) >= 0.5,
        labels=sample_nuclei(template, anatomy, centres).labels().reshape(swi.shape),
    )
