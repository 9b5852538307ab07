"""Tap shifts (weight file v2 ``L/tap_shift``): the format's checks, the integer semantics of
golden.conv / golden.run / golden.network / golden.passes against an independent reading of
docs/weight-format.md, the layer program's ``tap_left`` field and the bit-growth analysis."""

import re
from pathlib import Path

import numpy as np
import pytest

from golden import run as golden_run
from golden.config import DEFAULT, SMALL, AcceleratorConfig
from golden.conv import winograd_conv2d_int, winograd_tiles_int
from golden.network import load_network, run_network
from golden.passes import plan_passes, reference_output, run_passes
from golden.program import compile_layer, expected_output
from golden.protocol import cfg_spec
from golden.synthetic import random_tap_shift, synthetic_layer, synthetic_network
from golden.transforms import tile_transform
from golden.weights import WeightFileError, load_weights, save_weights, validate_arrays
from golden.widths import datapath_widths

DOC = Path(__file__).resolve().parents[1] / "docs" / "weight-format.md"
TILES = ("4x4", "6x6")


def spec_layer_output(x, U, AT, BT, padding, bias, tap_shift):
    """docs/weight-format.md read literally: one tile at a time, Python integers, the shift as
    a multiplication by 2 ** (T - tap_shift)."""
    c, h, w = x.shape
    k = U.shape[0]
    m, a = AT.shape
    r = a - m + 1
    xp = np.zeros((c, h + 2 * padding, w + 2 * padding), dtype=object)
    xp[:, padding:padding + h, padding:padding + w] = x.astype(object)
    hout, wout = h + 2 * padding - r + 1, w + 2 * padding - r + 1
    T = int(np.max(tap_shift))
    factor = np.array([[2 ** (T - int(s)) for s in row] for row in tap_shift], dtype=object)
    at, bt = AT.astype(object), BT.astype(object)
    y = np.zeros((k, hout, wout), dtype=object)
    for ti in range(-(-hout // m)):
        for tj in range(-(-wout // m)):
            d = np.zeros((c, a, a), dtype=object)
            patch = xp[:, ti * m:ti * m + a, tj * m:tj * m + a]
            d[:, :patch.shape[1], :patch.shape[2]] = patch
            V = [bt.dot(d[ci]).dot(bt.T) for ci in range(c)]
            for kk in range(k):
                M = sum(U[kk, ci].astype(object) * V[ci] for ci in range(c))
                Y = at.dot(M * factor).dot(at.T) + int(bias[kk])
                for i in range(m):
                    for j in range(m):
                        if ti * m + i < hout and tj * m + j < wout:
                            y[kk, ti * m + i, tj * m + j] = Y[i, j]
    return y.astype(np.int64)


def _network(tile="4x4", span=5, seed=0):
    return synthetic_network(DEFAULT.replace(tile=tile), (3, 9, 7), (6, 5), (0,),
                             seed=seed, tap_shift_span=span)


# -- format --------------------------------------------------------------------------------

def _arrays_with(key, value):
    arrays = _network().arrays()
    arrays[key] = value
    return arrays


@pytest.mark.parametrize("value, message", [
    (np.zeros((4, 4), np.int16), r"dtype must be int8, not int16$"),
    (np.zeros((4, 4), np.uint8), r"dtype must be int8, not uint8$"),
    (np.zeros((3, 3), np.int8), r"shape must be \[4, 4\] \(alpha x alpha\), not \[3, 3\]$"),
    (np.zeros((16,), np.int8), r"shape must be \[4, 4\] \(alpha x alpha\), not \[16\]$"),
    (np.zeros((4, 4, 1), np.int8), r"not \[4, 4, 1\]$"),
    (np.full((4, 4), 16, np.int8), r"values must lie in \[0, 15\]; 16 at index \[0, 0\]$"),
    (np.array([[0] * 4] * 3 + [[0, 0, -1, 0]], np.int8),
     r"values must lie in \[0, 15\]; -1 at index \[3, 2\]$"),
    (np.zeros((4, 4), object), r"cannot be read without unpickling"),
], ids=["int16", "uint8", "3x3", "flat", "rank3", "16", "negative", "object"])
def test_bad_tap_shift_is_refused_in_one_line(tmp_path, value, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **_arrays_with("conv1/tap_shift", value))
    with pytest.raises(WeightFileError, match=message) as info:
        load_weights(path)
    err = info.value
    assert (err.layer, err.key) == ("conv1", "conv1/tap_shift")
    assert str(err).startswith(f"{path}, layer 'conv1', key 'conv1/tap_shift': ")
    assert "\n" not in str(err)


def test_tap_shift_needs_version_2():
    layer = synthetic_layer(DEFAULT, 2, 3, 0.5, name="c")
    arrays = {"format": np.array("sparse-winograd-weights"), "version": np.array(1),
              "layers": np.array(["c"]), **layer.arrays(),
              "c/tap_shift": np.zeros((4, 4), np.int8)}
    with pytest.raises(WeightFileError, match=r"layer 'c', key 'c/tap_shift': tap shifts need "
                                              r"version 2 \(a network\); this file is version 1$"):
        validate_arrays(arrays)


def test_golden_run_cli_refuses_a_bad_tap_shift(tmp_path, capsys):
    path = tmp_path / "bad.npz"
    np.savez(path, **_arrays_with("conv0/tap_shift", np.full((4, 4), 99, np.int8)))
    np.save(tmp_path / "x.npy", np.zeros((3, 9, 7), np.int8))
    status = golden_run.main(["--weights", str(path), "--layer", "conv0", "--input",
                              str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("golden.run: error: weights ") and "key 'conv0/tap_shift'" in err


@pytest.mark.parametrize("compressed", [False, True])
def test_round_trip(tmp_path, compressed):
    weights = _network(span=9)
    save_weights(tmp_path / "net.npz", weights, compressed=compressed)
    back = load_network(tmp_path / "net.npz")
    for a, b in zip(back.layers, weights.layers):
        assert a.tap_shift.dtype == np.int8
        np.testing.assert_array_equal(a.tap_shift, b.tap_shift)
        assert int(a.tap_left_shifts.max()) == 9 == int(np.ptp(a.tap_shift))


# -- integer semantics ---------------------------------------------------------------------

@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_layer_matches_an_independent_reading_of_the_spec(tile, seed):
    rng = np.random.default_rng(seed)
    cfg = DEFAULT.replace(tile=tile)
    layer = synthetic_layer(cfg, 3, 4, 0.5, seed=seed, padding=seed % 2)
    tap_shift = random_tap_shift(rng, cfg.alpha, int(rng.integers(1, 16)))
    x = rng.integers(-128, 128, (3, 7, 6)).astype(np.int8)
    want = spec_layer_output(x, layer.U, layer.AT, layer.BT, layer.padding, layer.bias_or_zeros,
                             tap_shift)
    got = winograd_conv2d_int(x, layer.U, layer.AT, layer.BT, layer.padding,
                              layer.bias_or_zeros, r=layer.r, tap_shift=tap_shift)
    np.testing.assert_array_equal(got, want)
    batched = winograd_conv2d_int(np.stack([x, x]), layer.U, layer.AT, layer.BT, layer.padding,
                                  layer.bias_or_zeros, r=layer.r, tap_shift=tap_shift)
    np.testing.assert_array_equal(batched[1], want)


@pytest.mark.parametrize("tile", TILES)
def test_equal_shifts_are_no_shifts(tile):
    cfg = DEFAULT.replace(tile=tile)
    layer = synthetic_layer(cfg, 2, 3, 0.3)
    x = np.random.default_rng(1).integers(-128, 128, (2, 8, 8)).astype(np.int8)
    plain = winograd_conv2d_int(x, layer.U, layer.AT, layer.BT, 1, layer.bias_or_zeros)
    for s in (0, 6, 15):
        same = winograd_conv2d_int(x, layer.U, layer.AT, layer.BT, 1, layer.bias_or_zeros,
                                   tap_shift=np.full((cfg.alpha, cfg.alpha), s, np.int8))
        np.testing.assert_array_equal(same, plain)


def test_shift_is_per_position_and_extreme_values_are_exact():
    """One nonzero weight at each position in turn, the largest input: y scales by exactly
    2 ** (T - tap_shift) of that position."""
    tr = tile_transform("6x6")
    tap_shift = random_tap_shift(np.random.default_rng(5), 6, 15)
    d = np.full((1, 1, 6, 6), -128, np.int64)
    for pos in range(36):
        U = np.zeros((1, 1, 6, 6), np.int64)
        U.flat[pos] = -127
        base = winograd_tiles_int(d, U, tr.AT_int, tr.BT_int)
        shifted = winograd_tiles_int(d, U, tr.AT_int, tr.BT_int, tap_shift=tap_shift)
        np.testing.assert_array_equal(shifted, base * 2 ** (15 - int(tap_shift.flat[pos])))


@pytest.mark.parametrize("tile", TILES)
def test_network_matches_the_reference_reading(tile):
    """tests/spec_network.py (the references of the network tests) reads tap shifts too."""
    from spec_network import spec_network
    weights = _network(tile, span=6, seed=3)
    x = np.random.default_rng(2).integers(-128, 128, (2, 3, 9, 7)).astype(np.int8)
    logits, trace = run_network(weights, x)
    for n in range(2):
        for got, want in zip(trace, spec_network(weights, x[n])):
            np.testing.assert_array_equal(got.output[n], want)


def test_golden_run_and_network_use_the_file_tap_shifts(tmp_path, capsys):
    weights = _network(span=7, seed=4)
    path = tmp_path / "net.npz"
    save_weights(path, weights)
    x = np.random.default_rng(0).integers(-128, 128, (3, 9, 7)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    conv0 = weights["conv0"]
    want = spec_layer_output(x, conv0.U, conv0.AT, conv0.BT, conv0.padding, conv0.bias_or_zeros,
                             conv0.tap_shift)
    assert golden_run.main(["--weights", str(path), "--layer", "conv0", "--input",
                            str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)
    _, trace = run_network(load_network(path), x)
    np.testing.assert_array_equal(trace[0].raw, want)
    # The shifts matter: the same network without them computes something else.
    conv0.tap_shift = None
    _, plain = run_network(weights, x)
    assert not np.array_equal(plain[0].raw, want)


@pytest.mark.parametrize("tile", TILES)
def test_passes_carry_the_tap_shifts(tile):
    cfg = SMALL.replace(tile=tile, max_in_channels=4, max_out_channels=3, max_tap_shift=6)
    layer = synthetic_layer(cfg, 9, 7, 0.4, seed=2)
    layer.tap_shift = random_tap_shift(np.random.default_rng(3), cfg.alpha, 6)
    plan = plan_passes(cfg, layer, requant=None)
    assert len(plan.in_groups) == 3 and len(plan) >= 9
    for p in plan.passes:
        np.testing.assert_array_equal(p.layer.tap_shift, layer.tap_shift)
    x = np.random.default_rng(4).integers(-128, 128, (9, 6, 5)).astype(np.int8)
    got, _ = run_passes(plan, x)
    want = spec_layer_output(x, layer.U, layer.AT, layer.BT, layer.padding, layer.bias_or_zeros,
                             layer.tap_shift)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(reference_output(plan, x)[0], want)
    requant = (np.full(7, 3, np.int64), np.full(7, 20, np.int64), True)
    _, q = run_passes(plan_passes(cfg, layer, requant=requant), x)
    np.testing.assert_array_equal(q, np.clip((want * 3 + (1 << 19)) >> 20, 0, 127))


# -- layer program -------------------------------------------------------------------------

@pytest.mark.parametrize("tile", TILES)
def test_program_carries_the_left_shifts(tile):
    cfg = SMALL.replace(tile=tile, max_tap_shift=11)
    layer = synthetic_layer(cfg, 3, 4, 0.5)
    layer.tap_shift = random_tap_shift(np.random.default_rng(7), cfg.alpha, 11)
    program = compile_layer(cfg, layer, 5, 5)
    cfg_word = cfg_spec(cfg).unpack(program.cfg_words[0])
    left = int(layer.tap_shift.max()) - layer.tap_shift.astype(np.int64)
    assert np.asarray(cfg_word["tap_left"]).tolist() == left.ravel().tolist()
    assert cfg_spec(cfg).size == cfg_spec(SMALL).size + cfg.positions * 4
    x = np.random.default_rng(8).integers(-128, 128, (3, 5, 5))
    np.testing.assert_array_equal(
        expected_output(program, x),
        spec_layer_output(x, layer.U, cfg.AT, cfg.BT, 1, layer.bias_or_zeros, layer.tap_shift))


def test_program_refuses_a_span_beyond_the_design():
    layer = synthetic_layer(SMALL, 3, 4, 0.5, name="conv2")
    layer.tap_shift = np.full((4, 4), 9, np.int8)
    layer.tap_shift[2, 1] = 3
    compile_layer(SMALL.replace(max_tap_shift=6), layer, 4, 4)          # span 6 fits
    for design in (SMALL, SMALL.replace(max_tap_shift=5)):
        with pytest.raises(ValueError, match=rf"^layer 'conv2': tap shifts span 6 \(tap_shift 3 "
                                             rf"\.\. 9\); the accelerator's max_tap_shift is "
                                             rf"{design.max_tap_shift} \(hw.generate "
                                             r"--max-tap-shift\)$"):
            compile_layer(design, layer, 4, 4)
    layer.tap_shift[2, 1] = 9                                           # all equal: no span
    assert cfg_spec(SMALL).unpack(compile_layer(SMALL, layer, 4, 4).cfg_words[0]).keys() == {
        "in_channels", "out_channels", "n_tiles", "n_entries"}


# -- widths --------------------------------------------------------------------------------

@pytest.mark.parametrize("tile", TILES)
def test_zero_max_tap_shift_changes_no_width(tile):
    cfg = DEFAULT.replace(tile=tile)
    w = cfg.widths
    assert w.max_tap_shift == 0 and w.shifted == w.accumulator
    assert w.shifted_range == w.accumulator_range
    assert w == datapath_widths(cfg.AT, cfg.BT, max_in_channels=64)


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("shift", [1, 4, 15])
def test_widths_bound_the_shift_stage_and_are_attained(tile, shift):
    tr = tile_transform(tile)
    AT, a = tr.AT_int, tr.alpha
    w = datapath_widths(tr.AT_int, tr.BT_int, max_in_channels=8, max_tap_shift=shift)
    base = datapath_widths(tr.AT_int, tr.BT_int, max_in_channels=8)
    lo, hi = w.accumulator_range
    assert w.shifted_range == (lo << shift, hi << shift) and w.shifted == base.accumulator + shift
    # Each position's own accumulator range: 8 channels of +-127 times V's range there.
    BT = tr.BT_int
    coeffs = [[np.outer(BT[i], BT[j]) for j in range(a)] for i in range(a)]
    pos = np.array([[c[c > 0].sum() for c in row] for row in coeffs])
    neg = np.array([[-c[c < 0].sum() for c in row] for row in coeffs])
    v_peak = np.maximum(128 * pos + 127 * neg, 127 * pos + 128 * neg)   # d in [-128, 127]
    acc_hi = 8 * 127 * v_peak
    acc_lo = -acc_hi
    assert (acc_lo.min(), acc_hi.max()) == (lo, hi)
    # Attained: for every output, extreme M of the right sign, the position whose term matters
    # least left unshifted and every other position shifted by the most.
    best_hi = best_lo = 0
    for i in range(AT.shape[0]):
        for j in range(AT.shape[0]):
            c = np.outer(AT[i], AT[j])
            for M in (np.where(c > 0, acc_hi, acc_lo), np.where(c > 0, acc_lo, acc_hi)):
                left = np.full((a, a), shift)
                left.flat[np.argmin(np.abs(c * M))] = 0
                value = int((c * M * (1 << left)).sum())
                best_hi, best_lo = max(best_hi, value), min(best_lo, value)
    assert (best_lo, best_hi) == w.transformed_range
    # Bounded: random accumulators and shift patterns (one position unshifted) stay inside.
    rng = np.random.default_rng(shift)
    for _ in range(200):
        M = rng.integers(acc_lo, acc_hi + 1)
        left = rng.integers(0, shift + 1, (a, a))
        left.flat[rng.integers(a * a)] = 0
        Y = AT @ (M * (1 << left)) @ AT.T
        assert w.transformed_range[0] <= Y.min() and Y.max() <= w.transformed_range[1]
    t_lo, t_hi = w.transformed_range
    assert w.output_range == (t_lo - 2 ** 31, t_hi + 2 ** 31 - 1)


def test_max_tap_shift_is_validated():
    for bad in (-1, 16, 2.0, True, "3"):
        with pytest.raises(ValueError, match=rf"^max_tap_shift must be an integer in \[0, 15\], "
                                             rf"not {re.escape(repr(bad))}$"):
            AcceleratorConfig(max_tap_shift=bad)
    with pytest.raises(ValueError, match=r"max_tap_shift must be an integer >= 0, not -2"):
        datapath_widths(DEFAULT.AT, DEFAULT.BT, max_tap_shift=-2)


# -- docs ----------------------------------------------------------------------------------

def test_worked_example_numbers():
    text = " ".join(DOC.read_text().split())
    tr = tile_transform("4x4")
    scale = np.float32(0.9 / 127)
    assert f"scale[0] = 0.9 / 127 = {scale:.9f}" in text
    assert round(0.004 / float(scale)) == 1 and round(0.004 * 2 ** 7 / float(scale)) == 72
    assert f"72 · scale · 2⁻⁷ = {72 * float(scale) / 128:.6f}" in text
    d = np.array([[3, 0, -2, 1], [1, 4, 0, 2], [-1, 2, 5, 0], [2, 0, 1, 3]])
    V = tr.BT_int @ d @ tr.BT_int.T
    assert V.tolist() == [[11, 9, 5, -3], [5, 11, -1, -4], [7, 3, 7, 0], [0, -3, 5, 5]]
    U = np.zeros((1, 1, 4, 4), np.int64)
    U[0, 0, 0, 0], U[0, 0, 1, 1] = 72, 127
    tap_shift = np.zeros((4, 4), np.int8)
    tap_shift[0, 0] = 7
    Y = winograd_tiles_int(d[None, None], U, tr.AT_int, tr.BT_int, tap_shift=tap_shift)[0, 0]
    assert Y.tolist() == [[179608, 178816], [178816, 178816]]
    assert "[[179608, 178816], [178816, 178816]]" in text and "1397 · 2⁷ = 178816" in text
    real = Y * float(scale) * 2.0 ** -7
    assert f"[[{real[0, 0]:.5f}, 9.9], [9.9, 9.9]]" in text
    u_float = np.zeros((1, 1, 4, 4))
    u_float[0, 0, 0, 0], u_float[0, 0, 1, 1] = 0.004, 0.9
    Yf = tr.AT_int @ (u_float[0, 0] * V) @ tr.AT_int.T
    np.testing.assert_allclose(Yf, [[9.944, 9.9], [9.9, 9.9]])
    U[0, 0, 0, 0] = 1
    plain = winograd_tiles_int(d[None, None], U, tr.AT_int, tr.BT_int)[0, 0] * float(scale)
    assert f"without tap shifts `[[{plain[0, 0]:.5f}, 9.9]," in text
