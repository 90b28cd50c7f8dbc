"""Atlas baselines: a labelled template, or several labelled subjects, registered to each subject.

`atlas` registers one template to the subject's T1 and carries its labels with label-aware
interpolation, as MRICloud and the LiNUS paper's registration method do. `atlas-jlf` goes beyond the
papers: several training subjects are atlases, and their warped labels are fused with ANTs joint label
fusion. Registration (antspyx) is affine over the whole head, then SyN only within a box around the
nuclei. Both give labels in T1 space; `registration.move_labels_files` moves them to SWI.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ants
import nibabel as nib
import numpy as np
from scipy import ndimage

from .io import check_same_grid, load_nifti, save_volume

log = logging.getLogger(__name__)

Atlas = tuple[ants.ANTsImage, ants.ANTsImage]  # T1 and labels, on one grid


@dataclass(frozen=True)
class AtlasParams:
    """antspyx registration settings (see ants.registration) and joint label fusion settings."""

    aff_iterations: tuple[int, ...] = (1000, 500)  # affine at shrink 6 and 4 only: SyN refines it
    aff_shrink_factors: tuple[int, ...] = (6, 4)
    aff_smoothing_sigmas: tuple[float, ...] = (3, 2)
    reg_iterations: tuple[int, ...] = (40, 20, 0)  # SyN iterations at shrink 4, 2, 1
    syn_metric: str = "CC"
    syn_sampling: int = 1  # CC: neighbourhood radius (voxels); mattes: histogram bins
    crop_margin_mm: float = 10.0  # SyN runs in the box of the affinely moved labels widened by this
    seed: int = 1
    jlf_beta: float = 4.0
    jlf_patch_radius: int = 2
    jlf_search_radius: int = 0  # searching neighbouring patches chased noise on the demo (faint nuclei): Dice fell
    jlf_mask_margin_mm: float = 6.0  # fusion runs only near the warped labels: it costs per voxel

    @classmethod
    def from_config(cls, section: dict) -> "AtlasParams":
        known = {key: tuple(value) if isinstance(value, list) else value for key, value in section.items()
                 if key in cls.__dataclass_fields__}
        return cls(**known)


def read_ants(path: str | os.PathLike) -> ants.ANTsImage:
    load_nifti(path)  # clear error for a missing or corrupt file before ANTs' own
    return ants.image_read(str(path))


def read_atlas(atlas_t1: str | os.PathLike, atlas_labels: str | os.PathLike) -> Atlas:
    image, labels = load_nifti(atlas_t1), load_nifti(atlas_labels)
    check_same_grid(atlas_labels, labels.shape, labels.affine, image.shape, image.affine, f"the atlas T1, {atlas_t1}")
    return ants.image_read(str(atlas_t1)), ants.image_read(str(atlas_labels))


def warp(fixed: ants.ANTsImage, moving: ants.ANTsImage, transforms: Sequence[str], labels: bool) -> ants.ANTsImage:
    interpolator = "genericLabel" if labels else "linear"
    return ants.apply_transforms(fixed=fixed, moving=moving, transformlist=list(transforms), interpolator=interpolator)


def affine_to_subject(subject: ants.ANTsImage, atlas_t1: ants.ANTsImage, params: AtlasParams, prefix: str) -> str:
    """The affine (ANTs .mat) that brings the atlas onto the subject, fitted over the whole head."""
    result = ants.registration(
        fixed=subject, moving=atlas_t1, type_of_transform="Affine", aff_iterations=params.aff_iterations,
        aff_shrink_factors=params.aff_shrink_factors, aff_smoothing_sigmas=params.aff_smoothing_sigmas,
        random_seed=params.seed, outprefix=prefix)
    return result["fwdtransforms"][0]


def syn_to_region(region: ants.ANTsImage, atlas_t1: ants.ANTsImage, affine: str, params: AtlasParams,
                  prefix: str) -> list[str]:
    """Transforms (forward list, ANTs convention, the affine included) onto the subject's region."""
    result = ants.registration(
        fixed=region, moving=atlas_t1, type_of_transform="SyNOnly", initial_transform=affine,
        reg_iterations=params.reg_iterations, syn_metric=params.syn_metric, syn_sampling=params.syn_sampling,
        random_seed=params.seed, outprefix=prefix)
    return result["fwdtransforms"]


def region_around(subject: ants.ANTsImage, labels: Sequence[ants.ANTsImage], margin_mm: float) -> ants.ANTsImage:
    """The subject's image cropped to the box the labels span, widened by the margin."""
    union = np.any([image.numpy() > 0 for image in labels], axis=0)
    if not union.any():
        raise ValueError("no atlas label falls inside the subject's image after the affine registration")
    inside = np.argwhere(union)
    margin = np.ceil(margin_mm / np.array(subject.spacing)).astype(int)
    lower = np.maximum(inside.min(axis=0) - margin, 0)
    upper = np.minimum(inside.max(axis=0) + margin + 1, subject.shape)
    return ants.crop_indices(subject, lower.tolist(), upper.tolist())


def register_atlases(subject: ants.ANTsImage, atlases: Sequence[Atlas],
                     params: AtlasParams) -> tuple[ants.ANTsImage, list[ants.ANTsImage], list[ants.ANTsImage]]:
    """Every atlas onto the subject: affine over the whole head, then SyN within the box around the nuclei
    that the affinely moved labels span (SyN costs per voxel; the rest of the head does not matter here).
    Returns that region of the subject, and each atlas's T1 and labels on it."""
    with tempfile.TemporaryDirectory(prefix="deepnuclei-atlas-") as workdir:
        affines = [affine_to_subject(subject, t1, params, f"{workdir}/{index}affine")
                   for index, (t1, _) in enumerate(atlases)]
        region = region_around(subject, [warp(subject, labels, [affine], labels=True)
                                         for (_, labels), affine in zip(atlases, affines)], params.crop_margin_mm)
        images, labels = [], []
        for index, ((atlas_t1, atlas_labels), affine) in enumerate(zip(atlases, affines)):
            log.info("SyN of atlas %d/%d on a %s region", index + 1, len(atlases), region.shape)
            transforms = syn_to_region(region, atlas_t1, affine, params, f"{workdir}/{index}syn")
            images.append(warp(region, atlas_t1, transforms, labels=False))
            labels.append(warp(region, atlas_labels, transforms, labels=True))
    return region, images, labels


def fusion_mask(warped_labels: Sequence[ants.ANTsImage], margin_mm: float) -> ants.ANTsImage:
    union = np.any([image.numpy() > 0 for image in warped_labels], axis=0)
    spacing = np.array(warped_labels[0].spacing)
    distance = ndimage.distance_transform_edt(~union, sampling=spacing)
    return warped_labels[0].new_image_like((distance <= margin_mm).astype(np.float32))


def joint_label_fusion(target: ants.ANTsImage, images: Sequence[ants.ANTsImage], labels: Sequence[ants.ANTsImage],
                       params: AtlasParams) -> ants.ANTsImage:
    """Joint label fusion of atlases already on the target's grid: each voxel takes the label of largest
    posterior, background included."""
    mask = fusion_mask(labels, params.jlf_mask_margin_mm)
    with tempfile.TemporaryDirectory(prefix="deepnuclei-jlf-") as workdir:
        fused = ants.joint_label_fusion(
            target, mask, atlas_list=list(images), label_list=list(labels), beta=params.jlf_beta,
            rad=params.jlf_patch_radius, r_search=params.jlf_search_radius, output_prefix=f"{workdir}/")
        posteriors = np.stack([image.numpy() for image in fused["probabilityimages"]])
    # antsJointFusion writes posteriors of the non-zero labels only, and antspyx's 'segmentation' is the
    # argmax over those: where all are 0 (background) it gives the first label. Background's posterior is
    # what the others leave of 1, so it competes here.
    values = np.array([0, *fused["segmentation_numbers"]])
    background = 1 - posteriors.sum(axis=0, keepdims=True)
    winner = np.argmax(np.concatenate([background, posteriors]), axis=0)
    log.info("fused %d atlases over %d voxels", len(images), int(mask.numpy().sum()))
    return target.new_image_like(values[winner].astype(np.float32))


def segment_with_atlases(subject_t1: str | os.PathLike, atlases: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
                         params: AtlasParams) -> ants.ANTsImage:
    """The subject's labels in its T1 space: one atlas's warped labels, or several atlases' fused."""
    if not atlases:
        raise ValueError("atlas segmentation needs at least one atlas")
    subject = read_ants(subject_t1)
    region, images, labels = register_atlases(subject, [read_atlas(*atlas) for atlas in atlases], params)
    fused = labels[0] if len(labels) == 1 else joint_label_fusion(region, images, labels, params)
    return ants.decrop_image(fused, subject * 0)


def save_labels(image: ants.ANTsImage, path: str | os.PathLike) -> Path:
    """Write labels as uint8 NIfTI through the atomic writer, keeping the subject's geometry."""
    temporary = Path(path).with_name(f".{Path(path).name}.ants.nii.gz")
    ants.image_write(image, str(temporary))
    reference = nib.load(str(temporary))
    data = np.rint(np.asarray(reference.dataobj)).astype(np.uint8)
    affine = reference.affine
    temporary.unlink()
    return save_volume(path, data, affine, np.uint8)
