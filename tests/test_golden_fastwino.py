"""The fast exact integer layer (golden.fastwino, golden.intmatmul) against the all-int64
reference winograd_tiles_int64: random and edge inputs, both tiles, tap shifts, padding, odd
sizes, chunking; the exactness bound's soundness, and its choice of int64 where float64 would
round."""

import zlib

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from golden.conv import (assemble_tiles, extract_patches, tap_left_shifts, tile_grid,
                         winograd_conv2d_int, winograd_tiles_int, winograd_tiles_int64)
from golden.fastwino import ExactWinograd
from golden.intmatmul import (FLOAT64_EXACT, abs_sums, exact_matmul, float64_is_exact,
                              row_bounds, single_blas_thread)
from golden.network import maxpool2
from golden.transforms import tile_transform


def _rng(*parts):
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


def _reference(x, U, AT, BT, padding, bias, tap_shift):
    """Image by image: extract_patches, the int64 reference on the tiles, assemble_tiles."""
    m = AT.shape[0]
    out = []
    for image in x:
        grid = tile_grid(image.shape[1], image.shape[2], m, 3, padding)
        tiles = winograd_tiles_int64(extract_patches(image.astype(np.int64), m, 3, padding),
                                     U, AT, BT, bias, tap_shift)
        out.append(assemble_tiles(tiles, grid))
    return np.stack(out)


def _case(rng, kind, n, c, k, h, w, a):
    if kind == "random":
        x = rng.integers(-128, 128, (n, c, h, w))
        U = rng.integers(-127, 128, (k, c, a, a))
        U[rng.random(U.shape) < 0.5] = 0
    elif kind == "extreme":        # only the int8 extremes, signs at random
        x = rng.choice([-128, 127], (n, c, h, w))
        U = rng.choice([-127, 127], (k, c, a, a))
    else:                          # "saturated": every input -128, every weight 127 or -127
        x = np.full((n, c, h, w), -128)
        U = np.full((k, c, a, a), 127)
        U[1::2] = -127
    return x.astype(np.int8), U.astype(np.int8)


@pytest.mark.parametrize("tile", ["4x4", "6x6"])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("kind", ["random", "extreme", "saturated"])
@pytest.mark.parametrize("shifted", [False, True])
def test_layer_equals_the_int64_reference(tile, padding, kind, shifted):
    tr = tile_transform(tile)
    a = tr.alpha
    rng = _rng(tile, padding, kind, shifted)
    x, U = _case(rng, kind, 3, 5, 4, 11, 7, a)        # odd sizes: ragged tiles at both edges
    bias = rng.integers(-2**31, 2**31, 4)
    tap_shift = rng.integers(0, 9, (a, a)) if shifted else None
    want = _reference(x, U, tr.AT_int, tr.BT_int, padding, bias, tap_shift)
    got = winograd_conv2d_int(x, U, tr.AT_int, tr.BT_int, padding, bias, tap_shift=tap_shift)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        winograd_conv2d_int(x[1], U, tr.AT_int, tr.BT_int, padding, bias, tap_shift=tap_shift),
        want[1])


@pytest.mark.parametrize("tile", ["4x4", "6x6"])
def test_max_channels_and_largest_tap_shift_span(tile):
    """128 input channels of int8 extremes and a tap shift span of 16: the largest layers the
    trainer writes, still all in float64 and still exact."""
    tr = tile_transform(tile)
    a = tr.alpha
    rng = _rng("max", tile)
    x, U = _case(rng, "extreme", 2, 128, 3, 5, 6, a)
    tap_shift = rng.integers(0, 17, (a, a))
    tap_shift.flat[0], tap_shift.flat[-1] = 0, 16
    plan = ExactWinograd(U, tr.AT_int, tr.BT_int, tap_left_shifts(tap_shift, a))
    assert all(float64_is_exact(b) for b in plan.bounds(128))
    want = _reference(x, U, tr.AT_int, tr.BT_int, 1, None, tap_shift)
    np.testing.assert_array_equal(
        winograd_conv2d_int(x, U, tr.AT_int, tr.BT_int, 1, None, tap_shift=tap_shift), want)


@pytest.mark.parametrize("budget", [1, 3000, 2**30])
def test_chunks_of_images_change_nothing(budget):
    tr = tile_transform("4x4")
    rng = _rng("chunks", budget)
    x, U = _case(rng, "random", 7, 3, 5, 6, 9, tr.alpha)
    want = _reference(x, U, tr.AT_int, tr.BT_int, 1, np.arange(5), None)
    np.testing.assert_array_equal(
        winograd_conv2d_int(x, U, tr.AT_int, tr.BT_int, 1, np.arange(5), budget=budget), want)


@pytest.mark.parametrize("tile", ["4x4", "6x6"])
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (13, 5)])
def test_tiles_equal_the_int64_reference(tile, shape):
    tr = tile_transform(tile)
    a = tr.alpha
    rng = _rng("tiles", tile, shape)
    x, U = _case(rng, "random", 1, 6, 3, *shape, a)
    patches = extract_patches(x[0], tr.m, 3, 1)
    tap_shift = rng.integers(0, 5, (a, a))
    for bias in (None, rng.integers(-1000, 1000, 3)):
        got = winograd_tiles_int(patches, U, tr.AT_int, tr.BT_int, bias, tap_shift)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(
            got, winograd_tiles_int64(patches, U, tr.AT_int, tr.BT_int, bias, tap_shift))


@pytest.mark.parametrize("tile", ["4x4", "6x6"])
def test_bounds_hold_every_intermediate(tile):
    """The propagated bounds are at least the largest |V|, |M| and |Y| the reference reaches,
    on the inputs that reach the worst case of each position (signs of the transforms)."""
    tr = tile_transform(tile)
    a, m = tr.alpha, tr.m
    BT, AT = tr.BT_int, tr.AT_int
    rng = _rng("bounds", tile)
    # Patches whose signs follow kron(BT, BT)'s rows reach max |V| at that position.
    signs = np.sign(np.kron(BT, BT)).reshape(a * a, 1, a, a)
    d = np.where(signs >= 0, 127, -128) * np.where(rng.random((a * a, 4, 1, 1)) < 0.5, 1, -1)
    U = rng.choice([-127, 127], (3, 4, a, a))
    tap_shift = rng.integers(0, 4, (a, a))
    plan = ExactWinograd(U, AT, BT, tap_left_shifts(tap_shift, a))
    v_bound, m_bound, y_bound = plan.bounds(128)
    V = BT @ d @ BT.T
    M = np.einsum("kcxy,tcxy->tkxy", U, V)
    Y = winograd_tiles_int64(d, U, AT, BT, None, tap_shift)
    assert np.abs(V).max() <= v_bound and np.abs(M).max() <= m_bound
    assert np.abs(Y).max() <= y_bound
    # The input transform's bound is tight: patches of +-127 reach it.
    assert max(row_bounds(np.kron(BT, BT), 128)) == v_bound
    assert np.abs(BT @ (127 * signs) @ BT.T).max() == plan.bounds(127)[0]
    assert Y.shape == (a * a, 3, m, m)


def test_int64_is_chosen_where_float64_would_round():
    """Inputs of 2**40 make the channel sum's bound pass 2**53: the product runs in int64 and
    equals the reference, where the same product in float64 is wrong."""
    tr = tile_transform("6x6")
    a = tr.alpha
    rng = _rng("int64")
    x = (rng.integers(2**39, 2**40, (1, 16, 6, 6)) | 1) * rng.choice([-1, 1], (1, 16, 6, 6))
    U = rng.choice([-127, 127], (2, 16, a, a))
    plan = ExactWinograd(U, tr.AT_int, tr.BT_int, tap_left_shifts(None, a))
    v_bound, m_bound, y_bound = plan.bounds(int(np.abs(x).max()))
    assert float64_is_exact(v_bound) and not float64_is_exact(m_bound)
    want = _reference(x, U, tr.AT_int, tr.BT_int, 1, None, None)
    np.testing.assert_array_equal(winograd_conv2d_int(x, U, tr.AT_int, tr.BT_int, 1), want)
    # The same product all in float64 rounds: the bound's choice matters.
    d = extract_patches(x[0].astype(np.float64), tr.m, 3, 1)
    V = tr.BT_int @ d @ tr.BT_int.T
    M = np.einsum("kcxy,tcxy->tkxy", U.astype(np.float64), V)
    Y = assemble_tiles(tr.AT_int @ M @ tr.AT_int.T, tile_grid(6, 6, tr.m, 3, 1))
    assert not np.array_equal(Y.astype(np.int64), want[0])


def test_float64_bound_is_strict_at_two_to_the_53():
    assert float64_is_exact(FLOAT64_EXACT - 1) and not float64_is_exact(FLOAT64_EXACT)
    a = np.array([[1, 1]])
    b = np.array([[2**52], [2**52 - 1]])
    assert exact_matmul(a, b, FLOAT64_EXACT - 1).dtype == np.float64
    assert int(exact_matmul(a, b, FLOAT64_EXACT - 1)[0, 0]) == 2**53 - 1
    b = np.array([[2**52], [2**52 + 1]])             # 2**53 + 1 is not a float64
    got = exact_matmul(a, b, int(row_bounds(a, 2**52 + 1)[0]))
    assert got.dtype == np.int64 and int(got[0, 0]) == 2**53 + 1
    assert int(np.matmul(a.astype(np.float64), b.astype(np.float64))[0, 0]) != 2**53 + 1


def test_int64_fallback_wraps_like_the_reference():
    """Beyond int64 the fallback wraps modulo 2**64 exactly as the reference does."""
    tr = tile_transform("4x4")
    rng = _rng("wrap")
    x = rng.integers(-2**62, 2**62, (1, 3, 4, 4))
    U = rng.integers(-2**20, 2**20, (2, 3, 4, 4))
    with np.errstate(over="ignore"):
        want = _reference(x, U, tr.AT_int, tr.BT_int, 0, None, None)
        np.testing.assert_array_equal(winograd_conv2d_int(x, U, tr.AT_int, tr.BT_int, 0), want)


def test_abs_sums_and_row_bounds_are_exact_for_huge_values():
    a = np.array([[2**62, -2**62, 3], [1, -1, 0]], dtype=np.int64)
    assert [int(v) for v in abs_sums(a)] == [2**63 + 3, 2]
    assert row_bounds(a, [1, 2, 2**70]) == [2**62 * 3 + 3 * 2**70, 3]
    assert row_bounds(a, 5) == [5 * (2**63 + 3), 10]


def test_single_blas_thread_limits_blas_and_restores_it():
    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    with single_blas_thread():
        assert all(lib["num_threads"] == 1 for lib in threadpool_info()
                   if lib["user_api"] == "blas")
    assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] \
        == before


@pytest.mark.parametrize("shape", [(2, 3, 4, 6), (1, 5, 7), (3, 1, 1, 2)])
def test_maxpool_equals_the_window_maximum(shape):
    x = _rng("pool", shape).integers(-128, 128, shape).astype(np.int8)
    h, w = shape[-2] // 2, shape[-1] // 2
    want = x[..., :2 * h, :2 * w].reshape(*shape[:-2], h, 2, w, 2).max(axis=(-3, -1))
    got = maxpool2(x)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)
