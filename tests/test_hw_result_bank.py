"""hw.result_bank on its own: narrow, pipelined banks read back what was written, two enabled
cycles after the address, the same in simulation's fabric memory and on ECP5 (DP16KD with
their output registers, through a model of the primitive); 0 when not selected."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

import hw.bram
from golden.protocol import bank_read_latency, bank_word_spec, bank_write_latency, index_bits
from golden.schedule import result_slots
from helpers import small_config
from hw.result_bank import ResultBank
from test_hw_bram import _DP16KDModel, _Platform


@pytest.mark.parametrize("family", [None, "ecp5"])
@pytest.mark.parametrize("tile", ["4x4", "6x6"])
def test_narrow_bank_reads_back_its_sums(tile, family, monkeypatch):
    monkeypatch.setattr(hw.bram, "_dp16kd", _DP16KDModel)
    config = small_config(tile)
    config = config.replace(drain_positions=config.positions // 4)
    assert bank_read_latency(config) == 2
    slots, lanes, beats = result_slots(config), config.drain_width, config.drain_beats
    rng = np.random.default_rng(5)
    lo, hi = -(1 << (config.widths.accumulator - 1)), (1 << (config.widths.accumulator - 1))
    sums = rng.integers(lo, hi, (2, slots, config.positions))
    dut = ResultBank(config)
    g_bits, slot_bits = index_bits(beats), index_bits(slots)
    seen = []

    async def bench(ctx):
        for half in range(2):
            for slot in range(slots):
                for xi in range(config.positions):
                    ctx.set(dut.write, 1)
                    ctx.set(dut.position, xi)
                    ctx.set(dut.slot, slot)
                    ctx.set(dut.half, half)
                    ctx.set(dut.sum, int(sums[half, slot, xi]))
                    ctx.set(dut.mask_write, xi == config.positions - 1)
                    ctx.set(dut.mask, (1 << config.positions) - 1)
                    await ctx.tick()
        ctx.set(dut.write, 0)
        ctx.set(dut.mask_write, 0)
        reads = [(h, s, g, int(rng.integers(0, 2))) for h in range(2) for s in range(slots)
                 for g in range(beats)]
        ctx.set(dut.read_en, 1)
        for n in range(len(reads) + 1):
            if n < len(reads):
                h, s, g, select = reads[n]
                ctx.set(dut.read_addr, g | (s << g_bits) | (h << (g_bits + slot_bits)))
                ctx.set(dut.read_select, select)
            await ctx.tick()
            if n >= 1:
                seen.append((reads[n - 1], ctx.get(dut.read_data.as_value()),
                             ctx.get(dut.read_mask)))

    platform = None if family is None else _Platform(family)
    sim = Simulator(Fragment.get(dut, platform))
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    spec = bank_word_spec(config)
    for (h, s, g, select), word, mask in seen:
        want = sums[h, s, g * lanes:(g + 1) * lanes].tolist() if select else [0] * lanes
        assert list(spec.unpack(word)) == want and mask == ((1 << lanes) - 1 if select else 0)
    assert len(seen) == 2 * slots * beats


@pytest.mark.parametrize("family", [None, "ecp5"])
@pytest.mark.parametrize("pipelined", [True, False])
def test_write_lands_after_bank_write_latency(pipelined, family, monkeypatch):
    """A word read ``bank_write_latency`` cycles after its write holds the new sum, one cycle
    earlier the old one: the registered write of the pipelined narrow bank lands a cycle
    late, and the PE's ``done`` contract (read from the cycle after it rises) depends on it."""
    monkeypatch.setattr(hw.bram, "_dp16kd", _DP16KDModel)
    config = small_config("4x4").replace(pipelined=pipelined, drain_positions=4)
    latency = bank_write_latency(config)
    assert latency == (2 if pipelined else 1)
    dut = ResultBank(config)
    old, new = -12345, 6789
    lanes = config.drain_width
    got = {}

    async def bench(ctx):
        ctx.set(dut.read_select, 1)
        for delay in (latency - 1, latency):
            ctx.set(dut.write, 1)
            ctx.set(dut.sum, old)
            await ctx.tick()
            ctx.set(dut.write, 0)
            for _ in range(3):
                await ctx.tick()
            ctx.set(dut.write, 1)           # cycle W: the new sum presented
            ctx.set(dut.sum, new)
            for cycle in range(delay + 1):
                ctx.set(dut.read_en, cycle == delay)    # the address sampled in W + delay
                await ctx.tick()
                ctx.set(dut.write, 0)
            for _ in range(bank_read_latency(config) - 1):
                await ctx.tick()
            ctx.set(dut.read_en, 0)
            got[delay] = bank_word_spec(config).unpack(ctx.get(dut.read_data.as_value()))[0]

    platform = None if family is None else _Platform(family)
    sim = Simulator(Fragment.get(dut, platform))
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert lanes == 4
    assert got == {latency - 1: old, latency: new}
