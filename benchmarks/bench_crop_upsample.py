"""DB-ResUNet's crop-and-upsample of the global branch's features, forward and backward, three ways
that give the same numbers (tests/unit/models/test_models.py), in one process on the same tensors: the 3D
`grid_sample` on an affine grid, one small matrix product per axis (`resample_per_axis`, what
`crop_and_upsample` falls back to) and `crop_and_upsample` (one F.interpolate on a whole-voxel crop).

Sizes: every level of the demo's DB-ResUNet (config/config.yaml: widths 4 to 64, 64 x 64 x 32 patches,
batch 2, rate 2 x 2 x 1) and its auxiliary logits (15 classes), as one training step resamples them, in
the channels-last layout training uses.

    .venv/bin/python benchmarks/bench_crop_upsample.py            # 2 torch threads, 20 repeats
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from bench_training_step import mean_seconds
from deepnuclei.models.dbresunet import PAPER_RATE, crop_and_upsample, resample_per_axis


def grid_sample_view(features: torch.Tensor, rate, size) -> torch.Tensor:
    """The affine grid_sample that crop_and_upsample replaced."""
    scale = torch.tensor([1.0 / r for r in reversed(rate)], dtype=features.dtype)
    theta = torch.cat([torch.diag(scale), scale.new_zeros(3, 1)], dim=1).expand(features.shape[0], 3, 4)
    grid = F.affine_grid(theta, [*features.shape[:2], *size], align_corners=False)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)


def step_seconds(resample, tensors: list[torch.Tensor], repeats: int) -> float:
    def once() -> None:
        total = sum(resample(tensor, PAPER_RATE, tensor.shape[2:]).square().sum() for tensor in tensors)
        total.backward()

    return mean_seconds(once, repeats, warmup=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    widths = (4, 8, 16, 32, 64)
    shapes = [(2, width, 64 // 2**level, 64 // 2**level, 32 // 2**level) for level, width in enumerate(widths)]
    tensors = [torch.randn(shape).contiguous(memory_format=torch.channels_last_3d).requires_grad_()
               for shape in [*shapes, (2, 15, 64, 64, 32)]]
    print(f"torch {torch.__version__}, {args.threads} threads, forward + backward of {len(tensors)} tensors")
    seconds = {name: step_seconds(resample, tensors, args.repeats)
               for name, resample in (("grid_sample", grid_sample_view), ("per-axis products", resample_per_axis),
                                      ("crop_and_upsample", crop_and_upsample))}
    for name, value in seconds.items():
        print(f"{name:18s} {value * 1000:7.1f} ms  x{seconds['grid_sample'] / value:.2f} of grid_sample")


if __name__ == "__main__":
    main()
