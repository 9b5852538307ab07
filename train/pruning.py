"""Pruning masks: Winograd-structured spatial, importance-weighted Winograd, magnitude baselines.

All functions work on one layer and return float masks (1 keep, 0 prune) of the weight's shape.
Thresholds are per layer, chosen so that the layer reaches a target sparsity.
"""

from __future__ import annotations

import functools
import math

import torch

from .winograd import importance_matrix, tap_sets

__all__ = [
    "importance_mask",
    "magnitude_mask",
    "structured_mask",
    "structured_threshold",
    "winograd_zero_positions",
]


@functools.cache
def _tap_matrix(tile: str) -> torch.Tensor:
    """Bool [alpha**2, 9]: entry (p, t) is set when spatial tap t feeds Winograd position p."""
    sets = tap_sets(tile)
    r = 3
    out = torch.zeros(len(sets), r * r, dtype=torch.bool)
    for p, taps in enumerate(sets):
        for k, l in taps:
            out[p, k * r + l] = True
    return out


def _check_target(target: float) -> None:
    if not isinstance(target, (int, float)) or not 0.0 <= target < 1.0:
        raise ValueError(f"target sparsity must lie in [0, 1), not {target!r}")


def _check_kernels(g: torch.Tensor) -> None:
    if g.ndim != 4 or tuple(g.shape[2:]) != (3, 3):
        raise ValueError(f"kernels must have shape [K, C, 3, 3], not {list(g.shape)}")


def winograd_zero_positions(spatial_mask: torch.Tensor, tile: str) -> torch.Tensor:
    """Return bool [K, C, alpha, alpha]: True where every tap feeding the position is pruned.

    At those positions U = G g G^T is exactly zero whatever the kept weights are.
    """
    _check_kernels(spatial_mask)
    taps = _tap_matrix(tile).to(torch.float32)
    k, c = spatial_mask.shape[:2]
    kept = (spatial_mask.reshape(k, c, 9) != 0).to(torch.float32)
    feeding = kept @ taps.T                                     # kept taps per position
    a = int(round(taps.shape[0] ** 0.5))
    return (feeding == 0).reshape(k, c, a, a)


def structured_mask(g: torch.Tensor, tile: str, threshold: float) -> torch.Tensor:
    """Winograd-structured spatial mask (step 1).

    For every (k, c) and Winograd position p, the taps feeding p are all pruned when the
    largest of them is below ``threshold``; U at p is then exactly zero.

    Parameters
    ----------
    g : Tensor [K, C, 3, 3]
        Spatial kernels (already masked ones are zero and stay pruned for threshold > 0).
    tile : str
        Tile name.
    threshold : float
        The layer's threshold T.
    """
    _check_kernels(g)
    taps = _tap_matrix(tile)
    pruned = (_position_scores(g, tile) < threshold).to(torch.float32)
    hit = pruned @ taps.to(torch.float32)                       # pruned positions per tap
    return (hit == 0).to(g.dtype).reshape(g.shape)


def _position_scores(g: torch.Tensor, tile: str) -> torch.Tensor:
    """Largest |g| among the taps feeding each position: [K, C, alpha**2]."""
    taps = _tap_matrix(tile)
    k, c = g.shape[:2]
    mag = g.detach().abs().reshape(k, c, 1, 9)
    return torch.where(taps, mag, torch.zeros((), dtype=mag.dtype)).amax(dim=-1)


def structured_threshold(g: torch.Tensor, tile: str, target: float
                         ) -> tuple[float, torch.Tensor]:
    """Bisect the per-layer threshold of :func:`structured_mask` to a Winograd-domain sparsity.

    The sparsity only changes when the threshold passes a position's score, so the bisection
    runs over the sorted distinct scores and is exact: the result is the smallest threshold
    whose mask makes at least ``target`` of the layer's Winograd-domain weights exactly zero.

    Returns
    -------
    threshold : float
        The smallest such threshold (just above a score, in the kernels' dtype).
    mask : Tensor
        Its mask, as :func:`structured_mask` makes it.
    """
    _check_kernels(g)
    _check_target(target)

    a = int(round(_tap_matrix(tile).shape[0] ** 0.5))
    needed = math.ceil(target * g.shape[0] * g.shape[1] * a * a - 1e-9)  # zeros, counted exactly

    def enough(t):
        return int(winograd_zero_positions(structured_mask(g, tile, t), tile).sum()) >= needed

    if enough(0.0):
        return 0.0, structured_mask(g, tile, 0.0)
    scores = torch.unique(_position_scores(g, tile))            # sorted ascending
    above = torch.nextafter(scores, torch.full_like(scores, float("inf")))
    lo, hi = 0, len(scores) - 1                                 # pruning every score: sparsity 1
    while lo < hi:
        mid = (lo + hi) // 2
        if enough(float(above[mid])):
            hi = mid
        else:
            lo = mid + 1
    threshold = float(above[lo])
    return threshold, structured_mask(g, tile, threshold)


def magnitude_mask(scores: torch.Tensor, target: float) -> torch.Tensor:
    """Keep the largest ``1 - target`` fraction of ``scores`` (ties broken by index order)."""
    _check_target(target)
    flat = scores.detach().reshape(-1)
    n_prune = int(round(target * flat.numel()))
    mask = torch.ones_like(flat)
    if n_prune:
        order = torch.argsort(flat, stable=True)
        mask[order[:n_prune]] = 0
    return mask.reshape(scores.shape)


def importance_mask(U: torch.Tensor, tile: str, target: float) -> torch.Tensor:
    """Winograd-domain mask of step 2: prune where |U| * I_hat is smallest, to ``target``."""
    imp = torch.as_tensor(importance_matrix(tile), dtype=U.dtype)
    return magnitude_mask(U.detach().abs() * imp, target)
