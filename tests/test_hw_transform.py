"""Transform units and shift-and-add arithmetic: bit-exact against NumPy and golden, under random
stream gaps and backpressure, and free of multipliers in Yosys."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.config import AcceleratorConfig
from golden.conv import winograd_tiles_int
from golden.cycles import output_transform_latency
from golden.protocol import output_transform_input_spec, patch_spec, result_spec, v_spec
from golden.quant import MAX_SHIFT, MULTIPLIER_BITS, requantize
from golden.widths import bits_for_range, signed_range
from helpers import stream_get, stream_put
from hw.arith import constant_multiply, csd_digits, linear_combination, linear_transform
from hw.layouts import to_layout
from hw.transform import InputTransform, OutputTransform

TILES = ("4x4", "6x6")
# (probability the producer offers a beat, probability the consumer is ready) per cycle.
TRAFFIC = {"full": (1.0, 1.0), "gaps": (0.5, 1.0), "backpressure": (1.0, 0.4),
           "both": (0.6, 0.5)}


# -- stream benches --------------------------------------------------------------------------------

def run_stream(dut, words: list[int], count: int, *, p_valid: float, p_ready: float,
               seed: int) -> list[int]:
    """Push ``words`` into ``dut.i`` and collect ``count`` raw words from ``dut.o`` with random
    gaps and backpressure, checking the stream rules on the output every cycle."""
    rng = random.Random(seed)
    got = []

    async def produce(ctx):
        await stream_put(ctx, dut.i, words, rng=rng, gap=1 - p_valid)

    async def consume(ctx):
        got.extend(await stream_get(ctx, dut.o, count, rng=rng, stall=1 - p_ready,
                                    limit=50 + 40 * (len(words) + 10)))
        for _ in range(8):                    # nothing beyond the expected beats
            await ctx.tick()
            assert not ctx.get(dut.o.valid), "extra output beat"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(produce, background=True)
    sim.add_testbench(consume)
    sim.run()
    return got


def measure_timing(dut, word: int, beats: int) -> tuple[int, int]:
    """(cycles from one input transfer to o.valid, cycles for ``beats`` back-to-back beats)."""
    result = {}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.payload.as_value(), word)
        ctx.set(dut.i.valid, 1)
        assert ctx.get(dut.i.ready), "an empty unit must accept a beat"
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        cycles = 1
        while not ctx.get(dut.o.valid):
            assert cycles < 50
            await ctx.tick()
            cycles += 1
        result["latency"] = cycles
        await ctx.tick()
        assert not ctx.get(dut.o.valid)
        # Full rate: every cycle a beat in and, after the latency, every cycle a beat out.
        ctx.set(dut.i.valid, 1)
        seen, cycle = 0, 0
        while seen < beats:
            if cycle == beats:
                ctx.set(dut.i.valid, 0)
            elif cycle < beats:
                assert ctx.get(dut.i.ready), "input stalled at full rate"
            seen += ctx.get(dut.o.valid)
            await ctx.tick()
            cycle += 1
        result["cycles"] = cycle

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return result["latency"], result["cycles"]


# -- references ------------------------------------------------------------------------------------

def v_bound_patches(config: AcceleratorConfig) -> np.ndarray:
    """For every Winograd position, the two patches that drive V there to its max and min."""
    lo, hi = signed_range(config.data_width)
    bt, a = config.BT, config.alpha
    patches = []
    for r in range(a):
        for j in range(a):
            sign = np.sign(np.outer(bt[r], bt[j]))
            patches.append(np.where(sign > 0, hi, np.where(sign < 0, lo, 0)))
            patches.append(np.where(sign > 0, lo, np.where(sign < 0, hi, 0)))
    return np.array(patches)


def accumulator_bounds(config: AcceleratorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-position range of M = sum of max_in_channels products U * V (independent of golden)."""
    lo, hi = signed_range(config.data_width)
    w = (1 << (config.weight_width - 1)) - 1
    bt = config.BT
    outer = np.einsum("ip,jq->ijpq", bt, bt)
    v_hi = np.where(outer > 0, outer * hi, outer * lo).sum(axis=(2, 3))
    v_lo = np.where(outer > 0, outer * lo, outer * hi).sum(axis=(2, 3))
    mag = np.maximum(np.abs(v_hi), np.abs(v_lo)) * w * config.max_in_channels
    return -mag, mag


def y_bound_tiles(config: AcceleratorConfig) -> np.ndarray:
    """For every output position, M tiles driving Y there to its max and its min."""
    m_lo, m_hi = accumulator_bounds(config)
    at = config.AT
    tiles = []
    for i in range(config.m):
        for j in range(config.m):
            sign = np.outer(at[i], at[j])
            tiles.append(np.where(sign > 0, m_hi, np.where(sign < 0, m_lo, 0)))
            tiles.append(np.where(sign > 0, m_lo, np.where(sign < 0, m_hi, 0)))
    return np.array(tiles)


def output_beats(config: AcceleratorConfig, rng: np.random.Generator):
    """Input fields of the output transform: random, extreme and rounding-tie cases."""
    a = config.alpha
    m_lo, m_hi = accumulator_bounds(config)
    b_lo, b_hi = signed_range(config.bias_width)
    tiles, biases = [], []
    tiles.append(rng.integers(m_lo, m_hi + 1, size=(40, a, a)))
    biases.append(rng.integers(b_lo, b_hi + 1, size=40))
    bound = y_bound_tiles(config)
    tiles.append(bound)                                         # Y at its range ends ...
    biases.append(np.tile([b_hi, b_lo], len(bound) // 2))       # ... with the bias helping
    tiles.append(np.array([m_hi, m_lo, np.zeros_like(m_hi), np.zeros_like(m_hi)]))
    biases.append(np.array([b_lo, b_hi, b_hi, b_lo]))           # accumulators at +-max
    small = rng.integers(-3, 4, size=(30, a, a))                # small y: rounding ties
    tiles.append(np.clip(small, m_lo, m_hi))
    biases.append(np.clip(rng.integers(-300, 301, size=30), b_lo, b_hi))
    tiles, biases = np.concatenate(tiles), np.concatenate(biases)
    n = len(tiles)
    mult = rng.integers(0, 1 << MULTIPLIER_BITS, size=n)
    shift = rng.integers(0, MAX_SHIFT + 1, size=n)
    small = slice(n - 30, n)
    mult[small] = rng.integers(0, 8, size=30)
    shift[small] = rng.integers(0, 4, size=30)
    mult[:4] = [(1 << MULTIPLIER_BITS) - 1, 0, 1, (1 << MULTIPLIER_BITS) - 1]
    shift[:4] = [0, MAX_SHIFT, MAX_SHIFT, MAX_SHIFT]
    relu = rng.integers(0, 2, size=n)
    return tiles, biases, mult, shift, relu


# -- shift-and-add arithmetic ----------------------------------------------------------------------

@functools.cache
def min_signed_digits(value: int) -> int:
    """Fewest signed powers of two summing to ``value`` (exhaustive recursion on the lowest
    digit: an odd value ends in +1 or -1)."""
    value = abs(value)
    if value <= 1:
        return value
    if value % 2 == 0:
        return min_signed_digits(value // 2)
    return 1 + min(min_signed_digits((value - 1) // 2), min_signed_digits((value + 1) // 2))


@given(st.integers(-(1 << 40), 1 << 40))
@settings(max_examples=300, deadline=None)
def test_csd_digits_sum_and_non_adjacent(constant):
    digits = csd_digits(constant)
    assert sum(sign << shift for shift, sign in digits) == constant
    shifts = [shift for shift, _ in digits]
    assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))
    assert all(sign in (-1, 1) for _, sign in digits)


def test_csd_digits_minimal():
    for constant in range(-1100, 1100):
        assert len(csd_digits(constant)) == min_signed_digits(constant), constant
    assert csd_digits(0) == ()
    assert csd_digits(7) == ((0, -1), (3, 1))
    assert csd_digits(-5) == ((0, -1), (2, -1))


@pytest.mark.parametrize("bad", [1.5, True, "3", None])
def test_csd_digits_rejects_non_integer(bad):
    with pytest.raises(TypeError, match=rf"^constant must be an integer, not {bad!r}$"):
        csd_digits(bad)


def test_linear_combination_argument_errors():
    x = Signal(signed(8))
    with pytest.raises(ValueError, match=r"^width must be a positive integer, not 0$"):
        linear_combination([(3, x)], width=0)
    with pytest.raises(ValueError, match=r"^width must be a positive integer, not True$"):
        linear_combination([(3, x)], width=True)
    with pytest.raises(TypeError, match=r"^coefficient of term 1 must be an integer, not 0.5$"):
        linear_combination([(3, x), (0.5, x)])
    with pytest.raises(TypeError, match=r"^term 0 must be a \(coefficient, value\) pair"):
        linear_combination([x])
    with pytest.raises(TypeError):
        constant_multiply("not a value", 3)


def random_combinations(seed: int):
    """Random coefficient lists over signals of random signed and unsigned shapes."""
    rng = random.Random(seed)
    cases = []
    for n in range(30):
        count = rng.randint(1, 6)
        signals = [Signal(signed(rng.randint(1, 12)) if rng.random() < 0.6
                          else unsigned(rng.randint(1, 12)), name=f"x{n}_{k}")
                   for k in range(count)]
        coefficients = [rng.choice([0, 1, -1, 2, -2, 3, -3, 4, -5, 7, 8, -8, -13, 100, 255,
                                    -(1 << 20) + 1]) for _ in range(count)]
        cases.append((coefficients, signals))
    return cases


def shape_range(shape):
    return signed_range(shape.width) if shape.signed else (0, (1 << shape.width) - 1)


def test_linear_combination_exact_in_simulation():
    rng = random.Random(7)
    m = Module()
    checks = []
    for n, (coefficients, signals) in enumerate(random_combinations(3)):
        exact = linear_combination(list(zip(coefficients, signals)))
        ranges = [shape_range(s.shape()) for s in signals]
        lo = sum(min(c * a, c * b) for c, (a, b) in zip(coefficients, ranges))
        hi = sum(max(c * a, c * b) for c, (a, b) in zip(coefficients, ranges))
        assert exact.shape() == signed(bits_for_range(lo, hi))
        # A caller-given width narrower than the shapes allow: exact whenever the true value
        # fits (odd trials keep the operands in a quarter of their range so it often does).
        narrow = bits_for_range(lo // 4 - 1, hi // 4 + 1) if hi - lo > 64 else None
        out_exact = Signal(exact.shape(), name=f"exact{n}")
        case = m.submodules[f"case_{n}"] = Module()    # own process: settles on its inputs
        case.d.comb += out_exact.eq(exact)
        out_narrow = None
        if narrow is not None:
            cut = linear_combination(list(zip(coefficients, signals)), width=narrow)
            assert cut.shape() == signed(narrow)
            out_narrow = Signal(cut.shape(), name=f"narrow{n}")
            case.d.comb += out_narrow.eq(cut)
        checks.append((coefficients, signals, ranges, out_exact, out_narrow, narrow))
    product = constant_multiply(checks[0][1][0], -7, width=20)
    out_product = Signal(signed(20))
    m.d.comb += out_product.eq(product)

    narrow_checked = 0

    async def bench(ctx):
        nonlocal narrow_checked
        x = checks[0][1][0]
        for trial in range(40):
            totals = []                     # set every input first: one settle per trial
            for coefficients, signals, ranges, *_ in checks:
                values = []
                for signal, (lo, hi) in zip(signals, ranges):
                    if trial < 6:                       # all-min, all-max, then mixed
                        value = (lo, hi, rng.choice((lo, hi)))[trial % 3]
                    elif trial % 2:
                        value = rng.randint(lo // 4, hi // 4)
                    else:
                        value = rng.randint(lo, hi)
                    values.append(value)
                    ctx.set(signal, value)
                totals.append((sum(c * v for c, v in zip(coefficients, values)), values))
            for (total, values), (coefficients, _, _, out_exact, out_narrow, narrow) in zip(
                    totals, checks):
                assert ctx.get(out_exact) == total, (coefficients, values)
                if out_narrow is not None and bits_for_range(total, total) <= narrow:
                    assert ctx.get(out_narrow) == total, (coefficients, values, narrow)
                    narrow_checked += 1
            assert ctx.get(out_product) == -7 * ctx.get(x)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert narrow_checked > 100


def test_linear_combination_emits_no_multiplier():
    m = Module()
    ports = []
    for n, (coefficients, signals) in enumerate(random_combinations(5)):
        out = Signal(signed(64), name=f"out{n}")
        m.d.comb += out.eq(linear_combination(list(zip(coefficients, signals))))
        ports += signals + [out]
    text = rtlil.convert(m, ports=ports, emit_src=False)
    assert "$mul" not in text
    assert "$add" in text and "$sub" in text


def test_linear_combination_of_nothing_is_zero():
    zero = linear_combination([(0, Signal(8))], width=5)
    assert zero.shape() == signed(5)
    assert linear_combination([]).shape() == signed(1)


def transform_cases(seed: int):
    """Winograd matrices and random ones with butterfly structure (rows r, r' = E +- O;
    columns with equal magnitudes), over operands of random shapes."""
    rng = np.random.default_rng(seed)
    matrices = [AcceleratorConfig(tile=t).BT for t in TILES]
    matrices += [AcceleratorConfig(tile=t).AT for t in TILES]
    for _ in range(6):
        cols = int(rng.integers(2, 7))
        even, odd = rng.integers(-5, 6, size=(2, 2, cols))
        mixed = rng.integers(-9, 10, size=(2, cols))
        rows = np.concatenate([even + odd, even - odd, mixed])
        twin = int(rng.integers(cols))
        flip = rng.choice([-1, 1], size=len(rows))
        rows = np.concatenate([rows, (rows[:, twin] * flip)[:, None]], axis=1)
        matrices.append(rows[rng.permutation(len(rows))])
    cases = []
    for n, matrix in enumerate(matrices):
        signals = [Signal(signed(int(rng.integers(2, 11))) if rng.random() < 0.7
                          else unsigned(int(rng.integers(1, 10))), name=f"t{n}_{k}")
                   for k in range(matrix.shape[1])]
        cases.append((matrix, signals))
    return cases


def test_linear_transform_exact_in_simulation():
    m = Module()
    checks = []
    for n, (matrix, signals) in enumerate(transform_cases(9)):
        case = m.submodules[f"case_{n}"] = Module()
        outputs = linear_transform(case, matrix, signals)
        ranges = [shape_range(s.shape()) for s in signals]
        registered = []
        for r, (row, out) in enumerate(zip(matrix, outputs)):
            lo = sum(min(c * a, c * b) for c, (a, b) in zip(row, ranges))
            hi = sum(max(c * a, c * b) for c, (a, b) in zip(row, ranges))
            assert out.shape() == signed(bits_for_range(int(lo), int(hi)))
            sig = Signal(out.shape(), name=f"y{n}_{r}")
            case.d.comb += sig.eq(out)
            registered.append(sig)
        checks.append((matrix, signals, ranges, registered))
    rng = random.Random(4)

    async def bench(ctx):
        for trial in range(30):
            inputs = []
            for matrix, signals, ranges, _ in checks:
                values = [(lo, hi)[trial % 2] if trial < 2 else rng.randint(lo, hi)
                          for lo, hi in ranges]
                for signal, value in zip(signals, values):
                    ctx.set(signal, value)
                inputs.append(values)
            for values, (matrix, _, _, outputs) in zip(inputs, checks):
                expected = (matrix @ np.array(values, dtype=object)).tolist()
                assert [ctx.get(out) for out in outputs] == expected, (matrix, values)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def count_adders(build, inputs) -> int:
    """$add and $sub cells of the RTLIL of ``build(m)``'s outputs."""
    m = Module()
    outputs = build(m)
    ports = list(inputs)
    for n, out in enumerate(outputs):
        sig = Signal(out.shape(), name=f"out{n}")
        m.d.comb += sig.eq(out)
        ports.append(sig)
    text = rtlil.convert(m, ports=ports, emit_src=False)
    assert "$mul" not in text
    return text.count("cell $add ") + text.count("cell $sub ")


def test_linear_transform_shares_adders():
    """The 6x6 transforms need fewer adders than row-by-row combinations."""
    config = AcceleratorConfig(tile="6x6")
    for matrix in (config.BT, config.AT):
        values = [Signal(signed(12), name=f"x{k}") for k in range(matrix.shape[1])]
        shared = count_adders(lambda m: linear_transform(m, matrix, values), values)
        direct = count_adders(
            lambda m: [linear_combination(list(zip(row, values))) for row in matrix], values)
        assert shared < direct
    # BT: 4 butterfly rows of 4 digits cost 4 + 4 adders, the 2 others 3 each (18 direct).
    assert count_adders(lambda m: linear_transform(m, config.BT, values), values) == 14
    # AT: 4 for x1 +- x2, x3 +- x4, then 2 + 1 + 1 + 2 (14 direct).
    assert count_adders(lambda m: linear_transform(m, config.AT, values), values) == 10


def test_linear_transform_argument_errors():
    x = [Signal(signed(4)) for _ in range(3)]
    m = Module()
    with pytest.raises(ValueError, match=r"^matrix rows must have 3 coefficients \(one per "
                                         r"value\), not \[3, 2\]$"):
        linear_transform(m, [[1, 2, 3], [1, 2]], x)
    with pytest.raises(TypeError, match=r"^matrix\[1\]\[2\] must be an integer, not 0.5$"):
        linear_transform(m, [[1, 2, 3], [1, 2, 0.5]], x)
    with pytest.raises(ValueError, match=r"^width must be a positive integer, not -1$"):
        linear_transform(m, [[1, 2, 3]], x, width=-1)
    with pytest.raises(TypeError, match=r"^m must be an amaranth Module, not None$"):
        linear_transform(None, [[1, 2, 3]], x)


# -- configuration ---------------------------------------------------------------------------------

@pytest.mark.parametrize("unit", [InputTransform, OutputTransform])
def test_config_type_checked(unit):
    with pytest.raises(TypeError, match=r"^config must be a golden\.config\.AcceleratorConfig, "
                                        r"not '4x4'$"):
        unit("4x4")


def test_unsupported_tile_refused_by_config():
    with pytest.raises(ValueError, match=r"^tile must be one of 4x4, 6x6, not '5x5'$"):
        InputTransform(AcceleratorConfig(tile="5x5"))


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("requant", [False, True])
def test_signatures_follow_golden_specs(tile, requant):
    config = AcceleratorConfig(tile=tile, requant=requant)
    it, ot = InputTransform(config), OutputTransform(config)
    assert it.i.payload.shape() == to_layout(patch_spec(config))
    assert it.o.payload.shape() == to_layout(v_spec(config))
    assert ot.i.payload.shape() == to_layout(output_transform_input_spec(config))
    assert ot.o.payload.shape() == to_layout(result_spec(config))
    assert it.config is config and ot.config is config
    assert (it.latency, ot.latency) == (2, 5 if requant else 2)
    with pytest.raises(AttributeError):
        it.latency = 3


@pytest.mark.parametrize("unit", [InputTransform, OutputTransform])
def test_verilog_is_deterministic(unit):
    config = AcceleratorConfig(tile="4x4", requant=True)
    first, second = (verilog.convert(unit(config), name="unit", emit_src=False)
                     for _ in range(2))
    assert first == second
    assert "/work" not in first                 # no absolute paths


# -- input transform -------------------------------------------------------------------------------

def input_patches(config: AcceleratorConfig, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo, hi = signed_range(config.data_width)
    a = config.alpha
    checker = (np.indices((a, a)).sum(axis=0) % 2).astype(bool)
    return np.concatenate([
        rng.integers(lo, hi + 1, size=(40, a, a)),
        np.full((1, a, a), lo), np.full((1, a, a), hi), np.zeros((1, a, a), dtype=np.int64),
        np.where(checker, hi, lo)[None], np.where(checker, lo, hi)[None],
        v_bound_patches(config),
    ])


@pytest.mark.parametrize("traffic", TRAFFIC)
@pytest.mark.parametrize("tile", TILES)
def test_input_transform_bit_exact(tile, traffic):
    config = AcceleratorConfig(tile=tile)
    patches = input_patches(config, seed=len(traffic))
    expected = config.BT @ patches @ config.BT.T
    # The extreme patches reach both ends of golden's V range, so widths.v is exercised.
    assert (expected.min(), expected.max()) == config.widths.v_range
    words = [patch_spec(config).pack(p) for p in patches]
    p_valid, p_ready = TRAFFIC[traffic]
    got = run_stream(InputTransform(config), words, len(words), p_valid=p_valid,
                     p_ready=p_ready, seed=10 * TILES.index(tile) + list(TRAFFIC).index(traffic))
    v = np.array([v_spec(config).unpack(word) for word in got]).reshape(expected.shape)
    np.testing.assert_array_equal(v, expected)


@pytest.mark.parametrize("tile", TILES)
def test_input_transform_latency_and_rate(tile):
    config = AcceleratorConfig(tile=tile)
    unit = InputTransform(config)
    word = patch_spec(config).pack(np.arange(config.positions) % 100 - 50)
    latency, cycles = measure_timing(unit, word, beats=12)
    assert latency == unit.latency
    assert cycles == 12 + unit.latency


@pytest.mark.parametrize("data_width", [2, 12])
def test_input_transform_other_data_widths(data_width):
    config = AcceleratorConfig(tile="6x6", data_width=data_width)
    patches = np.concatenate([
        np.random.default_rng(data_width).integers(*signed_range(data_width), size=(10, 6, 6),
                                                   endpoint=True),
        v_bound_patches(config)])
    words = [patch_spec(config).pack(p) for p in patches]
    got = run_stream(InputTransform(config), words, len(words), p_valid=0.7, p_ready=0.7,
                     seed=data_width)
    v = np.array([v_spec(config).unpack(word) for word in got]).reshape(patches.shape)
    np.testing.assert_array_equal(v, config.BT @ patches @ config.BT.T)


# -- output transform ------------------------------------------------------------------------------

#: ``drain_positions`` of the output transforms tested: the whole tile, and beats of a few
#: positions (16 beats of 1 position on the 4x4 tile, 9 of 4 on the 6x6 one).
DRAINS = {"tile": {"4x4": None, "6x6": None}, "beats": {"4x4": 1, "6x6": 4}}


def output_words(config: AcceleratorConfig, fields: dict) -> list[int]:
    """The input beats of one output channel: one, or ``drain_beats`` of ``drain_width``
    positions each with its ``beat`` index."""
    spec, lanes = output_transform_input_spec(config), config.drain_width
    if config.drain_beats == 1:
        return [spec.pack(fields)]
    m = np.asarray(fields["m"]).ravel()
    return [spec.pack({**fields, "m": m[g * lanes:(g + 1) * lanes], "beat": g})
            for g in range(config.drain_beats)]


@pytest.mark.parametrize("drain", DRAINS)
@pytest.mark.parametrize("traffic", ["full", "both"])
@pytest.mark.parametrize("requant", [False, True])
@pytest.mark.parametrize("tile", TILES)
def test_output_transform_bit_exact(tile, requant, traffic, drain):
    config = AcceleratorConfig(tile=tile, requant=requant, drain_positions=DRAINS[drain][tile])
    tiles, biases, mult, shift, relu = output_beats(config, np.random.default_rng(11))
    expected = config.AT @ tiles @ config.AT.T + biases[:, None, None]
    # The bound tiles with extreme biases reach both ends of golden's output range.
    assert (expected.min(), expected.max()) == config.widths.output_range
    out_spec = result_spec(config)
    words = []
    for n in range(len(tiles)):
        fields = {"m": tiles[n].ravel(), "bias": int(biases[n])}
        if requant:
            fields.update(mult=int(mult[n]), shift=int(shift[n]), relu=int(relu[n]))
        words += output_words(config, fields)
    p_valid, p_ready = TRAFFIC[traffic]
    got = run_stream(OutputTransform(config), words, len(tiles), p_valid=p_valid,
                     p_ready=p_ready, seed=len(traffic) + requant)
    beats = [out_spec.unpack(word) for word in got]
    y = np.array([beat["y"] for beat in beats]).reshape(expected.shape)
    np.testing.assert_array_equal(y, expected)
    if requant:
        q = np.array([beat["q"] for beat in beats]).reshape(expected.shape)
        reference = np.concatenate([
            requantize(expected[n][None], int(mult[n]), int(shift[n]), bool(relu[n]))
            for n in range(len(tiles))])
        np.testing.assert_array_equal(q, reference)
        # The cases cover saturation both ways, ReLU zeros and unsaturated values.
        assert {-128, 0, 127} <= set(q.ravel().tolist())
        assert np.any((q > -128) & (q < 127) & (q != 0))


@pytest.mark.parametrize("drain", DRAINS)
@pytest.mark.parametrize("requant", [False, True])
@pytest.mark.parametrize("tile", TILES)
def test_output_transform_latency_and_rate(tile, requant, drain):
    """From a channel's (last) beat to its output; one output per cycle when every beat is a
    channel's last."""
    config = AcceleratorConfig(tile=tile, requant=requant, drain_positions=DRAINS[drain][tile])
    unit = OutputTransform(config)
    fields = {"m": np.arange(config.positions) - 3, "bias": -5}
    if requant:
        fields.update(mult=3, shift=2, relu=1)
    latency, cycles = measure_timing(unit, output_words(config, fields)[-1], beats=12)
    assert latency == unit.latency == output_transform_latency(config)
    assert cycles == 12 + unit.latency


def test_output_transform_narrow_config():
    """Small widths (1-bit bias, 2-bit data, one channel) stay exact at their bounds."""
    config = AcceleratorConfig(tile="4x4", data_width=2, weight_width=2, bias_width=1,
                               max_in_channels=1, requant=True)
    tiles, biases, mult, shift, relu = output_beats(config, np.random.default_rng(3))
    expected = config.AT @ tiles @ config.AT.T + biases[:, None, None]
    assert (expected.min(), expected.max()) == config.widths.output_range
    in_spec = output_transform_input_spec(config)
    words = [in_spec.pack({"m": tiles[n].ravel(), "bias": int(biases[n]),
                           "mult": int(mult[n]), "shift": int(shift[n]), "relu": int(relu[n])})
             for n in range(len(tiles))]
    got = run_stream(OutputTransform(config), words, len(words), p_valid=0.8, p_ready=0.6,
                     seed=5)
    beats = [result_spec(config).unpack(word) for word in got]
    np.testing.assert_array_equal(np.array([b["y"] for b in beats]).reshape(expected.shape),
                                  expected)
    q = np.array([b["q"] for b in beats]).reshape(expected.shape)
    for n in range(len(tiles)):
        np.testing.assert_array_equal(
            q[n], requantize(expected[n][None], int(mult[n]), int(shift[n]), bool(relu[n]))[0])


def test_requant_clamp_and_rounding_boundaries():
    """Outputs next to the int8 limits and rounding ties: M = 0, so y is the bias."""
    config = AcceleratorConfig(tile="4x4", requant=True)
    spec = output_transform_input_spec(config)
    biases = [b for centre in (-512, -258, -256, -129, -128, 0, 127, 128, 255, 256, 510)
              for b in range(centre - 3, centre + 4)]
    params = [(1, 0), (1, 1), (1, 2), (3, 2), (1, 3)]           # (mult, shift)
    beats = [(b, mult, shift, relu) for b in biases for mult, shift in params
             for relu in (0, 1)]
    words = [spec.pack({"m": np.zeros(16, dtype=np.int64), "bias": b, "mult": mult,
                        "shift": shift, "relu": relu}) for b, mult, shift, relu in beats]
    got = run_stream(OutputTransform(config), words, len(words), p_valid=1.0, p_ready=1.0,
                     seed=0)
    for (b, mult, shift, relu), word in zip(beats, got):
        q = result_spec(config).unpack(word)["q"]
        expected = requantize(np.full((1, 2, 2), b), mult, shift, bool(relu)).ravel()
        assert q.tolist() == expected.tolist(), (b, mult, shift, relu)


def test_requant_shift_beyond_golden_range():
    """Shifts 48..63 fit the 6-bit field; the unit keeps the same exact formula there."""
    config = AcceleratorConfig(tile="4x4", requant=True)
    rng = np.random.default_rng(8)
    m_lo, m_hi = accumulator_bounds(config)
    n = 24
    tiles = np.concatenate([rng.integers(m_lo, m_hi + 1, size=(n - 2, 4, 4)), [m_hi, m_lo]])
    biases = rng.integers(-(1 << 31), 1 << 31, size=n)
    mult = rng.integers(0, 1 << MULTIPLIER_BITS, size=n)
    shift = rng.integers(MAX_SHIFT + 1, 64, size=n)
    relu = rng.integers(0, 2, size=n)
    spec = output_transform_input_spec(config)
    words = [spec.pack({"m": tiles[k].ravel(), "bias": int(biases[k]), "mult": int(mult[k]),
                        "shift": int(shift[k]), "relu": int(relu[k])}) for k in range(n)]
    got = run_stream(OutputTransform(config), words, n, p_valid=0.8, p_ready=0.8, seed=8)
    for k, word in enumerate(got):
        y = config.AT @ tiles[k] @ config.AT.T + biases[k]
        expected = [min(max((int(v) * int(mult[k]) + (1 << int(shift[k] - 1))) >> int(shift[k]),
                            -128), 127) for v in y.ravel()]
        if relu[k]:
            expected = [max(v, 0) for v in expected]
        assert result_spec(config).unpack(word)["q"].tolist() == expected


@pytest.mark.parametrize("tile", TILES)
def test_units_compute_golden_layer(tile):
    """Patches -> InputTransform -> (M = sum_c U V in NumPy) -> OutputTransform equals
    golden.conv.winograd_tiles_int on random weights, bias and data."""
    config = AcceleratorConfig(tile=tile, max_in_channels=5)
    rng = np.random.default_rng(12)
    tiles, channels, kernels, a = 3, 5, 4, config.alpha
    patches = rng.integers(-128, 128, size=(tiles, channels, a, a))
    U = rng.integers(-127, 128, size=(kernels, channels, a, a))
    U[:, :, 0, :] = 0                                   # a pruned edge row
    bias = rng.integers(-(1 << 31), 1 << 31, size=kernels)
    words = [patch_spec(config).pack(p) for p in patches.reshape(-1, a, a)]
    got = run_stream(InputTransform(config), words, len(words), p_valid=0.7, p_ready=0.7,
                     seed=1)
    V = np.array([v_spec(config).unpack(w) for w in got]).reshape(tiles, channels, a, a)
    M = np.einsum("kcxy,tcxy->tkxy", U, V)
    spec = output_transform_input_spec(config)
    words = [spec.pack({"m": M[t, k].ravel(), "bias": int(bias[k])})
             for t in range(tiles) for k in range(kernels)]
    got = run_stream(OutputTransform(config), words, len(words), p_valid=0.7, p_ready=0.7,
                     seed=2)
    y = np.array([result_spec(config).unpack(w)["y"] for w in got])
    expected = winograd_tiles_int(patches, U, config.AT, config.BT, bias)
    np.testing.assert_array_equal(y.reshape(expected.shape), expected)


# -- synthesis: multiplier-free transforms ---------------------------------------------------------

@pytest.mark.parametrize("tile", TILES)
def test_transforms_have_no_multipliers(tile, yosys_cells):
    config = AcceleratorConfig(tile=tile)
    for unit in (InputTransform(config), OutputTransform(config)):
        cells = yosys_cells(unit)
        assert cells.get("$mul", 0) == 0, (type(unit).__name__, cells)
        assert cells.get("$add", 0) + cells.get("$sub", 0) > 0


@pytest.mark.parametrize("tile", TILES)
def test_requant_stage_has_m_squared_multipliers(tile, yosys_cells):
    config = AcceleratorConfig(tile=tile, requant=True)
    cells = yosys_cells(OutputTransform(config))
    assert cells.get("$mul", 0) == config.m * config.m == config.multipliers - config.n_pe
