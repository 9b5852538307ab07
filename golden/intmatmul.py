"""Exact integer matrix products, through float64 BLAS where that is provably exact.

NumPy multiplies integer matrices with its own loops, not BLAS, so an int64 product is one to
two orders of magnitude slower than the same float64 one. A float64 product of integers is
exact when every partial sum (in whatever order BLAS adds) is an integer of magnitude below
``2**53``: each product and each sum is then representable, so no step rounds. Every partial
sum of ``sum_k a[i, k] * b[k, j]`` is bounded by ``sum_k |a[i, k]| * max|b[k, :]|``
(:func:`row_bounds`, :func:`abs_sums`), so the largest such bound below :data:`FLOAT64_EXACT`
proves the float64 product exact;
:func:`exact_matmul` then uses it, and int64 otherwise. The int64 product wraps modulo ``2**64``
like any int64 arithmetic, so it equals every other int64 evaluation order bit for bit.

The products are many and medium-sized (tens to hundreds of channels), where BLAS threads gain
little and, on a loaded machine, cost several times their work in waiting:
:func:`single_blas_thread` runs them on one (with threadpoolctl, a dependency of the package;
without it, golden still imports with NumPy alone and BLAS keeps its threads).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

__all__ = ["FLOAT64_EXACT", "abs_sums", "exact_matmul", "float64_is_exact", "row_bounds",
           "single_blas_thread"]

#: Integers of magnitude below this are exact in float64, and so are sums that stay below it.
FLOAT64_EXACT = 2**53


def abs_sums(a) -> np.ndarray:
    """``sum(|a|)`` over the last axis, exactly: int64 where no sum can overflow, else Python
    integers (object array)."""
    a = np.asarray(a)
    biggest = max(abs(int(a.min())), abs(int(a.max()))) if a.size else 0
    if biggest * max(a.shape[-1], 1) < 2**62:
        return np.abs(a.astype(np.int64)).sum(axis=-1)
    return np.abs(a.astype(object)).sum(axis=-1)


def row_bounds(a, b_abs_max) -> list[int]:
    """``sum_k |a[i, k]| * b_abs_max[k]`` for every row ``i`` of a small 2-D integer matrix,
    as exact Python integers: the bound on every partial sum of row ``i`` of ``a @ b`` when
    ``|b[k, j]| <= b_abs_max[k]`` (a scalar applies to every ``k``)."""
    rows = np.asarray(a).tolist()
    n = len(rows[0]) if rows else 0
    bmax = [int(b_abs_max)] * n if np.ndim(b_abs_max) == 0 else [int(v) for v in b_abs_max]
    return [sum(abs(int(x)) * y for x, y in zip(row, bmax)) for row in rows]


def float64_is_exact(bound: int) -> bool:
    """Whether a product whose partial sums are bounded by ``bound`` is exact in float64."""
    return int(bound) < FLOAT64_EXACT


def exact_matmul(a: np.ndarray, b: np.ndarray, bound: int) -> np.ndarray:
    """``a @ b`` of integer arrays, exactly: float64 (holding integers) or int64.

    Parameters
    ----------
    a, b : ndarray of int, or of float64 holding integers
        Operands as :func:`numpy.matmul` takes them.
    bound : int
        A proven bound on every partial sum (module docstring): below
        :data:`FLOAT64_EXACT` the product runs through float64 BLAS and comes back as
        float64, else it runs in int64 and comes back as int64. Either way
        ``.astype(np.int64)`` of the result is the int64 product bit for bit.
    """
    if float64_is_exact(bound):
        return np.matmul(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return np.matmul(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))


_CONTROLLER: list = []


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run the enclosed BLAS calls on one thread (the BLAS libraries loaded when first used)."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(ThreadpoolController())
    if _CONTROLLER[0] is None:
        yield
        return
    with _CONTROLLER[0].limit(limits=1, user_api="blas"):
        yield
