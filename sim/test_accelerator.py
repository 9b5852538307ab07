"""The whole accelerator (the Verilog of ``hw.generate``) on full layers, in both simulators.

Every test runs its layers twice in one simulator process: once with no stall on any stream,
where the measured cycles must equal ``golden.cycles`` exactly, and once with random valid gaps
on every input stream and random backpressure on ``results``, where they must be at least the
model's. Every output is compared bit-exactly with ``golden.program.expected_output``.
The small configurations (2x2 PEs, 8 channels) keep one build per tile and simulator.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.config import DEFAULT
from golden.cycles import layer_cycles
from golden.program import compile_layer
from golden.synthetic import layer_from_u, random_tap_shift, synthetic_layer
from golden.widths import signed_range
from sim.accel import LayerRun, accelerator_depths, run_layers
from sim.testing import design_cache, small_config

TILES = ("4x4", "6x6")
GAPS, BACKPRESSURE = 0.3, 0.4


def _design(config, simulator, depths=None):
    return design_cache("accelerator", (config, tuple(sorted(depths.items())) if depths
                                        else None), simulator)


def _input(rng, program):
    g = program.grid
    return rng.integers(-128, 128, size=(program.in_channels, g.in_h, g.in_w))


def _both_ways(program, x, seed) -> list[LayerRun]:
    return [LayerRun(program, x, seed=seed),
            LayerRun(program, x, gaps=GAPS, backpressure=BACKPRESSURE, seed=seed + 1)]


def _assert_passed(outcomes):
    failures = [f"{o.name} ({'stalled' if o.stalled else 'unstalled'}): {'; '.join(o.problems)}"
                for o in outcomes if o is not None and not o.passed]
    assert not failures, "\n".join(failures)


def _run(simulator, config, programs_inputs, seed=0, **kwargs):
    design = _design(config, simulator, **kwargs)
    runs = []
    for i, (program, x) in enumerate(programs_inputs):
        runs += _both_ways(program, x, seed + 2 * i)
    outcomes = run_layers(design, runs)
    _assert_passed(outcomes)
    return outcomes


@pytest.mark.parametrize("density", [1.0, 0.5, 0.25, 0.1, 0.0],
                         ids=["100pct", "50pct", "25pct", "10pct", "0pct"])
@pytest.mark.parametrize("tile", TILES)
def test_density(simulator, tile, density):
    config = small_config(tile)
    layer = synthetic_layer(config, 5, 6, 1.0 - density, skewed=False, seed=7,
                            name=f"density{density:g}")
    nonzero = np.count_nonzero(layer.U)
    assert nonzero == round(density * layer.U.size)
    program = compile_layer(config, layer, 9, 7)
    rng = np.random.default_rng(1)
    (plain, _) = _run(simulator, config, [(program, _input(rng, program))])
    assert plain.model.nonzero_macs == nonzero * program.n_tiles


@pytest.mark.parametrize("tile", TILES)
def test_position_skewed(simulator, tile):
    config = small_config(tile)
    layer = synthetic_layer(config, 7, 7, 0.7, skewed=True, seed=3, name="skewed")
    per_position = np.count_nonzero(layer.U, axis=(0, 1)).ravel()
    # The spatial-Winograd skew: some positions much denser than others.
    assert per_position.max() >= 3 * max(per_position.min(), 1)
    program = compile_layer(config, layer, 8, 8)
    rng = np.random.default_rng(2)
    _run(simulator, config, [(program, _input(rng, program))])


@pytest.mark.parametrize("tile", TILES)
def test_max_channels(simulator, tile):
    """C = K = the configured maximum; the dense layer fills every PE's weight memory."""
    config = small_config(tile)
    c, k = config.max_in_channels, config.max_out_channels
    dense = synthetic_layer(config, c, k, 0.0, seed=5, name="dense_max")
    sparse = synthetic_layer(config, c, k, 0.6, seed=6, name="sparse_max")
    rng = np.random.default_rng(3)
    cases = []
    for layer in (dense, sparse):
        program = compile_layer(config, layer, 6, 5)
        cases.append((program, _input(rng, program)))
    assert cases[0][0].schedule.makespan * config.n_pe == dense.U.size
    _run(simulator, config, cases)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 3, 0), (5, 8, 0), (7, 5, 1), (2, 9, 1)],
                         ids=lambda s: f"{s[0]}x{s[1]}-pad{s[2]}")
@pytest.mark.parametrize("tile", TILES)
def test_odd_sizes_and_padding(simulator, tile, shape):
    h, w, padding = shape
    config = small_config(tile)
    layer = synthetic_layer(config, 3, 4, 0.5, seed=9, padding=padding, name="odd")
    program = compile_layer(config, layer, h, w)
    rng = np.random.default_rng(4)
    _run(simulator, config, [(program, _input(rng, program))])


def _extreme_layers(config):
    c, k = config.max_in_channels, 3
    shape = (k, c, config.alpha, config.alpha)
    w = signed_range(config.weight_width)[1]
    b_lo, b_hi = signed_range(config.bias_width)
    rng = np.random.default_rng(8)
    signs = rng.choice([-1, 1], size=shape)
    return [
        layer_from_u(config, np.full(shape, w), bias=[b_hi, b_lo, 0], name="plus127"),
        layer_from_u(config, np.full(shape, -w), bias=[b_lo, b_hi, -1], name="minus127"),
        layer_from_u(config, signs * w, bias=[b_hi, b_lo, 1], name="signs127"),
    ]


@pytest.mark.parametrize("tile", TILES)
def test_extremes(simulator, tile):
    """All -128 (and +-128/127 checkerboard) inputs with +-127 weights at the channel maximum and
    extreme biases: the worst cases of every width, no overflow."""
    config = small_config(tile)
    c = config.max_in_channels
    cases = []
    for i, layer in enumerate(_extreme_layers(config)):
        program = compile_layer(config, layer, 5, 6)
        if i < 2:
            x = np.full((c, 5, 6), -128)
        else:
            x = np.where(np.indices((c, 5, 6)).sum(axis=0) % 2, 127, -128)
        cases.append((program, x))
    outcomes = _run(simulator, config, cases)
    # Bias and transform together leave the int32 range: a 32-bit output would overflow.
    assert max(int(np.abs(o.expected).max()) for o in outcomes) > (1 << 31) - 1


@pytest.mark.parametrize("tile", TILES)
def test_tap_shifts(simulator, tile):
    """Random nonzero tap shifts up to the design's span, sparse and extreme layers: outputs
    bit-exact against golden (checked against an independent reading of the weight format in
    tests/test_tap_shift.py), cycles as modelled (the shift stage adds none)."""
    config = small_config(tile, max_tap_shift=11)
    rng = np.random.default_rng(12)
    cases = []
    for i, span in enumerate((11, 4)):
        layer = synthetic_layer(config, 5, 7, 0.5, seed=20 + i, name=f"shifted{span}")
        layer.tap_shift = random_tap_shift(rng, config.alpha, span)
        program = compile_layer(config, layer, 7, 6)
        cases.append((program, _input(rng, program)))
    extreme = _extreme_layers(config)[2]
    extreme.tap_shift = random_tap_shift(rng, config.alpha, 11)
    program = compile_layer(config, extreme, 5, 6)
    c = config.max_in_channels
    cases.append((program, np.where(np.indices((c, 5, 6)).sum(axis=0) % 2, 127, -128)))
    outcomes = _run(simulator, config, cases)
    assert max(int(np.abs(o.expected).max()) for o in outcomes) > (1 << 31) - 1


@pytest.mark.parametrize("tile", TILES)
def test_reset_mid_layer(simulator, tile):
    """A reset in the middle of a layer (under stalls), then correct layers."""
    config = small_config(tile)
    first = compile_layer(config, synthetic_layer(config, 6, 8, 0.5, seed=10, name="cut"), 8, 8)
    after = compile_layer(config, synthetic_layer(config, 8, 5, 0.3, seed=11, name="after"),
                          7, 9)
    rng = np.random.default_rng(5)
    x1, x2 = _input(rng, first), _input(rng, after)
    design = _design(config, simulator)
    from golden.cycles import layer_cycles
    cut = layer_cycles(first).load_cycles + layer_cycles(first).cycles // 2
    runs = [LayerRun(first, x1, gaps=GAPS, backpressure=BACKPRESSURE, seed=1, abort_after=cut),
            *_both_ways(after, x2, 2),
            LayerRun(first, x1, gaps=GAPS, backpressure=BACKPRESSURE, seed=4,
                     abort_after=layer_cycles(first).load_cycles // 2),
            LayerRun(first, x1, seed=5)]
    outcomes = run_layers(design, runs)
    assert outcomes[0] is None and outcomes[3] is None
    _assert_passed(outcomes)


@pytest.mark.slow
@pytest.mark.simulators("verilator")
@pytest.mark.parametrize("tile", TILES)
def test_default_design_full_layer(simulator, tile):
    """The default design (4x4 PEs, 64 channels) on a 64 -> 64 layer, spatial-Winograd skewed."""
    config = DEFAULT.replace(tile=tile)
    layer = synthetic_layer(config, 64, 64, 0.6, seed=12, name="full64")
    program = compile_layer(config, layer, 16, 16)
    depths = accelerator_depths(config, program.n_tiles * 64, program.n_tiles * 64)
    rng = np.random.default_rng(6)
    _run(simulator, config, [(program, _input(rng, program))], depths=depths)


@pytest.mark.slow
@pytest.mark.simulators("verilator")
def test_requant_stage(simulator):
    """The requant stage: raw and requantised int8 outputs both bit-exact."""
    config = small_config("4x4").replace(requant=True)
    layer = synthetic_layer(config, 6, 8, 0.5, seed=13, name="requant")
    rng = np.random.default_rng(7)
    mult = rng.integers(1, 1 << 15, size=8)
    shift = rng.integers(10, 24, size=8)
    programs = [compile_layer(config, layer, 7, 7, requant=(mult, shift, relu))
                for relu in (False, True)]
    _run(simulator, config, [(p, _input(rng, p)) for p in programs])


@pytest.mark.simulators("verilator")
@pytest.mark.parametrize("lanes", [2, 4], ids=lambda n: f"lanes{n}")
def test_wide_weight_loading(simulator, lanes):
    """weight_lanes: several PEs load per weights beat; outputs bit-exact, cycles and the
    shorter load_cycles exactly the model's (skewed, dense, empty and unbalanced layers)."""
    config = small_config("4x4").replace(weight_lanes=lanes)
    rng = np.random.default_rng(lanes)
    layers = [synthetic_layer(config, 6, 7, 0.7, skewed=True, seed=11, name="skewed"),
              synthetic_layer(config, 3, 5, 0.0, seed=12, name="dense"),
              synthetic_layer(config, 4, 3, 1.0, seed=13, name="empty")]
    u = rng.integers(-127, 128, size=(5, 2, 4, 4))
    u[1:] *= rng.random(u[1:].shape) < 0.2          # channel 0 dense, the rest sparse
    layers.append(layer_from_u(config, u, name="unbalanced"))
    programs = [compile_layer(config, layer, 6, 5) for layer in layers]
    outcomes = _run(simulator, config, [(p, _input(rng, p)) for p in programs], seed=40)
    for program, plain in zip(programs, outcomes[::2]):
        beats = int(program.schedule.pe_entries.reshape(-1, lanes).max(axis=1).sum())
        assert plain.load_cycles == 1 + program.out_channels + beats


@pytest.mark.simulators("verilator")
@pytest.mark.parametrize("tile, drain", [("4x4", 2), ("6x6", 4)], ids=["4x4-dp2", "6x6-dp4"])
def test_narrow_result_banks(simulator, tile, drain):
    """drain_positions: every output channel drained in alpha**2 / P beats, the output
    transform accumulating them; bit-exact, cycles exactly the model's unstalled (skewed,
    dense and empty layers, the first at the channel limits)."""
    config = small_config(tile).replace(drain_positions=drain)
    rng = np.random.default_rng(drain)
    c, k = config.max_in_channels, config.max_out_channels
    layers = [synthetic_layer(config, c, k, 0.7, skewed=True, seed=21, name="skewed"),
              synthetic_layer(config, 3, 5, 0.0, seed=22, name="dense"),
              synthetic_layer(config, 4, 3, 1.0, seed=23, name="empty")]
    programs = [compile_layer(config, layer, 6, 5) for layer in layers]
    outcomes = _run(simulator, config, [(p, _input(rng, p)) for p in programs], seed=50)
    # The empty layer's steps are its drains (alpha**2 / P beats per channel): longer than
    # whole-tile drains, exactly as modelled.
    empty = outcomes[4]
    wide = layer_cycles(compile_layer(config.replace(drain_positions=None), layers[2], 6, 5))
    assert empty.cycles == empty.model.cycles > wide.cycles


@pytest.mark.simulators("verilator")
def test_narrow_v_chain(simulator):
    """v_beats 4 (the default 6x6 design's V chain: 4 beats of 9 positions per channel):
    outputs bit-exact, cycles exactly the model's, a sparse layer whose tiles load slower than
    they compute and a dense one, with and without stalls."""
    config = small_config("6x6").replace(v_beats=4)
    rng = np.random.default_rng(4)
    layers = [synthetic_layer(config, 8, 3, 0.9, skewed=True, seed=21, name="load_bound"),
              synthetic_layer(config, 5, 8, 0.0, seed=22, name="dense")]
    programs = [compile_layer(config, layer, 9, 6) for layer in layers]
    outcomes = _run(simulator, config, [(p, _input(rng, p)) for p in programs], seed=60)
    # The sparse layer's steps are its loads: 4 cycles per channel instead of 1.
    one_beat = layer_cycles(compile_layer(config.replace(v_beats=1), layers[0], 9, 6)).cycles
    assert outcomes[0].cycles == outcomes[0].model.cycles > one_beat
