"""Time of one training step (forward, loss, backward, Adam) of the demo's LiNUS and DB-ResUNet, in
float32 and in bfloat16 autocast, each in the default and the channels-last layout, side by side in one
process on the same random batch: the choice `train.half_precision` and `Trainer.layout` make on CPU.

Sizes are config/config.yaml's (LiNUS: batch 16 of 96 x 96 crops; DB-ResUNet: batch 2 of 64 x 64 x 32
patches and their global patches). Weights and data are random: time does not depend on them.

    .venv/bin/python benchmarks/bench_training_step.py               # 2 torch threads, 10 steps each
    .venv/bin/python benchmarks/bench_training_step.py --threads 1 --steps 20
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from deepnuclei.infer import ModelInfo
from deepnuclei.losses import SegmentationLoss, criterion
from deepnuclei.models import get_spec
from deepnuclei.train import TrainConfig

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"


def random_batch(info: ModelInfo, settings: TrainConfig, global_patch: bool) -> tuple[list[torch.Tensor], ...]:
    shape = (settings.batch_size, *settings.patch_size)
    images = [torch.rand(shape[0], info.in_channels, *shape[1:]) for _ in range(1 + global_patch)]
    labels = [torch.randint(0, info.n_classes, shape) for _ in range(1 + global_patch)]
    return images, labels


def step_seconds(name: str, model_entry: dict, half: bool, layout: torch.memory_format, steps: int) -> float:
    spec = get_spec(model_entry["architecture"]).with_options(**model_entry.get("options", {}))
    settings = TrainConfig.from_dict(spec, {"task": model_entry["task"], **model_entry["training"]})
    info = ModelInfo(spec.name, settings.task, len(model_entry["inputs"]), settings.patch_size, dict(spec.options))
    torch.manual_seed(0)
    model = info.build().to(memory_format=layout)
    loss = SegmentationLoss(criterion(settings.loss, info.n_classes, settings.class_weights), settings.aux_weight)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    images, labels = random_batch(info, settings, spec.global_patch)
    images = [image.contiguous(memory_format=layout) for image in images]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=half):
            value = loss(model(*images), labels[0], labels[1] if spec.global_patch else None)
        value.backward()
        optimizer.step()

    return mean_seconds(step, steps)


def mean_seconds(call: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Mean wall time of `call` over `repeats` calls, after `warmup` calls (kernel selection and allocation)."""
    for _ in range(warmup):
        call()
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=["linus", "dbresunet"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = yaml.safe_load(CONFIG.read_text())["models"]
    print(f"torch {torch.__version__}, {args.threads} threads, bfloat16 native: "
          f"{torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    for name in args.models:
        dims = get_spec(models[name]["architecture"]).dims
        channels_last = torch.channels_last if dims == 2 else torch.channels_last_3d
        times = {}
        for half, (layout_name, layout) in itertools.product(
                (False, True), (("default", torch.contiguous_format), ("channels-last", channels_last))):
            times[half, layout_name] = step_seconds(name, models[name], half, layout, args.steps)
            print(f"{name:10s} {'bfloat16' if half else 'float32':8s} {layout_name:13s} "
                  f"{1000 * times[half, layout_name]:7.0f} ms/step  "
                  f"x{times[False, 'default'] / times[half, layout_name]:.2f} of float32 default")


if __name__ == "__main__":
    main()
