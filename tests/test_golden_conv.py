"""Layer models of golden.conv: float Winograd vs direct convolution, the exact integer layer vs
an independent plain-Python loop reference, and hypothesis properties over shapes."""

import math
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.config import DEFAULT
from golden.conv import (assemble_tiles, direct_conv2d, extract_patches, tile_grid,
                         winograd_conv2d_float, winograd_conv2d_int, winograd_tiles_int)
from golden.transforms import CANONICAL_POINTS, TILES, tile_transform, winograd_transform


def _float(matrix) -> np.ndarray:
    return np.array([[float(v) for v in row] for row in matrix], dtype=np.float64)


def _scaled_G(tr) -> tuple[np.ndarray, int]:
    """G times the lcm of its denominators (integer), and that lcm."""
    scale = math.lcm(*(v.denominator for row in tr.G for v in row))
    return np.array([[int(v * scale) for v in row] for row in tr.G], dtype=np.int64), scale


def reference_layer(x, U, AT, BT, padding, bias=None):
    """The integer layer of the weight-format contract, written as plain Python loops.

    x [C][H][W], U [K][C][a][a], AT [m][a], BT [a][a] (nested lists or arrays of ints).
    """
    x, U = np.asarray(x).tolist(), np.asarray(U).tolist()
    AT, BT = np.asarray(AT).tolist(), np.asarray(BT).tolist()
    C, H, W = len(x), len(x[0]), len(x[0][0])
    K, a, m = len(U), len(BT), len(AT)
    r = a - m + 1
    Hp, Wp = H + 2 * padding, W + 2 * padding
    xpad = [[[0] * Wp for _ in range(Hp)] for _ in range(C)]
    for c in range(C):
        for h in range(H):
            for w in range(W):
                xpad[c][h + padding][w + padding] = int(x[c][h][w])
    Hout, Wout = Hp - r + 1, Wp - r + 1
    y = [[[None] * Wout for _ in range(Hout)] for _ in range(K)]
    for ti in range(-(-Hout // m)):
        for tj in range(-(-Wout // m)):
            V = []
            for c in range(C):
                d = [[xpad[c][ti * m + p][tj * m + q]
                      if ti * m + p < Hp and tj * m + q < Wp else 0
                      for q in range(a)] for p in range(a)]
                t = [[sum(BT[i][p] * d[p][q] for p in range(a)) for q in range(a)]
                     for i in range(a)]                                  # BT d
                V.append([[sum(t[i][q] * BT[j][q] for q in range(a)) for j in range(a)]
                          for i in range(a)])                            # (BT d) BT^T
            for k in range(K):
                M = [[sum(int(U[k][c][i][j]) * V[c][i][j] for c in range(C))
                      for j in range(a)] for i in range(a)]
                t = [[sum(AT[i][p] * M[p][q] for p in range(a)) for q in range(a)]
                     for i in range(m)]
                Y = [[sum(t[i][q] * AT[j][q] for q in range(a)) for j in range(m)]
                     for i in range(m)]
                for i in range(m):
                    for j in range(m):
                        oh, ow = ti * m + i, tj * m + j
                        if oh < Hout and ow < Wout:
                            y[k][oh][ow] = Y[i][j] + (0 if bias is None else int(bias[k]))
    return np.array(y, dtype=np.int64)


def _seed(*parts) -> int:
    """A reproducible seed (str hashes are salted per process, so no hash())."""
    return zlib.crc32(repr(parts).encode())


def _random_U(rng, k, c, a, sparsity=0.5):
    U = rng.integers(-127, 128, (k, c, a, a))
    U[rng.random(U.shape) < sparsity] = 0
    return U.astype(np.int8)


# -- float model vs direct convolution -----------------------------------------------------------

FLOAT_CASES = [  # (N or None, C, K, H, W, padding)
    (None, 3, 4, 8, 8, 1), (None, 2, 3, 7, 5, 0), (2, 3, 2, 9, 11, 2), (None, 1, 1, 5, 5, 0),
    (3, 4, 5, 6, 13, 1), (None, 5, 2, 1, 1, 2), (None, 2, 2, 3, 4, 1),
]


@pytest.mark.parametrize("m, r", sorted(CANONICAL_POINTS))
@pytest.mark.parametrize("case", FLOAT_CASES)
def test_float_winograd_matches_direct(m, r, case):
    n, c, k, h, w, padding = case
    if h + 2 * padding < r or w + 2 * padding < r or padding > r - 1:
        pytest.skip("layer smaller than the kernel or padding beyond r - 1")
    tr = winograd_transform(m, r)
    rng = np.random.default_rng(_seed(m, r, case))
    shape = (c, h, w) if n is None else (n, c, h, w)
    x = rng.standard_normal(shape)
    g = rng.standard_normal((k, c, r, r))
    bias = rng.standard_normal(k)
    G = _float(tr.G)
    U = np.einsum("xi,kcij,yj->kcxy", G, g, G)            # G g G^T
    got = winograd_conv2d_float(x, U, _float(tr.AT), _float(tr.BT), padding, bias, r=r)
    want = direct_conv2d(x, g, padding, bias)
    assert got.dtype == np.float64 and got.shape == want.shape
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * scale)


def test_direct_conv_against_loops():
    """The direct reference itself, against explicit loops (integers, exact)."""
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (2, 3, 5, 6))
    g = rng.integers(-127, 128, (4, 3, 3, 3))
    bias = rng.integers(-1000, 1000, 4)
    y = direct_conv2d(x, g, 1, bias)
    assert y.dtype == np.int64 and y.shape == (2, 4, 5, 6)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for n in range(2):
        for k in range(4):
            for i in range(5):
                for j in range(6):
                    expected = int(bias[k]) + sum(
                        int(xp[n, c, i + p, j + q]) * int(g[k, c, p, q])
                        for c in range(3) for p in range(3) for q in range(3))
                    assert y[n, k, i, j] == expected


# -- integer model vs plain-Python loops ---------------------------------------------------------

INT_CASES = [  # (C, K, H, W, padding, sparsity)
    (1, 1, 3, 3, 0, 0.0), (2, 3, 5, 7, 1, 0.5), (3, 2, 6, 6, 2, 0.3), (2, 2, 1, 1, 1, 0.0),
    (1, 2, 4, 9, 0, 0.9), (3, 3, 7, 4, 1, 1.0),
]


@pytest.mark.parametrize("tile", sorted(TILES))
@pytest.mark.parametrize("case", INT_CASES)
def test_int_model_matches_loop_reference(tile, case):
    c, k, h, w, padding, sparsity = case
    tr = tile_transform(tile)
    rng = np.random.default_rng(_seed(tile, case))
    x = rng.integers(-128, 128, (c, h, w)).astype(np.int8)
    U = _random_U(rng, k, c, tr.alpha, sparsity)
    bias = rng.integers(-2**31, 2**31, k).astype(np.int32)
    got = winograd_conv2d_int(x, U, tr.AT_int, tr.BT_int, padding, bias)
    want = reference_layer(x, U, tr.AT_int, tr.BT_int, padding, bias)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("tile", sorted(TILES))
def test_int_model_batched_matches_per_image(tile):
    tr = tile_transform(tile)
    rng = np.random.default_rng(11)
    x = rng.integers(-128, 128, (3, 2, 5, 7)).astype(np.int8)
    U = _random_U(rng, 4, 2, tr.alpha)
    got = winograd_conv2d_int(x, U, tr.AT_int, tr.BT_int, 1)
    assert got.shape == (3, 4, 5, 7)
    for n in range(3):
        np.testing.assert_array_equal(
            got[n], reference_layer(x[n], U, tr.AT_int, tr.BT_int, 1))


@pytest.mark.parametrize("tile", sorted(TILES))
@pytest.mark.parametrize("fill, weight", [(0, 127), (-128, 127), (-128, -127), (127, 127)])
def test_int_model_edge_values_at_max_channels(tile, fill, weight):
    """All-zero / all-extreme inputs with dense +-127 weights at the maximum channel count."""
    tr = tile_transform(tile)
    c = DEFAULT.max_in_channels
    x = np.full((c, 5, 5), fill, dtype=np.int8)
    U = np.full((2, c, tr.alpha, tr.alpha), weight, dtype=np.int8)
    U[1, :, ::2] *= -1                      # mixed signs in the second output channel
    got = winograd_conv2d_int(x, U, tr.AT_int, tr.BT_int, 1)
    np.testing.assert_array_equal(got, reference_layer(x, U, tr.AT_int, tr.BT_int, 1))
    if fill == 0:
        assert not got.any()
    widths = DEFAULT.replace(tile=tile).widths
    lo, hi = widths.transformed_range
    assert lo <= got.min() and got.max() <= hi


def test_int_model_all_zero_weights_give_bias():
    tr = tile_transform("6x6")
    x = np.random.default_rng(3).integers(-128, 128, (3, 9, 10)).astype(np.int8)
    U = np.zeros((4, 3, 6, 6), dtype=np.int8)
    bias = np.array([5, -7, 2**31 - 1, -2**31], dtype=np.int32)
    y = winograd_conv2d_int(x, U, tr.AT_int, tr.BT_int, 1, bias)
    np.testing.assert_array_equal(y, np.broadcast_to(bias[:, None, None], (4, 9, 10)))


@pytest.mark.parametrize("m, r", [(2, 3), (4, 3), (2, 5)])
def test_int_model_equals_scaled_direct_conv(m, r):
    """With U = Gs g Gs^T (G scaled to integers by s), the integer layer is s**2 * direct."""
    tr = winograd_transform(m, r)
    Gs, s = _scaled_G(tr)
    rng = np.random.default_rng(m * 10 + r)
    x = rng.integers(-128, 128, (3, 11, 7)).astype(np.int8)
    g = rng.integers(-127, 128, (2, 3, r, r))
    U = np.einsum("xi,kcij,yj->kcxy", Gs, g, Gs)
    got = winograd_conv2d_int(x, U, tr.AT_int, tr.BT_int, r // 2, r=r)
    np.testing.assert_array_equal(got, s * s * direct_conv2d(x, g, r // 2))


def test_int_model_r5_matches_loop_reference():
    tr = winograd_transform(2, 5)
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (2, 6, 7)).astype(np.int8)
    U = _random_U(rng, 2, 2, tr.alpha)
    got = winograd_conv2d_int(x, U, tr.AT_int, tr.BT_int, 2, r=5)
    np.testing.assert_array_equal(got, reference_layer(x, U, tr.AT_int, tr.BT_int, 2))


# -- tiling helpers ------------------------------------------------------------------------------

@pytest.mark.parametrize("h, w, m, r, padding, out, tiles", [
    (32, 32, 2, 3, 1, (32, 32), (16, 16)), (7, 5, 4, 3, 0, (5, 3), (2, 1)),
    (1, 1, 2, 3, 1, (1, 1), (1, 1)), (9, 10, 4, 3, 2, (11, 12), (3, 3)),
])
def test_tile_grid_geometry(h, w, m, r, padding, out, tiles):
    grid = tile_grid(h, w, m, r, padding)
    assert (grid.out_h, grid.out_w) == out
    assert (grid.tiles_h, grid.tiles_w) == tiles
    assert grid.n_tiles == tiles[0] * tiles[1] and grid.alpha == m + r - 1


def test_tile_grid_too_small():
    with pytest.raises(ValueError, match=r"input 1x2 with padding 0 is smaller than the 3x3 "
                                         r"kernel"):
        tile_grid(1, 2, 2, 3, 0)


def test_extract_and_assemble_round_trip():
    """Patches are tile-major slices of the padded input; assembling identity tiles crops."""
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, (2, 5, 7))
    m, r, padding = 2, 3, 1
    patches = extract_patches(x, m, r, padding)
    grid = tile_grid(5, 7, m, r, padding)
    assert patches.shape == (grid.n_tiles, 2, 4, 4)
    big = np.zeros((2, 20, 20), dtype=x.dtype)
    big[:, 1:6, 1:8] = x
    for t in range(grid.n_tiles):
        ti, tj = divmod(t, grid.tiles_w)
        np.testing.assert_array_equal(patches[t], big[:, ti * m:ti * m + 4, tj * m:tj * m + 4])
    # Top-left m x m of every patch is the output-aligned window: assembling recovers x_pad.
    y = assemble_tiles(patches[:, :, :m, :m], grid)
    np.testing.assert_array_equal(y, big[:, :grid.out_h, :grid.out_w])
    with pytest.raises(ValueError, match=r"expected \[12, K, 2, 2\] tiles"):
        assemble_tiles(patches[:5, :, :m, :m], grid)


def test_bad_input_rank():
    tr = tile_transform("4x4")
    U = np.zeros((1, 1, 4, 4), dtype=np.int8)
    with pytest.raises(ValueError, match=r"x must have shape \[C, H, W\] or \[N, C, H, W\], "
                                         r"not \[5, 5\]"):
        winograd_conv2d_int(np.zeros((5, 5)), U, tr.AT_int, tr.BT_int, 1)


def test_tiles_int_bias_broadcast():
    tr = tile_transform("4x4")
    patches = np.ones((3, 2, 4, 4), dtype=np.int64)
    U = np.ones((2, 2, 4, 4), dtype=np.int64)
    plain = winograd_tiles_int(patches, U, tr.AT_int, tr.BT_int)
    biased = winograd_tiles_int(patches, U, tr.AT_int, tr.BT_int, np.array([10, -3]))
    np.testing.assert_array_equal(biased - plain, np.broadcast_to(
        np.array([10, -3])[None, :, None, None], plain.shape))


# -- hypothesis: int model vs float model vs direct conv ----------------------------------------

@st.composite
def layers(draw):
    tile = draw(st.sampled_from(sorted(TILES)))
    padding = draw(st.integers(0, 2))
    c, k = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    low = max(1, 3 - 2 * padding)
    h, w = draw(st.integers(low, 13)), draw(st.integers(low, 13))
    batch = draw(st.one_of(st.none(), st.integers(1, 3)))
    seed = draw(st.integers(0, 2**32 - 1))
    return tile, padding, c, k, h, w, batch, seed


@settings(max_examples=40, deadline=None)
@given(layers())
def test_property_int_float_direct_agree(layer):
    tile, padding, c, k, h, w, batch, seed = layer
    tr = tile_transform(tile)
    rng = np.random.default_rng(seed)
    shape = (c, h, w) if batch is None else (batch, c, h, w)
    x = rng.integers(-128, 128, shape).astype(np.int8)
    AT, BT = tr.AT_int, tr.BT_int

    # Integer U: the exact model equals the float model (all values far below 2**53).
    U = _random_U(rng, k, c, tr.alpha, rng.random())
    bias = rng.integers(-2**31, 2**31, k).astype(np.int32)
    y_int = winograd_conv2d_int(x, U, AT, BT, padding, bias)
    y_float = winograd_conv2d_float(x, U, AT, BT, padding, bias)
    out_shape = (k, h + 2 * padding - 2, w + 2 * padding - 2)
    assert y_int.shape == (out_shape if batch is None else (batch,) + out_shape)
    np.testing.assert_array_equal(y_int, y_float.astype(np.int64))
    assert np.array_equal(y_float, y_int.astype(np.float64))

    # Spatial g: integer model with scaled G equals s**2 times the direct convolution.
    g = rng.integers(-127, 128, (k, c, 3, 3))
    Gs, s = _scaled_G(tr)
    y_scaled = winograd_conv2d_int(x, np.einsum("xi,kcij,yj->kcxy", Gs, g, Gs), AT, BT,
                                   padding)
    y_direct = direct_conv2d(x, g, padding)
    np.testing.assert_array_equal(y_scaled, s * s * y_direct)

    # Float model with U = G g G^T equals the direct convolution to 1e-9 relative.
    G = _float(tr.G)
    y_wf = winograd_conv2d_float(x, np.einsum("xi,kcij,yj->kcxy", G, g, G), AT, BT, padding)
    scale = max(1.0, float(np.abs(y_direct).max()))
    np.testing.assert_allclose(y_wf, y_direct, rtol=1e-9, atol=1e-9 * scale)
