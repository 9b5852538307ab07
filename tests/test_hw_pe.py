"""The zero-skip PE against golden: M_k = sum_c U[k, c] * V_c, one cycle per nonzero weight."""

import gc
import warnings

import numpy as np
import pytest
from amaranth.hdl import Fragment, UnusedElaboratable
from amaranth.sim import Simulator

from golden.encoding import encode, pack_entries
from golden.protocol import (bank_read_latency, bank_word_spec, bank_write_latency, beat_bits,
                             entry_spec, index_bits, result_bank_shape, v_address_bits,
                             v_beat_spec, v_spec)
from golden.schedule import result_slots
from hw.bram import ecp5_block_grid
from hw.pe import PIPELINE_DEPTH, ProcessingElement
from helpers import instances



def _random_u(rng, k, c, alpha, density, extreme=False):
    u = rng.integers(-127, 128, (k, c, alpha, alpha))
    if extreme:
        u = np.where(rng.random(u.shape) < 0.5, -127, 127)
    u[rng.random(u.shape) >= density] = 0
    return u


def _random_v(rng, config, c, extreme=False):
    lo, hi = config.widths.v_range
    if extreme:
        return np.where(rng.random((c, config.positions)) < 0.5, lo, hi)
    return rng.integers(lo, hi + 1, (c, config.positions))


def _bank_row(ctx, dut, config):
    """M of the slot (or beat) read last: ``bank_data`` where ``bank_mask`` is set, else 0
    (the collector's reading); also checks that the mask is a ``drain_width``-bit word."""
    lanes = config.drain_width
    row = np.array(bank_word_spec(config).unpack(ctx.get(dut.bank_data.as_value())))
    mask = ctx.get(dut.bank_mask)
    assert 0 <= mask < 1 << lanes
    return np.where([(mask >> i) & 1 for i in range(lanes)], row, 0)


async def _after_done(ctx, config):
    """The tile's last sum lands in the bank ``bank_write_latency - 1`` cycles after ``done``
    rises (a registered write): the reads start then."""
    for _ in range(bank_write_latency(config) - 1):
        await ctx.tick()


async def _read_bank(ctx, dut, config, slots, bank):
    """Every slot of result bank ``bank``, read through the bank port (``drain_beats``
    words of a slot at ``Cat(beat, slot, bank)``): [slots, positions] rows."""
    rows = []
    g_bits = beat_bits(config)
    for slot in range(slots):
        words = []
        for g in range(config.drain_beats):
            ctx.set(dut.bank_en, 1)
            ctx.set(dut.bank_select, 1)
            ctx.set(dut.bank_addr, g | (slot << g_bits) | (bank << (g_bits + index_bits(slots))))
            for _ in range(bank_read_latency(config)):      # the address held until its word
                await ctx.tick()
            words.append(_bank_row(ctx, dut, config))
        rows.append(np.concatenate(words))
    return np.array(rows)


def _run_pe(config, u, tiles, seed=0):
    """Load u's channels, then compute each V tile in ``tiles`` (alternating halves, the next
    tile streaming into the other half while the current one computes). Returns the bank
    contents per tile and the cycles from start to done."""
    dut = ProcessingElement(config)
    sparse = encode(u)
    words = pack_entries(sparse, entry_spec(config))
    chan_bits = index_bits(config.max_in_channels)
    slots = result_slots(config)
    k_count = u.shape[0]
    results, durations = [], []

    async def send_v(ctx, v, half):
        for c, row in enumerate(v):
            ctx.set(dut.v_in.valid, 1)
            ctx.set(dut.v_in.addr, c | (half << chan_bits))
            ctx.set(dut.v_in.last, int(c == len(v) - 1))
            ctx.set(dut.v_in.data.as_value(), v_spec(config).pack(row))
            await ctx.tick()
            # The chain passes the beat on one cycle later, unchanged.
            assert ctx.get(dut.v_out.valid) == 1
            assert ctx.get(dut.v_out.addr) == c | (half << chan_bits)
            assert ctx.get(dut.v_out.data.as_value()) == v_spec(config).pack(row)
        ctx.set(dut.v_in.valid, 0)

    async def bench(ctx):
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for w in words:
            ctx.set(dut.write, 1)
            ctx.set(dut.entry.as_value(), w)
            await ctx.tick()
        ctx.set(dut.write, 0)
        assert ctx.get(dut.entries) == len(words)
        assert ctx.get(dut.channels) == int(np.count_nonzero(sparse.counts))
        await send_v(ctx, tiles[0], 0)
        for t in range(len(tiles)):
            half = t % 2
            ctx.set(dut.start, 1)
            ctx.set(dut.half, half)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles = 1
            if t + 1 < len(tiles):
                await send_v(ctx, tiles[t + 1], 1 - half)
                cycles += len(tiles[t + 1])
            while not ctx.get(dut.done):
                await ctx.tick()
                cycles += 1
            durations.append(cycles)
            await _after_done(ctx, config)
            bank = await _read_bank(ctx, dut, config, slots, half)
            results.append(bank[:k_count])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return sparse, results, durations


def _expected(u, v, config):
    """M [K, alpha**2] of each nonempty channel, in slot order (nonempty channels in k order)."""
    full = np.einsum("kcp,cp->kp", u.reshape(u.shape[0], u.shape[1], -1), v)
    return full[np.any(u.reshape(u.shape[0], -1) != 0, axis=1)]


@pytest.mark.parametrize("narrow", [False, True], ids=["tile", "narrow"])
@pytest.mark.parametrize("density", [1.0, 0.3, 0.0])
def test_pe_matches_golden(small_config, density, narrow):
    """With ``narrow`` the result bank holds a quarter of the positions per word
    (``drain_positions``; 9 on the 6x6 tile: lanes not a power of two)."""
    config = small_config.replace(drain_positions=small_config.positions // 4 if narrow
                                  else None)
    rng = np.random.default_rng(int(density * 10) + config.alpha)
    slots = result_slots(config)
    c = config.max_in_channels - 1
    u = _random_u(rng, slots, c, config.alpha, density)
    tiles = [_random_v(rng, config, c) for _ in range(3)]
    sparse, results, durations = _run_pe(config, u, tiles)
    for v, got in zip(tiles, results):
        want = _expected(u, v, config)
        np.testing.assert_array_equal(got[:len(want)], want)
    n = sparse.nnz
    # A tile costs one cycle per nonzero weight plus the pipeline, never more.
    for d in durations[:-1]:
        assert d == max(n + PIPELINE_DEPTH, c + 1) if n else d == max(1, c + 1)
    assert durations[-1] == (n + PIPELINE_DEPTH if n else 1)


def test_pe_extreme_values_at_max_channels(small_config):
    """Weights +-127 and V at its range ends over max_in_channels: the widest sums fit."""
    config = small_config
    rng = np.random.default_rng(7)
    c = config.max_in_channels
    lo, hi = config.widths.v_range
    # Channel 0 reaches the positive extreme, channel 1 the negative one.
    u = np.stack([np.full((c, config.alpha, config.alpha), 127),
                  np.full((c, config.alpha, config.alpha), -127)])
    tiles = [np.full((c, config.positions), lo), np.full((c, config.positions), hi),
             _random_v(rng, config, c, extreme=True)]
    _, results, _ = _run_pe(config, u, tiles)
    for v, got in zip(tiles, results):
        np.testing.assert_array_equal(got, _expected(u, v, config))


@pytest.mark.parametrize("kept", [(0,), (-1,), (0, -1)], ids=["first", "last", "first+last"])
def test_pe_back_to_back_entries_at_one_position(small_config, kept):
    """Weights only at one or two positions: consecutive entries hit the same accumulator
    (forwarded from the add stage), also across ``last`` into the next output channel, and
    single-entry channels follow each other."""
    config = small_config
    rng = np.random.default_rng(11 + len(kept) + config.alpha)
    slots = result_slots(config)
    c = config.max_in_channels
    u = np.zeros((slots, c, config.positions), dtype=np.int64)
    for position in kept:
        u[:, :, position] = rng.integers(-127, 128, (slots, c)) | 1
    u[0, 1:] = 0                                   # a short channel right before `last`
    u[-1, :, kept[0]] = 127                        # back-to-back at the extreme
    u = u.reshape(slots, c, config.alpha, config.alpha)
    tiles = [_random_v(rng, config, c, extreme=e) for e in (True, False, True)]
    sparse, results, durations = _run_pe(config, u, tiles)
    for v, got in zip(tiles, results):
        np.testing.assert_array_equal(got, _expected(u, v, config))
    assert durations[-1] == sparse.nnz + PIPELINE_DEPTH


def test_pe_rejects_non_config():
    with warnings.catch_warnings():
        # The half-built component is never elaborated; that is the point.
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(TypeError, match="config must be a golden.config.AcceleratorConfig"):
            ProcessingElement("4x4")
        gc.collect()


def test_pe_two_banks_load_while_computing(small_config):
    """weight_banks 2: layer B loads into bank 1 (clear, writes) while a tile of layer A
    computes from bank 0; both tiles are exact, the counters show the loading bank, and a tile
    costs its own layer's entries."""
    config = small_config.replace(weight_banks=2)
    rng = np.random.default_rng(21)
    slots, c = result_slots(config), 3
    u_a = _random_u(rng, slots, c, config.alpha, 0.5)
    u_b = _random_u(rng, slots, c, config.alpha, 0.2)
    words = [pack_entries(encode(u), entry_spec(config)) for u in (u_a, u_b)]
    v = _random_v(rng, config, c)
    dut = ProcessingElement(config)
    chan_bits = index_bits(config.max_in_channels)
    got, durations = [], []

    async def write(ctx, bank, entries):
        ctx.set(dut.load_bank, bank)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for w in entries:
            ctx.set(dut.write, 1)
            ctx.set(dut.entry.as_value(), w)
            await ctx.tick()
        ctx.set(dut.write, 0)

    async def bench(ctx):
        await write(ctx, 0, words[0])
        for ch, row in enumerate(v):                       # V into both halves
            for half in (0, 1):
                ctx.set(dut.v_in.valid, 1)
                ctx.set(dut.v_in.addr, ch | (half << chan_bits))
                ctx.set(dut.v_in.data.as_value(), v_spec(config).pack(row))
                await ctx.tick()
        ctx.set(dut.v_in.valid, 0)
        for tile, bank in enumerate((0, 1)):
            ctx.set(dut.start, 1)
            ctx.set(dut.half, tile)
            ctx.set(dut.run_bank, bank)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles = 1
            if tile == 0:                                  # load B meanwhile
                await write(ctx, 1, words[1])
                cycles += 1 + len(words[1])
                assert ctx.get(dut.entries) == len(words[1])
                ctx.set(dut.load_bank, 0)
                await ctx.tick()
                cycles += 1
                assert ctx.get(dut.entries) == len(words[0])
            while not ctx.get(dut.done):
                await ctx.tick()
                cycles += 1
            durations.append(cycles)
            await _after_done(ctx, config)
            got.append(await _read_bank(ctx, dut, config, slots, tile))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for u, rows in zip((u_a, u_b), got):
        want = _expected(u, v, config)
        np.testing.assert_array_equal(rows[:len(want)], want)
    assert durations[1] == len(words[1]) + PIPELINE_DEPTH
    assert durations[0] == max(len(words[0]) + PIPELINE_DEPTH, 2 + len(words[1]) + 1)


def _load(ctx, dut, words):
    """Clear the PE and write ``words`` (an async helper of the tests below)."""
    async def run():
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for w in words:
            ctx.set(dut.write, 1)
            ctx.set(dut.entry.as_value(), w)
            await ctx.tick()
        ctx.set(dut.write, 0)
    return run()


def test_pe_mask_hides_the_previous_layer(small_config):
    """A dense layer leaves sums at every position of every slot; the next layer has weights
    at a few positions only. Its ``bank_mask`` is exactly those positions, so the stale sums of
    the previous layer under the cleared bits read as 0."""
    config = small_config
    rng = np.random.default_rng(5)
    slots, c = result_slots(config), config.max_in_channels
    u_dense = _random_u(rng, slots, c, config.alpha, 1.0)
    u_sparse = np.zeros_like(u_dense).reshape(slots, c, config.positions)
    for k in range(slots):
        kept = rng.choice(config.positions, size=1 + k % 3, replace=False)
        u_sparse[k][:, kept] = rng.integers(1, 128, (c, kept.size))
    u_sparse = u_sparse.reshape(u_dense.shape)
    v = _random_v(rng, config, c)
    dut = ProcessingElement(config)
    rows, masks = [], []

    async def bench(ctx):
        for row_c, row in enumerate(v):
            ctx.set(dut.v_in.valid, 1)
            ctx.set(dut.v_in.addr, row_c)
            ctx.set(dut.v_in.data.as_value(), v_spec(config).pack(row))
            await ctx.tick()
        ctx.set(dut.v_in.valid, 0)
        for u in (u_dense, u_sparse):
            await _load(ctx, dut, pack_entries(encode(u), entry_spec(config)))
            ctx.set(dut.start, 1)
            ctx.set(dut.half, 0)
            await ctx.tick()
            ctx.set(dut.start, 0)
            while not ctx.get(dut.done):
                await ctx.tick()
        await _after_done(ctx, config)
        for slot in range(slots):
            ctx.set(dut.bank_en, 1)
            ctx.set(dut.bank_select, 1)
            ctx.set(dut.bank_addr, slot)
            for _ in range(bank_read_latency(config)):
                await ctx.tick()
            rows.append(_bank_row(ctx, dut, config))
            masks.append(ctx.get(dut.bank_mask))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    np.testing.assert_array_equal(np.array(rows), _expected(u_sparse, v, config))
    nonzero = np.any(u_sparse.reshape(slots, c, -1) != 0, axis=1)
    assert masks == [sum(1 << int(i) for i in np.flatnonzero(row)) for row in nonzero]


@pytest.mark.parametrize("positions, ordered", [
    ((3, 3, 5), True), ((0, 2, 1), False), ((2, 0), False)])
def test_pe_ordered_flags_a_position_going_back(small_config, positions, ordered):
    """``ordered`` falls when an entry's position is below the previous one of its channel
    (the single accumulator could not sum it); ``last`` starts a new channel and ``clear``
    raises the flag again."""
    config = small_config
    spec = entry_spec(config)
    dut = ProcessingElement(config)
    words = [spec.pack({"value": 1, "position": p, "channel": 0, "last": 0})
             for p in positions[:-1]]
    words.append(spec.pack({"value": 1, "position": positions[-1], "channel": 0, "last": 1}))
    # A new channel may start at any position.
    words.append(spec.pack({"value": 1, "position": 0, "channel": 0, "last": 1}))
    seen = []

    async def bench(ctx):
        await _load(ctx, dut, words)
        seen.append(ctx.get(dut.ordered))
        await _load(ctx, dut, [])
        seen.append(ctx.get(dut.ordered))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [int(ordered), 1]


@pytest.mark.parametrize("narrow, pipelined", [(False, True), (True, True), (True, False)],
                         ids=["tile", "narrow", "narrow-np"])
def test_pe_not_selected_reads_zero(small_config, narrow, pipelined):
    """A PE that does not own the channel read (``bank_select`` low with ``bank_en``) outputs 0
    data and mask, so the collector ORs the PEs; without ``bank_en`` both hold (a narrow
    bank's word too: block RAM, zeroed after its read, in two cycles when pipelined)."""
    config = small_config.replace(drain_positions=small_config.positions // 4 if narrow
                                  else None, pipelined=pipelined)
    assert config.n_pe > 1
    rng = np.random.default_rng(9)
    slots, c = result_slots(config), 2
    u = _random_u(rng, slots, c, config.alpha, 1.0)
    v = _random_v(rng, config, c)
    dut = ProcessingElement(config)
    seen = []

    async def bench(ctx):
        for row_c, row in enumerate(v):
            ctx.set(dut.v_in.valid, 1)
            ctx.set(dut.v_in.addr, row_c)
            ctx.set(dut.v_in.data.as_value(), v_spec(config).pack(row))
            await ctx.tick()
        ctx.set(dut.v_in.valid, 0)
        await _load(ctx, dut, pack_entries(encode(u), entry_spec(config)))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        while not ctx.get(dut.done):
            await ctx.tick()
        await _after_done(ctx, config)
        for en, select in reads:
            ctx.set(dut.bank_en, en)
            ctx.set(dut.bank_select, select)
            await ctx.tick()
            seen.append((_bank_row(ctx, dut, config).tolist(), ctx.get(dut.bank_mask)))

    reads = ((1, 1), (1, 1), (0, 0), (1, 0), (0, 1), (1, 1), (1, 0), (1, 1), (0, 0))
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    lanes = config.drain_width
    full = (_expected(u, v, config)[0][:lanes].tolist(), (1 << lanes) - 1)
    zero = ([0] * lanes, 0)
    # The read of the select bank_read_latency enabled cycles back, held while en is low.
    latency, selects, want = bank_read_latency(config), [], []
    for en, select in reads:
        selects += [select] if en else []
        want.append(None if len(selects) < latency else full if selects[-latency] else zero)
    assert [s for s, w in zip(seen, want) if w is not None] == [w for w in want if w]
    assert want.count(None) == latency - 1 and zero in want and full in want


@pytest.mark.parametrize("banks", [1, 2])
def test_pe_full_at_the_depth_per_bank(small_config, banks):
    """``full`` (a register set with the last write) and ``entries`` after every write, writes
    beyond the depth ignored, ``clear``; with two banks each bank its own."""
    config = small_config.replace(weight_depth=5, weight_banks=banks)
    dut = ProcessingElement(config)
    entry = pack_entries(encode(_random_u(np.random.default_rng(3), 1, 1, config.alpha, 1.0)),
                         entry_spec(config))[0]
    seen, want = [], []

    async def bench(ctx):
        async def write(n, bank=0):
            if banks == 2:
                ctx.set(dut.load_bank, bank)
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            seen.append((ctx.get(dut.entries), ctx.get(dut.full)))
            want.append((0, 0))
            ctx.set(dut.entry.as_value(), entry)
            for k in range(1, n + 1):
                ctx.set(dut.write, 1)
                await ctx.tick()
                seen.append((ctx.get(dut.entries), ctx.get(dut.full)))
                want.append((min(k, 5), int(k >= 5)))
            ctx.set(dut.write, 0)

        await write(7)
        await write(3)
        if banks == 2:
            await write(6, bank=1)
            await write(2, bank=0)
            ctx.set(dut.load_bank, 1)
            await ctx.tick()
            seen.append((ctx.get(dut.entries), ctx.get(dut.full)))
            want.append((5, 1))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == want


def test_pe_weight_memory_is_block_ram_with_output_registers_on_ecp5(small_config):
    """On ECP5 the weight memory is DP16KD with REGMODE_B OUTREG: the ``latch`` stage is the
    block RAM's own register (the cycle tests above run the same PE pipeline depth)."""
    class Platform:
        family = "ecp5"

    config = small_config.replace(weight_banks=2)
    found = instances(ProcessingElement(config), Platform())
    blocks = [i for i in found if i.type == "DP16KD"]
    _bits, columns, rows = ecp5_block_grid(entry_spec(config).size, config.pe_weight_depth)
    assert len(blocks) == 2 * columns * rows
    assert all(b.parameters["REGMODE_B"] == "OUTREG" for b in blocks)


def test_pe_narrow_result_bank_reads_through_block_ram_registers_on_ecp5(small_config):
    """On ECP5 a pipelined PE's narrow result bank is DP16KD with REGMODE_B OUTREG, one
    memory per element of a beat (``golden.protocol.bank_read_latency`` 2), beside the weight
    memory's blocks; not pipelined, it is left to Yosys (a Memory, no instance)."""
    class Platform:
        family = "ecp5"

    config = small_config.replace(drain_positions=small_config.positions // 4)
    assert bank_read_latency(config) == 2
    blocks = [i for i in instances(ProcessingElement(config), Platform()) if i.type == "DP16KD"]
    _bits, columns, rows = ecp5_block_grid(entry_spec(config).size, config.pe_weight_depth)
    _bits, lane_columns, lane_rows = ecp5_block_grid(config.widths.accumulator,
                                                     result_bank_shape(config)[0])
    assert len(blocks) == columns * rows + config.drain_width * lane_columns * lane_rows
    assert all(b.parameters["REGMODE_B"] == "OUTREG" for b in blocks)
    plain = config.replace(pipelined=False)
    assert bank_read_latency(plain) == 1
    found = instances(ProcessingElement(plain), Platform())
    assert len([i for i in found if i.type == "DP16KD"]) == columns * rows


def test_pe_deep_v_memory_reads_through_block_ram_registers_on_ecp5(small_config):
    """With ``v_beats`` above 1 a pipelined PE's V memory is DP16KD with REGMODE_B OUTREG on
    ECP5 (its output register is the ``hold`` stage); with one beat per channel, or not
    pipelined, it is left to Yosys (LUT-RAM for the shallow, wide default)."""
    class Platform:
        family = "ecp5"

    def v_blocks(config):
        pe = Fragment.get(ProcessingElement(config), Platform())
        v_memory = next(sub for sub, name, _src in pe.subfragments if name == "v_memory")
        return [i for i in instances(v_memory, Platform()) if i.type == "DP16KD"]

    config = small_config.replace(v_beats=4)
    blocks = v_blocks(config)
    _bits, columns, rows = ecp5_block_grid(v_beat_spec(config).size,
                                           1 << v_address_bits(config))
    assert len(blocks) == columns * rows >= 1
    assert all(b.parameters["REGMODE_B"] == "OUTREG" for b in blocks)
    assert v_blocks(config.replace(pipelined=False)) == []
    assert v_blocks(small_config) == []
