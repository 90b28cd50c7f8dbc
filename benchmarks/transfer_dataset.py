"""A labelled BIDS dataset that deepnuclei's demo did not make: for testing trained models on data from
another template, other atlases, other voxel sizes and another scanner's intensity scale.

The head is `qsm_cases.head_model`: the ICBM 2009a symmetric template (nilearn) with its grey/white matter
maps, Neuromorphometrics caudate, putamen, pallidum and thalamus, Talairach SN, RN, STN and dentate, a
skull, scalp, neck, air and sinuses (the demo simulates its cohort from MNI152 with Talairach labels, by
code of its own). Each participant gets, seeded by (seed, participant):

- a T1w: the template's own T1 contrast inside the skull (nilearn's copy is skull-stripped: the head
  model's skull, marrow, scalp and neck are painted around it, `HEAD_T1`), at 0.9 mm isotropic (`t1_voxel_mm`) on an
  axis-aligned 192 x 256 x 256 field of view, the head in its own pose (a rigid rotation of up to
  `pose_rotation_deg` about each axis and a translation of up to `pose_translation_mm`), a mild smooth
  bias field, Rician noise, a gain of its own (white matter near 2,300 to 3,000; the demo's T1 is 0 to
  about 900) and stored as int16 with scl_slope 0.125, as converters write it;
- multi-echo GRE (4 echoes, 3 T, 5 to 23 ms) magnitude (int16, 12-bit range) and phase (int16 scanner
  units, [-4096, 4095]) from qsm-forward (the QSMxT team's forward model, as `qsm_cases`): the head in
  another pose (motion between the sessions), the field computed on a 1 mm grid with B0 along the
  scanner's z axis and shimmed over the brain (`qsm_cases.shimmed_field`), the signal made on a
  0.8 x 0.8 x 1 mm grid tilted by a few degrees about the left-right axis (an oblique slab) with a
  smooth slab excitation profile, k-space cropped to 2 mm slices, a smooth receiver phase offset and
  complex noise; an axial slab of `slices` 2 mm slices over the deep nuclei and the dentate;
- reference labels on the T1 grid (`derivatives/labels/sub-<p>/anat/sub-<p>_space-T1w_dseg.nii.gz`) in
  this dataset's own numbering and names (`derivatives/labels/dseg.tsv`: Neuromorphometrics values and
  names for its structures, 1000 + Talairach index for left and 2000 + for right of the others): the very
  label volume the susceptibility, M0 and R2* were built from, moved by the T1 session's pose;
- truth on the GRE grid (`derivatives/truth/`: labels, susceptibility in ppm, brain mask, and both poses
  with the true T1 -> GRE transform), which the workflow does not read; `--swi-labels` also puts the GRE
  grid's labels into derivatives/labels, so that scoring there skips the T1 -> GRE registration.

`--no-labels` writes the same images without derivatives/labels. `make bench-heldout`
(benchmarks/bench_heldout.py) makes three labelled sets with it (3 T and 7 T, oblique and thick slabs) and
applies bundles to them with config/apply.yaml, which scores every labelled participant (docs/pretrained.md).

    .venv/bin/python benchmarks/transfer_dataset.py --out resources/transfer --participants t01 t02
    .venv/bin/python benchmarks/transfer_dataset.py --out resources/transfer_nolabels --participants a01 --no-labels

writes `<out>/bids` (the dataset: `bids_dir`) and `<out>/qc/sub-<p>.png` (slices of T1, magnitude and
phase with the labels). qsm-forward (GPL-3.0) is a benchmark tool (`dev` extra), never imported by the
package. About 2 to 3 minutes and 9 GB of memory per participant on 2 cores (the field's FFTs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from scipy.signal.windows import tukey

sys.path.insert(0, str(Path(__file__).resolve().parent))
import qsm_cases

from deepnuclei.labels import match_structure

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261203
ECHO_TIMES_MS = (5.0, 11.0, 17.0, 23.0)
REPETITION_TIME_S = 0.035
FLIP_ANGLE_DEG = 15.0
T1_SLOPE = 0.125  # the T1's scl_slope: int16 values up to 32,767 hold intensities up to about 4,096
POSE_CENTRE_MM = np.array([0.0, -20.0, 10.0])  # rotations are about this point of the head (MNI mm)

# This dataset's numbering and names: Neuromorphometrics' own for the structures taken from it, and
# 1000 + (left) / 2000 + (right) the Talairach index for the others (qsm_cases.TALAIRACH).
NUCLEUS_WORDS = {"CN": "Caudate", "PUT": "Putamen", "GP": "Pallidum", "THA": "Thalamus Proper",
                 "SN": "Substantia Nigra", "RN": "Red Nucleus", "DN": "Dentate", "STN": "Subthalamic Nucleus"}
SIDE_WORDS = {"L": "Left", "R": "Right"}


def dataset_labels() -> dict[str, tuple[int, str]]:
    """deepnuclei structure (e.g. "CN_L") -> (value, name) in this dataset's dseg.tsv."""
    table = {}
    for structure in qsm_cases.STRUCTURE_LABELS:
        nucleus, side = structure.split("_")
        if structure in qsm_cases.NEUROMORPHOMETRICS:
            value = qsm_cases.NEUROMORPHOMETRICS[structure]
        else:
            value = (1000 if side == "L" else 2000) + qsm_cases.TALAIRACH[nucleus]
        table[structure] = (value, f"{SIDE_WORDS[side]} {NUCLEUS_WORDS[nucleus]}")
    for structure, (_, name) in table.items():  # the workflow maps names to structures: each must match
        if match_structure(name) != structure:
            raise AssertionError(f"'{name}' matches {match_structure(name)}, not {structure}")
    return table


def dseg_tsv() -> str:
    rows = sorted(dataset_labels().values())
    return "index\tname\n" + "".join(f"{value}\t{name}\n" for value, name in rows)


@dataclass(frozen=True)
class Acquisition:
    """What every participant of a dataset shares."""

    t1_voxel_mm: float = 0.9
    t1_shape: tuple[int, int, int] = (192, 256, 256)
    t1_centre_mm: tuple[float, float, float] = (0.0, -18.0, 8.0)  # scanner mm
    t1_snr: float = 50.0  # white matter over the noise's standard deviation
    t1_bias: float = 0.08  # std of the log bias field's coefficients
    b0_tesla: float = 3.0  # R2* scales with it from the head model's 3 T values (as qsm_cases)
    swi_voxel_mm: tuple[float, float, float] = (0.8, 0.8, 2.0)
    swi_inplane: tuple[int, int] = (260, 300)  # 208 x 240 mm
    slices: int = 56  # 2 mm slices: a 112 mm slab
    margin_slices: int = 8  # simulated beyond the slab on each side (the excitation profile falls off there)
    simulation_slice_mm: float = 1.0  # simulated slice thickness; k-space cropped to swi_voxel_mm[2]
    echo_times_ms: tuple[float, ...] = ECHO_TIMES_MS
    peak_snr: float = 80.0  # qsm-forward's: the maximum magnitude over the noise's standard deviation
    tilt_deg: tuple[float, float] = (3.0, 10.0)  # slab tilt about left-right, drawn in this range
    pose_rotation_deg: float = 5.0  # each session's head pose: uniform +- about each axis
    pose_translation_mm: float = 5.0
    magnitude_max: float = 4000.0  # receiver scale: echo 1's maximum magnitude (int16)
    phase_units: str = "scanner"  # "scanner": int16 in [-4096, 4095]; "rad": float32 radians


def rigid(angles_deg: Sequence[float], translation_mm: Sequence[float], centre_mm: np.ndarray = POSE_CENTRE_MM) -> np.ndarray:
    """4x4 world transform: rotation about x, y, z (degrees, in that order) about `centre_mm`, then a shift."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    transform = np.eye(4)
    transform[:3, :3] = rz @ ry @ rx
    transform[:3, 3] = centre_mm - transform[:3, :3] @ centre_mm + np.asarray(translation_mm)
    return transform


def participant_rng(seed: int, participant: str) -> np.random.Generator:
    """One generator per participant: adding participants changes none of the others."""
    return np.random.default_rng([seed, zlib.crc32(participant.encode())])


def draw_pose(rng: np.random.Generator, acquisition: Acquisition) -> np.ndarray:
    angles = rng.uniform(-acquisition.pose_rotation_deg, acquisition.pose_rotation_deg, 3)
    shift = rng.uniform(-acquisition.pose_translation_mm, acquisition.pose_translation_mm, 3)
    return rigid(angles, shift)


def sample(volume: np.ndarray, source_affine: np.ndarray, target_affine: np.ndarray, shape: Sequence[int],
           world_to_source: np.ndarray | None = None, order: int = 1, mode: str = "nearest",
           cval: float = 0.0) -> np.ndarray:
    """`volume` (on `source_affine`) at the voxels of a target grid; `world_to_source` moves the target's
    world into the source's (the inverse of a head pose)."""
    moved = np.eye(4) if world_to_source is None else world_to_source
    to_source = np.linalg.inv(source_affine) @ moved @ target_affine
    return ndimage.affine_transform(volume, to_source[:3, :3], to_source[:3, 3], output_shape=tuple(shape),
                                    order=order, mode=mode, cval=cval)


def _save(values: np.ndarray, affine: np.ndarray, path: Path, slope: float | None = None) -> None:
    """A NIfTI with qform and sform; given `slope`, as int16 values times scl_slope (as converters store it)."""
    if slope is not None:
        values = np.clip(np.round(values / slope), -32768, 32767).astype(np.int16)
    image = nib.Nifti1Image(values, affine)
    if slope is not None:
        image.header.set_slope_inter(slope, 0.0)
    image.set_qform(affine, 1)
    image.set_sform(affine, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))


def _json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=1) + "\n")


def _to_dataset_numbering(labels: np.ndarray) -> np.ndarray:
    """The head model's labels (deepnuclei's numbering) in this dataset's."""
    table = np.zeros(int(labels.max()) + 1, np.int16)
    for structure, (value, _) in dataset_labels().items():
        table[qsm_cases.STRUCTURE_LABELS[structure]] = value
    return table[labels]


def _template_t1() -> nib.Nifti1Image:
    return nib.load(qsm_cases._data_dir("nilearn", "datasets", "data") / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")


def _bias(shape: Sequence[int], rng: np.random.Generator, std: float) -> np.ndarray:
    """A smooth multiplicative field: exp of a random second-order polynomial over the field of view."""
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = [x, y, z, x * y, x * z, y * z, x**2 - 1 / 3, y**2 - 1 / 3, z**2 - 1 / 3]
    return np.exp(sum(c * t for c, t in zip(rng.normal(0, std, len(terms)), terms))).astype(np.float32)


# ---------------------------------------------------------------------------------------------- T1


# T1 intensities of the head model's tissues outside the template's brain, on the template's scale (0 to 1,
# white matter about 0.9): nilearn's ICBM 2009a T1 is skull-stripped, so the skull, scalp and neck that the
# susceptibility is built from are painted in: cortical bone dark, its marrow (diploe) brighter, the scalp
# fat bright, the neck's inside muscle-grey.
HEAD_T1 = {"bone": 0.05, "diploe": 0.45, "scalp": 0.85, "neck": 0.5}


def head_t1(model: qsm_cases.HeadModel, seed: int) -> np.ndarray:
    """A T1 of the whole head on the model's grid: the template's own T1 inside the skull, the model's
    skull, scalp and neck around it (`HEAD_T1`, with a smooth texture of +-8 % on the soft tissue)."""
    template = _template_t1()
    t1 = sample(np.asarray(template.dataobj, np.float32) / 255.0, template.affine, model.affine, model.chi.shape,
                mode="constant")
    air = model.m0 == 0
    bone = np.isclose(model.chi, qsm_cases.BONE_CHI_PPM)
    scalp = np.isclose(model.r1, qsm_cases.TISSUE["scalp"][3]) & ~bone & ~air
    intracranial = ~(air | bone | scalp)
    depth = ndimage.distance_transform_edt(~intracranial, sampling=qsm_cases.SIMULATION_VOXEL_MM)
    texture = ndimage.gaussian_filter(np.random.default_rng([seed, 0]).standard_normal(t1.shape).astype(np.float32), 2.0)
    texture = 1.0 + 0.08 * texture / texture.std()
    painted = np.zeros_like(t1)
    painted[bone] = HEAD_T1["bone"]
    painted[bone & (depth > 2.5) & (depth <= 5.5)] = HEAD_T1["diploe"]
    painted[scalp] = HEAD_T1["scalp"]
    painted[scalp & (depth > 13.0)] = HEAD_T1["neck"]  # the scalp's shell is 7 to 13 mm out: deeper is neck
    painted = ndimage.gaussian_filter(painted * np.where(scalp, texture, 1.0), 0.6)
    return np.where(intracranial, t1, painted).astype(np.float32)


def make_t1(model: qsm_cases.HeadModel, head: np.ndarray, pose: np.ndarray, acquisition: Acquisition,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The T1 (scanner intensities, float) of `head` (`head_t1`), its affine, the labels on its grid
    (deepnuclei numbering) and notes on its scale."""
    voxel = acquisition.t1_voxel_mm
    shape = np.asarray(acquisition.t1_shape)
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = np.asarray(acquisition.t1_centre_mm) - voxel * (shape - 1) / 2
    unpose = np.linalg.inv(pose)
    # nearest beyond the model's grid: the neck goes on to the field of view's edge, the air stays air
    t1 = np.clip(sample(head, model.affine, affine, shape, unpose, order=3), 0, None)
    gain = rng.uniform(2600.0, 3300.0)  # white matter (about 0.9 of the template's range): 2,300 to 3,000
    t1 *= gain * _bias(shape, rng, acquisition.t1_bias)
    sigma = float(np.percentile(t1[t1 > 0.5 * t1.max()], 50)) / acquisition.t1_snr
    t1 = np.hypot(t1 + rng.normal(0, sigma, t1.shape).astype(np.float32),
                  rng.normal(0, sigma, t1.shape).astype(np.float32))  # Rician
    labels = sample(model.labels, model.affine, affine, shape, unpose, order=0, mode="constant")
    return t1.astype(np.float32), affine, labels, {"gain": gain, "noise_sigma": sigma}


# --------------------------------------------------------------------------------------------- SWI


@dataclass
class SWIGrids:
    fine_affine: np.ndarray  # the simulation grid (tilted, 1 mm slices), slab plus margins
    fine_shape: tuple[int, int, int]
    full_shape: tuple[int, int, int]  # after the k-space crop (2 mm slices), still with the margins
    affine: np.ndarray  # the acquired slab
    box: tuple[slice, ...]  # of the full acquired grid: the slab


def swi_grids(model: qsm_cases.HeadModel, pose: np.ndarray, tilt_deg: float, acquisition: Acquisition) -> SWIGrids:
    """The acquisition's grids in scanner mm: axes turned by `tilt_deg` about left-right; in-plane centred
    on the brain, along the slice axis on the middle of the labelled structures (caudate to dentate)."""
    rotation = qsm_cases.tilt(tilt_deg)

    def in_frame(mask: np.ndarray) -> np.ndarray:  # voxels of the model -> the acquisition frame's mm
        points = np.argwhere(mask)[::7].T
        world = model.affine[:3, :3] @ points + model.affine[:3, 3:4]
        scanner = pose[:3, :3] @ world + pose[:3, 3:4]
        return rotation.T @ scanner

    brain, labelled = in_frame(model.brain), in_frame(model.labels > 0)
    centre = np.array([(brain[0].min() + brain[0].max()) / 2, (brain[1].min() + brain[1].max()) / 2,
                       (labelled[2].min() + labelled[2].max()) / 2])
    ratio = acquisition.swi_voxel_mm[2] / acquisition.simulation_slice_mm
    if ratio != round(ratio):
        raise ValueError("the slice thickness must be a whole multiple of the simulated one")
    full = (*acquisition.swi_inplane, acquisition.slices + 2 * acquisition.margin_slices)
    fine = (*acquisition.swi_inplane, int(full[2] * ratio))
    fine_voxel = np.array([*acquisition.swi_voxel_mm[:2], acquisition.simulation_slice_mm])
    fine_affine = np.eye(4)
    fine_affine[:3, :3] = rotation @ np.diag(fine_voxel)
    fine_affine[:3, 3] = rotation @ centre - fine_affine[:3, :3] @ ((np.asarray(fine) - 1) / 2)
    # the k-space crop keeps the origin: acquired voxel j is the simulated voxel j * ratio
    affine = fine_affine @ np.diag([1.0, 1.0, ratio, 1.0])
    affine[:3, 3] += affine[:3, :3] @ np.array([0, 0, acquisition.margin_slices])
    box = (slice(None), slice(None), slice(acquisition.margin_slices, acquisition.margin_slices + acquisition.slices))
    return SWIGrids(fine_affine, fine, full, affine, box)


def make_swi(model: qsm_cases.HeadModel, pose: np.ndarray, tilt_deg: float, acquisition: Acquisition,
             rng: np.random.Generator) -> dict:
    """Magnitude and phase per echo on the slab, their affine, and the truth on it."""
    qf = qsm_cases._qsm_forward()
    unpose = np.linalg.inv(pose)
    # the field: the head moved into the scanner (B0 along its z), on the model's grid read as scanner mm
    posed = replace(model, chi=sample(model.chi, model.affine, model.affine, model.chi.shape, unpose),
                    brain=sample(model.brain.astype(np.uint8), model.affine, model.affine, model.chi.shape, unpose,
                                 order=0).astype(bool))
    field = qsm_cases.shimmed_field(posed, qsm_cases.Case("transfer", b0_tesla=acquisition.b0_tesla))
    del posed
    grids = swi_grids(model, pose, tilt_deg, acquisition)
    fine = grids.fine_shape

    def on_fine(volume: np.ndarray, order: int = 1) -> np.ndarray:
        return sample(volume, model.affine, grids.fine_affine, fine, unpose, order=order)

    field = sample(field, model.affine, grids.fine_affine, fine)  # already in the scanner
    r2star_b0 = model.r2star_3t * np.where(model.chi == qsm_cases.AIR_CHI_PPM, 1.0, acquisition.b0_tesla / 3.0)
    m0, r1, r2star = on_fine(model.m0), on_fine(model.r1), on_fine(r2star_b0.astype(np.float32))
    del r2star_b0
    brain = on_fine(model.brain.astype(np.uint8), order=0).astype(bool)
    # slab excitation: flat over the slab, falling off to zero across the margins (no wrap along the slices)
    margin = acquisition.margin_slices * fine[2] / grids.full_shape[2]  # simulated slices, each side
    m0 *= tukey(fine[2], alpha=min(1.0, 1.5 * margin / fine[2])).astype(np.float32)  # 3/4 of each margin
    offset = qf.generate_phase_offset(m0, brain, fine)
    magnitudes, phases = [], []
    for te_ms in acquisition.echo_times_ms:
        signal = qf.generate_signal(field, B0=acquisition.b0_tesla, TR=REPETITION_TIME_S, TE=te_ms / 1000,
                                    flip_angle=FLIP_ANGLE_DEG, phase_offset=offset, R1=r1, R2star=r2star, M0=m0)
        signal = qf.add_noise(qf.crop_kspace(signal, grids.full_shape), peak_snr=acquisition.peak_snr, rng=rng)
        signal = signal[grids.box]
        magnitudes.append(np.abs(signal).astype(np.float32))
        phases.append(np.angle(signal).astype(np.float32))
    del field, m0, r1, r2star, signal
    chi = qf.crop_kspace(on_fine(np.where(model.brain, model.chi, 0.0).astype(np.float32)).astype(np.float64),
                         grids.full_shape, gibbs_correction=False)[grids.box]

    def on_slab(volume: np.ndarray) -> np.ndarray:  # nearest, at the acquired voxels' centres
        return sample(volume, model.affine, grids.affine, np.asarray(magnitudes[0].shape), unpose, order=0)

    mask = on_slab(model.brain.astype(np.uint8))
    return {"magnitudes": magnitudes, "phases": phases, "affine": grids.affine, "chi": (chi * mask).astype(np.float32),
            "mask": mask, "labels": on_slab(model.labels)}


# ------------------------------------------------------------------------------------------ writing


def write_participant(bids: Path, participant: str, model: qsm_cases.HeadModel, seed: int, labels: bool,
                      acquisition: Acquisition, swi_labels: bool = False, head: np.ndarray | None = None) -> dict:
    """One participant's files; returns what was drawn for it. `swi_labels`: the reference labels on the
    GRE grid too (the truth's), so that scoring there does not go through the T1 -> GRE registration."""
    rng = participant_rng(seed, participant)
    t1_pose, swi_pose = draw_pose(rng, acquisition), draw_pose(rng, acquisition)
    tilt_deg = float(rng.uniform(*acquisition.tilt_deg))
    name = f"sub-{participant}"
    anat = bids / name / "anat"
    head = head_t1(model, seed) if head is None else head
    t1, t1_affine, t1_labels, t1_scale = make_t1(model, head, t1_pose, acquisition, rng)
    _save(t1, t1_affine, anat / f"{name}_T1w.nii.gz", slope=T1_SLOPE)
    _json(anat / f"{name}_T1w.json", {
        "MagneticFieldStrength": acquisition.b0_tesla, "Manufacturer": "simulated (ICBM 2009a template T1, posed)",
        "MRAcquisitionType": "3D", "SeriesDescription": "T1w, template contrast"})
    swi = make_swi(model, swi_pose, tilt_deg, acquisition, rng)
    scale = acquisition.magnitude_max / float(swi["magnitudes"][0].max())
    for echo, (te_ms, magnitude, phase) in enumerate(zip(acquisition.echo_times_ms, swi["magnitudes"], swi["phases"]),
                                                     start=1):
        sidecar = {"EchoTime": te_ms / 1000, "EchoNumber": echo, "MagneticFieldStrength": acquisition.b0_tesla,
                   "RepetitionTime": REPETITION_TIME_S, "FlipAngle": FLIP_ANGLE_DEG,
                   "MRAcquisitionType": "3D", "SliceThickness": acquisition.swi_voxel_mm[2],
                   "Manufacturer": "simulated (qsm-forward)"}
        stem = anat / f"{name}_echo-{echo}_part-mag_MEGRE"
        _save(np.round(np.clip(magnitude * scale, 0, 32767)).astype(np.int16), swi["affine"], Path(f"{stem}.nii.gz"))
        _json(Path(f"{stem}.json"), {**sidecar, "ImageType": ["ORIGINAL", "PRIMARY", "M"]})
        stem = anat / f"{name}_echo-{echo}_part-phase_MEGRE"
        if acquisition.phase_units == "scanner":
            stored = np.clip(np.floor((phase + np.pi) / (2 * np.pi) * 8192) - 4096, -4096, 4095).astype(np.int16)
            units = "arbitrary"
        else:
            stored, units = phase, "rad"
        _save(stored, swi["affine"], Path(f"{stem}.nii.gz"))
        _json(Path(f"{stem}.json"), {**sidecar, "ImageType": ["ORIGINAL", "PRIMARY", "P"], "Units": units})
    if labels:
        _save(_to_dataset_numbering(t1_labels), t1_affine,
              bids / "derivatives" / "labels" / name / "anat" / f"{name}_space-T1w_dseg.nii.gz")
    truth = bids / "derivatives" / "truth" / name / "anat"
    _save(_to_dataset_numbering(swi["labels"]), swi["affine"], truth / f"{name}_space-SWI_dseg.nii.gz")
    if labels and swi_labels:
        _save(_to_dataset_numbering(swi["labels"]), swi["affine"],
              bids / "derivatives" / "labels" / name / "anat" / f"{name}_space-SWI_dseg.nii.gz")
    _save(swi["chi"], swi["affine"], truth / f"{name}_space-SWI_Chimap.nii.gz")
    _save(swi["mask"].astype(np.uint8), swi["affine"], truth / f"{name}_space-SWI_mask.nii.gz")
    drawn = {"t1_pose_mni_to_scanner": t1_pose.round(6).tolist(), "swi_pose_mni_to_scanner": swi_pose.round(6).tolist(),
             "t1_to_swi_scanner": (swi_pose @ np.linalg.inv(t1_pose)).round(6).tolist(), "slab_tilt_deg": tilt_deg,
             "t1_gain": t1_scale["gain"], "t1_noise_sigma": t1_scale["noise_sigma"], "magnitude_scale": scale}
    _json(truth / f"{name}_poses.json", drawn)
    return drawn


def _descriptions(bids: Path, participants: Sequence[str], seed: int, labels: bool, acquisition: Acquisition) -> None:
    generated = [{"Name": "benchmarks/transfer_dataset.py (deepnuclei)", "Description":
                  f"seed {seed}; head of benchmarks/qsm_cases.py; signal by qsm-forward"}]
    _json(bids / "dataset_description.json", {
        "Name": "deepnuclei transfer test: ICBM 2009a head, Neuromorphometrics + Talairach nuclei, qsm-forward GRE",
        "BIDSVersion": "1.9.0", "DatasetType": "raw", "License": "simulated data", "GeneratedBy": generated})
    (bids / "README").write_text(
        "Simulated by benchmarks/transfer_dataset.py of deepnuclei: T1w (ICBM 2009a template contrast, "
        f"{acquisition.t1_voxel_mm} mm) and {len(acquisition.echo_times_ms)}-echo {acquisition.b0_tesla:g} T GRE ({' x '.join(map(str, acquisition.swi_voxel_mm))} mm "
        "oblique slab) per participant, each session in its own head pose. derivatives/labels: reference labels "
        "on the T1 grid (dseg.tsv names them); derivatives/truth: the truth on the GRE grid and the poses.\n")
    existing = set()
    table = bids / "participants.tsv"
    if table.exists():
        existing = set(table.read_text().split()[1:])
    rows = sorted(existing | {f"sub-{p}" for p in participants})
    table.write_text("participant_id\n" + "".join(f"{row}\n" for row in rows))
    _json(bids / "participants.json", {"participant_id": {"Description": "simulated participant"}})
    folders = [("truth", "truth on the GRE grid (labels, susceptibility in ppm, brain mask) and the head poses")]
    if labels:
        folders.append(("labels", "reference labels on the T1 grid, the truth of the simulated anatomy"))
    for folder, description in folders:
        root = bids / "derivatives" / folder
        _json(root / "dataset_description.json", {
            "Name": f"transfer dataset {folder}", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
            "GeneratedBy": generated, "Description": description})
        (root / "dseg.tsv").write_text(dseg_tsv())


def make_dataset(root: Path, participants: Sequence[str], seed: int = SEED, labels: bool = True,
                 acquisition: Acquisition = Acquisition(), qc: bool = True, swi_labels: bool = False) -> Path:
    """Write the participants under `root/bids` (and QC images under `root/qc`); returns the BIDS folder.
    `labels`: reference labels on the T1 grid (and, with `swi_labels`, on the GRE grid) in
    derivatives/labels; the images do not depend on either."""
    root = Path(root)
    bids = root / "bids"
    bids.mkdir(parents=True, exist_ok=True)
    _descriptions(bids, participants, seed, labels, acquisition)
    start = time.perf_counter()
    model = qsm_cases.head_model(qsm_cases.SIMULATION_VOXEL_MM, cavities=True)
    head = head_t1(model, seed)
    print(f"head model in {time.perf_counter() - start:.0f} s", flush=True)
    for participant in participants:
        start = time.perf_counter()
        write_participant(bids, participant, model, seed, labels, acquisition, swi_labels, head)
        print(f"sub-{participant} in {time.perf_counter() - start:.0f} s", flush=True)
        if qc:
            qc_figure(bids, participant, root / "qc" / f"sub-{participant}.png")
    return bids


# ----------------------------------------------------------------------------------------------- QC


def qc_figure(bids: Path, participant: str, out: Path) -> Path:
    """Slices of the written files: T1 with its labels (axial through the red nuclei and the dentate,
    coronal through the subthalamic nuclei, sagittal over the whole field of view), echo 1 magnitude with
    the truth labels on the GRE grid, and the last echo's phase and magnitude."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    name = f"sub-{participant}"
    anat = bids / name / "anat"
    t1_image = nib.load(anat / f"{name}_T1w.nii.gz")
    t1 = t1_image.get_fdata(dtype=np.float32)
    labels_path = bids / "derivatives" / "labels" / name / "anat" / f"{name}_space-T1w_dseg.nii.gz"
    truth = bids / "derivatives" / "truth" / name / "anat"
    labels = np.asarray(nib.load(labels_path).dataobj) if labels_path.exists() else None
    swi_labels = np.asarray(nib.load(truth / f"{name}_space-SWI_dseg.nii.gz").dataobj)
    magnitude = nib.load(anat / f"{name}_echo-1_part-mag_MEGRE.nii.gz").get_fdata(dtype=np.float32)
    echoes = sorted(anat.glob(f"{name}_echo-*_part-phase_MEGRE.nii.gz"),
                    key=lambda path: int(path.name.split("echo-")[1].split("_")[0]))
    phase = nib.load(echoes[-1]).get_fdata(dtype=np.float32)
    last = nib.load(str(echoes[-1]).replace("part-phase", "part-mag")).get_fdata(dtype=np.float32)
    names = dict(dataset_labels().values())  # value -> name
    ordered = sorted(names)
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, len(ordered)))
    cmap = ListedColormap(colours)
    index = np.zeros(max(ordered) + 1, np.int16)
    index[ordered] = np.arange(1, len(ordered) + 1)

    def centre(volume: np.ndarray, words: str) -> np.ndarray:
        wanted = [value for value, label in names.items() if words in label]
        points = np.argwhere(np.isin(volume, wanted))
        return points.mean(axis=0).round().astype(int) if len(points) else np.array(volume.shape) // 2

    def panel(axis, image, overlay, title, window, half=None, at=None):
        if half is not None:  # a window of `half` voxels around `at` (in-plane)
            low = np.maximum(np.asarray(at) - half, 0)
            image = image[low[0]:low[0] + 2 * half, low[1]:low[1] + 2 * half]
            overlay = None if overlay is None else overlay[low[0]:low[0] + 2 * half, low[1]:low[1] + 2 * half]
        axis.imshow(image.T, cmap="gray", origin="lower", vmin=window[0], vmax=window[1], interpolation="nearest")
        if overlay is not None:
            shown = np.ma.masked_equal(index[overlay], 0)
            axis.imshow(shown.T, cmap=cmap, vmin=0.5, vmax=len(ordered) + 0.5, origin="lower", alpha=0.45,
                        interpolation="nearest")
            edges = overlay != ndimage.grey_erosion(overlay, size=3)
            axis.contour(edges.T.astype(float), levels=[0.5], colors="yellow", linewidths=0.3)
        axis.set_title(title, fontsize=8)
        axis.axis("off")

    t1_window = (0, float(np.percentile(t1, 99.5)))
    figure, axes = plt.subplots(2, 4, figsize=(17, 9))
    middle = np.array(t1.shape) // 2
    panel(axes[0, 3], t1[middle[0], :, :], None if labels is None else labels[middle[0], :, :],
          f"T1 sagittal i={middle[0]}, whole field of view", t1_window)
    if labels is not None:
        rn, dn, stn = centre(labels, "Red"), centre(labels, "Dentate"), centre(labels, "Subthalamic")
        half = round(45 / t1_image.header.get_zooms()[0])
        panel(axes[0, 0], t1[:, :, rn[2]], labels[:, :, rn[2]], f"T1 axial k={rn[2]} (red nuclei) + labels",
              t1_window, half, rn[:2])
        panel(axes[0, 1], t1[:, stn[1], :], labels[:, stn[1], :], f"T1 coronal j={stn[1]} (STN) + labels",
              t1_window, half, stn[[0, 2]])
        panel(axes[0, 2], t1[:, :, dn[2]], labels[:, :, dn[2]], f"T1 axial k={dn[2]} (dentate) + labels",
              t1_window, half, dn[:2])
    else:
        middle = np.array(t1.shape) // 2
        panel(axes[0, 0], t1[:, :, middle[2]], None, f"T1 axial k={middle[2]}", t1_window)
        panel(axes[0, 1], t1[:, middle[1], :], None, f"T1 coronal j={middle[1]}", t1_window)
        axes[0, 2].axis("off")
    s_rn = centre(swi_labels, "Red")
    m_window = (0, float(np.percentile(magnitude, 99.5)))
    panel(axes[1, 0], magnitude[:, :, s_rn[2]], None, f"echo 1 magnitude, slice {s_rn[2]} of {magnitude.shape[2]}",
          m_window)
    half = round(45 / float(nib.load(anat / f"{name}_echo-1_part-mag_MEGRE.nii.gz").header.get_zooms()[0]))
    panel(axes[1, 1], magnitude[:, :, s_rn[2]], swi_labels[:, :, s_rn[2]], "magnitude + truth labels (GRE grid)",
          m_window, half, s_rn[:2])
    panel(axes[1, 3], last[:, :, s_rn[2]], None, f"echo {len(echoes)} magnitude (iron-rich nuclei dark)",
          (0, float(np.percentile(last, 99.5))), half, s_rn[:2])
    panel(axes[1, 2], phase[:, :, s_rn[2]], None, f"phase, echo {len(echoes)} (stored units)",
          (float(phase.min()), float(phase.max())))
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[i]) for i in range(len(ordered))]
    figure.legend(handles, [f"{value} {names[value]}" for value in ordered], loc="lower center", ncol=6, fontsize=7)
    figure.suptitle(f"{name}: T1 {t1.shape} at {t1_image.header.get_zooms()[0]:.2f} mm, GRE {magnitude.shape}",
                    fontsize=10)
    figure.tight_layout(rect=(0, 0.07, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "transfer",
                        help="writes <out>/bids and <out>/qc")
    parser.add_argument("--participants", nargs="+", default=["t01", "t02"], help="labels, without sub-")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--no-labels", action="store_true", help="no derivatives/labels (the same images)")
    parser.add_argument("--swi-labels", action="store_true",
                        help="reference labels on the GRE grid too (by default only on the T1's)")
    parser.add_argument("--t1-voxel-mm", type=float, default=Acquisition.t1_voxel_mm)
    parser.add_argument("--slices", type=int, default=Acquisition.slices, help="slices of the GRE slab")
    parser.add_argument("--b0-tesla", type=float, default=Acquisition.b0_tesla)
    parser.add_argument("--swi-voxel-mm", type=float, nargs=3, default=Acquisition.swi_voxel_mm,
                        help="GRE voxel (the slice a whole number of mm)")
    parser.add_argument("--tilt-deg", type=float, nargs=2, default=Acquisition.tilt_deg, help="slab tilt range")
    parser.add_argument("--echo-times-ms", type=float, nargs="+", default=Acquisition.echo_times_ms)
    parser.add_argument("--phase-units", choices=("scanner", "rad"), default=Acquisition.phase_units)
    parser.add_argument("--no-qc", action="store_true")
    args = parser.parse_args(argv)
    acquisition = Acquisition(t1_voxel_mm=args.t1_voxel_mm, slices=args.slices, phase_units=args.phase_units,
                              b0_tesla=args.b0_tesla, swi_voxel_mm=tuple(args.swi_voxel_mm),
                              tilt_deg=tuple(args.tilt_deg), echo_times_ms=tuple(args.echo_times_ms))
    bids = make_dataset(args.out, [p.removeprefix("sub-") for p in args.participants], args.seed,
                        not args.no_labels, acquisition, qc=not args.no_qc, swi_labels=args.swi_labels)
    print(f"wrote {bids}")


if __name__ == "__main__":
    main()
