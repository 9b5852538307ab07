"""The collector: reads one tile's ``M_k`` (k = 0..K-1) out of the owners' result banks and
sends them, with each channel's bias [and requant parameters], to the output transform.

The channel table (one row per output channel, written by the program loader) says which PE
owns channel ``k`` and in which slot of its result bank ``M_k`` lies; an ``empty`` channel (all
weights pruned) has no owner and sends ``M = 0``, so its output is the bias alone. Reads are
pipelined (table read, bank read, the banks' registered words, one stage more where the
bank read takes two cycles, and, with ``pipelined``, an output register after their OR) and
advance only while ``o`` is empty or taken, so backpressure on ``o`` stalls the whole pipeline
without losing a beat.
With ``weight_banks`` 2 the table has two banks: the loader writes bank ``table_bank`` while the
running layer's rows are read from bank ``run_bank``. With ``split_channels`` a row marked
``split`` has its second part in slot 0 of PE ``owner + 1``: that PE is read there in the same
cycle and the two partial sums are added (both are sums of some of the channel's products, so
the accumulator width holds them and their sum exactly); the drain takes no extra cycle. Only
the PEs a row selects (``bank_select``) read their words and masks; the others read 0, so the
collector ORs the banks instead of muxing them, and a position outside the mask reads 0.
With ``drain_positions`` below ``alpha**2`` every channel is read in ``drain_beats`` beats of
``drain_width`` positions each (beat ``g``: positions ``g * drain_width ..``), each with its
index ``beat``; the output transform accumulates them.
"""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import AcceleratorConfig
from golden.protocol import (bank_read_latency, bank_word_spec, beat_bits,
                             collector_output_spec, index_bits, table_spec)
from golden.schedule import result_slots

from .layouts import to_layout
from .signatures import BlockComponent, check_config, layer_field_shape, TableWriteSignature

__all__ = ["Collector"]


class Collector(BlockComponent):
    """Channel table and result bank reader of one tile per ``start``.

    Parameters
    ----------
    config : golden.config.AcceleratorConfig
        PE count, ``max_out_channels`` (table depth), result slots, ``M`` and table layouts.

    Members
    -------
    table_write : In(hw.signatures.TableWriteSignature(config))
        Channel table writes (from the program loader).
    start : In(1)
        Drain one tile from result bank half ``half`` (one cycle).
    half : In(1)
        Sampled with ``start``.
    out_channels : In(layer_field_shape(config, "out_channels"))
        Channels per tile; held while the layer runs.
    bank_addr : Out(unsigned)
        Result bank read address ``Cat(slot, half)`` (to every PE; ``Cat(beat, slot, half)``
        with ``drain_positions`` below ``alpha**2``); with ``split_channels`` an array, one
        per PE (:meth:`bank_addr_for`).
    bank_en : Out(1)
        Result bank read enable (to every PE).
    bank_data : In(to_layout(golden.protocol.bank_word_spec(config))).array(n_pe)
        Every PE's result bank read data, ``golden.protocol.bank_read_latency`` cycles after
        the address.
    bank_select : Out(n_pe)
        With ``bank_en``, bit ``p``: PE ``p`` owns the channel read (none for an empty one).
    bank_mask : In(drain_width).array(n_pe)
        With ``bank_data``, every PE's mask of the positions that hold a sum (``M`` is 0 at the
        others); 0 from a PE not selected.
    o : Out(stream.Signature(to_layout(golden.protocol.collector_output_spec(config))))
        ``M_k``, bias [and requant parameters] of k = 0..K-1 (with ``drain_positions`` below
        ``alpha**2``, ``drain_beats`` beats per channel), to the output transform (through
        the tap shift stage when the design has one).
    busy : Out(1)
        A tile is draining (from the cycle after ``start`` until its last beat is taken).
    table_bank, run_bank : In(1)
        With ``weight_banks`` 2 only: the table bank written, and the one read (held while the
        layer runs).
    """

    class Signature(wiring.Signature):
        """The collector's signature for ``config`` (see :class:`Collector`)."""

        def __init__(self, config: AcceleratorConfig):
            check_config(config)
            addr_bits = index_bits(result_slots(config)) + 1 + beat_bits(config)
            super().__init__({
                "table_write": In(TableWriteSignature(config)),
                "start": In(1),
                "half": In(1),
                "out_channels": In(layer_field_shape(config, "out_channels")),
                "bank_addr": (Out(addr_bits).array(config.n_pe) if config.split_channels
                              else Out(addr_bits)),
                "bank_en": Out(1),
                "bank_data": In(to_layout(bank_word_spec(config))).array(config.n_pe),
                "bank_select": Out(config.n_pe),
                "bank_mask": In(config.drain_width).array(config.n_pe),
                "o": Out(stream.Signature(to_layout(collector_output_spec(config)))),
                "busy": Out(1),
                **({"table_bank": In(1), "run_bank": In(1)} if config.weight_banks == 2
                   else {}),
            })

    def bank_addr_for(self, pe: int):
        """The ``bank_addr`` signal PE ``pe`` reads."""
        return self.bank_addr[pe] if self._config.split_channels else self.bank_addr

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        slot_bits, g_bits = index_bits(result_slots(cfg)), beat_bits(cfg)
        table_layout = to_layout(table_spec(cfg))
        banked = cfg.weight_banks == 2
        addr_bits = len(self.table_write.addr)
        m.submodules.table_memory = tmem = Memory(
            shape=table_layout, depth=(2 << addr_bits) if banked else cfg.max_out_channels,
            init=[])
        t_wr = tmem.write_port()
        write_addr = (Cat(self.table_write.addr, self.table_bank) if banked
                      else self.table_write.addr)
        m.d.comb += [t_wr.addr.eq(write_addr), t_wr.data.eq(self.table_write.data),
                     t_wr.en.eq(self.table_write.en)]

        # Pipeline: issue k (table read) -> read (bank read) -> out (the banks' registered
        # words) [-> the output register, with ``pipelined``] -> ``o``.
        draining = Signal()
        issue_k = Signal.like(self.out_channels)
        half = Signal()
        read_valid, out_valid = Signal(), Signal()
        advance = Signal()
        t_rd = tmem.read_port(transparent_for=())
        row = t_rd.data
        # A bank read of 2 cycles (golden.protocol.bank_read_latency): one more stage
        # between read and out, holding the row, beat and valid of the word on its way.
        extra = bank_read_latency(cfg) - 1
        bank_valids = [Signal(name=f"bank_valid_{n}") for n in range(extra)]
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready),
                     t_rd.addr.eq(Cat(issue_k[:addr_bits], self.run_bank) if banked
                                  else issue_k), t_rd.en.eq(advance),
                     self.busy.eq(functools.reduce(operator.or_, bank_valids,
                                                   draining | read_valid | out_valid)
                                  | self.o.valid)]
        if g_bits:
            # The beat within the channel, and its copies down the pipeline.
            issue_g, read_g, out_g = (Signal(g_bits, name=f"{s}_beat")
                                      for s in ("issue", "read", "out"))
        # Channels left after issue_k, counted down: the last channel is a zero test, not a
        # compare with ``out_channels`` (a carry chain in front of ``draining``'s enable).
        k_left = Signal.like(self.out_channels)
        with m.If(self.start):
            m.d.sync += [draining.eq(1), issue_k.eq(0), k_left.eq(self.out_channels - 1),
                         half.eq(self.half)]
            if g_bits:
                m.d.sync += issue_g.eq(0)
        with m.Elif(advance & draining):
            if g_bits:
                # The channel advances after its last beat.
                last_beat = issue_g == cfg.drain_beats - 1
                m.d.sync += issue_g.eq(Mux(last_beat, 0, issue_g + 1))
                with m.If(last_beat):
                    m.d.sync += [issue_k.eq(issue_k + 1), k_left.eq(k_left - 1)]
                    with m.If(k_left == 0):
                        m.d.sync += draining.eq(0)
            else:
                m.d.sync += [issue_k.eq(issue_k + 1), k_left.eq(k_left - 1)]
                with m.If(k_left == 0):
                    m.d.sync += draining.eq(0)
        out_row = Signal(table_layout)
        valids = [read_valid, *bank_valids]
        rows = [row, *(Signal(table_layout, name=f"bank_row_{n}") for n in range(extra))]
        with m.If(advance):
            m.d.sync += [read_valid.eq(draining), out_valid.eq(valids[-1]),
                         out_row.eq(rows[-1])]
            m.d.sync += [valids[n + 1].eq(valids[n]) for n in range(extra)]
            m.d.sync += [rows[n + 1].eq(rows[n]) for n in range(extra)]
            if g_bits:
                beats = [read_g, *(Signal(g_bits, name=f"bank_beat_{n}") for n in range(extra))]
                m.d.sync += [read_g.eq(issue_g), out_g.eq(beats[-1])]
                m.d.sync += [beats[n + 1].eq(beats[n]) for n in range(extra)]
        slot_addr = Cat(row.slot[:slot_bits], half)
        if g_bits:
            slot_addr = Cat(read_g, slot_addr)
        owners = [~row.empty & (row.owner == p) for p in range(cfg.n_pe)]
        if cfg.split_channels:
            # The second part of a split channel: slot 0 of the next PE, added to the first.
            seconds = [(~row.empty & row.split & (row.owner == p - 1)) if p else Const(0)
                       for p in range(cfg.n_pe)]
            for p in range(cfg.n_pe):
                m.d.comb += self.bank_addr[p].eq(
                    Mux(seconds[p], Cat(*([read_g] if g_bits else []), Const(0, slot_bits), half),
                        slot_addr))
            m.d.comb += self.bank_select.eq(Cat(o | s for o, s in zip(owners, seconds)))
        else:
            m.d.comb += [self.bank_addr.eq(slot_addr), self.bank_select.eq(Cat(owners))]
        m.d.comb += self.bank_en.eq(advance)

        # Every PE not selected reads 0 data and mask, so ORs replace the n_pe:1 mux. A split
        # channel's two parts are in PEs p and p + 1: one even, one odd, so the OR of the even
        # PEs and the OR of the odd ones hold one part each (one of them 0 otherwise).
        def merged(pes):
            words = [self.bank_data[p].as_value() for p in pes]
            masks = [self.bank_mask[p] for p in pes]
            return (functools.reduce(operator.or_, words),
                    functools.reduce(operator.or_, masks)) if words else (Const(0), Const(0))

        width = len(self.bank_data[0].as_value()) // cfg.drain_width

        def kept(word, mask, i):
            # Element i where the mask says it holds a sum (a stale one reads 0).
            return Mux(mask[i], word[i * width:(i + 1) * width].as_signed(), 0)

        # With ``pipelined`` the OR, the mask and the split sum go into an output register
        # (one more stage under the same ``advance``), not straight into the output transform.
        o = self.o.payload
        outputs = [o.bias.eq(out_row.bias)]
        if cfg.split_channels:
            even = merged(range(0, cfg.n_pe, 2))
            odd = merged(range(1, cfg.n_pe, 2))
            outputs += [o.m[i].eq(kept(*even, i) + kept(*odd, i))
                        for i in range(cfg.drain_width)]
        else:
            word, mask = merged(range(cfg.n_pe))
            outputs += [o.m[i].eq(kept(word, mask, i)) for i in range(cfg.drain_width)]
        if g_bits:
            outputs.append(o.beat.eq(out_g))
        if cfg.requant:
            outputs += [o.mult.eq(out_row.mult), o.shift.eq(out_row.shift),
                        o.relu.eq(out_row.relu)]
        if cfg.pipelined:
            with m.If(advance):
                m.d.sync += [self.o.valid.eq(out_valid)] + outputs
        else:
            m.d.comb += [self.o.valid.eq(out_valid)] + outputs
        return m
