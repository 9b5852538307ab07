"""A PE's double-buffered result bank and position mask, with the collector's read port.

The PE writes one position's sum at the end of the position's run (``write``: element
``position`` of slot ``slot``, half ``half``) and, at a channel's last entry, the mask of the
positions the channel has entries at (``mask_write``; a position outside it holds a stale sum).
Where ``golden.protocol.bank_write_latency`` is 2 (the narrow, pipelined banks) the write is
registered and lands a cycle later: a word written in cycle W is read from cycle W + 2 on
(W + 1 without the register).
The collector reads a slot's word, or with ``drain_positions`` P below ``alpha**2`` one beat of
P positions of it (word ``position // P`` of the slot, element ``position % P``), with
``read_en``; ``read_data`` and ``read_mask`` come ``golden.protocol.bank_read_latency`` enabled
cycles later, both 0 unless ``read_select`` was set with the address (so the collector ORs the
PEs' words instead of muxing them; with one PE the data is not zeroed).

Three read paths, by the bank's shape:

* whole-tile words (the default ``drain_positions``): a shallow, wide bank in LUT-RAM, its
  asynchronous read followed by a register with a synchronous reset (free on FPGA flip-flops);
* narrow words, not ``pipelined``: a deep bank in block RAM, read through its synchronous port;
* narrow words, ``pipelined``: read in two cycles, select and mask delayed to match; on ECP5
  one ``hw.bram.RegisteredReadMemory`` per element (the block RAM's own output register: a
  read without it leaves the block 5.6 ns after the clock, the critical path of the narrow 4x4
  array), elsewhere the bank's synchronous read and a fabric register.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import AcceleratorConfig
from golden.protocol import (bank_read_latency, bank_word_spec, bank_write_latency, beat_bits,
                             index_bits, result_bank_shape)
from golden.schedule import result_slots

from .bram import RegisteredReadMemory
from .layouts import to_layout
from .signatures import BlockComponent, check_config

__all__ = ["ResultBank"]


class ResultBank(BlockComponent):
    """One PE's result bank and mask bank (see the module's docstring).

    Parameters
    ----------
    config : golden.config.AcceleratorConfig
        Positions, accumulator width, result slots, ``drain_positions``, ``pipelined``.

    Members
    -------
    write : In(1)
        Write ``sum`` into element ``position`` of slot ``slot``, half ``half``.
    position : In(range(positions))
    slot : In(unsigned)
        ``index_bits(result_slots)`` bits.
    half : In(1)
    sum : In(signed(widths.accumulator))
    mask_write : In(1)
        Write ``mask`` as slot ``slot``'s mask (both halves: a layer's tiles share it).
    mask : In(positions)
    read_addr : In(unsigned)
        ``Cat(slot, half)``, or ``Cat(beat, slot, half)`` with narrow words.
    read_en : In(1)
        Read enable; the outputs hold while low.
    read_select : In(1)
        With ``read_en``: the addressed channel is this PE's (else the outputs read 0).
    read_data : Out(to_layout(golden.protocol.bank_word_spec(config)))
    read_mask : Out(drain_width)
        Bit ``i``: element ``i`` of ``read_data`` is a sum.
    """

    class Signature(wiring.Signature):
        """The result bank's signature for ``config`` (see :class:`ResultBank`)."""

        def __init__(self, config: AcceleratorConfig):
            check_config(config)
            slot_bits = index_bits(result_slots(config))
            super().__init__({
                "write": In(1),
                "position": In(range(config.positions)),
                "slot": In(slot_bits),
                "half": In(1),
                "sum": In(signed(config.widths.accumulator)),
                "mask_write": In(1),
                "mask": In(config.positions),
                "read_addr": In(slot_bits + 1 + beat_bits(config)),
                "read_en": In(1),
                "read_select": In(1),
                "read_data": Out(to_layout(bank_word_spec(config))),
                "read_mask": Out(config.drain_width),
            })

    @property
    def shape(self):
        """The word's layout (:func:`golden.protocol.bank_word_spec`)."""
        return to_layout(bank_word_spec(self._config))

    @property
    def depth(self) -> int:
        """Words: ``Cat(beat, slot, half)`` addresses."""
        return result_bank_shape(self._config)[0]

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        lanes, g_bits = cfg.drain_width, beat_bits(cfg)
        slot_bits = len(self.slot)
        narrow, latency = cfg.drain_beats > 1, bank_read_latency(cfg)

        # -- write: the sum into its element; the mask per slot -----------------------------
        if narrow:
            # Position xi is element xi % lanes of word xi // lanes (constant tables: lanes
            # need not be a power of two).
            beat_of = Array(Const(xi // lanes, g_bits) for xi in range(cfg.positions))
            lane_of = Array(Const(1 << (xi % lanes), lanes) for xi in range(cfg.positions))
            write_addr = Cat(beat_of[self.position], self.slot, self.half)
            lane_en = Mux(self.write, lane_of[self.position], 0)
        else:
            write_addr = Cat(self.slot, self.half)
            lane_en = Mux(self.write, 1 << self.position, 0)
        write_sum = self.sum
        if bank_write_latency(cfg) == 2:
            # Registered: the sum leaves the accumulator's carry chain into a flip-flop, not
            # across the chip into a block RAM. Only the enables need a reset.
            write_addr_q = Signal(len(write_addr), reset_less=True)
            write_sum_q = Signal.like(self.sum, reset_less=True)
            lane_en_q = Signal(lanes)
            m.d.sync += [write_addr_q.eq(write_addr), write_sum_q.eq(self.sum),
                         lane_en_q.eq(lane_en)]
            write_addr, write_sum, lane_en = write_addr_q, write_sum_q, lane_en_q
        # The mask depends on the layer's weights only, not on the tile: one per slot, both
        # halves. Flip-flops: a block RAM would be wasted.
        m.submodules.mask_bank = mask_bank = Memory(shape=cfg.positions, depth=1 << slot_bits,
                                                    init=[], attrs={"ram_style": "logic"})
        mask_wr = mask_bank.write_port()
        m.d.comb += [mask_wr.addr.eq(self.slot), mask_wr.data.eq(self.mask),
                     mask_wr.en.eq(self.mask_write)]

        # -- read: the mask, registered with a synchronous reset unless selected -------------
        # The reset is its own condition (not the enable's) so that it maps onto the
        # flip-flops' reset input instead of a LUT per bit.
        zero = Signal()
        m.d.comb += zero.eq(self.read_en & ~self.read_select)
        mask_rd = mask_bank.read_port(domain="comb")
        m.d.comb += mask_rd.addr.eq(self.read_addr[g_bits:g_bits + slot_bits])
        mask_word = mask_rd.data
        if narrow:
            mask_word = Array(mask_rd.data[g * lanes:(g + 1) * lanes]
                              for g in range(cfg.drain_beats))[self.read_addr[:g_bits]]
        mask_out = Signal(lanes) if latency == 2 else self.read_mask
        with m.If(zero):
            m.d.sync += mask_out.eq(0)
        with m.Elif(self.read_en):
            m.d.sync += mask_out.eq(mask_word)
        if latency == 2:
            self._registered_read(m, platform, write_addr, lane_en, write_sum, mask_out)
            return m

        m.submodules.memory = bank = Memory(shape=self.shape, depth=self.depth, init=[])
        b_wr = bank.write_port(granularity=1)
        m.d.comb += [b_wr.addr.eq(write_addr), b_wr.en.eq(lane_en)]
        for i in range(lanes):
            m.d.comb += b_wr.data[i].eq(self.sum)
        if narrow:
            # A narrow bank is deep: block RAM, whose read is registered inside it, so the
            # word of a PE not selected is zeroed after the read (a registered select).
            b_rd = bank.read_port(transparent_for=())
            m.d.comb += [b_rd.addr.eq(self.read_addr), b_rd.en.eq(self.read_en)]
            if cfg.n_pe > 1:
                selected = Signal()
                with m.If(self.read_en):
                    m.d.sync += selected.eq(self.read_select)
                m.d.comb += self.read_data.eq(Mux(selected, b_rd.data, 0))
            else:
                m.d.comb += self.read_data.eq(b_rd.data)
        elif cfg.n_pe > 1:
            # A LUT-RAM's asynchronous read, then a register with a synchronous reset.
            b_rd = bank.read_port(domain="comb")
            m.d.comb += b_rd.addr.eq(self.read_addr)
            with m.If(zero):
                m.d.sync += self.read_data.eq(0)
            with m.Elif(self.read_en):
                m.d.sync += self.read_data.eq(b_rd.data)
        else:
            b_rd = bank.read_port(transparent_for=())
            m.d.comb += [b_rd.addr.eq(self.read_addr), b_rd.en.eq(self.read_en),
                         self.read_data.eq(b_rd.data)]
        return m

    def _registered_read(self, m: Module, platform, write_addr, lane_en, write_sum,
                         mask_out) -> None:
        """Narrow, pipelined: the word read in 2 cycles, select and mask delayed to match. On
        ECP5 an element per ``RegisteredReadMemory`` (DP16KD with its output register: a
        whole-word memory has no per-element write enables); elsewhere one memory with them,
        its synchronous read and a fabric register (as many block RAMs as one cycle takes)."""
        cfg = self._config
        selected = [Signal(name=f"selected_{n}") for n in range(2)]
        with m.If(self.read_en):
            m.d.sync += [selected[0].eq(self.read_select), selected[1].eq(selected[0]),
                         self.read_mask.eq(mask_out)]
        if getattr(platform, "family", None) == "ecp5":
            words = []
            for i in range(cfg.drain_width):
                lane = RegisteredReadMemory(shape=signed(cfg.widths.accumulator),
                                            depth=self.depth)
                m.submodules[f"lane_{i}"] = lane
                m.d.comb += [lane.write.addr.eq(write_addr), lane.write.data.eq(write_sum),
                             lane.write.en.eq(lane_en[i]), lane.read.addr.eq(self.read_addr),
                             lane.read.en.eq(self.read_en)]
                words.append(lane.read.data)
            word = Cat(*words)
        else:
            m.submodules.memory = bank = Memory(shape=self.shape, depth=self.depth, init=[])
            b_wr, b_rd = bank.write_port(granularity=1), bank.read_port(transparent_for=())
            m.d.comb += [b_wr.addr.eq(write_addr), b_wr.en.eq(lane_en),
                         b_rd.addr.eq(self.read_addr), b_rd.en.eq(self.read_en)]
            m.d.comb += [b_wr.data[i].eq(write_sum) for i in range(cfg.drain_width)]
            # The block RAM's output register is not reset: neither is this one.
            word = Signal(len(self.read_data.as_value()), reset_less=True)
            with m.If(self.read_en):
                m.d.sync += word.eq(b_rd.data)
        m.d.comb += self.read_data.eq(Mux(selected[1], word, 0) if cfg.n_pe > 1 else word)
