"""Requantisation of raw integer layer outputs to int8, for chaining layers.

Per output channel ``k`` a fixed-point multiplier ``mult[k]`` (unsigned, < 2**15) and a right
shift ``shift[k]`` (0..47) stand for the real scale ``mult / 2**shift``::

    q = clamp((y * mult + round_bias) >> shift, -128, 127),  round_bias = 2**(shift-1) if shift else 0
    q = max(q, 0) if relu

``>>`` is an arithmetic shift (floor), so ties round towards +infinity. Clamping happens before
the ReLU; both are exact integer operations the RTL reproduces.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MULTIPLIER_BITS", "MAX_SHIFT", "quantize_multiplier", "requantize"]

MULTIPLIER_BITS = 15
MAX_SHIFT = 47


def quantize_multiplier(scale: float) -> tuple[int, int]:
    """Fixed-point (mult, shift) with ``mult / 2**shift`` closest to ``scale`` (> 0).

    The mantissa uses all :data:`MULTIPLIER_BITS` bits where the shift range allows.
    """
    if not (isinstance(scale, (int, float, np.floating)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, not {scale!r}")
    mant, exp = math.frexp(scale)                 # scale = mant * 2**exp, mant in [0.5, 1)
    shift = MULTIPLIER_BITS - exp
    if shift > MAX_SHIFT:
        raise ValueError(f"scale {scale!r} is too small for a shift of at most {MAX_SHIFT}")
    if shift < 0:
        raise ValueError(f"scale {scale!r} is too large (>= 2**{MULTIPLIER_BITS})")
    mult = round(mant * (1 << MULTIPLIER_BITS))
    if mult == 1 << MULTIPLIER_BITS:              # rounding carried into the next power of two
        mult >>= 1
        shift -= 1
    if shift < 0:
        raise ValueError(f"scale {scale!r} is too large (>= 2**{MULTIPLIER_BITS})")
    return int(mult), int(shift)


def requantize(y: np.ndarray, mult, shift, relu: bool = False, axis: int = -3) -> np.ndarray:
    """Requantise raw outputs to int8.

    Parameters
    ----------
    y : ndarray of int
        Raw outputs, e.g. [K, H, W] or [N, K, H, W].
    mult, shift : int or ndarray [K]
        Per-channel multiplier and shift (scalars apply to every channel).
    relu : bool
        Apply ReLU after clamping.
    axis : int
        Axis of ``y`` that indexes output channels (default -3, the K of [.., K, H, W]).
    """
    y = np.asarray(y, dtype=np.int64)
    mult = np.asarray(mult, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if np.any(mult < 0) or np.any(mult >= 1 << MULTIPLIER_BITS):
        raise ValueError(f"mult must lie in [0, 2**{MULTIPLIER_BITS})")
    if np.any(shift < 0) or np.any(shift > MAX_SHIFT):
        raise ValueError(f"shift must lie in [0, {MAX_SHIFT}]")
    if mult.ndim or shift.ndim:
        shape = [1] * y.ndim
        shape[axis] = -1
        mult = np.broadcast_to(mult, (y.shape[axis],)).reshape(shape)
        shift = np.broadcast_to(shift, (y.shape[axis],)).reshape(shape)
    if y.size and (int(y.min()) <= -(1 << 47) or int(y.max()) >= 1 << 47):
        raise ValueError("raw outputs must lie within +-2**47 for exact requantisation")
    round_bias = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 0)
    q = np.asarray(y * mult)
    q += round_bias
    np.right_shift(q, shift, out=q)
    # Clamping to [-128, 127] then the ReLU is clamping to [0, 127].
    np.clip(q, 0 if relu else -128, 127, out=q)
    return q.astype(np.int8)
