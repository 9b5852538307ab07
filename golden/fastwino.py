"""The exact integer Winograd layer as three large matrix products, fast and bit-exact.

For one layer's weights, the tiles of many images run as three products over position-major
data (``p`` a Winograd position, ``alpha**2`` of them, ``o`` an output position, ``m**2``)::

    V[p, c, t] = sum_q kron(BT, BT)[p, q] d[q, c, t]                  (input transform)
    M[p, k, t] = sum_c U[k, c, p] V[p, c, t]                           (one product per p)
    Y[o, k, t] = sum_p kron(AT, AT)[o, p] 2**(T - tap_shift[p]) M[p, k, t]   (output transform)

which is :func:`golden.conv.winograd_tiles_int64` (``BT d BT^T`` is ``kron(BT, BT)`` applied
to the flattened patch, and the tap shift is a power-of-two factor of each column of the
output transform). Each product runs in float64 BLAS when the bounds propagated from the
input's largest magnitude prove every partial sum below ``2**53`` (:mod:`golden.intmatmul`),
in int64 otherwise; the result is the int64 reference bit for bit either way. BLAS runs on one
thread (:func:`golden.intmatmul.single_blas_thread`).
"""

from __future__ import annotations

import numpy as np

from .intmatmul import abs_sums, exact_matmul, float64_is_exact, row_bounds, single_blas_thread

__all__ = ["ExactWinograd"]


class ExactWinograd:
    """The three products of the exact integer layer for fixed weights.

    Parameters
    ----------
    U : ndarray [K, C, alpha, alpha] of int
    AT, BT : ndarray of int
    left_shifts : ndarray [alpha, alpha] of int
        ``T - tap_shift`` per position (:func:`golden.conv.tap_left_shifts`).

    Members
    -------
    k, c, m, alpha : int
        Output and input channels, output and input tile sides.
    """

    def __init__(self, U, AT, BT, left_shifts):
        U = np.asarray(U)
        AT = np.asarray(AT, dtype=np.int64)
        BT = np.asarray(BT, dtype=np.int64)
        self.k, self.c, self.alpha, _ = U.shape
        self.m = AT.shape[0]
        positions = self.alpha ** 2
        self._shifts = [int(s) for s in np.asarray(left_shifts).ravel()]
        self._bk = np.kron(BT, BT)                                  # [a*a, a*a]
        self._ak = np.kron(AT, AT)                                  # [m*m, a*a]
        self._ak_shifted = np.left_shift(self._ak, np.asarray(self._shifts)[None, :])
        per_position = U.reshape(self.k, self.c, positions).transpose(2, 0, 1)   # [a*a, K, C]
        self._u = per_position
        # max over k of sum_c |U[k, c, p]|: the weights' gain at each position.
        self._u_gain = [int(v) for v in abs_sums(per_position).max(axis=1)]
        self._u_as = {}
        self._bounds = {}

    def bounds(self, d_abs_max: int) -> tuple[int, int, int]:
        """Bounds on every partial sum of the three products (input transform, channel
        sum, output transform) for inputs of magnitude at most ``d_abs_max``."""
        d_abs_max = int(d_abs_max)
        if d_abs_max not in self._bounds:
            v = row_bounds(self._bk, d_abs_max)
            mm = [gain * bound for gain, bound in zip(self._u_gain, v)]
            y = row_bounds(self._ak, [bound << s for bound, s in zip(mm, self._shifts)])
            self._bounds[d_abs_max] = max(v), max(mm), max(y)
        return self._bounds[d_abs_max]

    def input_dtype(self, d_abs_max: int) -> type:
        """The dtype the input transform runs in: float64 when exact, else int64."""
        return np.float64 if float64_is_exact(self.bounds(d_abs_max)[0]) else np.int64

    def tile_bytes(self, c: int) -> int:
        """Working memory of one tile in :meth:`run` (patch, V, M, Y and its int64 copy)."""
        positions, outputs = self.alpha ** 2, self.m ** 2
        return 8 * (2 * positions * c + positions * self.k + 3 * outputs * self.k)

    def _weights(self, dtype) -> np.ndarray:
        if dtype not in self._u_as:
            self._u_as[dtype] = np.ascontiguousarray(self._u, dtype=dtype)
        return self._u_as[dtype]

    def run(self, d: np.ndarray, d_abs_max: int, bias=None) -> np.ndarray:
        """The tiles' outputs.

        Parameters
        ----------
        d : ndarray [alpha**2, C, T] of int (or float64 holding integers)
            Position-major patches of T tiles.
        d_abs_max : int
            A bound on ``|d|`` (the exactness proof rests on it).
        bias : ndarray [K] of int, optional
            Added to every output of channel k.

        Returns
        -------
        ndarray [m**2, K, T]
            Exact integers: float64 where every step ran in float64, else int64.
        """
        positions, c, t = d.shape
        v_bound, m_bound, y_bound = self.bounds(d_abs_max)
        dtype = np.float64 if float64_is_exact(m_bound) else np.int64
        with single_blas_thread():
            V = exact_matmul(self._bk, d.reshape(positions, c * t), v_bound)
            M = exact_matmul(self._weights(dtype), V.reshape(positions, c, t), m_bound)
            del V
            Y = exact_matmul(self._ak_shifted, M.reshape(positions, self.k * t), y_bound)
        Y = Y.reshape(self.m ** 2, self.k, t)
        if bias is not None:
            bias = np.asarray(bias, dtype=np.int64)
            bias_max = max(abs(int(bias.min())), abs(int(bias.max()))) if bias.size else 0
            if Y.dtype != np.float64 or not float64_is_exact(y_bound + bias_max):
                Y = Y.astype(np.int64)
            Y += bias.astype(Y.dtype)[None, :, None]
        return Y
