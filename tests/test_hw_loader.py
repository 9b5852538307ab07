"""The program loader on its own: real layer programs (golden.program) loaded into the channel
table and the PEs in order under random gaps, the one-cycle check and hand-off, and the refusal
of every bad cfg, table and weights beat (error set, nothing further consumed, no start)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.program import compile_layer
from golden.protocol import cfg_spec, entry_spec, table_spec, weight_spec
from golden.schedule import result_slots
from golden.synthetic import synthetic_layer
from helpers import small_config, stream_put
from hw.loader import ProgramLoader

#: 3 PEs (PE index 3 and slot 3 exist in their fields but not in the design), a 6x6 tile
#: (positions 36..63 exist in the field) and 6 entries per PE.
REFUSING = small_config("6x6", array=(1, 3), weight_depth=6)


def run_loader(config, streams, *, gap=0.0, seed=0, finish_after=3, cycles=None):
    """Offer ``streams`` (cfg/table/weights words) with random gaps to a loader whose PEs are
    modelled (entry and channel counters); pulse ``finished`` ``finish_after`` cycles after
    ``start``. Returns a dict of what happened (edges count from the simulation start)."""
    dut = ProgramLoader(config)
    lanes = config.weight_lanes
    lane_entries = [dut.pe_entry] if lanes == 1 else list(dut.pe_entry)
    rng = np.random.default_rng(seed)
    depth, slots = config.pe_weight_depth, result_slots(config)
    log = {name: [] for name in ("cfg", "table", "weights", "table_writes", "pe_writes",
                                 "start", "clear")}

    async def pes(ctx):
        entries, channels = [0] * config.n_pe, [0] * config.n_pe
        # The PE's order check: (previous position, channel open, ordered) per PE.
        order = [(0, False, True)] * config.n_pe
        ctx.set(dut.pe_ordered, (1 << config.n_pe) - 1)
        async for _, _, clear, write, *entry in ctx.tick().sample(
                dut.pe_clear, dut.pe_write, *(e.as_value() for e in lane_entries)):
            for p in range(config.n_pe):
                fields = entry_spec(config).unpack(entry[p % lanes])
                last, position = fields["last"], fields["position"]
                if clear:
                    entries[p] = channels[p] = 0
                    order[p] = (0, False, True)
                elif write >> p & 1 and entries[p] < depth:
                    entries[p] += 1
                    channels[p] += bool(last) and channels[p] != slots
                    previous, open_channel, ordered = order[p]
                    order[p] = (position, not last,
                                ordered and not (open_channel and position < previous))
                ctx.set(dut.pe_channels[p], channels[p])
            ctx.set(dut.pe_ordered, sum(1 << p for p in range(config.n_pe) if order[p][2]))
            ctx.set(dut.pe_full, sum(1 << p for p in range(config.n_pe) if entries[p] == depth))

    async def monitor(ctx):
        edge = 0
        async for _, _, en, addr, data, write, start, clear, *entry in ctx.tick().sample(
                dut.table_write.en, dut.table_write.addr, dut.table_write.data.as_value(),
                dut.pe_write, dut.start, dut.pe_clear, *(e.as_value() for e in lane_entries)):
            if en:
                log["table_writes"].append((addr, data))
            for p in range(config.n_pe):
                if write >> p & 1:
                    log["pe_writes"].append((p, entry[p % lanes]))
            if start:
                log["start"].append(edge)
            if clear:
                log["clear"].append(edge)
            edge += 1

    def source(name):
        async def bench(ctx):
            await stream_put(ctx, getattr(dut, name), streams.get(name, []),
                             rng=np.random.default_rng(rng.integers(1 << 30)), gap=gap,
                             on_transfer=lambda edge: log[name].append(edge))
        return bench

    async def host(ctx):
        for cycle in range(cycles or 2000):
            if log["start"] and cycle == log["start"][-1] + finish_after:
                ctx.set(dut.finished, 1)
            else:
                ctx.set(dut.finished, 0)
            await ctx.tick()
        log.update(error=ctx.get(dut.error), busy=ctx.get(dut.busy),
                   cfg_ready=ctx.get(dut.cfg.ready),
                   layer=ctx.get(dut.layer.as_value()))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_process(pes)
    sim.add_testbench(monitor, background=True)
    for name in ("cfg", "table", "weights"):
        sim.add_testbench(source(name), background=True)
    sim.add_testbench(host)
    sim.run()
    return log


def _program(config, c, k, density, seed):
    layer = synthetic_layer(config, c, k, 1 - density, seed=seed)
    return compile_layer(config, layer, 5, 6)


def _streams(*programs):
    return {"cfg": sum((p.cfg_words for p in programs), []),
            "table": sum((p.table_words for p in programs), []),
            "weights": sum((p.weight_words for p in programs), [])}


def _pe_entries(config, program):
    """(PE, raw entry) of every weights beat (every valid lane, PEs ascending), as the PEs must
    receive them."""
    spec, lanes = weight_spec(config), config.weight_lanes
    out = []
    for w in program.weight_words:
        beat = spec.unpack(w)
        if lanes == 1:
            out.append((beat["pe"], entry_spec(config).pack(beat["entry"])))
            continue
        out += [(beat["group"] * lanes + j, entry_spec(config).pack(beat[f"lane{j}"]["entry"]))
                for j in range(lanes) if beat[f"lane{j}"]["valid"]]
    return out


@pytest.mark.parametrize("lanes", [1, 2, 4], ids=lambda n: f"lanes{n}")
@pytest.mark.parametrize("gap", [0.0, 0.5], ids=["unstalled", "gaps"])
def test_loader_loads_two_layers_in_order(small_config, gap, lanes):
    config = small_config.replace(weight_lanes=lanes)
    first = _program(config, 3, 8, 0.4, 1)
    second = _program(config, 8, 2, 0.9, 2)
    log = run_loader(config, _streams(first, second), gap=gap, seed=7)
    if lanes > 1:       # fewer beats than entries: the lanes do load in parallel
        assert len(first.weight_words) < first.sparse.nnz
    assert log["table_writes"] == (list(enumerate(first.table_words))
                                   + list(enumerate(second.table_words)))
    assert log["pe_writes"] == _pe_entries(config, first) + _pe_entries(config, second)
    assert len(log["start"]) == 2 and log["error"] == 0 and log["busy"] == 0
    assert log["layer"] == second.cfg_words[0] and log["cfg_ready"] == 1
    last_beat = max(log["table"][:len(first.table_words)] + log["weights"][:len(
        first.weight_words)])
    # One check cycle after the last beat, then start; the next cfg only after finished.
    assert log["start"][0] == last_beat + 1
    assert log["cfg"][1] >= log["start"][0] + 3 + 1
    if gap == 0:
        assert log["cfg"][1] == log["start"][0] + 3 + 1
        assert last_beat - log["cfg"][0] + 1 == 1 + first.out_channels + len(first.weight_words)
    assert log["clear"] == log["cfg"]


def test_loader_layer_without_weights(small_config):
    """n_entries = 0 (every channel empty): table, check, start."""
    config = small_config
    program = _program(config, 2, 3, 0.0, 3)
    assert program.weight_words == []
    log = run_loader(config, _streams(program))
    assert log["start"] == [log["table"][-1] + 1] and log["error"] == 0


def _cfg(**fields):
    return cfg_spec(REFUSING).pack({"in_channels": 2, "out_channels": 1, "n_tiles": 1,
                                    "n_entries": 1, **fields})


ROW = {"owner": 0, "slot": 0, "empty": 0, "bias": 0}


def _row(**fields):
    return table_spec(REFUSING).pack({**ROW, **fields})


def _weight(pe=0, channel=0, position=0, last=1):
    return weight_spec(REFUSING).pack({"pe": pe, "entry": {"value": 3, "position": position,
                                                           "channel": channel, "last": last}})


CAP = REFUSING.n_pe * REFUSING.pe_weight_depth
REFUSALS = {
    # name: (cfg, table, weights, table beats consumed, weight beats consumed)
    "C=0": (_cfg(in_channels=0), [_row()], [_weight()], 0, 0),
    "C>max": (_cfg(in_channels=REFUSING.max_in_channels + 1), [_row()], [_weight()], 0, 0),
    # The layer register keeps only the low bits of an accepted count; the refusal sees all.
    "C>max, legal low bits": (_cfg(in_channels=(1 << REFUSING.max_in_channels.bit_length()) + 2),
                              [_row()], [_weight()], 0, 0),
    "K=0": (_cfg(out_channels=0), [_row()], [_weight()], 0, 0),
    "K>max": (_cfg(out_channels=REFUSING.max_out_channels + 1), [_row()], [_weight()], 0, 0),
    "no tiles": (_cfg(n_tiles=0), [_row()], [_weight()], 0, 0),
    "entries>cap": (_cfg(n_entries=CAP + 1), [_row()], [_weight()], 0, 0),
    "entries>cap, legal low bits": (_cfg(n_entries=(1 << CAP.bit_length()) + 1), [_row()],
                                    [_weight()], 0, 0),
    "owner>=n_pe": (_cfg(out_channels=2), [_row(), _row(owner=3)], [_weight()], 2, 0),
    "slot>=slots": (_cfg(out_channels=2), [_row(), _row(slot=3)], [_weight()], 2, 0),
    "pe>=n_pe": (_cfg(), [_row()], [_weight(pe=3)], 1, 1),
    "channel>=C": (_cfg(), [_row()], [_weight(channel=2)], 1, 1),
    "position>=36": (_cfg(), [_row()], [_weight(position=36)], 1, 1),
    "pe full": (_cfg(n_entries=8), [_row()], [_weight(last=0)] * 7 + [_weight()], 1, 7),
    "bank overflow": (_cfg(out_channels=1, n_entries=5), [_row()], [_weight()] * 5, 1, 4),
    "unfinished channel": (_cfg(), [_row()], [_weight(last=0)], 1, 1),
    "owner disagrees": (_cfg(), [_row()], [_weight(pe=1)], 1, 1),
    "owned twice": (_cfg(out_channels=2, n_entries=1), [_row(), _row(slot=1)], [_weight()],
                    2, 1),
    "position goes back": (_cfg(n_entries=2), [_row()],
                           [_weight(position=5, last=0), _weight(position=4)], 1, 2),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_loader_refuses(case):
    cfg_word, table, weights, n_table, n_weights = REFUSALS[case]
    spare = [_row()] * 3, [_weight()] * 3                  # beats of the refused layer's rest
    log = run_loader(REFUSING, {"cfg": [cfg_word], "table": table + spare[0],
                                "weights": weights + spare[1]}, cycles=60)
    assert log["error"] == 1 and log["busy"] == 0 and log["cfg_ready"] == 1, case
    assert log["start"] == []
    assert (len(log["table"]), len(log["weights"])) == (n_table, n_weights)
    # A refused table row is never written; a weights beat goes to its PE (if it exists)
    # before its check, the refused one too (the next cfg clears the PEs).
    assert len(log["table_writes"]) == n_table - (case in ("owner>=n_pe", "slot>=slots"))
    assert len(log["pe_writes"]) == n_weights - (case == "pe>=n_pe")


def test_loader_accepts_empty_rows_with_any_owner_and_clears_error():
    """An empty channel's owner and slot are not checked; the next accepted cfg clears error."""
    table = [_row(empty=1, owner=3, slot=3)]
    log = run_loader(REFUSING, {"cfg": [_cfg(in_channels=0), _cfg(n_entries=0)],
                                "table": table}, cycles=60)
    assert log["error"] == 0 and len(log["start"]) == 1
    assert log["table_writes"] == [(0, table[0])]
    # The refused cfg's one cycle, then one in TABLE (which refuses it), then the next cfg.
    assert log["cfg"][1] == log["cfg"][0] + 2


#: REFUSING with one wide beat for its 3 PEs (the 1-bit group field can name group 1).
WIDE = REFUSING.replace(weight_lanes=3)


def _wide(group=0, **lanes):
    """A wide beat; ``lanes`` maps ``lane<j>`` to entry fields (valid), the rest idle."""
    idle = {"valid": 0, "entry": {"value": 0, "position": 0, "channel": 0, "last": 0}}
    beat = {"group": group, **{f"lane{j}": idle for j in range(3)}}
    for name, fields in lanes.items():
        beat[name] = {"valid": 1, "entry": {"value": 3, "position": 0, "channel": 0, "last": 1,
                                            **fields}}
    return weight_spec(WIDE).pack(beat)


def _wide_cfg(**fields):
    return cfg_spec(WIDE).pack({"in_channels": 2, "out_channels": 2, "n_tiles": 1,
                                "n_entries": 1, **fields})


def _wide_row(**fields):
    return table_spec(WIDE).pack({**ROW, **fields})


WIDE_ROWS = [_wide_row(), _wide_row(owner=2)]
WIDE_REFUSALS = {
    # name: (weights, weight beats consumed)
    "group>=groups": ([_wide(group=1, lane0={}, lane2={})], 1),
    "lane channel>=C": ([_wide(lane0={}, lane2={"channel": 2})], 1),
    "lane position>=36": ([_wide(lane0={"position": 36}, lane2={})], 1),
    "lane unfinished": ([_wide(lane0={}, lane2={"last": 0})], 1),
    "lane owner disagrees": ([_wide(lane0={}, lane1={})], 1),
    "lane pe full": ([_wide(lane0={"last": 0}, lane2={"last": 0})] * 6
                     + [_wide(lane0={}, lane2={})], 7),
}


@pytest.mark.parametrize("case", WIDE_REFUSALS, ids=list(WIDE_REFUSALS))
def test_loader_refuses_bad_lanes(case):
    weights, n_weights = WIDE_REFUSALS[case]
    n_entries = len(weights)
    log = run_loader(WIDE, {"cfg": [_wide_cfg(n_entries=n_entries)], "table": WIDE_ROWS,
                            "weights": weights + [_wide(lane0={})] * 3}, cycles=60)
    assert log["error"] == 1 and log["busy"] == 0 and log["start"] == [], case
    assert len(log["weights"]) == n_weights


def test_loader_wide_beat_writes_only_valid_lanes():
    """Idle lanes write nothing, whatever they carry; channels 0 and 1 on PEs 0 and 2."""
    junk = {"valid": 0, "entry": {"value": -5, "position": 63, "channel": 3, "last": 1}}
    beat = weight_spec(WIDE).unpack(_wide(lane0={}, lane2={"value": -2, "channel": 1}))
    beat["lane1"] = junk
    word = weight_spec(WIDE).pack(beat)
    log = run_loader(WIDE, {"cfg": [_wide_cfg()], "table": WIDE_ROWS, "weights": [word]},
                     cycles=60)
    assert log["error"] == 0 and len(log["start"]) == 1
    assert [p for p, _ in log["pe_writes"]] == [0, 2]
    assert log["pe_writes"][1][1] == entry_spec(WIDE).pack(
        {"value": -2, "position": 0, "channel": 1, "last": 1})
