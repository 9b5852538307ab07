"""golden.program: the layer program streams decode back to the layer; refusals name the limit."""

import numpy as np
import pytest

from golden.config import AcceleratorConfig
from golden.conv import extract_patches
from golden.layout import unpack_array
from golden.cycles import layer_cycles
from golden.program import (compile_layer, expected_output, expected_output_q, patch_words,
                            unpack_results, unpack_results_q, weight_beats)
from golden.protocol import cfg_spec, patch_spec, result_spec, table_spec, weight_spec
from golden.quant import requantize
from golden.schedule import result_slots
from golden.synthetic import layer_from_u, synthetic_layer

CFG = AcceleratorConfig(tile="4x4", array=(2, 2), max_in_channels=6, max_out_channels=7)
CFG6 = AcceleratorConfig(tile="6x6", array=(3, 1), max_in_channels=5, max_out_channels=5,
                         requant=True)


def _decode_program(program):
    """Rebuild U [K, C, a, a] and bias from the table and weight words alone."""
    config = program.config
    cfg = cfg_spec(config).unpack(program.cfg_words[0])
    k, c, a = cfg["out_channels"], cfg["in_channels"], config.alpha
    table = [table_spec(config).unpack(w) for w in program.table_words]
    per_pe = {}
    lanes = config.weight_lanes
    for w in program.weight_words:
        beat = weight_spec(config).unpack(w)
        if lanes == 1:
            per_pe.setdefault(beat["pe"], []).append(beat["entry"])
            continue
        for j in range(lanes):
            lane = beat[f"lane{j}"]
            if lane["valid"]:
                per_pe.setdefault(beat["group"] * lanes + j, []).append(lane["entry"])
            else:
                assert not any(lane["entry"].values()), "an idle lane is all zeros"
    # Split every PE's entry list into channel runs at `last`; run i is slot i.
    runs = {}
    for pe, entries in per_pe.items():
        slot, current = 0, []
        for e in entries:
            current.append(e)
            if e["last"]:
                runs[(pe, slot)] = current
                slot, current = slot + 1, []
        assert current == [], "a PE's entries must end a channel"
    u = np.zeros((k, c, a * a), dtype=np.int64)
    for ch, row in enumerate(table):
        if row["empty"]:
            continue
        for e in runs.pop((row["owner"], row["slot"])):
            u[ch, e["channel"], e["position"]] = e["value"]
    assert runs == {}, "every run belongs to a table row"
    return cfg, u.reshape(k, c, a, a), np.array([row["bias"] for row in table]), table


@pytest.mark.parametrize("density", [0.0, 0.35, 1.0])
def test_program_streams_decode_to_the_layer(density):
    layer = synthetic_layer(CFG, 5, 7, 1 - density, skewed=False, seed=int(density * 10))
    program = compile_layer(CFG, layer, 7, 5)
    cfg, u, bias, table = _decode_program(program)
    assert cfg == {"in_channels": 5, "out_channels": 7, "n_tiles": program.n_tiles,
                   "n_entries": program.sparse.nnz}
    assert program.n_tiles == 4 * 3 and (program.in_channels, program.out_channels) == (5, 7)
    np.testing.assert_array_equal(u, layer.U)
    np.testing.assert_array_equal(bias, layer.bias)
    assert len(program.weight_words) == np.count_nonzero(layer.U)
    assert all(row["slot"] < result_slots(CFG) for row in table)
    # Beats are grouped by PE in ascending order.
    pes = [weight_spec(CFG).unpack(w)["pe"] for w in program.weight_words]
    assert pes == sorted(pes)


@pytest.mark.parametrize("lanes", [2, 4])
@pytest.mark.parametrize("density", [0.0, 0.35, 1.0])
def test_wide_weight_beats_decode_to_the_layer(lanes, density):
    """With weight lanes the stream still decodes to the layer, in weight_beats beats: the sum
    over PE groups of the group's largest entry count (one group: the makespan)."""
    config = CFG.replace(weight_lanes=lanes)
    layer = synthetic_layer(config, 5, 7, 1 - density, skewed=True, seed=int(density * 10) + 3)
    program = compile_layer(config, layer, 7, 5)
    cfg, u, bias, _ = _decode_program(program)
    np.testing.assert_array_equal(u, layer.U)
    np.testing.assert_array_equal(bias, layer.bias)
    per_pe = program.schedule.pe_entries.reshape(-1, lanes)
    beats = int(per_pe.max(axis=1).sum())
    assert cfg["n_entries"] == len(program.weight_words) == beats
    assert weight_beats(config, program.schedule.pe_entries) == beats
    if lanes == config.n_pe:
        assert beats == program.schedule.makespan
    groups = [weight_spec(config).unpack(w)["group"] for w in program.weight_words]
    assert groups == sorted(groups)
    # The schedule and so the computation are those of the one-lane design.
    narrow = compile_layer(CFG, layer, 7, 5)
    np.testing.assert_array_equal(program.schedule.owner, narrow.schedule.owner)
    assert layer_cycles(program).cycles == layer_cycles(narrow).cycles
    assert layer_cycles(program).load_cycles == 1 + 7 + beats


def test_weight_beats():
    config = AcceleratorConfig(array=(2, 3), weight_lanes=3)
    assert weight_beats(config, [4, 0, 9, 1, 1, 2]) == 9 + 2
    assert weight_beats(config.replace(weight_lanes=1), [4, 0, 9, 1, 1, 2]) == 17
    assert weight_beats(config.replace(weight_lanes=6), [4, 0, 9, 1, 1, 2]) == 9
    assert weight_beats(config, [0] * 6) == 0


def test_program_requant_fields_in_table():
    rng = np.random.default_rng(1)
    layer = layer_from_u(CFG6, rng.integers(-127, 128, (4, 2, 6, 6)), bias=[1, -2, 3, -4])
    mult, shift = [100, 200, 300, 32767], [0, 5, 20, 47]
    program = compile_layer(CFG6, layer, 6, 6, requant=(mult, shift, True))
    _, _, _, table = _decode_program(program)
    assert [r["mult"] for r in table] == mult and [r["shift"] for r in table] == shift
    assert all(r["relu"] == 1 for r in table)


def test_patch_words_are_tile_major_channel_minor():
    layer = synthetic_layer(CFG, 3, 2, 0.5)
    program = compile_layer(CFG, layer, 5, 6)
    x = np.random.default_rng(0).integers(-128, 128, (3, 5, 6))
    x[0, 0, 0], x[2, 4, 5] = -128, 127
    words = patch_words(program, x)
    patches = extract_patches(x, 2, 3, 1)                        # [T, C, 4, 4]
    assert len(words) == program.n_tiles * 3
    got = unpack_array(patch_spec(CFG), words).reshape(program.n_tiles, 3, 4, 4)
    np.testing.assert_array_equal(got, patches)


def test_unpack_results_inverts_result_packing():
    layer = layer_from_u(CFG6, np.ones((3, 2, 6, 6), dtype=np.int64))
    program = compile_layer(CFG6, layer, 5, 7, requant=(1, 0, False))
    rng = np.random.default_rng(4)
    lo, hi = CFG6.widths.output_range
    t, k, m = program.n_tiles, 3, CFG6.m
    y = rng.integers(lo, hi, (t, k, m, m))
    y[0, 0, 0, 0], y[-1, -1, -1, -1] = lo, hi
    q = rng.integers(-128, 128, (t, k, m, m))
    spec = result_spec(CFG6)
    words = [spec.pack({"y": y[i, j].ravel(), "q": q[i, j].ravel()})
             for i in range(t) for j in range(k)]
    out = unpack_results(program, words)
    assert out.shape == (3, program.grid.out_h, program.grid.out_w)
    np.testing.assert_array_equal(out[:, :m, :m], y[0].reshape(k, m, m))
    np.testing.assert_array_equal(unpack_results_q(program, words)[:, :m, :m], q[0])
    np.testing.assert_array_equal(out[:, :m, m:], y[1][:, :, :7 - m])     # ragged right edge
    np.testing.assert_array_equal(out[:, m:, :m], y[2][:, :5 - m, :])     # ragged bottom edge
    with pytest.raises(ValueError, match=r"expected 12 result words \(4 tiles x 3 channels\), "
                                         "got 11"):
        unpack_results(program, words[:-1])


def test_expected_output_matches_per_tile_reference():
    """expected_output against an explicit loop over tiles, channels and positions."""
    rng = np.random.default_rng(9)
    u = rng.integers(-127, 128, (2, 3, 4, 4))
    layer = layer_from_u(CFG, u, bias=[7, -9], padding=1)
    program = compile_layer(CFG, layer, 3, 4)
    x = rng.integers(-128, 128, (3, 3, 4))
    got = expected_output(program, x)
    at, bt = CFG.AT, CFG.BT
    xp = np.zeros((3, 6, 6), dtype=np.int64)
    xp[:, 1:4, 1:5] = x
    want = np.zeros((2, 3, 4), dtype=np.int64)
    for ti in range(2):
        for tj in range(2):
            d = xp[:, 2 * ti:2 * ti + 4, 2 * tj:2 * tj + 4]
            for k in range(2):
                mk = sum(u[k, c] * (bt @ d[c] @ bt.T) for c in range(3))
                yk = at @ mk @ at.T + [7, -9][k]
                for i in range(2):
                    for j in range(2):
                        if 2 * ti + i < 3 and 2 * tj + j < 4:
                            want[k, 2 * ti + i, 2 * tj + j] = yk[i, j]
    np.testing.assert_array_equal(got, want)
    program_q = compile_layer(CFG6, layer_from_u(CFG6, np.ones((1, 1, 6, 6))), 4, 4,
                              requant=(3, 2, True))
    xq = rng.integers(-128, 128, (1, 4, 4))
    np.testing.assert_array_equal(expected_output_q(program_q, xq),
                                  requantize(expected_output(program_q, xq), 3, 2, True))


def _refusal(config, layer, match, in_h=4, in_w=4, **kw):
    with pytest.raises(ValueError, match=match):
        compile_layer(config, layer, in_h, in_w, **kw)


def test_compile_refuses_with_layer_and_limit():
    ok = np.ones((2, 2, 4, 4), dtype=np.int64)
    _refusal(CFG, layer_from_u(CFG, np.ones((2, 7, 4, 4)), name="wide"),
             "layer 'wide' has 7 input channels; the accelerator's max_in_channels is 6")
    _refusal(CFG, layer_from_u(CFG, np.ones((8, 2, 4, 4)), name="tall"),
             "layer 'tall' has 8 output channels; the accelerator's max_out_channels is 7")
    _refusal(CFG, layer_from_u(CFG6, np.ones((2, 2, 6, 6)), name="six"),
             r"layer 'six' is F\(4,3\); the accelerator's 4x4 tile is F\(2,3\)")
    flipped = layer_from_u(CFG, ok, name="flip")
    flipped.BT = -flipped.BT
    _refusal(CFG, flipped, "layer 'flip': BT differs from the accelerator's 4x4 BT")
    narrow = CFG.replace(weight_width=6)
    _refusal(narrow, layer_from_u(CFG, ok * 127, name="w"),
             "layer 'w': weight 127 does not fit weight_width 6")
    _refusal(CFG.replace(bias_width=8), layer_from_u(CFG, ok, bias=[0, 300], name="b"),
             "layer 'b': bias does not fit bias_width 8")
    _refusal(CFG.replace(weight_depth=20), layer_from_u(CFG, ok, name="deep"),
             "layer 'deep': output channel 0 has 32 weight entries; a PE holds at most "
             "pe_weight_depth = 20")
    _refusal(CFG, layer_from_u(CFG, ok, name="q"), "layer 'q': requant parameters given",
             requant=(1, 0, False))
    _refusal(CFG6, layer_from_u(CFG6, np.ones((1, 1, 6, 6)), name="q6"),
             r"layer 'q6': the accelerator has a requant stage; pass requant=\(mult, shift")
    _refusal(CFG6, layer_from_u(CFG6, np.ones((1, 1, 6, 6)), name="q6"),
             "layer 'q6': requant shift must lie in", requant=(1, 48, False))
    _refusal(CFG, layer_from_u(CFG, np.ones((0, 2, 4, 4)), name="none"),
             "layer 'none' has 2 input and 0 output channels; both must be at least 1")
    _refusal(CFG, layer_from_u(CFG, ok, name="h"), "layer 'h': in_h must be a positive integer",
             in_h=0)
    _refusal(CFG, layer_from_u(CFG, ok, padding=0, name="s"), "smaller than the 3x3 kernel",
             in_h=2)


def test_inputs_are_checked():
    program = compile_layer(CFG, layer_from_u(CFG, np.ones((1, 2, 4, 4))), 3, 3)
    with pytest.raises(ValueError, match=r"input must have shape \[2, 3, 3\], not \[2, 3, 4\]"):
        patch_words(program, np.zeros((2, 3, 4), dtype=np.int8))
    with pytest.raises(ValueError, match=r"input values must lie in \[-128, 127\]"):
        patch_words(program, np.full((2, 3, 3), 128))
    with pytest.raises(ValueError, match="no requant stage"):
        unpack_results_q(program, [])
