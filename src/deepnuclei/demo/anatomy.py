"""A simulated subject's anatomy: how it departs from the template, and its tissue properties.

A subject is the template seen through a smooth non-linear deformation, with each nucleus moved,
scaled, rotated and reshaped on its own by a few mm (so registering the template cannot recover the
labels exactly), and with its own susceptibility per nucleus. Everything is a function of template
coordinates (mm), so any acquisition grid can be sampled from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from ..io import apply_affine
from ..labels import STRUCTURES, Structure
from .template import Template

# Volume per side (mm^3) that each nucleus is scaled to before its neighbours claim their overlaps
# (the closer nucleus wins), which takes 10-30 % from GPe, GPi, SN and STN; the realised cohort
# means then sit inside the published ranges below. The Talairach atlas' own SN, RN, STN and
# thalamus are smaller than MRI volumetry reports.
TARGET_VOLUME_MM3 = {"CN": 3800, "PUT": 5000, "GPe": 1600, "GPi": 600, "THA": 6800,
                     "SN": 620, "RN": 310, "DN": 1150, "STN": 200}
# Per-side volume ranges (mm^3) that bracket values reported by MRI volumetry: FreeSurfer/aseg-based
# norms for CN, PUT, GP and THA; 7 T and QSM studies for SN, RN, DN and STN (e.g. Keuken et al.
# 2014); the LiNUS paper gives 150-200 mm^3 for the STN.
PUBLISHED_VOLUME_RANGE_MM3 = {"CN": (2500, 5500), "PUT": (3500, 7000), "GPe": (800, 1800),
                              "GPi": (250, 900), "THA": (5000, 9500), "SN": (250, 900),
                              "RN": (150, 450), "DN": (500, 2000), "STN": (60, 300)}
# Susceptibility (ppm, relative to CSF) at 3 T in healthy adults, rounded from QSM atlases and
# reviews (Lim et al. 2013, Deistung et al. 2013, Li et al. 2014): the iron-rich GP, SN, RN and DN
# highest, thalamus close to zero.
NUCLEUS_CHI_PPM = {"CN": 0.060, "PUT": 0.050, "GPe": 0.160, "GPi": 0.180, "THA": 0.010,
                   "SN": 0.140, "RN": 0.110, "DN": 0.110, "STN": 0.120}
# T1w intensity relative to the surrounding white matter: striatum and thalamus show grey-matter
# contrast, the iron-rich midbrain and cerebellar nuclei are faint, as in real T1w images.
NUCLEUS_T1_RATIO = {"CN": 0.80, "PUT": 0.82, "GPe": 0.90, "GPi": 0.91, "THA": 0.88,
                    "SN": 0.95, "RN": 0.95, "DN": 0.96, "STN": 0.96}
# Tissue properties at the template's CSF, GM and WM intensity levels (linear in between).
TISSUE_CHI_PPM = (0.0, 0.010, -0.030)
TISSUE_PROTON_DENSITY = (1.0, 0.85, 0.70)
TISSUE_R2STAR_PER_S = (4.0, 16.0, 22.0)


def nucleus_r2star(chi_ppm: np.ndarray) -> np.ndarray:
    """R2* rises with iron, hence with susceptibility (about 150 s^-1 per ppm at 3 T)."""
    return 17.0 + 150.0 * chi_ppm


@dataclass
class NucleusChange:
    """Maps a subject's template-space point to the point of the template's own structure."""

    centre: np.ndarray
    inverse_matrix: np.ndarray  # (rotation * scale)^-1
    scale: float  # mean linear scale, to keep distances in mm
    shift: np.ndarray
    wave_vectors: np.ndarray  # (K, 3) cycles per mm of the smooth reshaping
    wave_amplitudes: np.ndarray  # (K, 3) mm
    wave_phases: np.ndarray  # (K,)

    def to_template(self, points: np.ndarray) -> np.ndarray:
        local = points - self.centre - self.shift
        waves = np.sin(2 * np.pi * local @ self.wave_vectors.T + self.wave_phases) @ self.wave_amplitudes
        return self.centre + (local + waves) @ self.inverse_matrix.T


@dataclass
class Deformation:
    """A smooth displacement field (mm) on a coarse lattice of template space."""

    displacement: np.ndarray  # (3, nx, ny, nz)
    lattice_affine: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        indices = apply_affine(np.linalg.inv(self.lattice_affine), points).T
        shift = np.stack([ndimage.map_coordinates(d, indices, order=1, mode="nearest") for d in self.displacement])
        return points + shift.T


@dataclass
class SubjectAnatomy:
    deformation: Deformation
    nuclei: dict[Structure, NucleusChange]
    chi_ppm: dict[Structure, float]
    edge_width_mm: float


def random_deformation(rng: np.random.Generator, template: Template, amplitude_mm: float,
                       smoothness_mm: float, lattice_mm: float = 4.0) -> Deformation:
    extent = np.array(template.t1.shape) * np.abs(np.diag(template.affine)[:3])
    shape = tuple(int(n) for n in np.ceil(extent / lattice_mm) + 1)
    corners = apply_affine(template.affine, np.array([[0, 0, 0], np.array(template.t1.shape) - 1]))
    origin = corners.min(axis=0)
    field = np.stack([ndimage.gaussian_filter(rng.standard_normal(shape), smoothness_mm / lattice_mm,
                                              mode="wrap") for _ in range(3)])
    field *= amplitude_mm / max(np.sqrt(np.mean(np.sum(field**2, axis=0))), 1e-9)
    lattice_affine = np.diag([lattice_mm] * 3 + [1.0])
    lattice_affine[:3, 3] = origin
    return Deformation(field.astype(np.float32), lattice_affine)


def random_nucleus_change(rng: np.random.Generator, structure: Structure, template: Template,
                          shift_mm: float, scale_sd: float, rotation_deg: float, reshape_mm: float) -> NucleusChange:
    shape = template.shapes[structure]
    base_volume = np.count_nonzero(shape.sdf < 0) * np.prod(np.abs(np.diag(template.affine)[:3]))
    base_scale = (TARGET_VOLUME_MM3[structure.nucleus] / base_volume) ** (1 / 3)
    scales = base_scale * (1 + scale_sd * rng.standard_normal(3))
    rotation = Rotation.from_rotvec(np.deg2rad(rotation_deg) * rng.standard_normal(3) / np.sqrt(3)).as_matrix()
    extent = np.max(shape.sdf.shape) * np.max(np.abs(np.diag(template.affine)[:3]))
    n_waves = 3
    directions = rng.standard_normal((n_waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return NucleusChange(
        centre=shape.centroid_mm,
        inverse_matrix=np.linalg.inv(rotation @ np.diag(scales)),
        scale=float(np.mean(scales)),
        shift=shift_mm * rng.standard_normal(3) / np.sqrt(3),
        wave_vectors=directions / extent,
        wave_amplitudes=reshape_mm * rng.standard_normal((n_waves, 3)) / np.sqrt(3 * n_waves),
        wave_phases=rng.uniform(0, 2 * np.pi, n_waves),
    )


def random_anatomy(rng: np.random.Generator, template: Template, settings: dict) -> SubjectAnatomy:
    """Draw one subject: deformation, per-nucleus changes and susceptibilities (seeded by `rng`)."""
    deformation = random_deformation(rng, template, settings["deformation_mm"], settings["deformation_smoothness_mm"])
    nuclei = {s: random_nucleus_change(rng, s, template, settings["nucleus_shift_mm"], settings["nucleus_scale_sd"],
                                       settings["nucleus_rotation_deg"], settings["nucleus_reshape_mm"])
              for s in STRUCTURES}
    # a subject-wide iron level (age, disease) times a per-nucleus, per-side variation
    iron_level = 1 + settings["chi_subject_sd"] * rng.standard_normal()
    chi = {s: float(NUCLEUS_CHI_PPM[s.nucleus] * iron_level * (1 + settings["chi_nucleus_sd"] * rng.standard_normal()))
           for s in STRUCTURES}
    return SubjectAnatomy(deformation, nuclei, chi, settings["edge_width_mm"])


@dataclass
class NucleusSample:
    """Nearest nucleus per point: its signed distance (mm), and which structure (index into STRUCTURES)."""

    distance: np.ndarray
    index: np.ndarray

    def labels(self) -> np.ndarray:
        values = np.array([s.label for s in STRUCTURES], dtype=np.uint8)
        return np.where(self.distance < 0, values[self.index], 0).astype(np.uint8)

    def membership(self, edge_width_mm: float) -> np.ndarray:
        """Smooth 0..1 inside-ness, so images see partial volumes at nucleus edges."""
        return 1.0 / (1.0 + np.exp(np.clip(self.distance / edge_width_mm, -50, 50)))


def points_in_box(columns: np.ndarray, centre: np.ndarray, half_width: float) -> np.ndarray:
    """Indices of points (given as 3 x N columns) inside an axis-aligned cube, one axis at a time."""
    near = np.flatnonzero(np.abs(columns[2] - centre[2]) < half_width)
    for axis in (0, 1):
        near = near[np.abs(columns[axis, near] - centre[axis]) < half_width]
    return near


def sample_nuclei(template: Template, anatomy: SubjectAnatomy, points: np.ndarray) -> NucleusSample:
    """Signed distance to the closest perturbed nucleus at template-space points (N, 3)."""
    distance = np.full(len(points), np.inf, dtype=np.float32)
    index = np.zeros(len(points), dtype=np.int16)
    to_voxels = np.linalg.inv(template.affine)
    columns = np.ascontiguousarray(points.T, dtype=np.float32)
    for position, structure in enumerate(STRUCTURES):
        shape, change = template.shapes[structure], anatomy.nuclei[structure]
        low, high = shape.bounds_mm(template.affine)
        # the box keeps SDF_MARGIN_MM around the structure, which absorbs rotation and reshaping
        reach = 0.5 * np.max(high - low) * change.scale + np.linalg.norm(change.shift)
        near = points_in_box(columns, change.centre + change.shift, reach)
        source = change.to_template(points[near])
        voxel = apply_affine(to_voxels, source) - shape.origin
        value = change.scale * ndimage.map_coordinates(shape.sdf, voxel.T, order=1, mode="constant",
                                                       cval=float(shape.sdf.max()))
        closer = value < distance[near]
        distance[near[closer]] = value[closer]
        index[near[closer]] = position
    return NucleusSample(distance, index)


def tissue_property(intensity: np.ndarray, levels: np.ndarray, values: tuple[float, float, float]) -> np.ndarray:
    return np.interp(intensity, levels, values).astype(np.float32)


def sample_template(volume: np.ndarray, template: Template, points: np.ndarray, outside: float = 0.0) -> np.ndarray:
    voxel = apply_affine(np.linalg.inv(template.affine), points)
    return ndimage.map_coordinates(volume, voxel.T, order=1, mode="constant", cval=outside).astype(np.float32)
