"""Time rigid T1 -> SWI registration at the DB-ResUNet paper's sizes, SimpleITK and antspyx side by side.

The paper's grids: T1 176 x 256 x 256 at 1 mm, SWI 448 x 336 x 56 at 0.5134 x 0.5134 x 2 mm (NIfTI axis
order; the paper writes 56 x 336 x 448). Demo subjects (`make demo`, or the `demo_subject` rule) are
resampled (linear) onto grids of those sizes, centred and oriented as their own T1 and SWI slab, so the
true transform still holds and the error is measured as in the workflow: mean displacement over the
brain voxels of the SWI slab (TRE, mm). Settings are the `registration:` section of config/config.yaml
with config/paper.yaml on top (the paper's settings); the bar is 20 s per subject.

    .venv/bin/python benchmarks/bench_registration.py                       # sub-01, both methods, 2 threads
    .venv/bin/python benchmarks/bench_registration.py --subjects 01 02 03 --methods simpleitk
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml

from deepnuclei.io import read_volume, voxel_sizes
from deepnuclei.grids import resample, to_sitk
from deepnuclei.registration import (METHODS, RegistrationSettings, brain_points_lps, fixed_magnitude,
                                     read_magnitudes, read_transform, register, target_registration_error)

ROOT = Path(__file__).resolve().parents[1]
T1_GRID = ((176, 256, 256), (1.0, 1.0, 1.0))
SWI_GRID = ((448, 336, 56), (0.5134, 0.5134, 2.0))
LIMIT_S = 20.0


def paper_settings() -> dict:
    section = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["registration"]
    return section | yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()).get("registration", {})


def regridded(affine: np.ndarray, shape: tuple[int, ...], voxel_mm: tuple[float, ...],
              like_shape: tuple[int, ...]) -> np.ndarray:
    """An affine with the axes of `affine`, the given voxel size, and the same centre as the `like_shape` grid."""
    rotation = affine[:3, :3] / voxel_sizes(affine)
    centre = affine[:3, :3] @ ((np.asarray(like_shape) - 1) / 2) + affine[:3, 3]
    result = np.eye(4)
    result[:3, :3] = rotation * np.asarray(voxel_mm)
    result[:3, 3] = centre - result[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return result


def on_grid(data: np.ndarray, affine: np.ndarray, grid: tuple) -> tuple[np.ndarray, np.ndarray]:
    shape, voxel_mm = grid
    target = regridded(affine, shape, voxel_mm, data.shape)
    return resample(data, affine, sitk.Euler3DTransform(), shape, target), target


def paper_sized_subject(demo_root: Path, subject: str) -> dict:
    anat = demo_root / "bids" / f"sub-{subject}" / "anat"
    truth = demo_root / "truth" / f"sub-{subject}"
    t1, t1_affine = read_volume(anat / f"sub-{subject}_T1w.nii.gz")
    magnitudes, swi_affine = read_magnitudes(sorted(anat.glob(f"sub-{subject}_echo-*_part-mag_T2starw.nii.gz")))
    mask, mask_affine = read_volume(truth / f"sub-{subject}_space-SWI_mask.nii.gz")
    return {"t1": on_grid(t1, t1_affine, T1_GRID),
            "magnitudes": [on_grid(magnitude, swi_affine, SWI_GRID)[0] for magnitude in magnitudes],
            "swi_affine": on_grid(mask, mask_affine, SWI_GRID)[1],
            "brain": brain_points_lps(mask, mask_affine),  # the demo slab's brain voxels: the same physical points
            "truth": read_transform(truth / f"sub-{subject}_from-T1w_to-SWI_mode-image_xfm.tfm")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-root", type=Path, default=ROOT / "resources" / "demo")
    parser.add_argument("--subjects", nargs="+", default=["01"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)  # antspyx's ITK reads it once

    settings = paper_settings()
    print(f"T1 {T1_GRID[0]} at {T1_GRID[1]} mm -> SWI {SWI_GRID[0]} at {SWI_GRID[1]} mm, {args.threads} threads")
    print(f"settings: {settings}")
    print(f"{'subject':<9}{'method':<11}{'seconds':>9}{'TRE mm':>9}")
    for subject in args.subjects:
        data = paper_sized_subject(args.demo_root, subject)
        t1 = to_sitk(*data["t1"])
        for method in args.methods:
            options = RegistrationSettings.from_config(settings, method=method, threads=args.threads)
            fixed = to_sitk(fixed_magnitude(data["magnitudes"], options.fixed_image), data["swi_affine"])
            transform, seconds = register(fixed, t1, options)
            error = target_registration_error(transform, data["truth"], data["brain"])
            print(f"{subject:<9}{method:<11}{seconds:>9.1f}{error:>9.3f}")
    print(f"bar: <= {LIMIT_S:.0f} s per subject")


if __name__ == "__main__":
    main()
