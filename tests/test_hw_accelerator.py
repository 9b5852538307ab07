"""The whole accelerator in Amaranth's simulator: bit-exact against golden, exact cycle counts
against golden.cycles, back-to-back layers, refusal of unloadable layers."""

import gc
import subprocess
import warnings

import numpy as np
import pytest
from amaranth.hdl import Fragment, UnusedElaboratable
from amaranth.sim import Simulator

from golden.config import DEFAULT, PRESETS, AcceleratorConfig
from golden.cycles import layer_cycles
from golden.program import (compile_layer, expected_output, expected_output_q, patch_words,
                            unpack_results, unpack_results_q)
from golden.protocol import cfg_spec, table_spec, weight_spec
from golden.synthetic import layer_from_u, random_tap_shift, synthetic_layer
from golden.widths import signed_range
from helpers import stream_get, stream_put
from hw.accelerator import Accelerator

CFG_4 = AcceleratorConfig(tile="4x4", array=(2, 2), max_in_channels=4, max_out_channels=5)
CFG_6 = AcceleratorConfig(tile="6x6", array=(1, 3), max_in_channels=3, max_out_channels=4)
CFG_Q = AcceleratorConfig(tile="4x4", array=(2, 1), max_in_channels=3, max_out_channels=3,
                          requant=True)
# Odd widths and a 3x2 array (six PEs, PE index field with unused codes).
CFG_ODD = AcceleratorConfig(tile="4x4", array=(3, 2), max_in_channels=3, max_out_channels=7,
                            data_width=5, weight_width=6, bias_width=9)
# A single PE: the V chain's head is its tail.
CFG_ONE = AcceleratorConfig(tile="6x6", array=(1, 1), max_in_channels=2, max_out_channels=3)


class Log:
    """Edge indices (cycles from the start of simulation) of every transfer, per stream."""

    def __init__(self):
        self.edges = {}

    def add(self, name, edge):
        self.edges.setdefault(name, []).append(edge)


def run_layers(config, programs_inputs, *, gap=0.0, stall=0.0, seed=0, extra_cfg=(),
               extra_table=(), extra_weights=(), limit=200_000):
    """Run layers back to back (after the ``extra_*`` beats, a refused layer's); return
    (results words per layer, Log, error samples)."""
    dut = Accelerator(config)
    rng = np.random.default_rng(seed)
    log = Log()
    streams = {"cfg": list(extra_cfg), "table": list(extra_table),
               "weights": list(extra_weights), "patches": []}
    counts = []
    for program, x in programs_inputs:
        streams["cfg"] += program.cfg_words
        streams["table"] += program.table_words
        streams["weights"] += program.weight_words
        streams["patches"] += patch_words(program, x)
        counts.append(program.n_tiles * program.out_channels)
    collected = {}

    def source(name):
        async def bench(ctx):
            await stream_put(ctx, getattr(dut, name), streams[name],
                             rng=np.random.default_rng(rng.integers(1 << 30)), gap=gap,
                             on_transfer=lambda edge: log.add(name, edge))
        return bench

    async def sink(ctx):
        words = await stream_get(ctx, dut.results, sum(counts),
                                 rng=np.random.default_rng(rng.integers(1 << 30)), stall=stall,
                                 on_transfer=lambda edge: log.add("results", edge), limit=limit)
        collected["words"] = words
        for _ in range(3):
            await ctx.tick()
        collected["busy"] = ctx.get(dut.busy)
        collected["error"] = ctx.get(dut.error)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for name in streams:
        sim.add_testbench(source(name), background=True)
    sim.add_testbench(sink)
    sim.run()
    out, start = [], 0
    for n in counts:
        out.append(collected["words"][start:start + n])
        start += n
    return out, log, collected


def _layer(config, c, k, density, seed, padding=1, extreme=False):
    rng = np.random.default_rng(seed)
    a, w_max = config.alpha, signed_range(config.weight_width)[1]
    u = rng.integers(-w_max, w_max + 1, (k, c, a, a))
    if extreme:
        u = np.where(rng.random(u.shape) < 0.5, -w_max, w_max)
    u[rng.random(u.shape) >= density] = 0
    if k > 1 and density > 0:
        u[k // 2] = 0                  # an all-zero output channel: no owner, Y = bias
    b_max = signed_range(config.bias_width)[1]
    bias = rng.integers(-b_max - 1, b_max + 1, k) if extreme else rng.integers(
        -min(999, b_max), min(999, b_max) + 1, k)
    return layer_from_u(config, u, bias=bias, padding=padding, name=f"l{seed}")


def _input(config, c, h, w, seed, extreme=False):
    if extreme:
        return np.full((c, h, w), signed_range(config.data_width)[0], dtype=np.int64)
    lo, hi = signed_range(config.data_width)
    return np.random.default_rng(seed).integers(lo, hi + 1, (c, h, w))


def _requant(k, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(1, 1 << 15, k), rng.integers(8, 24, k), bool(seed % 2)


CASES = [
    # config, C, K, H, W, density, padding
    (CFG_4, 3, 5, 5, 3, 0.4, 1),
    (CFG_4, 4, 4, 4, 5, 1.0, 0),
    (CFG_4, 2, 3, 3, 3, 0.0, 1),
    (CFG_6, 3, 4, 7, 5, 0.3, 1),
    (CFG_6, 1, 2, 4, 4, 1.0, 0),
    (CFG_Q, 3, 3, 5, 4, 0.5, 1),
    (CFG_ODD, 3, 7, 5, 6, 0.6, 1),
    (CFG_ONE, 2, 3, 5, 3, 0.5, 1),
    # Not pipelined (no V hold, bank-word or collector output registers), requant too.
    (CFG_4.replace(pipelined=False), 3, 5, 5, 3, 0.4, 1),
    (CFG_Q.replace(tile="6x6", pipelined=False), 3, 3, 5, 4, 0.5, 1),
    # Result banks drained a few positions per cycle: one (4x4), four of 36 with requant
    # (6x6, not a power of two beats), two on one PE, and one unpipelined with split channels.
    (CFG_4.replace(drain_positions=1), 3, 5, 5, 3, 0.4, 1),
    (CFG_Q.replace(tile="6x6", drain_positions=4), 3, 3, 5, 4, 0.5, 1),
    (CFG_ONE.replace(drain_positions=12), 2, 3, 5, 3, 0.5, 1),
    (CFG_4.replace(drain_positions=2, pipelined=False, split_channels=True), 4, 2, 4, 5, 0.6,
     1),
    # The narrow V chain: 4 beats of 4 / 9 positions per channel, 3 beats (an address with an
    # unused beat code) on one PE, 9 beats of 4 without the hold register.
    (CFG_4.replace(v_beats=4), 3, 5, 5, 3, 0.4, 1),
    (CFG_6.replace(v_beats=4), 3, 4, 7, 5, 0.3, 1),
    (CFG_ONE.replace(v_beats=3), 2, 3, 5, 3, 0.5, 1),
    (CFG_Q.replace(tile="6x6", pipelined=False, v_beats=9), 3, 3, 5, 4, 0.5, 1),
    # Both narrow: V in 4 beats, results drained 9 positions per cycle.
    (CFG_Q.replace(tile="6x6", v_beats=4, drain_positions=9), 3, 3, 5, 4, 0.5, 1),
]


def _case_id(c):
    config = c[0]
    return (f"{config.tile}-C{c[1]}K{c[2]}-{c[3]}x{c[4]}-d{c[5]}-p{c[6]}"
            f"{'-q' if config.requant else ''}{'' if config.pipelined else '-np'}"
            f"{'' if config.drain_positions is None else f'-dp{config.drain_positions}'}"
            f"{f'-vb{config.v_beats}' if config.v_beats > 1 else ''}")


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_accelerator_bit_exact_with_gaps_and_backpressure(case):
    config, c, k, h, w, density, padding = case
    seed = c * 100 + k * 10 + h
    layer = _layer(config, c, k, density, seed, padding)
    rq = _requant(k, seed) if config.requant else None
    program = compile_layer(config, layer, h, w, requant=rq)
    x = _input(config, c, h, w, seed)
    (words,), _, state = run_layers(config, [(program, x)], gap=0.3, stall=0.3, seed=seed)
    np.testing.assert_array_equal(unpack_results(program, words), expected_output(program, x))
    if config.requant:
        np.testing.assert_array_equal(unpack_results_q(program, words),
                                      expected_output_q(program, x))
    assert state["busy"] == 0 and state["error"] == 0


@pytest.mark.parametrize("config", [CFG_4, CFG_6, CFG_Q], ids=["4x4", "6x6", "4x4-q"])
def test_accelerator_extremes_at_max_channels(config):
    """-128 everywhere, weights +-127, biases at the int32 ends, C and K at the maximum."""
    c, k = config.max_in_channels, config.max_out_channels
    layer = _layer(config, c, k, 1.0, 5, extreme=True)
    rq = (np.full(k, (1 << 15) - 1), np.zeros(k, dtype=np.int64), False) if config.requant \
        else None
    program = compile_layer(config, layer, 3, 4, requant=rq)
    x = _input(config, c, 3, 4, 0, extreme=True)
    (words,), _, _ = run_layers(config, [(program, x)], gap=0.1, stall=0.5, seed=3)
    np.testing.assert_array_equal(unpack_results(program, words), expected_output(program, x))
    if config.requant:
        np.testing.assert_array_equal(unpack_results_q(program, words),
                                      expected_output_q(program, x))


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_accelerator_cycles_match_model_when_unstalled(case):
    config, c, k, h, w, density, padding = case
    seed = c + k + h
    layer = _layer(config, c, k, density, seed, padding)
    rq = _requant(k, seed) if config.requant else None
    program = compile_layer(config, layer, h, w, requant=rq)
    x = _input(config, c, h, w, seed)
    (words,), log, _ = run_layers(config, [(program, x)])
    report = layer_cycles(program)
    e = log.edges
    assert e["results"][-1] - e["patches"][0] + 1 == report.cycles
    program_edges = e["table"] + e.get("weights", [])
    assert max(program_edges) - e["cfg"][0] + 1 == report.load_cycles
    np.testing.assert_array_equal(unpack_results(program, words), expected_output(program, x))


def test_accelerator_skewed_layer_cycles_and_values():
    """A position-skewed sparse layer: values exact, cycles as modelled."""
    config = CFG_4
    layer = synthetic_layer(config, 4, 5, 0.7, seed=11, padding=1)
    program = compile_layer(config, layer, 4, 4)
    x = _input(config, 4, 4, 4, 11)
    (words,), log, _ = run_layers(config, [(program, x)])
    np.testing.assert_array_equal(unpack_results(program, words), expected_output(program, x))
    e = log.edges
    assert e["results"][-1] - e["patches"][0] + 1 == layer_cycles(program).cycles


def test_accelerator_runs_layers_back_to_back():
    """After a refused cfg and after a layer the next cfg is accepted; a different C, K and
    size work at once, and the error flag clears."""
    config = CFG_4
    first = compile_layer(config, _layer(config, 4, 5, 0.5, 21), 3, 5)
    second = compile_layer(config, _layer(config, 1, 2, 0.8, 22, padding=0), 6, 4)
    x1, x2 = _input(config, 4, 3, 5, 1), _input(config, 1, 6, 4, 2)
    oversize = cfg_spec(config).pack({"in_channels": 5, "out_channels": 5, "n_tiles": 1,
                                      "n_entries": 0})
    (w1, w2), _, state = run_layers(config, [(first, x1), (second, x2)], gap=0.2, stall=0.2,
                                    extra_cfg=[oversize])
    np.testing.assert_array_equal(unpack_results(first, w1), expected_output(first, x1))
    np.testing.assert_array_equal(unpack_results(second, w2), expected_output(second, x2))
    assert state["busy"] == 0 and state["error"] == 0


def test_accelerator_runs_a_layer_after_one_refused_at_its_last_weight():
    """A layer refused at its last weights beat (input channel >= C) has written all its
    entries, the refused one too, into the PEs; the next layer clears them and is exact."""
    config = CFG_4
    refused = compile_layer(config, _layer(config, 3, 4, 0.4, 31), 3, 5)
    good = compile_layer(config, _layer(config, 4, 5, 0.5, 21), 3, 5)
    wspec = weight_spec(config)
    bad = wspec.unpack(refused.weight_words[-1])
    bad["entry"]["channel"] = refused.in_channels
    weights = list(refused.weight_words[:-1]) + [wspec.pack(bad)]
    x = _input(config, 4, 3, 5, 1)
    (words,), _, state = run_layers(config, [(good, x)], extra_cfg=refused.cfg_words,
                                    extra_table=refused.table_words, extra_weights=weights)
    np.testing.assert_array_equal(unpack_results(good, words), expected_output(good, x))
    assert state["busy"] == 0 and state["error"] == 0


def _refusal_sim(config, cfg_word, table_words=(), weight_words=()):
    """Send one cfg (and optional program beats); return (error, busy, cfg ready, beats
    consumed per stream) after the accelerator has settled."""
    dut = Accelerator(config)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.results.ready, 1)
        ctx.set(dut.cfg.valid, 1)
        ctx.set(dut.cfg.payload.as_value(), cfg_word)
        await ctx.tick().until(dut.cfg.ready)
        ctx.set(dut.cfg.valid, 0)
        consumed = {"table": 0, "weights": 0, "patches": 0}
        for words, port in ((table_words, dut.table), (weight_words, dut.weights)):
            for word in words:
                ctx.set(port.valid, 1)
                ctx.set(port.payload.as_value(), word)
                for _ in range(4):
                    _, _, ready = await ctx.tick().sample(port.ready)
                    if ready:
                        consumed["table" if port is dut.table else "weights"] += 1
                        break
                else:
                    break
            ctx.set(port.valid, 0)
        ctx.set(dut.patches.valid, 1)
        for _ in range(20):
            _, _, ready, valid = await ctx.tick().sample(dut.patches.ready, dut.results.valid)
            consumed["patches"] += ready
            assert not valid
        seen.update(error=ctx.get(dut.error), busy=ctx.get(dut.busy),
                    cfg_ready=ctx.get(dut.cfg.ready), consumed=consumed)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen


@pytest.mark.parametrize("field,value", [
    ("in_channels", CFG_4.max_in_channels + 1), ("out_channels", CFG_4.max_out_channels + 1),
    ("in_channels", 0), ("out_channels", 0), ("n_tiles", 0),
    ("n_entries", CFG_4.n_pe * CFG_4.pe_weight_depth + 1)])
def test_accelerator_refuses_oversize_cfg(field, value):
    fields = {"in_channels": 2, "out_channels": 2, "n_tiles": 1, "n_entries": 0, field: value}
    seen = _refusal_sim(CFG_4, cfg_spec(CFG_4).pack(fields))
    assert seen["error"] == 1 and seen["busy"] == 0 and seen["cfg_ready"] == 1
    assert seen["consumed"]["patches"] == 0


def test_accelerator_refuses_unloadable_program():
    """Entries for a channel >= C, a bad owner, or a PE not ending its channel: refused."""
    config = CFG_6              # 3 PEs: PE index 3 exists in the 2-bit field but not in the array
    cfg_word = cfg_spec(config).pack({"in_channels": 2, "out_channels": 1, "n_tiles": 1,
                                      "n_entries": 1})
    tspec, wspec = table_spec(config), weight_spec(config)
    row = {"owner": 0, "slot": 0, "empty": 0, "bias": 0}
    good_table = [tspec.pack(row)]

    def weight(pe=0, channel=0, position=0, last=1):
        return wspec.pack({"pe": pe, "entry": {"value": 3, "position": position,
                                               "channel": channel, "last": last}})
    cases = [
        ([tspec.pack({**row, "owner": 3})], []),           # owner outside the array
        (good_table, [weight(channel=2)]),                 # input channel >= C
        (good_table, [weight(pe=3)]),                      # PE outside the array
        (good_table, [weight(position=36)]),               # position >= alpha**2
        (good_table, [weight(last=0)]),                    # channel never finished
        (good_table, [weight(pe=1)]),                      # channel on a PE the table disowns
    ]
    for table_words, weight_words in cases:
        seen = _refusal_sim(config, cfg_word, table_words, weight_words)
        assert seen["error"] == 1 and seen["busy"] == 0, (table_words, weight_words)
        assert seen["consumed"]["patches"] == 0


def test_accelerator_rejects_non_config():
    with warnings.catch_warnings():
        # The half-built component is never elaborated; that is the point.
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(TypeError, match="config must be a golden.config.AcceleratorConfig"):
            Accelerator({"tile": "4x4"})
        gc.collect()


def test_pe_submodules_named_by_grid_position():
    top = Accelerator(CFG_6)
    assert top.pe_names == ["pe_0_0", "pe_0_1", "pe_0_2"]
    fragment = Fragment.get(top, None)
    names = {name for _, name, _ in fragment.subfragments}
    assert {"pe_0_0", "pe_0_1", "pe_0_2", "input_transform", "output_transform"} <= names


# -- Verilog lint and synthesis ---------------------------------------------------------------

#: Verilator -Wall lint waivers: the simulation waivers of sim.tools plus two lint-only style
#: warnings Amaranth's output always trips: DECLFILENAME (one file holds every submodule) and
#: PROCASSINIT (registers carry their reset value as a declaration initialiser).
LINT_WAIVERS = ("-Wno-DECLFILENAME", "-Wno-PROCASSINIT")


def verilator_lint(config, tmp_path):
    from amaranth.back import verilog

    from sim.tools import VERILATOR_WAIVERS, setup_verilator
    info = setup_verilator()
    if not info.available:
        pytest.skip(info.reason)
    (tmp_path / "top.v").write_text(verilog.convert(Accelerator(config), name="top",
                                                    emit_src=False))
    done = subprocess.run([info.executable, "--lint-only", "-Wall", *VERILATOR_WAIVERS,
                           *LINT_WAIVERS, "top.v"], cwd=tmp_path, capture_output=True,
                          text=True)
    return done.returncode, done.stderr


SYNTH_SMALL = [
    AcceleratorConfig(array=(2, 2), max_in_channels=4, max_out_channels=4),
    pytest.param(AcceleratorConfig(tile="6x6", array=(2, 2), max_in_channels=4,
                                   max_out_channels=4, requant=True), marks=pytest.mark.slow),
]


@pytest.mark.parametrize("config", SYNTH_SMALL, ids=["4x4", "6x6-q"])
def test_small_design_lints_and_has_one_multiplier_per_pe(config, tmp_path, yosys_cells):
    code, log = verilator_lint(config, tmp_path)
    assert code == 0, log
    assert yosys_cells(Accelerator(config)).get("$mul", 0) == config.multipliers


@pytest.mark.parametrize("max_tap_shift", [1, 3, 5])
def test_tap_shift_designs_lint_clean(max_tap_shift, tmp_path):
    # 1 and 3 fill their tap_left field (the loader's range check would be a constant compare).
    config = AcceleratorConfig(tile="6x6", array=(1, 2), max_in_channels=4, max_out_channels=4,
                               requant=True, max_tap_shift=max_tap_shift)
    code, log = verilator_lint(config, tmp_path)
    assert code == 0, log


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["default", "default-6x6", "default-requant"])
def test_default_designs_lint_clean(preset, tmp_path):
    config = (PRESETS[preset] if preset in PRESETS else DEFAULT.replace(requant=True))
    code, log = verilator_lint(config, tmp_path)
    assert code == 0, log


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["default", "default-6x6"])
def test_default_designs_have_exactly_n_pe_multipliers(preset, yosys_cells):
    config = PRESETS[preset]
    assert yosys_cells(Accelerator(config)).get("$mul", 0) == config.n_pe == config.multipliers


# -- tap shifts ------------------------------------------------------------------------------

CFG_4T = CFG_4.replace(max_tap_shift=5)
CFG_6T = CFG_6.replace(max_tap_shift=15)
CFG_QT = CFG_Q.replace(tile="6x6", max_tap_shift=9)


def _tap_layer(config, c, k, density, seed, span, extreme=False):
    layer = _layer(config, c, k, density, seed, extreme=extreme)
    layer.tap_shift = random_tap_shift(np.random.default_rng(seed), config.alpha, span)
    return layer


@pytest.mark.parametrize("config, c, k, h, w, density, span", [
    (CFG_4T, 3, 5, 5, 3, 0.5, 5), (CFG_4T, 4, 4, 4, 4, 1.0, 3),
    (CFG_6T, 3, 4, 7, 5, 0.4, 15), (CFG_6T, 2, 3, 4, 4, 1.0, 8),
    (CFG_QT, 3, 3, 5, 4, 0.5, 9)],
    ids=["4x4-s5", "4x4-s3-dense", "6x6-s15", "6x6-s8-dense", "6x6-s9-q"])
def test_accelerator_tap_shifts_bit_exact_and_cycle_exact(config, c, k, h, w, density, span):
    """Random nonzero tap shifts: the RTL equals golden (which an independent reading of the
    format checks in tests/test_tap_shift.py) under gaps and backpressure, and unstalled it
    takes exactly the modelled cycles (the shift stage adds none)."""
    seed = c * 10 + span
    layer = _tap_layer(config, c, k, density, seed, span)
    rq = _requant(k, seed) if config.requant else None
    program = compile_layer(config, layer, h, w, requant=rq)
    x = _input(config, c, h, w, seed)
    want = expected_output(program, x)
    plain = layer_from_u(config, layer.U, bias=layer.bias, padding=layer.padding)
    assert not np.array_equal(want, expected_output(compile_layer(
        config, plain, h, w, requant=rq), x))                    # the shifts matter
    (words,), _, state = run_layers(config, [(program, x)], gap=0.3, stall=0.3, seed=seed)
    np.testing.assert_array_equal(unpack_results(program, words), want)
    if config.requant:
        np.testing.assert_array_equal(unpack_results_q(program, words),
                                      expected_output_q(program, x))
    assert state["busy"] == 0 and state["error"] == 0
    (words,), log, _ = run_layers(config, [(program, x)])
    np.testing.assert_array_equal(unpack_results(program, words), want)
    e = log.edges
    assert e["results"][-1] - e["patches"][0] + 1 == layer_cycles(program).cycles


@pytest.mark.parametrize("config", [CFG_4T, CFG_6T], ids=["4x4", "6x6"])
def test_accelerator_tap_shift_extremes(config):
    """-128 everywhere, weights +-127, biases at the int32 ends, C and K at the maximum and the
    widest span the design takes: the shifted accumulators and outputs at their bounds."""
    c, k = config.max_in_channels, config.max_out_channels
    layer = _tap_layer(config, c, k, 1.0, 5, config.max_tap_shift, extreme=True)
    program = compile_layer(config, layer, 3, 4)
    x = _input(config, c, 3, 4, 0, extreme=True)
    (words,), _, _ = run_layers(config, [(program, x)], gap=0.1, stall=0.5, seed=3)
    np.testing.assert_array_equal(unpack_results(program, words), expected_output(program, x))


def test_accelerator_refuses_a_tap_shift_beyond_the_design():
    """tap_left is 3 bits wide for max_tap_shift 5: 6 and 7 are refused, 5 is taken."""
    fields = {"in_channels": 2, "out_channels": 2, "n_tiles": 1, "n_entries": 0}
    for left, refused in ((6, 1), (7, 1), (5, 0)):
        tap_left = np.zeros(CFG_4T.positions, dtype=np.int64)
        tap_left[3] = left
        seen = _refusal_sim(CFG_4T, cfg_spec(CFG_4T).pack({**fields, "tap_left": tap_left}))
        assert seen["error"] == refused, left
        assert seen["busy"] == 1 - refused


def test_no_tap_shift_stage_without_max_tap_shift():
    names = {name for _, name, _ in Fragment.get(Accelerator(CFG_4), None).subfragments}
    assert "tap_shift" not in names
    names = {name for _, name, _ in Fragment.get(Accelerator(CFG_4T), None).subfragments}
    assert "tap_shift" in names
