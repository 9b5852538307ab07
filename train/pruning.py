"""Pruning masks: Winograd-structured spatial, importance-weighted Winograd, magnitude baselines.

All functions work on one layer and return float masks (1 keep, 0 prune) of the weight's shape.
Thresholds are per layer, chosen so that the layer reaches a target sparsity.
"""

from __future__ import annotations

import functools

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
    k, c = g.shape[:2]
    mag = g.detach().abs().reshape(k, c, 1, 9)
    scores = torch.where(taps, mag, torch.zeros((), dtype=mag.dtype)).amax(dim=-1)  # [K, C, P]
    pruned = (scores < threshold).to(torch.float32)
    hit = pruned @ taps.to(torch.float32)                       # pruned positions per tap
    return (hit == 0).to(g.dtype).reshape(g.shape)


def structured_threshold(g: torch.Tensor, tile: str, target: float,
                         iterations: int = 60) -> tuple[float, torch.Tensor]:
    """Bisect the per-layer threshold of :func:`structured_mask` to a Winograd-domain sparsity.

    Returns the smallest threshold found whose mask makes at least ``target`` of the layer's
    Winograd-domain weights exactly zero, and that mask.
    """
    _check_target(target)

    def sparsity(t):
        mask = structured_mask(g, tile, t)
        return winograd_zero_positions(mask, tile).float().mean().item(), mask

    lo, hi = 0.0, float(g.detach().abs().max()) * 1.01 + 1e-12
    if sparsity(lo)[0] >= target:
        return lo, sparsity(lo)[1]
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if sparsity(mid)[0] >= target:
            hi = mid
        else:
            lo = mid
    return hi, sparsity(hi)[1]


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
