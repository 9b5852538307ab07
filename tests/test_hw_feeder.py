"""The V feeder on its own: a window of exactly C patches per tile into the input transform,
the V chain beats' addresses, last flags and data (one beat per channel, or ``v_beats``), and
busy until the chain's end, under random patch gaps, transform backpressure and transform
output gaps."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.protocol import index_bits, patch_spec, v_beat_spec, v_part_bits
from helpers import stream_get, stream_put
from hw.feeder import VFeeder


def run_feeder(config, c, halves, *, gap, stall, seed):
    """Load one tile of ``c`` channels per entry of ``halves``; the bench plays the input
    transform (takes patches with backpressure ``stall``, returns each as a "V" word after a
    random delay) and the chain's end (``chain_end`` some cycles after the last beat).
    Returns (patches taken per tile, chain beats per tile, busy cycles per tile)."""
    dut = VFeeder(config)
    rng = np.random.default_rng(seed)
    n_tiles = len(halves)
    # Words of the patch width (the "V" words are wider); 3 beats too many.
    patches = [int.from_bytes(rng.bytes(patch_spec(config).size // 8), "little")
               for _ in range(n_tiles * c + 3)]
    state = {"taken": [], "beats": [], "busy": [], "pending": []}

    async def transform(ctx):
        # Random output gaps: a taken patch comes back as V = patch + 1 some cycles later
        # (held while the feeder is not ready).
        offered = False
        while True:
            if offered or (state["pending"] and rng.random() < 0.6):
                offered = True
                ctx.set(dut.transform_out.valid, 1)
                ctx.set(dut.transform_out.payload.as_value(), state["pending"][0] + 1)
            else:
                ctx.set(dut.transform_out.valid, 0)
            _, _, valid, ready, addr, last, data = await ctx.tick().sample(
                dut.v_out.valid, dut.transform_out.ready, dut.v_out.addr, dut.v_out.last,
                dut.v_out.data.as_value())
            assert ready or config.v_beats > 1, "the V chain never stalls"
            if offered and ready:
                state["pending"].pop(0)
                offered = False
            if valid:
                state["beats"][-1].append((addr, last, data))

    async def bench(ctx):
        ctx.set(dut.in_channels, c)
        for half in halves:
            state["beats"].append([])
            ctx.set(dut.start, 1)
            ctx.set(dut.half, half)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.half, 1 - half)             # sampled with start only
            taken = await stream_get(ctx, dut.transform_in, c, rng=rng, stall=stall)
            state["taken"].append(taken)
            state["pending"] += taken
            busy = 1                                   # the cycle of the last patch
            while not state["beats"][-1] or not state["beats"][-1][-1][1]:
                assert ctx.get(dut.busy) and busy < 400, "no last beat"
                await ctx.tick()
                busy += 1
            for _ in range(config.n_pe - 1):           # the last beat travels the chain
                assert ctx.get(dut.busy) and not ctx.get(dut.transform_in.valid)
                await ctx.tick()
                busy += 1
            ctx.set(dut.chain_end, 1)
            await ctx.tick()
            ctx.set(dut.chain_end, 0)
            state["busy"].append(busy)
            assert not ctx.get(dut.busy) and not ctx.get(dut.transform_in.valid)
            for _ in range(int(rng.integers(3))):      # idle: no patch taken
                assert not ctx.get(dut.patches.ready)
                await ctx.tick()

    async def source(ctx):
        await stream_put(ctx, dut.patches, patches, rng=rng, gap=gap)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(transform, background=True)
    sim.add_testbench(bench)
    sim.run()
    return patches, state


@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.4, 0.4)], ids=["unstalled", "stalls"])
@pytest.mark.parametrize("beats", [1, 4, 2], ids=lambda b: f"vb{b}")
@pytest.mark.parametrize("c", [1, 3, 8])
def test_feeder_window_addresses_and_last(small_config, c, beats, traffic):
    config = small_config.replace(v_beats=beats)
    gap, stall = traffic
    halves = [0, 1, 0, 1, 1]
    patches, state = run_feeder(config, c, halves, gap=gap, stall=stall, seed=c + beats)
    chan_bits, part_bits = index_bits(config.max_in_channels), v_part_bits(config)
    beat_bits = v_beat_spec(config).size
    for t, half in enumerate(halves):
        # Exactly C patches per tile, in order; the extra beats stay in the stream. Beat j of
        # a channel: its positions j * P .. (bits j * beat_bits on), address Cat(j, ch, half).
        assert state["taken"][t] == patches[t * c:(t + 1) * c]
        want = [(j | (ch << part_bits) | (half << (part_bits + chan_bits)),
                 int(ch == c - 1 and j == beats - 1),
                 ((patches[t * c + ch] + 1) >> (j * beat_bits)) & ((1 << beat_bits) - 1))
                for ch in range(c) for j in range(beats)]
        assert state["beats"][t] == want
        assert state["busy"][t] >= c * beats


def test_feeder_busy_from_start_to_chain_end(small_config):
    """Unstalled: busy rises the cycle after start and falls the cycle after chain_end."""
    config = small_config
    dut = VFeeder(config)
    seen = []

    async def bench(ctx):
        ctx.set(dut.in_channels, 2)
        ctx.set(dut.transform_in.ready, 1)
        assert not ctx.get(dut.busy) and not ctx.get(dut.patches.ready)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for cycle in range(6):
            ctx.set(dut.patches.valid, 1)
            ctx.set(dut.chain_end, int(cycle == 4))
            seen.append((ctx.get(dut.busy), ctx.get(dut.patches.ready)))
            await ctx.tick()
        seen.append((ctx.get(dut.busy), ctx.get(dut.patches.ready)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # Two patches taken (window of C = 2), then busy until the edge where chain_end is high.
    assert seen == [(1, 1), (1, 1), (1, 0), (1, 0), (1, 0), (0, 0), (0, 0)]
