"""The accelerator top level: layer program loader, input transform, systolic V chain, PE grid,
collector and output transform.

Protocol (``golden.program``): one ``cfg`` beat, K ``table`` beats, ``n_entries`` ``weights``
beats, then T * C ``patches`` beats (tile-major, channel-minor); the accelerator answers with
T * K ``results`` beats (tile-major, channel-minor) and then accepts the next ``cfg``.

Refusal: a ``cfg`` with C or K outside [1, max], no tiles, or more entries than the PE memories
hold, and any ``table`` / ``weights`` beat that cannot be loaded exactly (owner or slot out of
range, PE index out of range, a PE's weight memory or result bank overflowing, an entry for an
input channel >= C or a position >= alpha**2, a PE whose entries do not end a channel or whose
channel count differs from the table) sets ``error`` and returns to waiting for a ``cfg``
without consuming further beats of that layer; nothing is computed. ``error`` stays set until
the next ``cfg`` is accepted. After an error the host resets the accelerator (or resends from a
fresh ``cfg``, having dropped the refused layer's remaining beats).

Timing is exact and modelled by ``golden.cycles`` (lock-step steps: load tile s, compute tile
s - 1 and drain tile s - 2 concurrently).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import AcceleratorConfig
from golden.cycles import input_transform_latency, output_transform_latency
from golden.protocol import (cfg_spec, index_bits, patch_spec, result_spec, table_spec,
                             weight_spec)
from golden.schedule import result_slots

from .layouts import to_layout
from .pe import ProcessingElement
from .transform import InputTransform, OutputTransform

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """Sparse-Winograd convolution accelerator.

    Parameters
    ----------
    config : golden.config.AcceleratorConfig
        Tile, PE array shape, channel limits, widths and the optional requant stage.

    Members
    -------
    cfg : In(stream.Signature(to_layout(golden.protocol.cfg_spec(config))))
        Layer configuration (one beat per layer).
    table : In(stream.Signature(to_layout(golden.protocol.table_spec(config))))
        Per output channel: owner PE, slot, empty flag, bias [, requant parameters].
    weights : In(stream.Signature(to_layout(golden.protocol.weight_spec(config))))
        Compressed weight entries with their PE index.
    patches : In(stream.Signature(to_layout(golden.protocol.patch_spec(config))))
        Input patches, tile-major, channel-minor.
    results : Out(stream.Signature(to_layout(golden.protocol.result_spec(config))))
        Output tiles, tile-major, channel-minor.
    busy : Out(1)
        A layer is loading or running.
    error : Out(1)
        The last layer was refused (see the module docstring).
    """

    def __init__(self, config: AcceleratorConfig):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be a golden.config.AcceleratorConfig, not {config!r}")
        self._config = config
        super().__init__({
            "cfg": In(stream.Signature(to_layout(cfg_spec(config)))),
            "table": In(stream.Signature(to_layout(table_spec(config)))),
            "weights": In(stream.Signature(to_layout(weight_spec(config)))),
            "patches": In(stream.Signature(to_layout(patch_spec(config)))),
            "results": Out(stream.Signature(to_layout(result_spec(config)))),
            "busy": Out(1),
            "error": Out(1),
        })

    @property
    def config(self) -> AcceleratorConfig:
        """The accelerator configuration."""
        return self._config

    @property
    def pe_names(self) -> list[str]:
        """Submodule names of the PEs in chain order (``pe_{row}_{column}``)."""
        rows, cols = self._config.array
        return [f"pe_{r}_{c}" for r in range(rows) for c in range(cols)]

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        n_pe, slots = cfg.n_pe, result_slots(cfg)
        chan_bits, slot_bits = index_bits(cfg.max_in_channels), index_bits(slots)

        m.submodules.input_transform = itf = InputTransform(cfg)
        m.submodules.output_transform = otf = OutputTransform(cfg)
        # golden.cycles models these latencies; a transform change must update the model.
        for unit, model in ((itf, input_transform_latency(cfg)),
                            (otf, output_transform_latency(cfg))):
            if unit.latency != model:
                raise RuntimeError(f"{type(unit).__name__}.latency is {unit.latency} but "
                                   f"golden.cycles models {model}")
        pes = []
        for name in self.pe_names:
            pe = ProcessingElement(cfg)
            m.submodules[name] = pe
            pes.append(pe)

        # -- layer registers -----------------------------------------------------------
        cfg_in = self.cfg.payload
        in_channels = Signal.like(cfg_in.in_channels)
        out_channels = Signal.like(cfg_in.out_channels)
        n_tiles = Signal.like(cfg_in.n_tiles)
        n_entries = Signal.like(cfg_in.n_entries)
        error = Signal()
        m.d.comb += self.error.eq(error)

        table_layout = to_layout(table_spec(cfg))
        m.submodules.table_memory = tmem = Memory(shape=table_layout,
                                                  depth=cfg.max_out_channels, init=[])
        t_wr = tmem.write_port()
        beat = Signal(range(max(cfg.max_out_channels, 1) + 1))     # table beat counter
        entries_seen = Signal.like(n_entries)
        owned = [Signal(range(slots + 1), name=f"owned_{p}") for p in range(n_pe)]
        pending = [Signal(name=f"pending_{p}") for p in range(n_pe)]

        step = Signal(len(n_tiles) + 1)
        parity = step[0]
        load_go, compute_go, drain_go = Signal(), Signal(), Signal()
        loading, draining = Signal(), Signal()
        collector_busy = Signal()
        results_tile = Signal.like(n_tiles)
        results_channel = Signal.like(out_channels)
        compute_done = Signal()
        m.d.comb += compute_done.eq(Cat(pe.done for pe in pes).all())
        all_done = ~loading & compute_done & ~collector_busy

        # -- program loading FSM ----------------------------------------------------------
        w_in = self.weights.payload
        entry = w_in.entry
        w_pe = Signal(range(max(n_pe, 2)))
        m.d.comb += w_pe.eq(w_in.pe)
        pe_full = Array(pe.full for pe in pes)[w_pe]
        pe_channels = Array(pe.channels for pe in pes)[w_pe]
        bad_entry = ((w_in.pe >= n_pe) | (entry.channel >= in_channels)
                     | (entry.position >= cfg.positions) | pe_full
                     | (entry.last & (pe_channels == slots)))
        t_in = self.table.payload
        bad_table = ~t_in.empty & ((t_in.owner >= n_pe) | (t_in.slot >= slots))
        consistent = Cat(*(~pending[p] & (owned[p] == pes[p].channels)
                           for p in range(n_pe))).all()

        with m.FSM(name="control"):
            with m.State("IDLE"):
                m.d.comb += self.cfg.ready.eq(1)
                with m.If(self.cfg.valid):
                    c, k = cfg_in.in_channels, cfg_in.out_channels
                    refused = ((c == 0) | (c > cfg.max_in_channels) | (k == 0)
                               | (k > cfg.max_out_channels) | (cfg_in.n_tiles == 0)
                               | (cfg_in.n_entries > n_pe * cfg.pe_weight_depth))
                    m.d.sync += [error.eq(refused), in_channels.eq(c), out_channels.eq(k),
                                 n_tiles.eq(cfg_in.n_tiles), n_entries.eq(cfg_in.n_entries),
                                 beat.eq(0), entries_seen.eq(0)]
                    m.d.sync += [o.eq(0) for o in owned] + [p.eq(0) for p in pending]
                    m.d.comb += [pe.clear.eq(1) for pe in pes]
                    with m.If(~refused):
                        m.next = "TABLE"
            with m.State("TABLE"):
                m.d.comb += [self.busy.eq(1), self.table.ready.eq(1)]
                m.d.comb += [t_wr.addr.eq(beat), t_wr.data.eq(t_in),
                             t_wr.en.eq(self.table.valid & ~bad_table)]
                with m.If(self.table.valid):
                    with m.If(bad_table):
                        m.d.sync += error.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        with m.If(~t_in.empty):
                            for p in range(n_pe):
                                with m.If(t_in.owner == p):
                                    m.d.sync += owned[p].eq(owned[p] + 1)
                        m.d.sync += beat.eq(beat + 1)
                        with m.If(beat == out_channels - 1):
                            with m.If(n_entries == 0):
                                m.next = "CHECK"
                            with m.Else():
                                m.next = "WEIGHTS"
            with m.State("WEIGHTS"):
                m.d.comb += [self.busy.eq(1), self.weights.ready.eq(1)]
                with m.If(self.weights.valid):
                    with m.If(bad_entry):
                        m.d.sync += error.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        for p, pe in enumerate(pes):
                            with m.If(w_in.pe == p):
                                m.d.comb += pe.write.eq(1)
                                m.d.sync += pending[p].eq(~entry.last)
                        m.d.sync += entries_seen.eq(entries_seen + 1)
                        with m.If(entries_seen == n_entries - 1):
                            m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += self.busy.eq(1)
                with m.If(consistent):
                    m.d.sync += [step.eq(0), results_tile.eq(0), results_channel.eq(0)]
                    m.next = "START"
                with m.Else():
                    m.d.sync += error.eq(1)
                    m.next = "IDLE"
            with m.State("START"):
                m.d.comb += [self.busy.eq(1), load_go.eq(step < n_tiles),
                             compute_go.eq((step >= 1) & (step <= n_tiles)),
                             drain_go.eq(step >= 2)]
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(all_done):
                    with m.If(step == n_tiles + 1):
                        m.next = "FLUSH"
                    with m.Else():
                        m.d.sync += step.eq(step + 1)
                        m.next = "START"
            with m.State("FLUSH"):
                m.d.comb += self.busy.eq(1)
                with m.If(results_tile == n_tiles):
                    m.next = "IDLE"

        for pe in pes:
            m.d.comb += [pe.entry.eq(entry), pe.start.eq(compute_go), pe.half.eq(~parity)]

        # -- loader: patches -> input transform -> V chain --------------------------------
        accepted = Signal.like(in_channels)
        written = Signal.like(in_channels)
        load_half = Signal()
        window = loading & (accepted != in_channels)
        m.d.comb += [itf.i.payload.eq(self.patches.payload),
                     itf.i.valid.eq(self.patches.valid & window),
                     self.patches.ready.eq(itf.i.ready & window),
                     itf.o.ready.eq(1)]
        with m.If(load_go):
            m.d.sync += [loading.eq(1), accepted.eq(0), written.eq(0), load_half.eq(parity)]
        with m.Else():
            with m.If(self.patches.valid & self.patches.ready):
                m.d.sync += accepted.eq(accepted + 1)
            with m.If(itf.o.valid):
                m.d.sync += written.eq(written + 1)
            tail = pes[-1].v_in
            with m.If(tail.valid & tail.last):
                m.d.sync += loading.eq(0)
        head = pes[0].v_in
        m.d.comb += [head.valid.eq(itf.o.valid),
                     head.addr.eq(Cat(written[:chan_bits], load_half)),
                     head.last.eq(written == in_channels - 1),
                     head.data.eq(itf.o.payload)]
        for prev, nxt in zip(pes, pes[1:]):
            wiring.connect(m, prev.v_out, nxt.v_in)

        # -- collector: M_k of k = 0..K-1 from the owners' result banks -------------------
        advance = Signal()
        issue_k = Signal.like(out_channels)
        drain_half = Signal()
        issuing = draining
        read_valid, out_valid = Signal(), Signal()
        t_rd = tmem.read_port(transparent_for=())
        row = t_rd.data
        m.d.comb += [advance.eq(~out_valid | otf.i.ready),
                     t_rd.addr.eq(issue_k), t_rd.en.eq(advance),
                     collector_busy.eq(issuing | read_valid | out_valid)]
        with m.If(drain_go):
            m.d.sync += [draining.eq(1), issue_k.eq(0), drain_half.eq(parity)]
        with m.Elif(advance & issuing):
            m.d.sync += issue_k.eq(issue_k + 1)
            with m.If(issue_k == out_channels - 1):
                m.d.sync += draining.eq(0)
        out_owner = Signal.like(row.owner)
        out_empty = Signal()
        out_row = Signal(table_layout)
        with m.If(advance):
            m.d.sync += [read_valid.eq(issuing), out_valid.eq(read_valid),
                         out_owner.eq(row.owner), out_empty.eq(row.empty), out_row.eq(row)]
        for pe in pes:
            m.d.comb += [pe.bank_addr.eq(Cat(row.slot[:slot_bits], drain_half)),
                         pe.bank_en.eq(advance)]
        bank_data = Array(pe.bank_data.as_value() for pe in pes)[out_owner]
        otf_in = otf.i.payload
        m.d.comb += [otf.i.valid.eq(out_valid),
                     otf_in.m.eq(Mux(out_empty, 0, bank_data)),
                     otf_in.bias.eq(out_row.bias)]
        if cfg.requant:
            m.d.comb += [otf_in.mult.eq(out_row.mult), otf_in.shift.eq(out_row.shift),
                         otf_in.relu.eq(out_row.relu)]

        # -- results ------------------------------------------------------------------------
        wiring.connect(m, otf.o, wiring.flipped(self.results))
        with m.If(self.results.valid & self.results.ready):
            with m.If(results_channel == out_channels - 1):
                m.d.sync += [results_channel.eq(0), results_tile.eq(results_tile + 1)]
            with m.Else():
                m.d.sync += results_channel.eq(results_channel + 1)
        return m
