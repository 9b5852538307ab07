"""golden.banded: the layer computed in bands of tile rows equals winograd_conv2d_int bit for
bit (both tiles, batches, padding, ragged edges, one-tile bands), in bounded memory."""

import tracemalloc

import numpy as np
import pytest

from golden.banded import BAND_BUDGET, layer_output, save_layer_output
from golden.conv import winograd_conv2d_int
from golden.quant import requantize
from golden.run import run_layer
from golden.transforms import TILES, tile_transform
from golden.weights import LayerWeights

CASES = [((3, 7, 9), 4, 1), ((2, 2, 13, 5), 3, 0), ((1, 3, 3), 2, 1), ((2, 30, 17), 2, 1),
         ((1, 2, 2), 1, 1), ((4, 1, 11), 2, 1)]


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("shape, k, padding", CASES)
@pytest.mark.parametrize("budget", [1, 20_000, 2**30], ids=["one-row", "some-rows", "whole"])
def test_equals_the_whole_image_model(tile, shape, k, padding, budget, tmp_path):
    tr = tile_transform(tile)
    rng = np.random.default_rng(abs(hash((tile, shape, k))) % 2**32)
    x = rng.integers(-128, 128, shape).astype(np.int8)
    x.flat[:3] = -128                                   # extremes
    U = rng.integers(-127, 128, (k, shape[-3], tr.alpha, tr.alpha)).astype(np.int8)
    U.flat[:2] = 127
    bias = rng.integers(-2**20, 2**20, k)
    if shape[-2] + 2 * padding < tr.r or shape[-1] + 2 * padding < tr.r:
        pytest.skip("input smaller than the kernel")
    ref = winograd_conv2d_int(x, U, tr.AT_int, tr.BT_int, padding, bias)
    got = layer_output(x, U, tr.AT_int, tr.BT_int, padding, bias, budget=budget)
    assert got.dtype == np.int64 and got.shape == ref.shape and np.array_equal(got, ref)
    path = tmp_path / "y.npy"
    shape_q, dtype_q = save_layer_output(path, x, U, tr.AT_int, tr.BT_int, padding, bias,
                                         requant=(1234, 13, True), budget=budget)
    q = np.load(path, allow_pickle=False)
    assert (q.shape, q.dtype) == (shape_q, dtype_q)
    assert np.array_equal(q, requantize(ref, 1234, 13, relu=True))


def test_memory_is_bounded_by_the_band_not_the_image():
    """A 4 -> 4 layer on 4 x 512 x 512: the whole-image model needs about 130 MB; the banded
    one its output (8 MB) plus one band of at most BAND_BUDGET."""
    tr = tile_transform("4x4")
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (4, 512, 512)).astype(np.int8)
    U = rng.integers(-127, 128, (4, 4, 4, 4)).astype(np.int8)
    layer = LayerWeights(name="c", m=2, r=3, AT=tr.AT_int, BT=tr.BT_int, G=tr.G_float, U=U,
                         scale=np.ones(4, np.float32), padding=1)
    tracemalloc.start()
    y = run_layer(layer, x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert y.shape == (4, 512, 512)
    bound = y.nbytes + 1.25 * BAND_BUDGET
    assert peak < bound, peak
    tracemalloc.start()
    winograd_conv2d_int(x, U, tr.AT_int, tr.BT_int, 1)
    whole = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert whole > bound            # the whole-image model would not pass


def test_network_cli_runs_images_in_chunks(monkeypatch):
    """golden.network's logits for N images are those of one batch, computed a chunk at a time
    (working memory grows with the chunk, not with N)."""
    from golden import network
    from golden.config import DEFAULT
    from golden.synthetic import synthetic_network
    weights = synthetic_network(DEFAULT, (3, 9, 7), (6, 5), (0,), classes=4, seed=3)
    x = np.random.default_rng(2).integers(-128, 128, (5, 3, 9, 7)).astype(np.int8)
    whole, _ = network.run_network(weights, x, trace=False)
    calls = []
    real = network.run_network
    monkeypatch.setattr(network, "run_network",
                        lambda w, xs, trace: calls.append(len(xs)) or real(w, xs, trace))
    monkeypatch.setattr(network, "CHUNK_BUDGET", 64 * 6 * 9 * 7 * 2)     # conv0: [6, 9, 7]
    assert np.array_equal(network.logits_in_chunks(weights, x), whole)
    assert calls == [2, 2, 1]


@pytest.mark.parametrize("budget", [1, 2**30])
def test_tap_shifts_equal_the_whole_image_model(budget):
    tr = tile_transform("6x6")
    rng = np.random.default_rng(11)
    x = rng.integers(-128, 128, (2, 3, 13, 10)).astype(np.int8)
    U = rng.integers(-127, 128, (4, 3, 6, 6)).astype(np.int8)
    tap_shift = rng.integers(0, 5, (6, 6))
    bias = rng.integers(-1000, 1000, 4)
    ref = winograd_conv2d_int(x, U, tr.AT_int, tr.BT_int, 1, bias, tap_shift=tap_shift)
    got = layer_output(x, U, tr.AT_int, tr.BT_int, 1, bias, budget=budget, tap_shift=tap_shift)
    assert np.array_equal(got, ref)
    assert not np.array_equal(got, winograd_conv2d_int(x, U, tr.AT_int, tr.BT_int, 1, bias))
