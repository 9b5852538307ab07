"""golden.network against an independent NumPy reading of docs/weight-format.md (no golden.conv,
no golden.quant): random two-conv networks with pooling and a linear head, odd sizes included."""

import dataclasses

import numpy as np
import pytest

from golden.config import DEFAULT
from golden.netfile import NetworkOp
from golden.network import (accuracy, classify, evaluate, maxpool2, quantize_input,
                            run_network, run_op)
from golden.synthetic import synthetic_network
from golden.weights import load_weights, save_weights
from spec_network import spec_conv, spec_network


# -- the tests ----------------------------------------------------------------------------------

NETWORKS = [  # (tile, input_shape, widths, pool_after, paddings, relu, seed)
    ("4x4", (3, 9, 7), (6, 5), (0,), (1, 1), True, 1),
    ("6x6", (2, 11, 9), (4, 3), (0,), (1, 2), (True, False), 2),
    ("4x4", (1, 8, 8), (5, 4), (1,), (0, 1), (False, True), 3),
    ("6x6", (3, 7, 10), (3, 6), (0, 1), (2, 0), True, 4),
]


def _network(tile, shape, widths, pool_after, paddings, relu, seed):
    config = dataclasses.replace(DEFAULT, tile=tile)
    return synthetic_network(config, shape, widths, pool_after, classes=5, paddings=paddings,
                             relu=relu, seed=seed)


@pytest.mark.parametrize("case", NETWORKS, ids=[f"{c[0]}-{c[1]}" for c in NETWORKS])
def test_network_matches_the_specification(tmp_path, case):
    weights = _network(*case)
    save_weights(tmp_path / "net.npz", weights)          # through the file, as a user runs it
    weights = load_weights(tmp_path / "net.npz")
    rng = np.random.default_rng(case[-1])
    images = rng.integers(-128, 128, (3, *case[1])).astype(np.int8)
    images[0, :, 0, :] = -128                            # extremes of the int8 range
    images[1] = 127
    logits, trace = run_network(weights, images)
    assert logits.dtype == np.int64 and logits.shape == (3, 5)
    assert [str(t.op) for t in trace] == [str(op) for op in weights.network.ops]
    assert [t.output.shape[1:] for t in trace] == weights.network.shapes
    for n, image in enumerate(images):
        for t, expected in zip(trace, spec_network(weights, image)):
            np.testing.assert_array_equal(t.output[n], expected, err_msg=f"{t.op}")
        # One image alone gives the same as inside the batch.
        alone, alone_trace = run_network(weights, image)
        np.testing.assert_array_equal(alone, logits[n])
        assert [a.output.shape for a in alone_trace] == weights.network.shapes
    # The trace's ops are dtype-exact: int8 up to flatten, int64 logits at the end.
    assert [t.output.dtype for t in trace] == [np.int8] * (len(trace) - 1) + [np.int64]
    assert all((t.raw is not None) == (t.op.kind == "conv") for t in trace)
    # Activations are neither all zero nor all saturated (the test can fail).
    assert 0 < np.count_nonzero(trace[0].output) < trace[0].output.size
    empty_logits, empty = run_network(weights, images, trace=False)
    assert empty == [] and np.array_equal(empty_logits, logits)


def test_conv_raw_output_of_every_conv_matches_the_specification():
    weights = _network(*NETWORKS[1])
    image = np.random.default_rng(9).integers(-128, 128, (1, 2, 11, 9)).astype(np.int8)
    _, trace = run_network(weights, image)
    x = image[0]
    for t in trace:
        if t.op.kind == "conv":
            np.testing.assert_array_equal(t.raw[0], spec_conv(x.astype(np.int64),
                                                             weights[t.op.name]))
        x = t.output[0]


def test_run_op_chains_to_run_network():
    weights = _network(*NETWORKS[0])
    x = np.random.default_rng(0).integers(-128, 128, (2, 3, 9, 7)).astype(np.int8)
    logits, trace = run_network(weights, x)
    y = x
    for i in range(len(weights.network.ops)):
        y = run_op(weights, i, y).output
        np.testing.assert_array_equal(y, trace[i].output)
    np.testing.assert_array_equal(y, logits)


def test_maxpool_drops_the_odd_edge():
    x = np.arange(2 * 5 * 3, dtype=np.int8).reshape(2, 5, 3) * np.int8(-1)
    out = maxpool2(x)
    assert out.shape == (2, 2, 1)
    np.testing.assert_array_equal(out[:, :, 0], [[0, -6], [-15, -21]])


def test_classify_ties_go_to_the_lowest_index():
    logits = np.array([[3, 7, 7, -1], [5, 5, 5, 5], [-9, -2, -9, -2]], dtype=np.int64)
    np.testing.assert_array_equal(classify(logits), [1, 0, 1])
    assert accuracy(logits, np.array([1, 0, 3])) == pytest.approx(2 / 3)


def test_input_quantisation_rounds_half_to_even_and_clips():
    weights = _network(*NETWORKS[2])
    s = np.float64(np.float32(weights.network.input_scale))
    steps = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49, 126.5, 127.6, -128.4, -200.0, 1e9])
    x = np.zeros((1, 1, 8, 8))
    x.flat[:steps.size] = steps * s
    q = quantize_input(weights, x).flat[:steps.size]
    np.testing.assert_array_equal(q, [0, 2, 2, 0, -2, 0, 126, 127, -128, -128, 127])
    assert quantize_input(weights, x).dtype == np.int8
    with pytest.raises(ValueError, match="NaN or Inf"):
        quantize_input(weights, np.full((1, 8, 8), np.nan))


def test_evaluate_is_quantise_then_run():
    weights = _network(*NETWORKS[2])
    rng = np.random.default_rng(5)
    images = rng.uniform(-2, 2, (6, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 5, 6)
    logits, acc = evaluate(weights, images, labels)
    expected, _ = run_network(weights, quantize_input(weights, images), trace=False)
    np.testing.assert_array_equal(logits, expected)
    assert acc == float(np.mean(np.argmax(expected, axis=1) == labels))
    assert evaluate(weights, images)[1] is None


@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, 9, 7), np.int16), r"input must be int8, not int16"),
    (np.zeros((3, 9, 8), np.int8), r"input shape must be \[3, 9, 7\] or \[N, 3, 9, 7\], not "
                                   r"\[3, 9, 8\]"),
    (np.zeros((1, 1, 3, 9, 7), np.int8), r"not \[1, 1, 3, 9, 7\]"),
])
def test_run_network_refuses_wrong_input(bad, message):
    with pytest.raises(ValueError, match=message):
        run_network(_network(*NETWORKS[0]), bad)


def test_network_op_text():
    assert [str(NetworkOp("conv", "c1")), str(NetworkOp("maxpool2"))] == ["conv:c1", "maxpool2"]
