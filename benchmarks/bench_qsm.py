"""Time each QSM step on the DB-ResUNet paper's SWI grid, 64 x 336 x 448 voxels of 2 x 0.51 x 0.51 mm.

The thick (2 mm) axis is the first array axis and lies along B0 (world z), as for axial slices. Data are
a synthetic four-echo acquisition of the analytic sphere phantom (`deepnuclei.qsm.phantom`). Wall
times depend on what else runs on the machine: the load average is printed with them.

    .venv/bin/python benchmarks/bench_qsm.py                 # CPU, 2 torch threads
    .venv/bin/python benchmarks/bench_qsm.py --threads 4 --pipelines tkd pdf-tv
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from deepnuclei.qsm.phantom import simulate_gre, sphere_phantom
from deepnuclei.qsm.pipeline import QSMParams, reconstruct

SHAPE = (64, 336, 448)
VOXEL_MM = (2.0, 0.5134, 0.5134)
ECHO_TIMES_S = (0.005, 0.010, 0.015, 0.020)
B0_TESLA = 3.0
STEPS = ("mask", "unwrap", "echo_fit", "background", "inversion")
PIPELINES = {  # the full pipeline each time: mask, unwrapping, echo fit, V-SHARP or PDF, inversion
    "tkd": QSMParams(inversion="tkd"),
    "tkd-laplacian": QSMParams(unwrap="laplacian", inversion="tkd"),
    "sharp-tv": QSMParams(),  # the default, chosen on benchmarks/bench_qsm_accuracy.py
    "sharp-tv-unfitted": QSMParams(smv_demean=False, tv_alpha=1.5e-4),  # the default before the fitted offset
    "tv": QSMParams(inversion="tv"),
    "pdf-tv": QSMParams(background="pdf", inversion="tv"),
}
DEFAULT_LIMIT_S = 60.0  # the default pipeline (sharp-tv) on this grid, 2 cores


def axial_affine() -> np.ndarray:
    """Array axis 0 (2 mm) along world z = B0; axes 1 and 2 in plane."""
    affine = np.zeros((4, 4))
    affine[2, 0], affine[1, 1], affine[0, 2], affine[3, 3] = VOXEL_MM[0], VOXEL_MM[1], VOXEL_MM[2], 1.0
    return affine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pipelines", nargs="+", default=["tkd", "tkd-laplacian", "sharp-tv"],
                        choices=sorted(PIPELINES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    phantom = sphere_phantom(SHAPE, VOXEL_MM, b0_direction=(1.0, 0.0, 0.0))
    magnitudes, phases = simulate_gre(phantom.total_field, phantom.brain_mask, ECHO_TIMES_S, B0_TESLA)
    print(f"synthetic data {SHAPE}, {len(ECHO_TIMES_S)} echoes: {time.perf_counter() - start:.1f} s to make")
    reconstruct(magnitudes[:, ::4, ::8, ::8], phases[:, ::4, ::8, ::8], ECHO_TIMES_S, B0_TESLA,
                axial_affine() @ np.diag([4, 8, 8, 1]))  # warm-up: FFT plans, lazy imports

    header = (f"{'pipeline':<14}" + "".join(f"{step:>11}" for step in STEPS)
              + f"{'total':>9}{'cpu':>9}  chi in spheres (ppm)")
    print(f"device {torch.device('cuda' if torch.cuda.is_available() else 'cpu')}, torch threads {args.threads}, "
          f"load average {os.getloadavg()[0]:.1f} (other processes slow every step down)")
    print(header)
    print("-" * len(header))
    for name in args.pipelines:
        begin, begin_cpu = time.perf_counter(), time.process_time()
        result = reconstruct(magnitudes, phases, ECHO_TIMES_S, B0_TESLA, axial_affine(), PIPELINES[name])
        total, cpu = time.perf_counter() - begin, time.process_time() - begin_cpu
        steps = "".join(f"{result['timings_s'][step]:>11.2f}" for step in STEPS)
        recovered = [float(result["chi"][(phantom.labels == label) & result["mask"]].mean())
                     for label in range(1, len(phantom.nuclei_chi_ppm) + 1)]
        print(f"{name:<14}{steps}{total:>9.2f}{cpu:>9.2f}  {np.round(recovered, 3).tolist()}", flush=True)
    print(f"true chi in spheres (ppm): {list(phantom.nuclei_chi_ppm)}; load average {os.getloadavg()[0]:.1f}; "
          f"wall seconds per step; cpu: process CPU seconds of the whole run (all threads); "
          f"bar: the default (sharp-tv) in <= {DEFAULT_LIMIT_S:.0f} s wall")


if __name__ == "__main__":
    main()
