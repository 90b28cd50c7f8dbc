"""Inference: a trained model's label map for a whole volume, and its time.

2D models see the volume slice by slice (batches of slices across the spec's slice axis, padded
to its size multiple; 2.5D models see each with its neighbours, `volumes.context_stacks`); 3D models
slide a window of the training patch size over it with MONAI's `sliding_window_inference`,
blending overlapping windows with Gaussian weights. For DB-ResUNet the predictor also builds each
window's global patch from the block-averaged volume (see `volumes.GlobalView`). The workflow writes the
labels as the network gives them (neither paper cleans them up; the evaluation may score a clean-up of
every method alike), or, with `inference.drop_misplaced`, without the pieces that lie where training never
put their structure (`training_range.drop_misplaced_pieces`); the viewer may keep each class's largest
connected component (`evaluate.keep_largest_components`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from torch import nn
from torch.nn.utils import parametrize

from .augment import mirror_permutation
from .bundle import is_bundle, load_bundle
from .data import load_subject
from .evaluate import keep_largest_components
from .io import save_volume, write_json
from .labels import STRUCTURE_BY_NAME, TASKS, task_classes
from .layout import FLIP_PASSES
from .models import ModelSpec, count_parameters, get_spec
from .preprocess import move_by_record
from .training_range import check_session, drop_misplaced_pieces
from .volumes import GlobalView, context_stacks, pad_ends, pad_to_multiple

log = logging.getLogger(__name__)

# How much neighbouring windows of a 3D model overlap, where no setting says (config.yaml's inference.overlap)
WINDOW_OVERLAP = 0.25


@dataclass(frozen=True)
class ModelInfo:
    """What inference needs to rebuild and feed a trained model; stored in its checkpoints."""

    model: str  # registry name
    task: str
    in_channels: int
    patch_size: tuple[int, ...]  # 3D: the sliding window; 2D: unused (whole slices)
    options: dict[str, Any] = field(default_factory=dict)  # builder options as trained

    @property
    def n_classes(self) -> int:
        return 1 + len(task_classes(self.task))

    @property
    def spec(self) -> ModelSpec:
        return get_spec(self.model).with_options(**self.options)

    def build(self) -> nn.Module:
        return self.spec.build(self.in_channels, self.n_classes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ModelInfo:
        return cls(**{**record, "patch_size": tuple(record["patch_size"])})


@dataclass(frozen=True)
class Prediction:
    labels: np.ndarray  # task class indices, uint8, on the input grid
    inference_seconds: float  # network, window blending and argmax; no file I/O
    cleanup_seconds: float
    # with the mirror: the label maps of its two passes (`FLIP_PASSES`), the segmentation samples of
    # deepnuclei.uncertainty, which cost two argmaxes more
    passes: dict[str, np.ndarray] = field(default_factory=dict)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def for_inference(model: nn.Module, dims: int) -> nn.Module:
    """Evaluation mode; spectral normalisation (LiNUS) folded into the weights, which no longer
    change, instead of dividing them by their norm at every call; weights channels-last: on CPU,
    oneDNN's convolutions for the papers' narrow networks (LiNUS about 2.5 times faster than in the
    default layout, the 3D models less)."""
    model.eval()
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    layout = torch.channels_last if dims == 2 else torch.channels_last_3d
    return model.to(memory_format=layout)


def read_state(checkpoint: str | os.PathLike, device: torch.device | str = "cpu") -> dict[str, Any]:
    """What a `train` checkpoint or a bundle (`deepnuclei.bundle`) holds: `info`, `model` weights and, where
    recorded, `training_range`."""
    if is_bundle(checkpoint):
        return load_bundle(checkpoint).state(device)
    return torch.load(checkpoint, map_location=device, weights_only=True)


def load_model(
    checkpoint: str | os.PathLike, device: torch.device | None = None
) -> tuple[nn.Module, ModelInfo]:
    """The model of a `train` checkpoint or of a bundle, ready for inference on `device`."""
    device = device or default_device()
    return model_from_state(read_state(checkpoint, device), device)


def model_from_state(state: dict[str, Any], device: torch.device) -> tuple[nn.Module, ModelInfo]:
    """The network a `read_state` record describes, with its weights, ready for inference on `device`."""
    info = ModelInfo.from_dict(state["info"])
    model = info.build().to(device)
    model.load_state_dict(state["model"])
    return for_inference(model, info.spec.dims), info


def predict_slices(model: nn.Module, image: torch.Tensor, slice_axis: int, size_multiple: int,
                   batch_size: int, context_slices: int = 1) -> torch.Tensor:
    """(channels, *volume) -> (classes, *volume) logits, slice by slice across `slice_axis`, each
    with its stack of `context_slices` (gathered batch by batch: no copy of the volume per neighbour).

    Slices without signal in their stack (all zero: outside a masked brain, above the head) all get the
    logits of one blank stack: the same input gives the same output, without a pass for each."""
    slices = pad_to_multiple(image.movedim(slice_axis + 1, 0), size_multiple, dims=2)
    every_slice = torch.arange(len(slices), device=slices.device)
    slice_signal = slices.flatten(1).any(1)[:, None, None, None]  # as a one-pixel slice of one channel
    has_signal = context_stacks(slice_signal, every_slice, context_slices).flatten(1).any(1)
    blank = slices.new_zeros((1, slices.shape[1] * context_slices, *slices.shape[2:]))
    logits = model(blank).expand(len(slices), -1, -1, -1).clone()
    with_signal = every_slice[has_signal]
    batches = [with_signal[first : first + batch_size] for first in range(0, len(with_signal), batch_size)]
    if batches:
        stacks = (context_stacks(slices, batch, context_slices) for batch in batches)
        logits[has_signal] = torch.cat([model(stack) for stack in stacks])
    height, width = (extent for axis, extent in enumerate(image.shape[1:]) if axis != slice_axis)
    return logits[..., :height, :width].movedim(0, slice_axis + 1)


class WithGlobalPatch:
    """Sliding-window predictor for DB-ResUNet: from MONAI's window coordinates, the global patch
    of each window; returns the main logits."""

    def __init__(self, model: nn.Module, view: GlobalView, window: Sequence[int]) -> None:
        self.model, self.view, self.window = model, view, tuple(window)

    def __call__(self, windows: torch.Tensor, coordinates: Sequence[Sequence[slice]]) -> torch.Tensor:
        global_patches = torch.stack(
            [self.view.patch([axis.start for axis in window[2:]], self.window) for window in coordinates]
        )
        return self.model(windows, global_patches)[0]


def predict_windows(model: nn.Module, spec: ModelSpec, image: torch.Tensor, window: Sequence[int],
                    overlap: float, batch_size: int) -> torch.Tensor:
    """(channels, *volume) -> (classes, *volume) logits by Gaussian-weighted sliding windows."""
    # padded at the ends up to the window where smaller: MONAI would pad both sides, moving the
    # window coordinates that the global patches are built from
    padded = pad_ends(image, window)
    predictor = model
    if spec.global_patch:
        predictor = WithGlobalPatch(model, GlobalView.of(padded, spec.global_rate), window)
    logits = sliding_window_inference(padded[None], tuple(window), batch_size, predictor, overlap=overlap,
                                      mode="gaussian", with_coord=spec.global_patch)
    return logits[(0, slice(None), *(slice(extent) for extent in image.shape[1:]))]


def predict_logits(model: nn.Module, info: ModelInfo, image: torch.Tensor, overlap: float = WINDOW_OVERLAP,
                   batch_size: int | None = None) -> torch.Tensor:
    """Logits (classes, *volume) of `image` (channels, *volume), on the image's device.

    Default batches: 32 slices; 2 windows, as PyTorch runs batch-1 3D convolutions of few
    channels on CPU with a slow native kernel instead of oneDNN."""
    spec = info.spec
    if spec.dims == 2:
        return predict_slices(model, image, spec.slice_axis, spec.size_multiple, batch_size or 32,
                              spec.context_slices)
    return predict_windows(model, spec, image, info.patch_size, overlap, batch_size or 2)


def flip_pass_probabilities(model: nn.Module, info: ModelInfo, image: torch.Tensor, axis: int,
                            overlap: float, batch_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The class probabilities of the image (the direct pass) and of its left-right mirror, mirrored back
    with the sides' classes swapped (the mirrored pass): two opinions of one network on the same head."""
    dim = axis + 1  # after the channel dimension
    direct = predict_logits(model, info, image, overlap, batch_size).softmax(0)
    mirrored = predict_logits(model, info, image.flip(dim), overlap, batch_size).softmax(0).flip(dim)
    return direct, mirrored[mirror_permutation(info.task).to(mirrored.device)]


def label_map(logits: torch.Tensor) -> torch.Tensor:
    """The class of largest logit, as uint8 (max's indices: 3 times faster than argmax on CPU)."""
    return logits.max(0).indices.to(torch.uint8)


def reference_values(task: str) -> dict[str, int]:
    """The value each task class is written with: its first structure's in the package numbering
    (`labels.TASKS`; GP as GP_L/GP_R, 19/20), so model outputs are scored like every other method's."""
    return {name: STRUCTURE_BY_NAME[sources[0]].label for name, sources in TASKS[task].items()}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def native_half_precision(device: torch.device) -> bool:
    """Whether `device` computes in 16-bit floats natively: CUDA (float16), or a CPU with bfloat16
    instructions (AVX512-BF16, AMX), where oneDNN runs LiNUS about 1.6 times faster than in
    float32 (benchmarks/bench_inference.py)."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def uses_half_precision(device: torch.device, mixed_precision: bool | None) -> bool:
    """`mixed_precision` forces 16-bit on or off; `None` uses it where the device has it natively."""
    return native_half_precision(device) if mixed_precision is None else mixed_precision


def autocast(device: torch.device, mixed_precision: bool | None) -> torch.autocast:
    """float16 on CUDA, bfloat16 on CPU (`uses_half_precision` decides)."""
    return torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16,
                          enabled=uses_half_precision(device, mixed_precision))


def predict(model: nn.Module, info: ModelInfo, image: np.ndarray | torch.Tensor, overlap: float = WINDOW_OVERLAP,
            batch_size: int | None = None, largest_component: bool = False,
            mixed_precision: bool | None = None, flip_axis: int | None = None) -> Prediction:
    """The label map of `image` (channels, *volume) and the time it took; with `flip_axis` (the left-right
    voxel axis), of the probabilities averaged with the mirrored image's (test-time augmentation, at twice the
    cost), and the label maps of the direct and the mirrored pass (`Prediction.passes`)."""
    device = next(model.parameters()).device
    image = torch.as_tensor(image, dtype=torch.float32).to(device)
    model.eval()
    synchronize(device)
    started = time.perf_counter()
    passes = {}
    with torch.inference_mode(), autocast(device, mixed_precision):
        if flip_axis is None:
            labels = label_map(predict_logits(model, info, image, overlap, batch_size))
        else:  # the networks are trained on mirrored heads too (sides swapped): the mirror is a second opinion
            direct, mirrored = flip_pass_probabilities(model, info, image, flip_axis, overlap, batch_size)
            labels = label_map((direct + mirrored) / 2)
            passes = {"direct": label_map(direct), "mirrored": label_map(mirrored)}
    synchronize(device)
    predicted = time.perf_counter()
    labels = labels.cpu().numpy()
    if largest_component:
        labels = keep_largest_components(labels)
    cleaned = time.perf_counter()
    return Prediction(labels, predicted - started, cleaned - predicted,
                      {name: pass_labels.cpu().numpy() for name, pass_labels in passes.items()})


# The segmentation samples of one network on one session (deepnuclei.uncertainty): the label map the workflow
# writes with inference.flip and its two passes (`segment_files`' `out_passes`)
PASSES = ("averaged", *FLIP_PASSES)


def warm_up(model: nn.Module, info: ModelInfo, image: torch.Tensor, batch_size: int | None,
            mixed_precision: bool | None) -> None:
    """One untimed pass on a corner of the image (one batch of slices or of windows): the first call
    pays for kernel selection and memory allocation, which per-subject times should not include."""
    spec = info.spec
    if spec.dims == 2:
        corner = image.narrow(spec.slice_axis + 1, 0, min(batch_size or 32, image.shape[spec.slice_axis + 1]))
    else:
        corner = image[(slice(None), *(slice(0, size) for size in info.patch_size))]
    predict(model, info, corner, overlap=0.0, batch_size=batch_size, mixed_precision=mixed_precision)


def kept_pieces(labels: np.ndarray, affine: np.ndarray, task: str, known: dict[str, Any] | None,
                drop_misplaced: bool) -> np.ndarray:
    """A task label map without the pieces that lie where training never put their structure, where
    `drop_misplaced` asks for it (`training_range.drop_misplaced_pieces`, given the model's record `known`)."""
    return drop_misplaced_pieces(labels, affine, task_classes(task), known) if drop_misplaced else labels


def written_labels(labels: np.ndarray, affine: np.ndarray, task: str, padding_record: str | os.PathLike | None,
                   first_channel: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A task label map as the workflow writes it: in reference label values (`reference_values`), and,
    given the `preprocess` record of the model's inputs, back on the SWI grid they were padded from."""
    labels = np.array([0, *reference_values(task).values()], dtype=np.uint8)[labels]
    if padding_record is not None:
        labels, affine = move_by_record(labels, affine, padding_record, first_channel, inverse=True)
    return labels, affine


def segment_files(
    checkpoint: str | os.PathLike,
    channel_paths: Sequence[str | os.PathLike],
    out_dseg: str | os.PathLike,
    out_json: str | os.PathLike,
    device: torch.device | None = None,
    overlap: float = WINDOW_OVERLAP,
    batch_size: int | None = None,
    mixed_precision: bool | None = None,
    padding_record: str | os.PathLike | None = None,
    flip: bool = False,
    drop_misplaced: bool = False,
    out_passes: Mapping[str, str | os.PathLike] | None = None,
) -> dict[str, Any]:
    """Segment one subject's channel files (the model's input order) with a checkpoint: writes the
    label map in reference label values (`reference_values`) on the first channel's grid, or, given
    the `preprocess` record of those inputs, back on the SWI grid they were padded from; with `flip`, the label
    maps of its direct and mirrored passes too, post-processed alike, where `out_passes` names their files
    (pass -> path: the segmentation samples of deepnuclei.uncertainty); and a JSON record of those values and
    the times (`wall_seconds`: from reading the model to the written labels; `inference_seconds`: `predict`'s);
    returns that record."""
    out_passes = dict(out_passes or {})
    if out_passes and not flip:
        raise ValueError("the direct and mirrored passes exist only with flip")
    started = time.perf_counter()
    device = device or default_device()
    state = read_state(checkpoint, device)
    model, info = model_from_state(state, device)
    subject = load_subject(Path(channel_paths[0]).name, channel_paths, None, info.task)
    warm_up(model, info, subject.image, batch_size, mixed_precision)
    prediction = predict(model, info, subject.image, overlap, batch_size, mixed_precision=mixed_precision,
                         flip_axis=subject.left_right_axis if flip else None)
    known = state.get("training_range")

    def write(labels: np.ndarray, path: str | os.PathLike) -> np.ndarray:
        """The labels as the workflow writes them (`kept_pieces`, `written_labels`); returns the kept task labels."""
        labels = kept_pieces(labels, subject.affine, info.task, known, drop_misplaced)
        save_volume(path, *written_labels(labels, subject.affine, info.task, padding_record, channel_paths[0]), np.uint8)
        return labels

    labels = write(prediction.labels, out_dseg)
    range_check = check_session(known, subject.image.numpy(), labels, subject.affine, task_classes(info.task))
    for warning in range_check["warnings"]:
        log.warning("%s, %s: out of the training range: %s", info.model, Path(channel_paths[0]).name, warning)
    for name, path in out_passes.items():
        write(prediction.passes[name], path)
    record = {
        "wall_seconds": time.perf_counter() - started,
        "model": info.model,
        "task": info.task,
        "label_values": reference_values(info.task),
        "inference_seconds": prediction.inference_seconds,
        "parameters": count_parameters(model),  # the efficiency tables' (they import no torch)
        "device": str(device),
        "mixed_precision": uses_half_precision(device, mixed_precision),
        "flip": flip,
        "drop_misplaced": drop_misplaced,
        "threads": torch.get_num_threads(),
        "shape": list(subject.image.shape[1:]),
        "checkpoint": str(checkpoint),
        "padding_record": None if padding_record is None else str(padding_record),
        "passes": {name: str(path) for name, path in out_passes.items()},
        "range_check": range_check,
    }
    write_json(out_json, record)
    log.info("%s: %s in %.2f s on %s", info.model, out_dseg, prediction.inference_seconds, record["device"])
    return record
