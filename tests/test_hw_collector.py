"""The collector on its own: channel order, owners' banks and halves, empty-channel and
bank-mask zeroing,
bias [and requant parameters] passed through, under random backpressure; drain timing as
golden.cycles models it."""

import collections
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.cycles import collector_depth
from golden.protocol import (bank_read_latency, bank_word_spec, beat_bits, index_bits, m_spec,
                             output_transform_input_spec, result_bank_shape, table_spec)
from golden.schedule import result_slots
from helpers import stream_get
from hw.collector import Collector


def _random_table(config, k, rng):
    """k table rows: random owners and slots, some channels empty (owner/slot then garbage)."""
    rows = []
    b_lo, b_hi = -(1 << (config.bias_width - 1)), (1 << (config.bias_width - 1)) - 1
    for _ in range(k):
        row = {"owner": int(rng.integers(config.n_pe)),
               "slot": int(rng.integers(result_slots(config))),
               "empty": int(rng.random() < 0.3),
               "bias": int(rng.choice([b_lo, b_hi, int(rng.integers(b_lo, b_hi))]))}
        if config.requant:
            row.update(mult=int(rng.integers(1, 1 << 15)), shift=int(rng.integers(48)),
                       relu=int(rng.integers(2)))
        rows.append(row)
    return rows


def run_collector(config, rows, tiles, *, stall, seed):
    """Write ``rows`` into the table, then drain one tile per ``(half, banks)`` of ``tiles``;
    ``banks[p][address]`` is PE p's result bank: a raw M word and its ``bank_mask``. Returns
    the output beats (unpacked) and the busy cycles of each drain."""
    dut = Collector(config)
    rng = np.random.default_rng(seed)
    k = len(rows)
    tspec = table_spec(config)
    state = {"banks": None, "beats": [], "busy": []}

    async def banks(ctx):
        # Each PE's result bank read port: data and mask bank_read_latency enabled cycles after
        # the address (0 unless the PE was selected with it), held without en.
        pending = collections.deque()
        async for _, _, addr, en, select in ctx.tick().sample(dut.bank_addr, dut.bank_en,
                                                              dut.bank_select):
            if en and state["banks"] is not None:
                pending.append([state["banks"][p][addr] if select >> p & 1 else (0, 0)
                                for p in range(config.n_pe)])
                if len(pending) == bank_read_latency(config):
                    for p, (word, mask) in enumerate(pending.popleft()):
                        ctx.set(dut.bank_data[p].as_value(), word)
                        ctx.set(dut.bank_mask[p], mask)

    async def bench(ctx):
        ctx.set(dut.out_channels, k)
        for addr, row in enumerate(rows):
            ctx.set(dut.table_write.addr, addr)
            ctx.set(dut.table_write.data.as_value(), tspec.pack(row))
            ctx.set(dut.table_write.en, 1)
            await ctx.tick()
        ctx.set(dut.table_write.en, 0)
        for half, tile_banks in tiles:
            state["banks"] = tile_banks
            assert not ctx.get(dut.busy)
            ctx.set(dut.start, 1)
            ctx.set(dut.half, half)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.half, 1 - half)          # sampled with start only
            beats = await stream_get(ctx, dut.o, k * config.drain_beats, rng=rng, stall=stall)
            state["beats"].append(beats)
        for _ in range(3):                          # no beat beyond K (times the beats)
            await ctx.tick()
            assert not ctx.get(dut.o.valid) and not ctx.get(dut.busy)

    async def busy_monitor(ctx):
        count = 0
        async for _, _, busy in ctx.tick().sample(dut.busy):
            if busy:
                count += 1
            elif count:
                state["busy"].append(count)
                count = 0

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_process(banks)
    sim.add_testbench(busy_monitor, background=True)
    sim.add_testbench(bench)
    sim.run()
    spec = output_transform_input_spec(config)
    return [[spec.unpack(w) for w in beats] for beats in state["beats"]], state["busy"]


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "np"])
@pytest.mark.parametrize("requant", [False, True], ids=["plain", "requant"])
@pytest.mark.parametrize("stall", [0.0, 0.5], ids=["unstalled", "backpressure"])
@pytest.mark.parametrize("narrow", [False, True], ids=["tile", "narrow"])
def test_collector_order_banks_and_empty_channels(small_config, requant, stall, pipelined,
                                                  narrow):
    """With ``narrow`` a quarter of the positions per beat (``drain_positions``): each channel
    in four beats, each from its own bank word."""
    config = small_config.replace(requant=requant, pipelined=pipelined,
                                  drain_positions=small_config.positions // 4 if narrow
                                  else None)
    rng = np.random.default_rng(int(stall * 10) + requant + config.alpha)
    k = config.max_out_channels
    rows = _random_table(config, k, rng)
    rows[0]["empty"], rows[-1]["empty"] = 1, 0      # an empty channel and a full one at the ends
    depth = result_bank_shape(config)[0]
    words = random.Random(k + config.alpha)
    # Masks: all positions, none, and random ones.
    lanes = config.drain_width
    masks = [(1 << lanes) - 1, 0]
    tiles = [(half, [[(words.getrandbits(bank_word_spec(config).size),
                       masks[a % 2] if a < 2 else words.getrandbits(lanes))
                      for a in range(depth)]
                     for _ in range(config.n_pe)]) for half in (0, 1, 1, 0)]
    got, busy = run_collector(config, rows, tiles, stall=stall, seed=3)
    slot_bits, g_bits = index_bits(result_slots(config)), beat_bits(config)
    for (half, banks), beats in zip(tiles, got):
        assert len(beats) == k * config.drain_beats
        for n, beat in enumerate(beats):
            row, g = rows[n // config.drain_beats], n % config.drain_beats
            address = g | (row["slot"] << g_bits) | (half << (g_bits + slot_bits))
            word, mask = banks[row["owner"]][address]
            want = np.array(bank_word_spec(config).unpack(word))
            want[[not (mask >> i) & 1 for i in range(lanes)]] = 0
            np.testing.assert_array_equal(beat["m"], 0 * want if row["empty"] else want)
            assert beat.get("beat", 0) == g
            for name in ("bias", "mult", "shift", "relu"):
                if name in row:
                    assert beat[name] == row[name], (name, row, beat)
    if stall == 0:
        # golden.cycles: a drain step lasts 1 + K * G + COLLECTOR_DEPTH cycles (start, then
        # busy; G beats per channel).
        assert busy == [k * config.drain_beats + collector_depth(config) - 1] * len(tiles)


def test_collector_one_channel(small_config):
    """K = 1: a single beat per tile, the table read pipeline still right."""
    config = small_config
    rng = np.random.default_rng(1)
    rows = _random_table(config, 1, rng)
    rows[0]["empty"] = 0
    depth = 2 << index_bits(result_slots(config))
    full = (1 << config.positions) - 1
    banks = [[((p * depth + a) * 7919, full) for a in range(depth)] for p in range(config.n_pe)]
    got, busy = run_collector(config, rows, [(1, banks), (0, banks)], stall=0.0, seed=0)
    slot_bits = index_bits(result_slots(config))
    for half, beats in zip((1, 0), got):
        want, _ = banks[rows[0]["owner"]][rows[0]["slot"] | (half << slot_bits)]
        np.testing.assert_array_equal(beats[0]["m"], m_spec(config).unpack(want))
    assert busy == [1 + collector_depth(config) - 1] * 2
