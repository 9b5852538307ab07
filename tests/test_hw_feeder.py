"""The V feeder on its own: a window of exactly C patches per tile into the input transform,
the V chain beats' addresses, last flags and data, and busy until the chain's end, under random
patch gaps, transform backpressure and transform output gaps."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.protocol import index_bits
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
    patches = [int(w) for w in rng.integers(0, 1 << 30, n_tiles * c + 3)]   # 3 beats too many
    state = {"taken": [], "beats": [], "busy": [], "pending": []}

    async def transform(ctx):
        # Random output gaps: a taken patch comes back as V = patch + 1 some cycles later.
        while True:
            if state["pending"] and rng.random() < 0.6:
                ctx.set(dut.transform_out.valid, 1)
                ctx.set(dut.transform_out.payload.as_value(), state["pending"].pop(0) + 1)
            else:
                ctx.set(dut.transform_out.valid, 0)
            _, _, valid, ready, addr, last, data = await ctx.tick().sample(
                dut.v_out.valid, dut.transform_out.ready, dut.v_out.addr, dut.v_out.last,
                dut.v_out.data.as_value())
            assert ready, "the V chain never stalls"
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
                assert ctx.get(dut.busy) and busy < 100, "no last beat"
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
@pytest.mark.parametrize("c", [1, 3, 8])
def test_feeder_window_addresses_and_last(small_config, c, traffic):
    config = small_config
    gap, stall = traffic
    halves = [0, 1, 0, 1, 1]
    patches, state = run_feeder(config, c, halves, gap=gap, stall=stall, seed=c)
    chan_bits = index_bits(config.max_in_channels)
    for t, half in enumerate(halves):
        # Exactly C patches per tile, in order; the extra beats stay in the stream.
        assert state["taken"][t] == patches[t * c:(t + 1) * c]
        want = [(ch | (half << chan_bits), int(ch == c - 1), patches[t * c + ch] + 1)
                for ch in range(c)]
        assert state["beats"][t] == want
        assert state["busy"][t] >= c


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
