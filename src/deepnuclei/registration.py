"""Rigid T1 -> SWI registration (SimpleITK or antspyx), resampling between the two grids (`grids`), and its error.

Convention (ITK's, the one a registration with fixed = SWI magnitude and moving = T1 estimates): the
transform maps SWI physical points to T1 physical points, in LPS millimetres. Resampling the T1 (or its
labels) onto the SWI grid uses it as it is; mapping an SWI-space segmentation to T1 uses its inverse.
Volumes enter and leave as numpy arrays with RAS NIfTI affines.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from skimage.filters import threshold_multiotsu

from .grids import LPS, resample, resample_labels, to_sitk
from .io import InputError, apply_affine, check_same_grid, load_nifti, read_json, read_volume, save_volume, write_atomic, write_json
from .plan_files import TreCase
from .qc import Panel, three_view_figure

METHODS = ("simpleitk", "antspyx")
FIXED_IMAGES = ("echo1", "rms")
INITIALISATIONS = {"moments": sitk.CenteredTransformInitializerFilter.MOMENTS,
                   "geometry": sitk.CenteredTransformInitializerFilter.GEOMETRY}


@dataclass(frozen=True)
class RegistrationSettings:
    """How the rigid registration runs; the `registration:` config section (extra keys are ignored)."""

    method: str = "simpleitk"
    fixed_image: str = "rms"
    initialisation: str = "moments"
    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_sigmas_mm: tuple[float, ...] = (2.0, 1.0, 0.0)
    iterations: int = 100  # per pyramid level
    sampling_percentage: float = 0.05  # of the fixed image's voxels, drawn at random, for the metric
    histogram_bins: int = 32
    bias_correction: bool = True  # N4 on both images first (see `bias_corrected`)
    bias_shrink_mm: float = 6.0  # N4 runs on images shrunk to about this voxel size
    seed: int = 1
    threads: int = 1  # more threads: runs on the same images differ by ~1e-6 mm (ITK's threaded metric sums)

    def __post_init__(self) -> None:
        for name, value, allowed in (("method", self.method, METHODS), ("fixed_image", self.fixed_image, FIXED_IMAGES),
                                     ("initialisation", self.initialisation, tuple(INITIALISATIONS))):
            if value not in allowed:
                raise ValueError(f"registration {name} '{value}' is not one of {allowed}")
        if len(self.shrink_factors) != len(self.smoothing_sigmas_mm):
            raise ValueError("registration shrink_factors and smoothing_sigmas_mm need one value per level")

    @classmethod
    def from_config(cls, section: Mapping, **overrides) -> RegistrationSettings:
        values = {f.name: section[f.name] for f in fields(cls) if f.name in section} | overrides
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})


# ---------------------------------------------------------------- images and transforms at the edges


def rigid_matrix(transform: sitk.Transform) -> np.ndarray:
    """The 4x4 LPS matrix of a rigid or affine transform (y = M (x - c) + c + t)."""
    transform = transform.Downcast()
    matrix = np.reshape(transform.GetMatrix(), (3, 3))
    centre = np.asarray(transform.GetCenter())
    result = np.eye(4)
    result[:3, :3] = matrix
    result[:3, 3] = centre + np.asarray(transform.GetTranslation()) - matrix @ centre
    return result


def euler_from_matrix(matrix_lps: np.ndarray) -> sitk.Euler3DTransform:
    """A rigid 4x4 LPS matrix as an Euler3D transform; the rotation is first projected onto the nearest
    rotation, since matrices from single-precision tools are orthonormal only to about 1e-7."""
    left, _, right = np.linalg.svd(matrix_lps[:3, :3])
    rotation = left @ np.diag([1.0, 1.0, np.linalg.det(left @ right)]) @ right
    transform = sitk.Euler3DTransform()
    transform.SetMatrix(rotation.ravel().tolist())
    transform.SetTranslation(np.asarray(matrix_lps[:3, 3], dtype=float).tolist())
    return transform


def read_transform(path: str | os.PathLike) -> sitk.Euler3DTransform:
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    try:
        transform = sitk.ReadTransform(str(path))
    except RuntimeError as error:
        raise InputError(path, f"not a readable ITK transform ({str(error).strip().splitlines()[-1]})") from error
    name = transform.Downcast().GetName()
    if name not in ("Euler3DTransform", "AffineTransform", "VersorRigid3DTransform"):
        raise InputError(path, f"expected a rigid transform, got {name}")
    matrix = rigid_matrix(transform)
    if not np.allclose(matrix[:3, :3].T @ matrix[:3, :3], np.eye(3), atol=1e-4):
        raise InputError(path, f"{name} is not rigid (it scales or shears)")
    return euler_from_matrix(matrix)


def write_transform(path: str | os.PathLike, transform: sitk.Transform) -> Path:
    return write_atomic(path, partial(sitk.WriteTransform, transform))


# ---------------------------------------------------------------- registration


def fixed_magnitude(magnitudes: Sequence[np.ndarray], fixed_image: str) -> np.ndarray:
    """The SWI image the T1 is registered to: the first echo, or the root mean square over echoes (more
    signal to noise; on the demo cohort both give the same mean TRE within 0.01 mm)."""
    if fixed_image == "echo1":
        return np.asarray(magnitudes[0], dtype=np.float32)
    return np.sqrt(np.mean(np.square(np.asarray(magnitudes, dtype=np.float32)), axis=0))


def bias_corrected(image: sitk.Image, shrink_mm: float) -> sitk.Image:
    """The image divided by its N4 bias field, fitted on a shrunk copy within the Otsu foreground.
    Smooth coil sensitivities that differ between sessions shift the mutual-information optimum
    (by 0.5 to 1 mm on the demo cohort); correcting both images first removes most of that."""
    factors = [max(1, round(shrink_mm / spacing)) for spacing in image.GetSpacing()]
    small = sitk.Shrink(image, factors)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([20, 20])
    n4.Execute(small, sitk.OtsuThreshold(small, 0, 1))
    return sitk.Cast(image / sitk.Exp(n4.GetLogBiasFieldAsImage(image)), image.GetPixelID())


def initial_transform(fixed: sitk.Image, moving: sitk.Image, initialisation: str) -> sitk.Euler3DTransform:
    """Rotation-free start that lines up the centres of mass (`moments`) or of the image grids (`geometry`)."""
    return sitk.Euler3DTransform(sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), INITIALISATIONS[initialisation]))


def register_simpleitk(fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings) -> sitk.Euler3DTransform:
    """Rigid Mattes mutual information from `initial_transform`, over a shrink/smooth pyramid."""
    initial = initial_transform(fixed, moving, settings.initialisation)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(settings.histogram_bins)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(settings.sampling_percentage, settings.seed)
    method.SetInterpolator(sitk.sitkLinear)
    # gradients at the sampled points only, not gradient images of every pyramid level: 3-4x faster
    method.SetMetricUseFixedImageGradientFilter(False)
    method.SetMetricUseMovingImageGradientFilter(False)
    # steps in mm of the largest voxel displacement, whatever the parameter (angle or shift)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=settings.iterations,
                                                    relaxationFactor=0.5, gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(settings.shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(settings.smoothing_sigmas_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial, inPlace=True)
    method.Execute(fixed, moving)
    return euler_from_matrix(rigid_matrix(initial))


def to_ants(image: sitk.Image):
    import ants

    # antspyx arrays index (x, y, z) and its geometry is ITK's (LPS), as SimpleITK's
    return ants.from_numpy(np.transpose(sitk.GetArrayFromImage(image)), origin=image.GetOrigin(),
                           spacing=image.GetSpacing(), direction=np.reshape(image.GetDirection(), (3, 3)))


def register_antspyx(fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings) -> sitk.Euler3DTransform:
    """antsRegistration `Rigid` with the same start, metric, pyramid and sampling as `register_simpleitk`."""
    # read by ITK inside antspyx when it first builds its thread pool, so set before the first call
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(settings.threads)
    import ants

    levels = len(settings.shrink_factors)
    with tempfile.TemporaryDirectory(prefix="deepnuclei-ants-") as workdir:
        start = write_transform(Path(workdir) / "initial.mat", initial_transform(fixed, moving, settings.initialisation))
        result = ants.registration(
            to_ants(fixed), to_ants(moving), type_of_transform="Rigid", outprefix=f"{workdir}/",
            initial_transform=[str(start)],
            aff_metric="mattes", aff_sampling=settings.histogram_bins,
            aff_random_sampling_rate=settings.sampling_percentage, aff_iterations=(settings.iterations,) * levels,
            aff_shrink_factors=settings.shrink_factors, aff_smoothing_sigmas=settings.smoothing_sigmas_mm,
            smoothing_in_mm=True, random_seed=settings.seed,
        )
        # one file, the start composed in; it maps fixed points to moving points: ITK's convention already
        transform = sitk.ReadTransform(result["fwdtransforms"][0])
    return euler_from_matrix(rigid_matrix(transform))


def register(fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings) -> tuple[sitk.Euler3DTransform, float]:
    """The rigid transform from the fixed (SWI) to the moving (T1) physical space, and the seconds it took."""
    started = time.perf_counter()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(settings.threads)
    fixed, moving = (sitk.Cast(image, sitk.sitkFloat32) for image in (fixed, moving))
    if settings.bias_correction:
        fixed, moving = (bias_corrected(image, settings.bias_shrink_mm) for image in (fixed, moving))
    run = register_simpleitk if settings.method == "simpleitk" else register_antspyx
    transform = run(fixed, moving, settings)
    return transform, time.perf_counter() - started


# ---------------------------------------------------------------- resampling between the grids


# ---------------------------------------------------------------- accuracy


def brain_points_lps(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Physical (LPS) positions of the voxels inside a mask."""
    return apply_affine(affine, np.argwhere(np.asarray(mask) > 0)) @ LPS


def displacements(estimated: sitk.Transform, true: sitk.Transform, points_lps: np.ndarray) -> np.ndarray:
    """Distance (mm) between where the estimated and the true transform send each point."""
    if len(points_lps) == 0:
        raise ValueError("no points to measure the registration error at")
    moved_by = [apply_affine(rigid_matrix(transform), points_lps) for transform in (estimated, true)]
    return np.linalg.norm(moved_by[0] - moved_by[1], axis=1)


def target_registration_error(estimated: sitk.Transform, true: sitk.Transform, points_lps: np.ndarray) -> float:
    """Mean displacement (mm) over the points between the estimated and the true transform."""
    return float(np.mean(displacements(estimated, true, points_lps)))


# ---------------------------------------------------------------- quality control


def white_matter(t1: np.ndarray) -> np.ndarray:
    """The brightest of three Otsu classes (CSF, grey, white matter) of a T1's non-zero voxels: its outline
    is the white-matter boundary, an edge the SWI magnitude shows too."""
    foreground = t1[t1 > 0]
    if foreground.size == 0:
        return np.zeros(t1.shape, dtype=bool)
    return t1 > threshold_multiotsu(foreground, classes=3)[-1]


def registration_figure(magnitude: np.ndarray, t1_in_swi: np.ndarray, affine: np.ndarray, path: str | os.PathLike,
                        title: str) -> Path:
    """Three views of the SWI magnitude and of the registered T1, both outlined by the T1's white matter."""
    boundary = white_matter(t1_in_swi)
    panels = [Panel("SWI magnitude + T1 WM edges", magnitude, affine, outline=boundary),
              Panel("T1 in SWI space + its WM edges", t1_in_swi, affine, outline=boundary)]
    return three_view_figure(panels, path, title=title)


# ---------------------------------------------------------------- the workflow's steps, file to file


def read_magnitudes(paths: Sequence[str | os.PathLike]) -> tuple[list[np.ndarray], np.ndarray]:
    """SWI magnitude echoes, checked to share one grid; returns them and that grid's affine."""
    if not paths:
        raise ValueError("no SWI magnitude images given")
    magnitudes, affine = [], None
    for path in paths:
        data, echo_affine = read_volume(path)
        if affine is not None:
            check_same_grid(path, data.shape, echo_affine, magnitudes[0].shape, affine, f"the first echo, {paths[0]}")
        magnitudes.append(data)
        affine = echo_affine if affine is None else affine
    return magnitudes, affine


def register_files(t1_path: str | os.PathLike, magnitude_paths: Sequence[str | os.PathLike],
                   settings: RegistrationSettings, transform_path: str | os.PathLike,
                   record_path: str | os.PathLike) -> dict:
    """Register a T1 to its SWI; write the transform (.tfm) and a JSON record of the run."""
    magnitudes, swi_affine = read_magnitudes(magnitude_paths)
    t1, t1_affine = read_volume(t1_path)
    transform, seconds = register(to_sitk(fixed_magnitude(magnitudes, settings.fixed_image), swi_affine),
                                  to_sitk(t1, t1_affine), settings)
    write_transform(transform_path, transform)
    record = {"method": settings.method, "seconds": round(seconds, 2), "settings": asdict(settings),
              "swi_to_t1_lps": rigid_matrix(transform).tolist()}
    write_json(record_path, record)
    return record


def t1_to_swi_files(t1_path: str | os.PathLike, magnitude_paths: Sequence[str | os.PathLike],
                    transform_path: str | os.PathLike, fixed_image: str, out_path: str | os.PathLike,
                    qc_path: str | os.PathLike | None = None, title: str = "") -> Path:
    """Resample the T1 (linearly) onto the SWI grid; optionally draw the QC figure."""
    magnitudes, swi_affine = read_magnitudes(magnitude_paths)
    t1, t1_affine = read_volume(t1_path)
    t1_in_swi = resample(t1, t1_affine, read_transform(transform_path), magnitudes[0].shape, swi_affine)
    save_volume(out_path, t1_in_swi, swi_affine, np.float32)
    if qc_path is not None:
        registration_figure(fixed_magnitude(magnitudes, fixed_image), t1_in_swi, swi_affine, qc_path, title)
    return Path(out_path)


def move_labels_files(labels_path: str | os.PathLike, reference_path: str | os.PathLike,
                      transform_path: str | os.PathLike, to_space: str, interpolation: str,
                      out_path: str | os.PathLike) -> Path:
    """Move a label map onto the reference image's grid: `to_space` "SWI" takes T1-space labels to the
    SWI grid (the transform as it is), "T1w" takes SWI-space labels to the T1 grid (its inverse)."""
    if to_space not in ("SWI", "T1w"):
        raise ValueError(f"labels move to SWI or T1w, not '{to_space}'")
    labels, affine = read_volume(labels_path, dtype=np.int32)
    reference = load_nifti(reference_path)
    transform = read_transform(transform_path)
    moved = resample_labels(labels, affine, transform if to_space == "SWI" else transform.GetInverse(),
                            reference.shape, reference.affine, interpolation)
    return save_volume(out_path, moved, reference.affine, np.uint8 if moved.max() < 256 else np.int16)


def tre_table(cases: Sequence[TreCase]) -> list[dict]:
    """Per case (subject, method, transform, record, truth transform, SWI brain mask): TRE in mm (mean and
    maximum displacement over the brain voxels) and the registration's seconds."""
    rows = []
    for case in cases:
        mask, mask_affine = read_volume(case.mask)
        error = displacements(read_transform(case.transform), read_transform(case.truth), brain_points_lps(mask, mask_affine))
        rows.append({"subject": case.subject, "method": case.method, "tre_mm": round(float(error.mean()), 3),
                     "max_displacement_mm": round(float(error.max()), 3), "seconds": read_json(case.record)["seconds"]})
    return rows
