"""Writes the demo cohort: a BIDS dataset of simulated subjects plus a `truth/` folder.

Per subject (seeded by the cohort seed and the subject number):
  bids/sub-XX/anat/sub-XX_T1w.nii.gz
  bids/sub-XX/anat/sub-XX_echo-N_part-{mag,phase}_T2starw.nii.gz (+ .json: EchoTime, MagneticFieldStrength)
  bids/derivatives/labels/sub-XX/anat/sub-XX_space-{SWI,T1w}_dseg.nii.gz (the reference "manual" labels)
  truth/sub-XX/sub-XX_space-SWI_{Chimap,mask,dseg,desc-local_field,desc-total_field,desc-phaseoffset}.nii.gz
  truth/sub-XX/sub-XX_space-T1w_dseg.nii.gz
  truth/sub-XX/sub-XX_from-T1w_to-SWI_mode-image_xfm.tfm (ITK; maps SWI points to T1 points, LPS)
  truth/sub-XX/sub-XX_truth.json (susceptibility per structure, volumes, poses, T1->SWI matrix in RAS)
"""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..io import save_volume, voxel_volume_mm3, write_atomic, write_json, write_text_atomic
from ..labels import STRUCTURES, dseg_tsv
from ..qc import Panel, three_view_figure
from .acquisition import Grid, Pose, grid_around, random_pose, simulate_swi, simulate_t1
from .anatomy import random_anatomy
from .template import Template

# anatomical centres (template mm) that the T1 field of view and the SWI slab are planned on, unless
# the settings give `t1_centre_mm` / `swi_centre_mm` (a subcortical field of view)
BRAIN_CENTRE_MM = (0.0, -18.0, 8.0)
SLAB_CENTRE_MM = (0.0, -16.0, -6.0)
LPS = np.diag([-1.0, -1.0, 1.0])


def subject_ids(settings: dict, prefix: str = "") -> list[str]:
    return [f"{prefix}{number:02d}" for number in range(1, settings["n_subjects"] + 1)]


def subject_number(subject: str) -> int:
    """The number a subject label ends with ("07", "hr03"): with the seed, it draws the subject."""
    digits = re.search(r"\d+$", subject)
    if digits is None:
        raise ValueError(f"demo subject label '{subject}' must end with its number")
    return int(digits.group())


def bids_paths(bids_dir: Path, subject: str, n_echoes: int) -> dict[str, Path]:
    anat = bids_dir / f"sub-{subject}" / "anat"
    labels = bids_dir / "derivatives" / "labels" / f"sub-{subject}" / "anat"
    paths = {"t1": anat / f"sub-{subject}_T1w.nii.gz",
             "labels_swi": labels / f"sub-{subject}_space-SWI_dseg.nii.gz",
             "labels_t1": labels / f"sub-{subject}_space-T1w_dseg.nii.gz"}
    for echo in range(1, n_echoes + 1):
        for part in ("mag", "phase"):
            paths[f"{part}{echo}"] = anat / f"sub-{subject}_echo-{echo}_part-{part}_T2starw.nii.gz"
    return paths


def truth_paths(truth_dir: Path, subject: str) -> dict[str, Path]:
    folder = truth_dir / f"sub-{subject}"
    stem = f"sub-{subject}"
    return {
        "chi": folder / f"{stem}_space-SWI_Chimap.nii.gz",
        "mask": folder / f"{stem}_space-SWI_mask.nii.gz",
        "labels_swi": folder / f"{stem}_space-SWI_dseg.nii.gz",
        "labels_t1": folder / f"{stem}_space-T1w_dseg.nii.gz",
        "local_field": folder / f"{stem}_space-SWI_desc-local_field.nii.gz",
        "total_field": folder / f"{stem}_space-SWI_desc-total_field.nii.gz",
        "phase_offset": folder / f"{stem}_space-SWI_desc-phaseoffset.nii.gz",
        "transform": folder / f"{stem}_from-T1w_to-SWI_mode-image_xfm.tfm",
        "json": folder / f"{stem}_truth.json",
    }


VARY_STREAM = 7  # the seed stream of the per-subject settings: the anatomy's and noise's draws stay as without `vary`
DERIVED_SETTINGS = ("swi_inplane_mm", "swi_slice_mm", "echo_time_scale")  # `vary` keys that set other settings
REFERENCE_B0_TESLA = 3.0  # echo times are given for 3 T; at another field they scale by 3 T / B0


def subject_settings(settings: dict, subject: str) -> dict:
    """The settings one subject is simulated with: `vary` (setting -> {range: [low, high]} drawn uniformly,
    or {choices: [...]}) draws some of them per subject, for a training cohort of varied acquisitions.

    Besides any setting by its own name, `vary` knows `swi_inplane_mm` and `swi_slice_mm` (the SWI voxel:
    the slab keeps its extent in mm, and is simulated on at most 1 mm slices) and `echo_time_scale` (on top
    of echo times scaled by 3 T / `b0_tesla`, so that a field gives a like phase). The drawn values are
    returned in `drawn`, which the truth record keeps."""
    vary = settings.get("vary") or {}
    if not vary:
        return settings
    rng = np.random.default_rng([settings["seed"], subject_number(subject), VARY_STREAM])
    drawn = {}
    for key, spec in vary.items():
        choices = spec.get("choices")
        drawn[key] = choices[rng.integers(len(choices))] if choices else float(rng.uniform(*spec["range"]))
    subject_settings = {**settings, **{k: v for k, v in drawn.items() if k not in DERIVED_SETTINGS}, "drawn": drawn}
    voxel = np.array(settings["swi_voxel_mm"], float)
    new_voxel = np.array([drawn.get("swi_inplane_mm", voxel[0]), drawn.get("swi_inplane_mm", voxel[1]),
                          drawn.get("swi_slice_mm", voxel[2])])
    extent_mm = np.array(settings["swi_shape"]) * voxel
    subject_settings["swi_voxel_mm"] = new_voxel.tolist()
    subject_settings["swi_shape"] = np.ceil(extent_mm / new_voxel).astype(int).tolist()
    subject_settings["swi_oversample"] = [1, 1, int(np.ceil(new_voxel[2] - 1e-6))]
    time_scale = REFERENCE_B0_TESLA / subject_settings["b0_tesla"] * drawn.get("echo_time_scale", 1.0)
    if "b0_tesla" in drawn or "echo_time_scale" in drawn:
        subject_settings["echo_times_s"] = [t * time_scale for t in settings["echo_times_s"]]
    return subject_settings


def swi_to_t1_matrix(t1_pose: Pose, swi_pose: Pose) -> np.ndarray:
    """4x4 RAS matrix taking an SWI-session world point to the T1-session world point of the same anatomy."""
    matrix = np.eye(4)
    matrix[:3, :3] = t1_pose.rotation.T @ swi_pose.rotation
    matrix[:3, 3] = t1_pose.rotation.T @ (swi_pose.translation - t1_pose.translation)
    return matrix


def write_itk_transform(path: Path, swi_to_t1_ras: np.ndarray) -> None:
    """Save as an ITK rigid transform (LPS), the convention of a registration with fixed=SWI, moving=T1."""
    transform = sitk.Euler3DTransform()
    transform.SetMatrix((LPS @ swi_to_t1_ras[:3, :3] @ LPS).ravel().tolist())
    transform.SetTranslation((LPS @ swi_to_t1_ras[:3, 3]).tolist())
    write_atomic(path, partial(sitk.WriteTransform, transform))


def structure_volumes(labels: np.ndarray, affine: np.ndarray) -> dict[str, float]:
    voxel_volume = voxel_volume_mm3(affine)
    counts = np.bincount(labels.ravel(), minlength=len(STRUCTURES) + 1)
    return {s.name: float(counts[s.label] * voxel_volume) for s in STRUCTURES}


def sidecar(settings: dict, echo: int, part: str) -> dict:
    return {"EchoTime": settings["echo_times_s"][echo - 1], "EchoNumber": echo,
            "MagneticFieldStrength": settings["b0_tesla"], "Manufacturer": "deepnuclei demo simulation",
            "ImageType": ["ORIGINAL", "PRIMARY", "M" if part == "mag" else "P"],
            **({"Units": "rad"} if part == "phase" else {})}


def generate_subject(template: Template, subject: str, settings: dict, bids_dir: Path, truth_dir: Path,
                     qc_png: Path | None = None) -> dict:
    """Simulate and write one subject; returns the truth record also written to its JSON."""
    settings = subject_settings(settings, subject)
    rng = np.random.default_rng([settings["seed"], subject_number(subject)])
    anatomy = random_anatomy(rng, template, settings)
    t1_pose = random_pose(rng, settings["pose_rotation_deg"], settings["pose_translation_mm"])
    swi_pose = t1_pose.then(rng.uniform(-1, 1, 3) * settings["motion_rotation_deg"],
                            rng.uniform(-1, 1, 3) * settings["motion_translation_mm"])
    t1_centre, swi_centre = (np.array(settings.get(key, default)) for key, default in
                             (("t1_centre_mm", BRAIN_CENTRE_MM), ("swi_centre_mm", SLAB_CENTRE_MM)))
    t1_grid = grid_around(t1_pose.to_world(t1_centre), np.eye(3), settings["t1_voxel_mm"], settings["t1_shape"])
    tilt = np.deg2rad(settings["swi_tilt_deg"])
    slab_rotation = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    swi_grid = grid_around(swi_pose.to_world(swi_centre), slab_rotation, settings["swi_voxel_mm"], settings["swi_shape"])

    t1_image, t1_labels = simulate_t1(rng, template, anatomy, t1_pose, t1_grid, settings["bias_amplitude"],
                                      settings["t1_snr"], settings.get("t1_gain", 1.0), bool(settings.get("t1_head", False)))
    swi = simulate_swi(rng, template, anatomy, swi_pose, swi_grid, settings)

    paths, truth = bids_paths(bids_dir, subject, len(settings["echo_times_s"])), truth_paths(truth_dir, subject)
    save_volume(paths["t1"], np.rint(t1_image), t1_grid.affine, np.int16)
    for echo, (magnitude, phase) in enumerate(zip(swi.magnitudes, swi.phases), start=1):
        save_volume(paths[f"mag{echo}"], np.rint(magnitude), swi_grid.affine, np.int16)
        save_volume(paths[f"phase{echo}"], phase, swi_grid.affine, np.float32)
        for part in ("mag", "phase"):
            write_json(paths[f"{part}{echo}"].with_suffix("").with_suffix(".json"), sidecar(settings, echo, part))
    for key in ("labels_swi", "labels_t1"):
        labels, affine = (swi.labels, swi_grid.affine) if key == "labels_swi" else (t1_labels, t1_grid.affine)
        save_volume(paths[key], labels, affine, np.uint8)
        save_volume(truth[key], labels, affine, np.uint8)
    for key, volume in (("chi", swi.chi_ppm), ("local_field", swi.local_field_ppm),
                        ("total_field", swi.total_field_ppm), ("phase_offset", swi.phase_offset_rad)):
        save_volume(truth[key], volume, swi_grid.affine, np.float32)
    save_volume(truth["mask"], swi.brain_mask, swi_grid.affine, np.uint8)
    swi_to_t1 = swi_to_t1_matrix(t1_pose, swi_pose)
    write_itk_transform(truth["transform"], swi_to_t1)
    record = {
        "subject": subject,
        "chi_ppm": {s.name: anatomy.chi_ppm[s] for s in STRUCTURES},
        "volume_mm3_t1": structure_volumes(t1_labels, t1_grid.affine),
        "volume_mm3_swi": structure_volumes(swi.labels, swi_grid.affine),
        "t1_world_to_swi_world_ras": np.linalg.inv(swi_to_t1).tolist(),
        "swi_world_to_t1_world_ras": swi_to_t1.tolist(),
        "nucleus_shift_mm": {s.name: anatomy.nuclei[s].shift.tolist() for s in STRUCTURES},
        "nucleus_scale": {s.name: anatomy.nuclei[s].scale for s in STRUCTURES},
        "acquisition": {key: settings[key] for key in ("b0_tesla", "echo_times_s", "swi_voxel_mm", "swi_shape",
                                                       "swi_tilt_deg", "swi_snr", "t1_snr", "bias_amplitude",
                                                       "background_scale")},
        "drawn": settings.get("drawn", {}),
    }
    write_json(truth["json"], record)
    if qc_png is not None:
        cohort_qc_figure(subject, t1_image, t1_labels, t1_grid, swi, swi_grid, qc_png)
    return record


def cohort_qc_figure(subject: str, t1_image: np.ndarray, t1_labels: np.ndarray, t1_grid: Grid, swi, swi_grid: Grid,
                     path: Path) -> Path:
    panels = [Panel("T1w + labels", t1_image, t1_grid.affine, labels=t1_labels),
              Panel("SWI magnitude (echo 1) + labels", swi.magnitudes[0], swi_grid.affine, labels=swi.labels,
                    outline=swi.brain_mask),
              Panel("SWI phase (echo 1, wrapped)", swi.phases[0], swi_grid.affine, window=(-np.pi, np.pi)),
              Panel("true susceptibility (ppm)", swi.chi_ppm, swi_grid.affine, window=(-0.1, 0.2))]
    return three_view_figure(panels, path, title=f"demo sub-{subject}")


def write_dataset_files(bids_dir: Path, settings: dict) -> None:
    """Dataset-level BIDS files: description, participants, label lookup tables."""
    write_json(bids_dir / "dataset_description.json", {
        "Name": "deepnuclei demo cohort (simulated from the MNI152 template and the Talairach atlas)",
        "BIDSVersion": "1.9.0", "DatasetType": "raw",
        "GeneratedBy": [{"Name": "deepnuclei.demo", "Description": json.dumps({"seed": settings["seed"]})}]})
    rng = np.random.default_rng([settings["seed"], 0])
    rows = ["participant_id\tage\tsex"] + [
        f"sub-{s}\t{int(rng.integers(45, 75))}\t{rng.choice(['M', 'F'])}" for s in subject_ids(settings)]
    write_text_atomic(bids_dir / "participants.tsv", "\n".join(rows) + "\n")
    write_text_atomic(bids_dir / "derivatives" / "labels" / "dseg.tsv", dseg_tsv())
    write_json(bids_dir / "derivatives" / "labels" / "dataset_description.json", {
        "Name": "reference labels", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "deepnuclei.demo"}]})
