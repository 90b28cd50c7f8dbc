"""Atlas baselines: a labelled template, or several labelled subjects, registered to each subject.

`atlas` registers one template (affine + SyN, antspyx) to the subject's T1 and carries its labels
with label-aware interpolation, as MRICloud and the LiNUS paper's registration method do.
`atlas-jlf` goes beyond the papers: every training subject is an atlas, and their warped labels are
fused with ANTs joint label fusion. Both give labels in T1 space; `registration` moves them to SWI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ants
import nibabel as nib
import numpy as np
from scipy import ndimage

from .io import InputError, load_nifti, read_volume, save_volume
from .registration import read_transform, resample_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AtlasParams:
    """antspyx registration settings (see ants.registration) and joint label fusion settings."""

    type_of_transform: str = "SyN"  # affine + symmetric normalisation
    reg_iterations: tuple[int, ...] = (40, 20, 0)  # SyN iterations per level (coarse to fine)
    aff_iterations: tuple[int, ...] = (1000, 500, 250, 0)
    aff_shrink_factors: tuple[int, ...] = (6, 4, 2, 1)
    aff_smoothing_sigmas: tuple[float, ...] = (3, 2, 1, 0)
    syn_metric: str = "mattes"
    seed: int = 1
    jlf_beta: float = 4.0
    jlf_patch_radius: int = 2
    jlf_search_radius: int = 0  # searching neighbouring patches chased noise on the demo (faint nuclei): Dice fell
    jlf_mask_margin_mm: float = 6.0  # fusion runs only near the warped labels: it costs per voxel
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, section: dict) -> "AtlasParams":
        known = {key: tuple(value) if isinstance(value, list) else value for key, value in section.items()
                 if key in cls.__dataclass_fields__}
        return cls(**known)


def read_ants(path: str | os.PathLike) -> ants.ANTsImage:
    load_nifti(path)  # clear error for a missing or corrupt file before ANTs' own
    return ants.image_read(str(path))


def check_same_grid(image_path: str | os.PathLike, labels_path: str | os.PathLike) -> None:
    image, labels = load_nifti(image_path), load_nifti(labels_path)
    if image.shape != labels.shape or not np.allclose(image.affine, labels.affine, atol=1e-3):
        raise InputError(labels_path, f"labels grid {labels.shape} does not match its image {image_path} {image.shape}")


def register_to_subject(subject: ants.ANTsImage, atlas: ants.ANTsImage, params: AtlasParams) -> list[str]:
    """Transforms (forward list, ANTs convention) that bring the atlas onto the subject."""
    result = ants.registration(
        fixed=subject, moving=atlas, type_of_transform=params.type_of_transform,
        reg_iterations=params.reg_iterations, aff_iterations=params.aff_iterations,
        aff_shrink_factors=params.aff_shrink_factors, aff_smoothing_sigmas=params.aff_smoothing_sigmas,
        syn_metric=params.syn_metric, random_seed=params.seed, **params.extra)
    return result["fwdtransforms"]


def warp(subject: ants.ANTsImage, moving: ants.ANTsImage, transforms: Sequence[str], labels: bool) -> ants.ANTsImage:
    interpolator = "genericLabel" if labels else "linear"
    return ants.apply_transforms(fixed=subject, moving=moving, transformlist=list(transforms), interpolator=interpolator)


def propagate_atlas(subject_t1: str | os.PathLike, atlas_t1: str | os.PathLike, atlas_labels: str | os.PathLike,
                    params: AtlasParams) -> ants.ANTsImage:
    """Single-atlas segmentation of the subject, in its T1 space."""
    check_same_grid(atlas_t1, atlas_labels)
    subject = read_ants(subject_t1)
    transforms = register_to_subject(subject, read_ants(atlas_t1), params)
    return warp(subject, read_ants(atlas_labels), transforms, labels=True)


def fusion_mask(warped_labels: Sequence[ants.ANTsImage], margin_mm: float) -> ants.ANTsImage:
    union = np.any([image.numpy() > 0 for image in warped_labels], axis=0)
    spacing = np.array(warped_labels[0].spacing)
    distance = ndimage.distance_transform_edt(~union, sampling=spacing)
    return warped_labels[0].new_image_like((distance <= margin_mm).astype(np.float32))


def fuse_atlases(subject_t1: str | os.PathLike, atlases: Sequence[tuple[str, str]], params: AtlasParams) -> ants.ANTsImage:
    """Multi-atlas segmentation: each (T1, labels) atlas registered, then joint label fusion."""
    if not atlases:
        raise ValueError("joint label fusion needs at least one atlas")
    subject = read_ants(subject_t1)
    warped_images, warped_labels = [], []
    for index, (atlas_t1, atlas_labels) in enumerate(atlases, start=1):
        check_same_grid(atlas_t1, atlas_labels)
        log.info("registering atlas %d/%d: %s", index, len(atlases), atlas_t1)
        transforms = register_to_subject(subject, read_ants(atlas_t1), params)
        warped_images.append(warp(subject, read_ants(atlas_t1), transforms, labels=False))
        warped_labels.append(warp(subject, read_ants(atlas_labels), transforms, labels=True))
    if len(warped_labels) == 1:  # nothing to fuse (and antspyx's fusion needs two atlases)
        log.warning("joint label fusion with one atlas: its warped labels are the result")
        return warped_labels[0]
    mask = fusion_mask(warped_labels, params.jlf_mask_margin_mm)
    fused = ants.joint_label_fusion(
        subject, mask, atlas_list=warped_images, label_list=warped_labels, beta=params.jlf_beta,
        rad=params.jlf_patch_radius, r_search=params.jlf_search_radius)
    segmentation = fused["segmentation"].numpy()
    log.info("fused %d atlases over %d voxels", len(atlases), int(mask.numpy().sum()))
    return subject.new_image_like(segmentation.astype(np.float32))


def save_labels(image: ants.ANTsImage, path: str | os.PathLike) -> Path:
    """Write labels as uint8 NIfTI through the atomic writer, keeping the subject's geometry."""
    temporary = Path(path).with_name(f".{Path(path).name}.ants.nii.gz")
    ants.image_write(image, str(temporary))
    reference = nib.load(str(temporary))
    data = np.rint(np.asarray(reference.dataobj)).astype(np.uint8)
    affine = reference.affine
    temporary.unlink()
    return save_volume(path, data, affine, np.uint8)


def write_in_both_spaces(labels_t1: ants.ANTsImage, swi_reference: str | os.PathLike,
                         transform: str | os.PathLike, out_t1: str | os.PathLike, out_swi: str | os.PathLike,
                         interpolation: str = "label_aware") -> None:
    """Save a T1-space segmentation, and the same moved onto the SWI grid with the T1->SWI transform."""
    save_labels(labels_t1, out_t1)
    labels, t1_affine = read_volume(out_t1, dtype=np.uint8)
    reference = load_nifti(swi_reference)
    moved = resample_labels(labels, t1_affine, read_transform(transform), reference.shape, reference.affine,
                            interpolation)
    save_volume(out_swi, moved, reference.affine, np.uint8)
