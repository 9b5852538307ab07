"""Exactness of the Winograd transforms in golden.transforms, and their pinned error messages."""

import math
from fractions import Fraction

import numpy as np
import pytest

from golden.transforms import (CANONICAL_POINTS, TILES, parse_tile, tile_transform,
                               winograd_transform)

ALL_POINTS = sorted(CANONICAL_POINTS)


def _lcm_of_denominators(matrix) -> int:
    return math.lcm(*(v.denominator for row in matrix for v in row))


def _scaled_int(matrix) -> tuple[np.ndarray, int]:
    """The matrix times the lcm of its denominators, as a Python-int object array."""
    scale = _lcm_of_denominators(matrix)
    rows = [[int(v * scale) for v in row] for row in matrix]
    return np.array(rows, dtype=object), scale


def _correlate_valid(d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Plain valid 2-D correlation of an alpha x alpha tile with an r x r filter (exact ints)."""
    alpha, r = d.shape[0], g.shape[0]
    m = alpha - r + 1
    out = np.zeros((m, m), dtype=object)
    for i in range(m):
        for j in range(m):
            out[i, j] = sum(int(d[i + p, j + q]) * int(g[p, q])
                            for p in range(r) for q in range(r))
    return out


@pytest.mark.parametrize("m, r", ALL_POINTS)
def test_fraction_self_check_and_shapes(m, r):
    tr = winograd_transform(m, r)
    alpha = m + r - 1
    assert tr.alpha == alpha
    assert len(tr.AT) == m and all(len(row) == alpha for row in tr.AT)
    assert len(tr.G) == alpha and all(len(row) == r for row in tr.G)
    assert len(tr.BT) == alpha and all(len(row) == alpha for row in tr.BT)
    assert tr.points == CANONICAL_POINTS[(m, r)]
    assert all(isinstance(v, Fraction) for mat in (tr.AT, tr.G, tr.BT) for row in mat
               for v in row)
    tr.check()          # raises ArithmeticError on any wrong basis pair


@pytest.mark.parametrize("m, r", ALL_POINTS)
def test_numeric_2d_identity_with_cleared_denominators(m, r):
    """AT [(G g GT) * (BT d BTT)] A == correlation, all-integer after scaling each matrix."""
    tr = winograd_transform(m, r)
    AT, sa = _scaled_int(tr.AT)
    G, sg = _scaled_int(tr.G)
    BT, sb = _scaled_int(tr.BT)
    factor = (sa * sa) * (sg * sg) * (sb * sb)
    rng = np.random.default_rng(1000 * m + r)
    alpha = tr.alpha
    cases = [(rng.integers(-128, 128, (alpha, alpha)), rng.integers(-127, 128, (r, r)))
             for _ in range(6)]
    cases.append((np.full((alpha, alpha), -128), np.full((r, r), 127)))   # extremes
    cases.append((np.zeros((alpha, alpha), dtype=int), rng.integers(-9, 9, (r, r))))
    for d, g in cases:
        d, g = d.astype(object), g.astype(object)
        U = G.dot(g).dot(G.T)
        V = BT.dot(d).dot(BT.T)
        Y = AT.dot(U * V).dot(AT.T)
        expected = _correlate_valid(d, g) * factor
        assert (Y == expected).all(), f"F({m},{r}) disagrees with the direct correlation"


@pytest.mark.parametrize("tile", sorted(TILES))
def test_hardware_tiles_have_integer_transforms(tile):
    tr = tile_transform(tile)
    m, r = parse_tile(tile)
    assert (tr.m, tr.r) == (m, r)
    assert f"{tr.alpha}x{tr.alpha}" == tile
    assert tr.AT_int.dtype == np.int64 and tr.BT_int.dtype == np.int64
    assert tr.AT_int.tolist() == [[int(v) for v in row] for row in tr.AT]
    assert tr.BT_int.tolist() == [[int(v) for v in row] for row in tr.BT]
    np.testing.assert_array_equal(tr.G_float, [[float(v) for v in row] for row in tr.G])
    assert tr.G_strings == [[str(v) for v in row] for row in tr.G]


def test_known_f23_matrices():
    """F(2,3) with points 0, 1, -1 uses only 0 and +-1 in AT and BT (adders only)."""
    tr = tile_transform("4x4")
    assert set(tr.AT_int.ravel().tolist()) <= {-1, 0, 1}
    assert set(tr.BT_int.ravel().tolist()) <= {-1, 0, 1}
    assert tr.points == (0, 1, -1)


def test_f43_coefficient_magnitudes():
    """F(4,3) with points 0, +-1, +-2: BT entries up to 5, AT up to 8 (seed notes)."""
    tr = tile_transform("6x6")
    assert np.abs(tr.BT_int).max() == 5
    assert np.abs(tr.AT_int).max() == 8


@pytest.mark.parametrize("m, r", [(6, 3), (4, 5), (6, 5)])
def test_fractional_points_refuse_integer_view(m, r):
    tr = winograd_transform(m, r)
    with pytest.raises(ValueError, match="AT has non-integer entries"):
        _ = tr.AT_int


def test_custom_points_give_valid_triple():
    # F(4,3) with the points {0, 1/2, -1, 1, -3} (smaller float error, Barabasz et al.).
    points = tuple(Fraction(p) for p in ("0", "1/2", "-1", "1", "-3"))
    tr = winograd_transform(4, 3, points)
    tr.check()
    assert tr.points == points


def test_transform_is_cached():
    assert winograd_transform(2, 3) is winograd_transform(2, 3)
    assert tile_transform("6x6") is winograd_transform(4, 3)


def test_check_detects_a_broken_triple():
    tr = winograd_transform(2, 3)
    bad_at = (tr.AT[0], tuple(v * 2 for v in tr.AT[1]))
    broken = type(tr)(m=2, r=3, points=tr.points, AT=bad_at, G=tr.G, BT=tr.BT)
    with pytest.raises(ArithmeticError, match=r"F\(2,3\) with points .* fails the correlation"):
        broken.check()


@pytest.mark.parametrize("tile", ["5x5", "4X4", "4x4 ", "", "8x8", "2x2"])
def test_parse_tile_error_message(tile):
    with pytest.raises(ValueError) as info:
        parse_tile(tile)
    assert str(info.value) == f"tile must be one of 4x4, 6x6, not {tile!r}"


@pytest.mark.parametrize("tile", [None, 4, ("4x4",)])
def test_parse_tile_rejects_non_strings(tile):
    with pytest.raises(ValueError, match=r"tile must be one of 4x4, 6x6, not "):
        parse_tile(tile)


def test_tile_transform_error_message():
    with pytest.raises(ValueError, match=r"^tile must be one of 4x4, 6x6, not '5x5'$"):
        tile_transform("5x5")


@pytest.mark.parametrize("m, r, points, message", [
    (2, 3, (0, 1), r"^F\(2,3\) needs 3 points, got 2$"),
    (2, 3, (0, 1, -1, 2), r"^F\(2,3\) needs 3 points, got 4$"),
    (2, 3, (0, 1, 1), r"^points must be distinct, got "),
    (4, 3, (0, 1, -1, 2, Fraction(4, 2)), r"^points must be distinct, got "),
])
def test_bad_points_error_messages(m, r, points, message):
    with pytest.raises(ValueError, match=message):
        winograd_transform(m, r, tuple(points))


@pytest.mark.parametrize("m, r, message", [
    (3, 3, r"^no canonical points for F\(3,3\); supported: F\(2,3\), F\(4,3\), "),
    (0, 3, r"^m must be a positive integer, not 0$"),
    (2, -1, r"^r must be a positive integer, not -1$"),
    (2.0, 3, r"^m must be a positive integer, not 2\.0$"),
])
def test_bad_sizes_error_messages(m, r, message):
    with pytest.raises(ValueError, match=message):
        winograd_transform(m, r)
