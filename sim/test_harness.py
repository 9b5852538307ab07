"""The stream harness itself, on two small devices of this file: a correct pipeline stage and
one that breaks the stream rules. Shows that sources, sinks, pause patterns, cycle stamps and
the protocol check do what the benches rely on."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.layout import ArraySpec, pack_array
from sim.harness import StreamHarness
from sim.runner import build_harnessed, run_job
from sim.streams import InOrderScoreboard, pause_words, stream_run

IN_SPEC = ArraySpec(8, 4, signed=True)
# Components built only to read their signature (or to provoke an error) are never elaborated.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


class SumStage(wiring.Component):
    """Sums four int8 per beat, one register stage; ``drop_valid`` makes it withdraw an
    offered beat after one cycle of backpressure (a protocol violation)."""

    def __init__(self, drop_valid: bool = False):
        self._drop_valid = drop_valid
        super().__init__({"i": In(stream.Signature(data.ArrayLayout(signed(8), 4))),
                          "o": Out(stream.Signature(signed(10))), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        total = self.i.payload[0] + self.i.payload[1] + self.i.payload[2] + self.i.payload[3]
        with m.If(~self.o.valid | self.o.ready):
            m.d.comb += self.i.ready.eq(1)
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(total)]
        if self._drop_valid:
            with m.If(self.o.valid & ~self.o.ready):
                m.d.sync += self.o.valid.eq(0)
        m.d.comb += self.busy.eq(self.o.valid)
        return m


@functools.cache
def _design(simulator, drop_valid):
    name = "sum_stage_bad" if drop_valid else "sum_stage"
    top = SumStage(drop_valid)
    text = verilog.convert(top, name=name, emit_src=False)
    harness = StreamHarness(name, top.signature, depths={"i": 2048, "o": 2048})
    return build_harnessed(name, text, name, harness, simulator)


def test_harness_rejects_bad_parameters():
    sig = SumStage().signature
    with pytest.raises(ValueError, match="depths must name every stream"):
        StreamHarness("x", sig, depths={"i": 4})
    with pytest.raises(ValueError, match="pause_words must be a power of two"):
        StreamHarness("x", sig, depths={"i": 4, "o": 4}, pause_words=3)
    with pytest.raises(ValueError, match="device_name must be a Verilog identifier"):
        StreamHarness("a b", sig, depths={"i": 4, "o": 4})


def test_pause_words_pack_cycles_lsb_first():
    assert pause_words(iter([1, 0, 1] + [0] * 61), 2) == [0b101, 0]
    with pytest.raises(ValueError, match="ended after 3"):
        pause_words(iter([1, 1, 1]), 1)


def test_harness_drives_and_checks(simulator):
    design = _design(simulator, False)
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(1500, 4))
    x[:2] = [[-128] * 4, [127] * 4]
    words = pack_array(IN_SPEC, x)
    runs = [stream_run(design.harness, {"i": words}, {"o": len(words)}),
            stream_run(design.harness, {"i": words}, {"o": len(words)}, gaps=0.5,
                       backpressure=0.5, seed=1)]
    plain, stalled = run_job(design, runs, name="harness")
    for result in (plain, stalled):
        got = [int(w, 16) for w in result["sinks"]["o"]]
        got = [g - 1024 if g >= 512 else g for g in got]
        board = InOrderScoreboard("sum")
        board.compare(got, x.sum(axis=1).tolist())
        assert board.passed, board.problems
        assert result["done"] and not result["unstable"]
        assert result["outputs"] == {"busy": 0}
    i, o = plain["streams"]["i"], plain["streams"]["o"]
    # Unstalled: one beat per cycle, one register of latency.
    assert (i["first"], i["last"], o["first"], o["last"]) == (1, 1500, 2, 1501)
    # Half the cycles paused on each side: the run takes far longer but loses nothing.
    assert stalled["streams"]["o"]["last"] > 2 * o["last"]


def test_harness_flags_withdrawn_valid(simulator):
    design = _design(simulator, True)
    words = pack_array(IN_SPEC, np.ones((200, 4), dtype=np.int64))
    (result,) = run_job(design, [stream_run(design.harness, {"i": words}, {"o": 200},
                                            backpressure=0.5, seed=2, timeout_cycles=5000)],
                        name="harness_bad")
    assert result["unstable"] == ["o"]


def test_progress_reports_reach_the_caller(simulator):
    design = _design(simulator, False)
    words = pack_array(IN_SPEC, np.zeros((1000, 4), dtype=np.int64))
    run = stream_run(design.harness, {"i": words}, {"o": 1000}, backpressure=0.5, seed=3)
    run["progress_cycles"] = 300
    reports = []
    (result,) = run_job(design, [run], name="progress", progress=reports.append)
    assert result["done"]
    assert len(reports) >= 3
    cycles = [r["cycles"] for r in reports]
    assert cycles == sorted(cycles) and cycles[0] >= 300
    assert all(r["expected"] == {"o": 1000} and 0 < r["received"]["o"] <= 1000 for r in reports)
