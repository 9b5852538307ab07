"""The tap shift stage: bit-exact left shifts at the accumulator's extremes and random values,
the beat passed through unchanged otherwise, the handshake combinational, no multiplier; with
the output transform behind it, golden.conv's tap-shifted layer."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.config import AcceleratorConfig
from golden.conv import winograd_tiles_int
from golden.protocol import (collector_output_spec, output_transform_input_spec, result_spec,
                             tap_left_spec)
from golden.synthetic import random_tap_shift
from hw.tap_shift import TapShift
from hw.transform import OutputTransform

TILES = ("4x4", "6x6")


def _beats(config, rng, n):
    lo, hi = config.widths.accumulator_range
    M = rng.integers(lo, hi + 1, (n, config.positions))
    M[0], M[1] = lo, hi                                   # the extremes, shifted the most
    M[2, ::2], M[2, 1::2] = hi, lo
    bias = rng.integers(-(1 << (config.bias_width - 1)), 1 << (config.bias_width - 1), n)
    return M, bias


def _fields(config, M, bias, n):
    fields = {"m": M[n], "bias": int(bias[n])}
    if config.requant:
        fields.update(mult=n + 1, shift=n % 48, relu=n % 2)
    return fields


@pytest.mark.parametrize("requant", [False, True])
@pytest.mark.parametrize("tile, shift", [("4x4", 1), ("4x4", 6), ("6x6", 9), ("6x6", 15)])
def test_shift_stage_bit_exact(tile, shift, requant):
    config = AcceleratorConfig(tile=tile, max_tap_shift=shift, requant=requant)
    rng = np.random.default_rng(shift)
    dut = TapShift(config)
    M, bias = _beats(config, rng, 12)
    lefts = [np.full(config.positions, shift), np.zeros(config.positions, int)]
    lefts += [rng.integers(0, shift + 1, config.positions) for _ in range(10)]
    in_spec, out_spec = collector_output_spec(config), output_transform_input_spec(config)
    assert out_spec.fields[0].spec.width == config.widths.shifted
    assert config.widths.shifted == config.widths.accumulator + shift

    async def bench(ctx):
        for n in range(len(M)):
            for valid, ready in ((1, 1), (1, 0), (0, 1)):
                ctx.set(dut.i.payload.as_value(), in_spec.pack(_fields(config, M, bias, n)))
                ctx.set(dut.tap_left.as_value(), tap_left_spec(config).pack(lefts[n]))
                ctx.set(dut.i.valid, valid)
                ctx.set(dut.o.ready, ready)
                await ctx.delay(1e-9)
                assert (ctx.get(dut.o.valid), ctx.get(dut.i.ready)) == (valid, ready)
                beat = out_spec.unpack(ctx.get(dut.o.payload.as_value()))
                want = _fields(config, M, bias, n)
                assert beat["m"].tolist() == (M[n] * (1 << lefts[n])).tolist()
                assert {k: v for k, v in beat.items() if k != "m"} == {
                    k: v for k, v in want.items() if k != "m"}

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


def test_shift_stage_parameters_are_checked():
    with pytest.raises(TypeError, match=r"^config must be a golden.config.AcceleratorConfig, "
                                        r"not 3$"):
        TapShift(3)
    with pytest.raises(ValueError, match=r"^config.max_tap_shift must be at least 1 for a tap "
                                         r"shift stage, not 0$"):
        TapShift(AcceleratorConfig())


@pytest.mark.parametrize("tile", TILES)
def test_shift_stage_then_output_transform_is_golden(tile):
    """Random patches, weights and tap shifts: the collector's M through the shift stage and
    the output transform equals golden.conv.winograd_tiles_int with the tap shifts."""
    config = AcceleratorConfig(tile=tile, max_in_channels=5, max_tap_shift=12)
    rng = np.random.default_rng(4)
    a, tiles, channels, kernels = config.alpha, 3, 5, 4
    patches = rng.integers(-128, 128, (tiles, channels, a, a))
    U = rng.integers(-127, 128, (kernels, channels, a, a))
    bias = rng.integers(-(1 << 31), 1 << 31, kernels)
    tap_shift = random_tap_shift(rng, a, 12)
    left = (int(tap_shift.max()) - tap_shift.astype(np.int64)).ravel()
    V = config.BT @ patches @ config.BT.T
    M = np.einsum("kcxy,tcxy->tkxy", U, V).reshape(tiles * kernels, -1)
    shift, otf = TapShift(config), OutputTransform(config)
    in_spec = collector_output_spec(config)
    got = []

    async def bench(ctx):
        ctx.set(shift.tap_left.as_value(), tap_left_spec(config).pack(left))
        ctx.set(otf.o.ready, 1)
        for n in range(len(M)):
            ctx.set(shift.i.payload.as_value(),
                    in_spec.pack({"m": M[n], "bias": int(bias[n % kernels])}))
            ctx.set(shift.i.valid, 1)
            await ctx.delay(1e-9)
            ctx.set(otf.i.payload.as_value(), ctx.get(shift.o.payload.as_value()))
            ctx.set(otf.i.valid, ctx.get(shift.o.valid))
            await ctx.tick()
            if ctx.get(otf.o.valid):
                got.append(ctx.get(otf.o.payload.as_value()))
        ctx.set(otf.i.valid, 0)
        for _ in range(4):
            await ctx.tick()
            if ctx.get(otf.o.valid):
                got.append(ctx.get(otf.o.payload.as_value()))

    from amaranth.hdl import Module
    top = Module()
    top.submodules.shift, top.submodules.otf = shift, otf
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    y = np.array([result_spec(config).unpack(w)["y"] for w in got])
    expected = winograd_tiles_int(patches, U, config.AT, config.BT, bias, tap_shift=tap_shift)
    np.testing.assert_array_equal(y.reshape(expected.shape), expected)


@pytest.mark.parametrize("tile", TILES)
def test_shift_stage_has_no_multiplier(tile, yosys_cells):
    cells = yosys_cells(TapShift(AcceleratorConfig(tile=tile, max_tap_shift=9)))
    assert cells.get("$mul", 0) == 0, cells
