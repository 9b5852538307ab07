"""Exact Winograd minimal-filtering transforms F(m x m, r x r).

The matrices are built with :class:`fractions.Fraction` by the modified Toom-Cook construction
(interpolation points plus the point at infinity), as in wincnn:

* ``AT[i][j] = a_j ** i`` for the finite points, last column ``e_(m-1)``;
* ``G[j][k] = a_j ** k / f_j`` with ``f_j = prod_(l != j) (a_j - a_l)``, last row ``e_(r-1)``;
* row ``j`` of ``BT`` lists the coefficients (ascending powers) of ``prod_(l != j) (x - a_l)``,
  last row those of ``prod_l (x - a_l)``.

Then ``Y = AT [(G g GT) * (BT d B)] A`` is the valid 2-D correlation of an alpha x alpha tile ``d``
with an r x r filter ``g``. This module is the single source of every transform matrix in the
project; ``hw``, ``sim`` and ``train`` import from here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = [
    "CANONICAL_POINTS",
    "TILES",
    "WinogradTransform",
    "check_triple",
    "parse_tile",
    "tile_transform",
    "winograd_transform",
]

F = Fraction

#: Interpolation points (finite ones; infinity is implied) for each supported (m, r).
CANONICAL_POINTS: dict[tuple[int, int], tuple[Fraction, ...]] = {
    (2, 3): (F(0), F(1), F(-1)),
    (4, 3): (F(0), F(1), F(-1), F(2), F(-2)),
    (6, 3): (F(0), F(1), F(-1), F(2), F(-2), F(1, 2), F(-1, 2)),
    (2, 5): (F(0), F(1), F(-1), F(2), F(-2)),
    (4, 5): (F(0), F(1), F(-1), F(2), F(-2), F(1, 2), F(-1, 2)),
    (6, 5): (F(0), F(1), F(-1), F(2), F(-2), F(1, 2), F(-1, 2), F(3), F(-3)),
}

#: Tile names of the hardware: the alpha x alpha input tile -> (m, r).
TILES: dict[str, tuple[int, int]] = {"4x4": (2, 3), "6x6": (4, 3)}


def _poly_from_roots(roots: list[Fraction]) -> list[Fraction]:
    """Coefficients, ascending powers, of prod (x - root)."""
    coeffs = [F(1)]
    for root in roots:
        shifted = [F(0)] + coeffs               # x * p(x)
        scaled = [-root * c for c in coeffs] + [F(0)]  # -root * p(x)
        coeffs = [a + b for a, b in zip(shifted, scaled)]
    return coeffs


def _as_int_matrix(rows: tuple[tuple[Fraction, ...], ...], what: str) -> np.ndarray:
    if any(v.denominator != 1 for row in rows for v in row):
        raise ValueError(f"{what} has non-integer entries; the integer datapath needs integer {what}")
    return np.array([[int(v) for v in row] for row in rows], dtype=np.int64)


@dataclass(frozen=True)
class WinogradTransform:
    """The exact matrices of F(m x m, r x r).

    Parameters
    ----------
    m : int
        Output tile side.
    r : int
        Filter side.
    points : tuple of Fraction
        The alpha - 1 finite interpolation points.
    AT, G, BT : tuple of tuple of Fraction
        ``AT`` is m x alpha, ``G`` alpha x r, ``BT`` alpha x alpha.
    """

    m: int
    r: int
    points: tuple[Fraction, ...]
    AT: tuple[tuple[Fraction, ...], ...]
    G: tuple[tuple[Fraction, ...], ...]
    BT: tuple[tuple[Fraction, ...], ...]

    @property
    def alpha(self) -> int:
        """Input tile side, m + r - 1."""
        return self.m + self.r - 1

    @property
    def AT_int(self) -> np.ndarray:
        """AT as int64 (ValueError if it has fractions)."""
        return _as_int_matrix(self.AT, "AT")

    @property
    def BT_int(self) -> np.ndarray:
        """BT as int64 (ValueError if it has fractions)."""
        return _as_int_matrix(self.BT, "BT")

    @property
    def G_float(self) -> np.ndarray:
        """G as float64 (what a trainer multiplies with)."""
        return np.array([[float(v) for v in row] for row in self.G], dtype=np.float64)

    @property
    def G_strings(self) -> list[list[str]]:
        """G as exact fraction strings, e.g. ``"-1/6"``."""
        return [[str(v) for v in row] for row in self.G]

    def check(self) -> None:
        """Verify exactly that the triple computes the 1-D valid correlation.

        The map (d, g) -> y is bilinear, so checking every pair of basis vectors proves the
        identity for all inputs; the 2-D nesting follows from the 1-D one.

        Raises
        ------
        ArithmeticError
            If any basis pair gives a wrong result.
        """
        a, m, r = self.alpha, self.m, self.r
        for p in range(a):
            for q in range(r):
                # d = e_p, g = e_q: y[i] = d[i + q] g[q] = 1 iff i + q == p.
                gg = [self.G[j][q] for j in range(a)]
                dd = [self.BT[j][p] for j in range(a)]
                for i in range(m):
                    y = sum(self.AT[i][j] * gg[j] * dd[j] for j in range(a))
                    if y != (1 if i + q == p else 0):
                        raise ArithmeticError(
                            f"F({m},{r}) with points {self.points} fails the correlation check "
                            f"at output {i}, input {p}, tap {q}")


@functools.lru_cache(maxsize=None, typed=True)  # typed: 2.0 must not hit the (2, r) entry
def winograd_transform(m: int, r: int, points: tuple[Fraction, ...] | None = None
                       ) -> WinogradTransform:
    """Construct and check the exact matrices of F(m x m, r x r).

    Parameters
    ----------
    m : int
        Output tile side, >= 1.
    r : int
        Filter side, >= 1.
    points : tuple of Fraction, optional
        alpha - 1 distinct finite points; defaults to :data:`CANONICAL_POINTS`.

    Returns
    -------
    WinogradTransform
    """
    if not isinstance(m, int) or m < 1:
        raise ValueError(f"m must be a positive integer, not {m!r}")
    if not isinstance(r, int) or r < 1:
        raise ValueError(f"r must be a positive integer, not {r!r}")
    alpha = m + r - 1
    if points is None:
        if (m, r) not in CANONICAL_POINTS:
            supported = ", ".join(f"F({a},{b})" for a, b in CANONICAL_POINTS)
            raise ValueError(f"no canonical points for F({m},{r}); supported: {supported}")
        points = CANONICAL_POINTS[(m, r)]
    points = tuple(F(p) for p in points)
    if len(points) != alpha - 1:
        raise ValueError(f"F({m},{r}) needs {alpha - 1} points, got {len(points)}")
    if len(set(points)) != len(points):
        raise ValueError(f"points must be distinct, got {points}")

    n = alpha - 1
    at = [[points[j] ** i for j in range(n)] + [F(1 if i == m - 1 else 0)] for i in range(m)]
    g = []
    for j in range(n):
        f_j = F(1)
        for l in range(n):
            if l != j:
                f_j *= points[j] - points[l]
        g.append([points[j] ** k / f_j for k in range(r)])
    g.append([F(1 if k == r - 1 else 0) for k in range(r)])
    bt = []
    for j in range(n):
        coeffs = _poly_from_roots([points[l] for l in range(n) if l != j])
        bt.append(coeffs + [F(0)] * (alpha - len(coeffs)))
    bt.append(_poly_from_roots(list(points)))

    tr = WinogradTransform(
        m=m, r=r, points=points,
        AT=tuple(tuple(row) for row in at),
        G=tuple(tuple(row) for row in g),
        BT=tuple(tuple(row) for row in bt))
    tr.check()
    return tr


def parse_tile(tile: str) -> tuple[int, int]:
    """Map a hardware tile name to (m, r).

    Raises
    ------
    ValueError
        ``"tile must be one of 4x4, 6x6, not '5x5'"`` for anything else.
    """
    if isinstance(tile, str) and tile in TILES:
        return TILES[tile]
    raise ValueError(f"tile must be one of {', '.join(TILES)}, not {tile!r}")


def tile_transform(tile: str) -> WinogradTransform:
    """The canonical transform of a hardware tile name ("4x4" or "6x6")."""
    m, r = parse_tile(tile)
    return winograd_transform(m, r)


def check_triple(m: int, r: int, AT, BT, G) -> str | None:
    """Whether numeric AT, BT (integers) and G (float, as a weight file stores them) compute the
    1-D valid correlation F(m, r): None if they do, else what fails (to within 1e-9).

    The map is bilinear, so basis pairs suffice (as in :meth:`WinogradTransform.check`, which
    checks the exact fractions).
    """
    a = m + r - 1
    # y = AT [(G e_q) * (BT e_p)] must equal 1 iff i + q == p, for every basis pair.
    y = np.einsum("ij,jq,jp->ipq", np.asarray(AT, np.float64), np.asarray(G, np.float64),
                  np.asarray(BT, np.float64))
    expected = np.zeros((m, a, r))
    for i in range(m):
        for q in range(r):
            expected[i, i + q, q] = 1.0
    bad = np.argwhere(np.abs(y - expected) > 1e-9)
    if not bad.size:
        return None
    i, p, q = bad[0]
    return (f"AT, BT and G do not form a Winograd F({m},{r}) triple (output {i}, input {p}, tap "
            f"{q} gives {y[i, p, q]:.6g}, expected {expected[i, p, q]:g})")
