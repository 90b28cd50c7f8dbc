"""Spatial phase unwrapping: Laplacian (FFT, least squares) and quality-guided (ROMEO-like).

Both take a wrapped phase (radians) and share one signature, `(phase, magnitude=None, mask=None)`.
Quality-guided unwrapping returns the true phase up to a multiple of 2 pi constant over each connected
region of the mask; Laplacian unwrapping returns it up to a function harmonic in the mask, which
background field removal takes away. `laplacian_sum` serves the multi-echo fit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sparse
import torch
from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree

from .fourier import frequencies, irfft, rfft, to_numpy, to_tensor

TWO_PI = 2.0 * np.pi


def wrap(phase: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Wrap to [-pi, pi] (cheaper than the complex exponential, for differences of wrapped phases)."""
    cycles = torch.round(phase / TWO_PI) if isinstance(phase, torch.Tensor) else np.round(phase / TWO_PI)
    return phase - TWO_PI * cycles


def snap_to_wrapped(estimate: np.ndarray, wrapped: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The wrapped phase plus the multiple of 2 pi that brings it nearest to a smooth estimate.

    The estimate's constant is arbitrary; it is first shifted by the circular mean of (wrapped -
    estimate) in the mask so the rounding does not split voxels at a half-cycle boundary.
    """
    residual = wrapped - estimate
    shift = np.angle(np.mean(np.exp(1j * residual[mask])))
    cycles = np.round((estimate + shift - wrapped) / TWO_PI)
    return (wrapped + TWO_PI * cycles).astype(np.float32)


def wrapped_divergence(phase: torch.Tensor, inside: torch.Tensor | None) -> torch.Tensor:
    """Divergence of the wrapped phase gradient: the phase Laplacian wherever steps are below pi.

    Only steps between two mask voxels enter, so noise outside the mask adds nothing.
    """
    divergence = torch.zeros_like(phase)
    for axis in range(phase.ndim):
        step = wrap(torch.roll(phase, -1, dims=axis) - phase)
        if inside is not None:
            step = step * (inside & torch.roll(inside, -1, dims=axis))
        divergence += step - torch.roll(step, 1, dims=axis)
    return divergence


def solve_poisson(divergence: torch.Tensor) -> torch.Tensor:
    """u with lap(u) = divergence on the periodic grid (3-point Laplacian), mean zero: one real FFT pair."""
    shape = tuple(divergence.shape)
    cycles_per_voxel = frequencies(shape, (1.0,) * len(shape), divergence.device)
    eigenvalues = sum(2.0 * torch.cos(TWO_PI * cycles) - 2.0 for cycles in cycles_per_voxel)
    eigenvalues[0, 0, 0] = 1.0  # the constant is free; its coefficient is set to zero below
    spectrum = rfft(divergence, shape) / eigenvalues
    spectrum[0, 0, 0] = 0.0
    return irfft(spectrum, shape)


def unwrap_laplacian(
    phase: np.ndarray, magnitude: np.ndarray | None = None, mask: np.ndarray | None = None, snap: bool = False
) -> np.ndarray:
    """Least-squares (Laplacian) unwrapping: solve lap(u) = div(wrapped phase gradient) by FFT.

    Inside the mask u differs from the true phase by a harmonic function (no residues there), which
    background field removal takes away. With `snap` the solution only chooses each voxel's multiple
    of 2 pi: exact where it is within pi of the truth, with 2 pi jumps where not. `magnitude` is
    unused (all edges weigh the same); it is accepted for a common signature.
    """
    del magnitude
    wrapped = to_tensor(phase)
    solution = to_numpy(solve_poisson(wrapped_divergence(wrapped, _as_bool(mask, wrapped.device))))
    if not snap:
        return solution
    region = np.ones(phase.shape, bool) if mask is None else np.asarray(mask, bool)
    return snap_to_wrapped(solution, np.asarray(phase, np.float32), region)


def _as_bool(mask: np.ndarray | None, device: torch.device) -> torch.Tensor | None:
    return None if mask is None else torch.as_tensor(np.asarray(mask, bool), device=device)


def laplacian_sum(phases: torch.Tensor, coefficients: Sequence[float], mask: np.ndarray | None) -> np.ndarray:
    """sum_n c_n unwrap_laplacian(phases[n]) with one Poisson solve: the method is linear in the
    wrapped phase Laplacians, so a weighted fit over echoes costs no more than one echo."""
    inside = _as_bool(mask, phases.device)
    divergence = sum(float(c) * wrapped_divergence(echo, inside) for c, echo in zip(coefficients, phases))
    return to_numpy(solve_poisson(divergence))


def edge_quality(
    wrapped_a: torch.Tensor, wrapped_b: torch.Tensor, magnitude_a: torch.Tensor | None, magnitude_b: torch.Tensor | None
) -> torch.Tensor:
    """ROMEO-like reliability of the edge between neighbouring voxels, in [0, 1].

    Phase coherence (a small wrapped step is likely the true step) times magnitude coherence (similar
    magnitudes on both sides: same tissue, no signal void between them).
    """
    quality = 1.0 - wrap(wrapped_b - wrapped_a).abs() / np.pi
    if magnitude_a is not None:
        low, high = torch.minimum(magnitude_a, magnitude_b), torch.maximum(magnitude_a, magnitude_b)
        quality = quality * (low / high.clamp_min(1e-12)) ** 2
    return quality


def unwrap_quality_guided(
    phase: np.ndarray, magnitude: np.ndarray | None = None, mask: np.ndarray | None = None
) -> np.ndarray:
    """Quality-guided unwrapping along the maximum spanning tree of edge qualities (as ROMEO grows).

    Growing a region from a seed, always across the most reliable edge next, visits the edges of the
    maximum spanning tree; building that tree with scipy's C code and summing the 2 pi jumps along it
    gives the same result without a Python loop per voxel. Voxels outside `mask` keep the wrapped phase.
    """
    wrapped = np.asarray(phase, np.float32)
    region = np.ones(wrapped.shape, bool) if mask is None else mask.astype(bool)
    index = np.full(wrapped.shape, -1, np.int32)
    index[region] = np.arange(int(region.sum()))
    heads, tails, costs = _mask_edges(wrapped, magnitude, index)
    count = int(region.sum())
    graph = sparse.csr_matrix((costs, (heads, tails)), shape=(count, count))
    tree = minimum_spanning_tree(graph)
    cycles = _cycles_along_tree(tree, wrapped[region])
    unwrapped = wrapped.copy()
    unwrapped[region] += TWO_PI * cycles
    return unwrapped


def _mask_edges(
    wrapped: np.ndarray, magnitude: np.ndarray | None, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges between face neighbours inside the mask, with cost = 1 - quality (> 0: zero means no edge).

    Qualities are computed for all neighbour pairs at once (cheap, vectorised), then the pairs inside
    the mask are picked out.
    """
    heads, tails, costs = [], [], []
    for axis in range(wrapped.ndim):
        near = (slice(None),) * axis + (slice(0, -1),)
        far = (slice(None),) * axis + (slice(1, None),)
        ends = [torch.from_numpy(volume[side]) for volume in (wrapped, magnitude) if volume is not None
                for side in (near, far)]
        quality = edge_quality(*ends) if magnitude is not None else edge_quality(*ends, None, None)
        near_index, far_index = index[near], index[far]
        inside = (near_index >= 0) & (far_index >= 0)
        heads.append(near_index[inside])
        tails.append(far_index[inside])
        costs.append((1.0 + 1e-3 - quality).numpy()[inside])
    return np.concatenate(heads), np.concatenate(tails), np.concatenate(costs)


def _cycles_along_tree(tree: sparse.csr_matrix, wrapped: np.ndarray) -> np.ndarray:
    """Multiple of 2 pi for each node: the sum of the rounded wrapped steps on its path to a root.

    A virtual node joins one root per connected piece so that one breadth-first pass orders the whole
    forest; path sums then take log2(depth) vectorised pointer-jumping steps.
    """
    count = tree.shape[0]
    pieces, piece = connected_components(tree, directed=False)
    roots = np.empty(pieces, np.int64)
    roots[piece[::-1]] = np.arange(count)[::-1]  # the first node of each piece (the last write wins)
    virtual = count
    edges = tree.tocoo()
    heads = np.concatenate([edges.row, np.full(len(roots), virtual)])
    tails = np.concatenate([edges.col, roots])
    forest = sparse.csr_matrix((np.ones(len(heads)), (heads, tails)), shape=(count + 1, count + 1))
    _, parent = breadth_first_order(forest, virtual, directed=False)
    parent = parent[:count]
    from_root = parent == virtual
    parent = np.where(from_root, np.arange(count), parent)
    steps = np.where(from_root, 0, np.round((wrapped[parent] - wrapped) / TWO_PI)).astype(np.int64)
    while np.any(parent != parent[parent]):
        steps += steps[parent]
        parent = parent[parent]
    return steps.astype(np.float32)


UNWRAPPERS = {"laplacian": unwrap_laplacian, "quality": unwrap_quality_guided}
