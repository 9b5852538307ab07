"""Tap-wise int8 steps and output-aware rounding of Winograd-domain weights.

A layer's weight ``U[k, c, i, j]`` is stored as the integer ``U_q`` with real value
``scale[k] * 2**-tap_shift[i, j] * U_q`` (weight file v2 ``tap_shift``; ``docs/weight-format.md``).
:func:`choose_steps` picks the channel scales and tap shifts; :func:`round_for_output` picks the
integers so that the layer's output, not each weight, is closest to the float layer's: the
expected squared output error of one filter's weight errors ``e`` is ``e^T H e``
(:func:`output_hessian`), minimised by optimal brain quantisation (as in GPTQ) and then a local
search over one- and two-weight moves of one step. Pruned (zero) weights stay zero.
"""

from __future__ import annotations

import numpy as np

from golden.netfile import MAX_TAP_SHIFT
from golden.transforms import tile_transform

from .winograd import importance_matrix

__all__ = ["QMAX", "TAP_SHIFT_METHODS", "choose_steps", "output_hessian", "round_for_output",
           "round_nearest", "step_sizes"]

#: Largest int8 weight magnitude of the weight file (symmetric range, -128 unused).
QMAX = 127
#: How :func:`choose_steps` picks tap shifts.
TAP_SHIFT_METHODS = ("range", "error")


def round_nearest(U: np.ndarray, scale: np.ndarray, tap_shift: np.ndarray) -> np.ndarray:
    """``clip(rint(U * 2**tap_shift / scale[k]), -127, 127)`` as float64."""
    step = step_sizes(scale, tap_shift)
    return np.clip(np.rint(U / step), -QMAX, QMAX)


def step_sizes(scale: np.ndarray, tap_shift: np.ndarray) -> np.ndarray:
    """The real value of one integer step at [k, 1, i, j]: ``scale[k] * 2**-tap_shift[i, j]``."""
    return (np.asarray(scale, dtype=np.float64)[:, None, None, None]
            * np.exp2(-np.asarray(tap_shift, dtype=np.float64))[None, None])


def _range_shifts(U: np.ndarray, scale: np.ndarray, max_span: int) -> np.ndarray:
    """Per position the largest shift that keeps its largest weight within 127 steps."""
    rel = np.abs(U) / np.asarray(scale, dtype=np.float64)[:, None, None, None]
    peak = rel.max(axis=(0, 1))                                  # [a, a], in channel steps
    with np.errstate(divide="ignore"):
        s = np.floor(np.log2(QMAX / np.where(peak > 0, peak, np.inf)) + 1e-12)
    return np.clip(np.where(peak > 0, s, 0), 0, max_span).astype(np.int64)


def _error_shifts(U: np.ndarray, scale: np.ndarray, max_span: int) -> np.ndarray:
    """Per position the shift in [0, max_span] with the least squared rounding error (the
    importance factor is one number per position, so it does not change the choice)."""
    a = U.shape[-1]
    best, best_err = np.zeros((a, a), np.int64), np.full((a, a), np.inf)
    for s in range(max_span + 1):
        shift = np.full((a, a), s)
        deq = round_nearest(U, scale, shift) * step_sizes(scale, shift)
        err = ((U - deq) ** 2).sum(axis=(0, 1))
        better = err < best_err * (1 - 1e-12)
        best, best_err = np.where(better, s, best), np.where(better, err, best_err)
    return best


def _scales_for(U: np.ndarray, tile: str, tap_shift: np.ndarray) -> np.ndarray:
    """Channel scales ``f * max_ij |U[k] * 2**tap_shift| / 127`` minimising the importance-
    weighted rounding error given the tap shifts (f in [0.25, 1])."""
    k = U.shape[0]
    weight = importance_matrix(tile, normalise=True) ** 2
    peak = (np.abs(U) * np.exp2(tap_shift)).reshape(k, -1).max(axis=1)
    best = np.where(peak > 0, peak / QMAX, 1.0 / QMAX).astype(np.float32)
    best_err = np.full(k, np.inf)
    for f in np.linspace(1.0, 0.25, 61):
        s = np.where(peak > 0, peak * f / QMAX, 1.0 / QMAX).astype(np.float32)
        err = (weight * (U - round_nearest(U, s, tap_shift) * step_sizes(s, tap_shift)) ** 2)
        err = err.reshape(k, -1).sum(axis=1)
        better = err < best_err * (1 - 1e-9)
        best, best_err = np.where(better, s, best), np.where(better, err, best_err)
    return best.astype(np.float32)


def choose_steps(U: np.ndarray, tile: str, method: str = "error",
                 max_span: int = MAX_TAP_SHIFT) -> tuple[np.ndarray, np.ndarray]:
    """Channel scales and tap shifts of one layer's float Winograd weights.

    Parameters
    ----------
    U : ndarray [K, C, alpha, alpha]
        Float Winograd-domain weights (zeros are pruned).
    tile : str
        The tile (its importance matrix weights the channel scale's error).
    method : str
        ``"range"``: scale = max |U[k]| / 127, each position shifted as far as its largest
        weight allows. ``"error"``: starting there, alternately the channel scales
        (importance-weighted error) and each position's shift (rounding error) minimise the
        rounding error.
    max_span : int
        Largest ``max(tap_shift) - min(tap_shift)`` (the design's ``max_tap_shift``).

    Returns
    -------
    scale : ndarray [K] of float32
    tap_shift : ndarray [alpha, alpha] of int8
        In [0, max_span], with min 0 (a common shift is folded into ``scale``).
    """
    if method not in TAP_SHIFT_METHODS:
        raise ValueError(f"method must be one of {', '.join(TAP_SHIFT_METHODS)}, "
                         f"not {method!r}")
    if not isinstance(max_span, int) or not 0 <= max_span <= MAX_TAP_SHIFT:
        raise ValueError(f"max_span must be an integer in [0, {MAX_TAP_SHIFT}], not "
                         f"{max_span!r}")
    U = np.asarray(U, dtype=np.float64)
    k = U.shape[0]
    peak = np.abs(U).reshape(k, -1).max(axis=1)
    scale = np.where(peak > 0, peak / QMAX, 1.0 / QMAX).astype(np.float32)
    shift = _range_shifts(U, scale, max_span)
    if method == "error":
        for _ in range(2):
            shift = _error_shifts(U, scale, max_span)
            shift -= shift.min()                   # the common part belongs to the scale
            scale = _scales_for(U, tile, shift)
    return scale, shift.astype(np.int8)


def output_hessian(tile: str) -> np.ndarray:
    """``H`` [alpha**2, alpha**2]: the expected squared output error of one filter's weight
    errors ``e`` (one input channel, one tile, i.i.d. unit inputs) is ``e^T H e``.

    ``H = R kron R`` with ``R = (AT^T AT) * (BT BT^T)`` (elementwise): the output transform's
    Gram matrix times the covariance of the transformed input. Its diagonal is the squared
    importance matrix ``I**2``.
    """
    tr = tile_transform(tile)
    AT, BT = tr.AT_int.astype(np.float64), tr.BT_int.astype(np.float64)
    R = (AT.T @ AT) * (BT @ BT.T)
    return np.kron(R, R)


def round_for_output(U: np.ndarray, scale: np.ndarray, tap_shift: np.ndarray,
                     tile: str, chunk: int = 256) -> np.ndarray:
    """Integer weights on the given steps that minimise the expected output error
    (:func:`output_hessian`) rather than each weight's own: every filter's positions are
    rounded one at a time, most important first, and the rounding error of each is
    compensated on the filter's positions not yet rounded (optimal brain quantisation, as in
    GPTQ); then single and paired one-step moves that lower the expected error are taken
    until none is left. Pruned weights take no part and stay zero.

    Filters are independent, so they are worked on ``chunk`` at a time (arrays that stay in
    the cache); the result does not depend on ``chunk``.
    """
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, not {chunk!r}")
    k, c, a, _ = U.shape
    n = a * a
    H = output_hessian(tile)
    W0 = U.reshape(k * c, n)
    step = np.broadcast_to(step_sizes(scale, tap_shift), U.shape).reshape(k * c, n)
    Q = np.zeros_like(W0)
    order = np.argsort(-np.diag(H), kind="stable")
    for lo in range(0, k * c, chunk):
        rows = slice(lo, lo + chunk)
        Q[rows] = _round_filters(H, order, W0[rows], np.ascontiguousarray(step[rows]))
    return Q.reshape(U.shape)


def _round_filters(H, order, W0, step) -> np.ndarray:
    """:func:`round_for_output` of the filters W0 [f, n] on their steps [f, n]."""
    n = H.shape[0]
    keep = W0 != 0
    both = keep[:, :, None] & keep[:, None, :]
    Hinv = np.linalg.inv(np.where(both, H, 0.0) + np.eye(n) * ~keep[:, :, None])
    # In rounding order, the positions still to round are a suffix: only it is updated.
    Hinv = Hinv[:, order][:, :, order]
    W, s = W0[:, order], step[:, order]
    q = np.zeros_like(W)
    for i in range(n):
        q[:, i] = np.clip(np.rint(W[:, i] / s[:, i]), -QMAX, QMAX)
        d = Hinv[:, i, i]
        err = (W[:, i] - q[:, i] * s[:, i]) / d
        W[:, i + 1:] -= err[:, None] * Hinv[:, i, i + 1:]
        Hinv[:, i + 1:, i + 1:] -= (Hinv[:, i + 1:, i, None] * Hinv[:, None, i, i + 1:]
                                    / d[:, None, None])
    Q = np.zeros_like(q)
    Q[:, order] = q
    Q = np.where(keep, Q, 0.0)
    _local_search(H, Q, W0, step, keep)
    return Q


def _local_search(H, Q, W, step, keep, sweeps: int = 50) -> None:
    """Improve the rounding ``Q`` [filters, n] in place: move one weight, or two together, by
    one step wherever that lowers ``e^T H e`` (``e = W - Q * step``), until no move does.

    Works on [n, filters] copies (a position's values contiguous) of the filters still
    moving: a filter that made no move in a sweep is at its optimum and leaves the set.
    """
    n = H.shape[0]
    g_rows = (W - Q * step) @ H                     # half the gradient of e^T H e per weight
    active = np.arange(len(Q))
    q, s, kp, g = Q.T.copy(), step.T.copy(), keep.T.copy(), g_rows.T.copy()
    diag = np.diag(H)

    def apply(ok, moves):
        for j, d in moves:
            q[j, ok] += d
            g[:, ok] -= H[j][:, None] * (d * s[j, ok])[None, :]

    def room(j, d):
        return kp[j] & (np.abs(q[j] + d) <= QMAX)

    for _ in range(sweeps):
        moved = np.zeros(len(active), dtype=bool)
        for j in range(n):
            for d in (1, -1):
                gain = -2 * d * s[j] * g[j] + s[j] ** 2 * diag[j]
                ok = (gain < -1e-15) & room(j, d)
                apply(ok, [(j, d)])
                moved |= ok
        for j in range(n):
            for l in range(j + 1, n):
                for d1 in (1, -1):
                    for d2 in (1, -1):
                        gain = (-2 * d1 * s[j] * g[j] - 2 * d2 * s[l] * g[l]
                                + s[j] ** 2 * diag[j] + s[l] ** 2 * diag[l]
                                + 2 * d1 * d2 * s[j] * s[l] * H[j, l])
                        ok = (gain < -1e-15) & room(j, d1) & room(l, d2)
                        if ok.any():
                            apply(ok, [(j, d1), (l, d2)])
                            moved |= ok
        Q[active] = q.T
        if not moved.any():
            return
        active, q, s, kp, g = (active[moved], q[:, moved], s[:, moved], kp[:, moved],
                               g[:, moved])
    Q[active] = q.T
