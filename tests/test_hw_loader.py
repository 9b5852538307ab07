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
    rng = np.random.default_rng(seed)
    depth, slots = config.pe_weight_depth, result_slots(config)
    log = {name: [] for name in ("cfg", "table", "weights", "table_writes", "pe_writes",
                                 "start", "clear")}

    async def pes(ctx):
        entries, channels = [0] * config.n_pe, [0] * config.n_pe
        async for _, _, clear, write, entry in ctx.tick().sample(
                dut.pe_clear, dut.pe_write, dut.pe_entry.as_value()):
            last = entry_spec(config).unpack(entry)["last"]
            for p in range(config.n_pe):
                if clear:
                    entries[p] = channels[p] = 0
                elif write >> p & 1 and entries[p] < depth:
                    entries[p] += 1
                    channels[p] += bool(last) and channels[p] != slots
                ctx.set(dut.pe_channels[p], channels[p])
            ctx.set(dut.pe_full, sum(1 << p for p in range(config.n_pe) if entries[p] == depth))

    async def monitor(ctx):
        edge = 0
        async for _, _, en, addr, data, write, entry, start, clear in ctx.tick().sample(
                dut.table_write.en, dut.table_write.addr, dut.table_write.data.as_value(),
                dut.pe_write, dut.pe_entry.as_value(), dut.start, dut.pe_clear):
            if en:
                log["table_writes"].append((addr, data))
            for p in range(config.n_pe):
                if write >> p & 1:
                    log["pe_writes"].append((p, entry))
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
    """(PE, raw entry) of every weights beat, as the PEs must receive them."""
    spec = weight_spec(config)
    return [(spec.unpack(w)["pe"], entry_spec(config).pack(spec.unpack(w)["entry"]))
            for w in program.weight_words]


@pytest.mark.parametrize("gap", [0.0, 0.5], ids=["unstalled", "gaps"])
def test_loader_loads_two_layers_in_order(small_config, gap):
    config = small_config
    first = _program(config, 3, 8, 0.4, 1)
    second = _program(config, 8, 2, 0.9, 2)
    log = run_loader(config, _streams(first, second), gap=gap, seed=7)
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
    "K=0": (_cfg(out_channels=0), [_row()], [_weight()], 0, 0),
    "K>max": (_cfg(out_channels=REFUSING.max_out_channels + 1), [_row()], [_weight()], 0, 0),
    "no tiles": (_cfg(n_tiles=0), [_row()], [_weight()], 0, 0),
    "entries>cap": (_cfg(n_entries=CAP + 1), [_row()], [_weight()], 0, 0),
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
    # A refused table row is never written.
    assert len(log["table_writes"]) == n_table - (case in ("owner>=n_pe", "slot>=slots"))


def test_loader_accepts_empty_rows_with_any_owner_and_clears_error():
    """An empty channel's owner and slot are not checked; the next accepted cfg clears error."""
    table = [_row(empty=1, owner=3, slot=3)]
    log = run_loader(REFUSING, {"cfg": [_cfg(in_channels=0), _cfg(n_entries=0)],
                                "table": table}, cycles=60)
    assert log["error"] == 0 and len(log["start"]) == 1
    assert log["table_writes"] == [(0, table[0])]
