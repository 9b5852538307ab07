"""Zero-skip processing element: one multiplier, one nonzero Winograd weight per cycle.

A PE owns whole output channels (``golden.schedule``). Its weight memory holds their compressed
entries (``golden.protocol.entry_spec``) in execution order. For every tile it walks all its
entries; entry ``(value, position xi, channel c, last)`` costs one cycle and one
multiply-accumulate. A channel's entries come position by position (``golden.encoding``), so
one accumulator sums the run of position ``xi`` and, when the position changes, writes it into
element ``xi`` of the channel's result bank slot; ``bank_mask`` marks the positions written (an
unwritten one holds a stale sum and reads as 0 through the collector). Pruned weights have no
entry and cost nothing. A layer whose positions go back inside a channel clears ``ordered``
and the program loader refuses it. With ``drain_positions`` P below ``alpha**2`` a bank word
holds P positions (word ``xi // P`` of the slot, element ``xi % P``): the bank is narrow and
deep, read through a registered (block RAM) port (``hw.result_bank``).

The transformed inputs ``V`` arrive on a systolic chain: each PE writes the beat on ``v_in``
into its local V memory and passes it, one register later, to ``v_out`` (the next PE). A beat,
and a V memory word, is ``P = config.v_beat_positions`` positions of one channel (``v_beats``
beats per channel): an entry at position ``xi`` reads the word of beat ``xi // P`` and takes
its element ``xi % P``. V memory and result bank are double-buffered (``half`` selects one), so
the next tile loads and the previous tile's results are collected while this tile computes.
With ``weight_banks`` 2 the weight memory is too: ``clear``, ``write`` and the counters act on
bank ``load_bank`` while the tiles compute from bank ``run_bank`` (the next layer loads while
this one runs).

Pipeline of the multiply-accumulate (one entry per cycle)::

    issue    weight memory read (address = entry counter)
    latch    register the entry (keeps the block RAM's slow read off the V memory address;
             ``hw.bram.RegisteredReadMemory``: the block RAM's output register on ECP5)
    fetch    V memory read (address = half, entry.channel, beat of entry.position)
    read     the V word leaves the memory
    hold     register the V word (nothing between the memory and this register; only
             when ``config.pipelined``; with ``v_beats`` above 1 the deep V memory is a
             ``hw.bram.RegisteredReadMemory``, the block RAM's output register on ECP5)
    select   V[position] (the word's element of it) and value into the multiplier's operand
             registers
             (``hw.multiplier.RegisteredMultiplier``: a registered DSP block on ECP5)
    multiply product = value * V[position] (registered); flush: the position's run ends
    add      acc += product; on flush: write acc + product to the bank slot's element
             ``position``, restart acc at 0
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import AcceleratorConfig
from golden.cycles import PE_PIPELINE_DEPTH
from golden.protocol import (bank_word_spec, beat_bits, entry_spec, index_bits,
                             v_address_bits, v_beat_spec, v_part_bits,
                             weight_memory_columns)
from golden.schedule import result_slots

from .bram import RegisteredReadMemory
from .column_memory import ColumnMemory
from .layouts import to_layout
from .multiplier import RegisteredMultiplier
from .result_bank import ResultBank

__all__ = ["PIPELINE_DEPTH", "ProcessingElement", "VChainSignature"]

#: Cycles from a tile's ``start`` until ``done`` rises, beyond one per entry (issue, latch,
#: fetch, select, multiply, add and the idle cycle that reports ``done``); ``golden.cycles``
#: uses the same figure.
PIPELINE_DEPTH = PE_PIPELINE_DEPTH


class VChainSignature(wiring.Signature):
    """One hop of the systolic V chain: a transformed channel tile and where it goes.

    Members
    -------
    valid : Out(1)
        A beat is present (the chain never stalls).
    addr : Out(golden.protocol.v_address_bits(config))
        V memory address ``Cat(beat, channel, half)`` (no beat bits with one beat per channel).
    last : Out(1)
        The final beat of the tile.
    data : Out(to_layout(golden.protocol.v_beat_spec(config)))
        ``V`` of one channel, the positions of this beat.
    """

    def __init__(self, config: AcceleratorConfig):
        super().__init__({
            "valid": Out(1),
            "addr": Out(v_address_bits(config)),
            "last": Out(1),
            "data": Out(to_layout(v_beat_spec(config))),
        })


class ProcessingElement(wiring.Component):
    """A zero-skip PE with its weight memory, double-buffered V memory and result bank.

    Parameters
    ----------
    config : golden.config.AcceleratorConfig
        Widths, ``pe_weight_depth`` (weight memory, of
        ``golden.protocol.weight_memory_columns``), ``max_in_channels`` and ``v_beats`` (V
        memory) and ``golden.schedule.result_slots`` (result bank).

    Members
    -------
    clear : In(1)
        Forget the loaded layer (weight count, channel count, and with one bank the
        accumulators).
    write : In(1)
        Append ``entry`` to the weight memory (ignored when full; see ``full``).
    entry : In(to_layout(golden.protocol.entry_spec(config)))
        A compressed weight entry.
    entries : Out(range(pe_weight_depth + 1))
        Entries loaded.
    channels : Out(range(result_slots + 1))
        Entries loaded with ``last`` set (output channels owned).
    full : Out(1)
        The weight memory holds ``pe_weight_depth`` entries.
    ordered : Out(1)
        Since ``clear``, no entry had a position below the previous entry's of its channel.
    v_in : In(VChainSignature(config))
        V chain from the previous PE (or the input transform).
    v_out : Out(VChainSignature(config))
        ``v_in`` delayed by one cycle, to the next PE.
    start : In(1)
        Compute one tile from V memory half ``half`` into result bank half ``half``.
    half : In(1)
        Sampled with ``start``.
    done : Out(1)
        No tile in progress (low from the cycle after ``start`` until the last result is
        written; with a ``golden.protocol.bank_write_latency`` of 2 the last result lands at
        the end of ``done``'s first cycle, and the bank is read from the next one on).
    bank_addr : In(unsigned)
        Result bank read address ``Cat(slot, half)``, read when ``bank_en``; with
        ``drain_positions`` below ``alpha**2`` ``Cat(beat, slot, half)``, the word of positions
        ``beat * drain_width ..`` of the slot.
    bank_en : In(1)
        Read enable; ``bank_data`` and ``bank_mask`` hold their values while low.
    bank_select : In(1)
        With ``bank_en``: this PE owns the addressed channel (else ``bank_mask`` reads 0).
    bank_data : Out(to_layout(golden.protocol.bank_word_spec(config)))
        ``M`` of the addressed slot (or beat), ``golden.protocol.bank_read_latency`` enabled
        cycles after the address, valid where ``bank_mask`` is set.
    bank_mask : Out(drain_width)
        Bit ``i``: the slot's channel has an entry at the word's position ``i`` (its element
        of ``bank_data`` is the sum); with ``bank_data``, 0 unless ``bank_select`` was set.
    load_bank, run_bank : In(1)
        With ``weight_banks`` 2 only: the weight bank ``clear`` / ``write`` / ``entries`` /
        ``channels`` / ``full`` refer to, and the one a tile computes from (sampled with
        ``start``).
    """

    def __init__(self, config: AcceleratorConfig):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be a golden.config.AcceleratorConfig, not {config!r}")
        self._config = config
        depth = config.pe_weight_depth
        slots = result_slots(config)
        super().__init__({
            "clear": In(1),
            "write": In(1),
            "entry": In(to_layout(entry_spec(config))),
            "entries": Out(range(depth + 1)),
            "channels": Out(range(slots + 1)),
            "full": Out(1),
            "ordered": Out(1, init=1),
            "v_in": In(VChainSignature(config)),
            "v_out": Out(VChainSignature(config)),
            "start": In(1),
            "half": In(1),
            "done": Out(1),
            "bank_addr": In(index_bits(slots) + 1 + beat_bits(config)),
            "bank_en": In(1),
            "bank_select": In(1),
            "bank_data": Out(to_layout(bank_word_spec(config))),
            "bank_mask": Out(config.drain_width),
            **({"load_bank": In(1), "run_bank": In(1)} if config.weight_banks == 2 else {}),
        })

    @property
    def config(self) -> AcceleratorConfig:
        """The accelerator configuration."""
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        widths = cfg.widths
        depth, slots = cfg.pe_weight_depth, result_slots(cfg)
        entry_layout = to_layout(entry_spec(cfg))
        v_layout = to_layout(v_beat_spec(cfg))
        chan_bits, slot_bits = index_bits(cfg.max_in_channels), index_bits(slots)

        banked = cfg.weight_banks == 2
        # Read through the block RAM's own output register (the ``latch`` stage), one memory
        # per column of golden.protocol.weight_memory_columns.
        columns = weight_memory_columns(cfg)
        m.submodules.weight_memory = wmem = ColumnMemory(shape=entry_layout, depth=depth,
                                                         columns=columns)
        if banked:
            m.submodules.weight_memory_1 = wmem_1 = ColumnMemory(shape=entry_layout,
                                                                 depth=depth, columns=columns)
        # A deep V memory (several beats per channel) is block RAM: pipelined, its read comes
        # through the block's own output register (the hold stage), else it leaves the block
        # 5.8 ns after the clock, the narrow ECP5 array's critical path.
        v_registered = cfg.pipelined and cfg.v_beats > 1
        v_depth = 1 << v_address_bits(cfg)
        if v_registered:
            m.submodules.v_memory = vmem = RegisteredReadMemory(shape=v_layout, depth=v_depth)
            v_wr, v_rd = vmem.write, vmem.read
        else:
            m.submodules.v_memory = vmem = Memory(shape=v_layout, depth=v_depth, init=[])
            v_wr, v_rd = vmem.write_port(), vmem.read_port(transparent_for=())
        m.submodules.result_bank = bank = ResultBank(cfg)

        # -- loading: weights appended in execution order; V from the chain ----------------
        if banked:
            # Per-bank counters; the outputs show the bank being loaded.
            entries = [Signal.like(self.entries, name=f"entries_{b}") for b in range(2)]
            channels = [Signal.like(self.channels, name=f"channels_{b}") for b in range(2)]
            ordered = [Signal(init=1, name=f"ordered_{b}") for b in range(2)]
            fulls = [Signal(name=f"full_{b}") for b in range(2)]
            memories = [wmem, wmem_1]
            m.d.comb += [self.entries.eq(Array(entries)[self.load_bank]),
                         self.channels.eq(Array(channels)[self.load_bank]),
                         self.ordered.eq(Array(ordered)[self.load_bank]),
                         self.full.eq(Array(fulls)[self.load_bank])]
        else:
            entries, channels, memories = [self.entries], [self.channels], [wmem]
            ordered, fulls = [self.ordered], [self.full]
        for b, (count, owned, in_order, full, memory) in enumerate(
                zip(entries, channels, ordered, fulls, memories)):
            clear, write = self.clear, self.write & ~self.full
            if banked:
                clear, write = clear & (self.load_bank == b), write & (self.load_bank == b)
            # The memory write one cycle late, from registers: the loader's entry bus reaches
            # every PE, and a block RAM's inputs then have a whole cycle of routing. The
            # counters stay immediate; no entry is read back within a cycle of its write.
            write_addr = Signal.like(count, name=f"write_addr_{b}")
            write_data = Signal(entry_layout, name=f"write_data_{b}")
            write_en = Signal(name=f"write_en_{b}")
            m.d.sync += [write_addr.eq(count), write_data.eq(self.entry), write_en.eq(write)]
            m.d.comb += [memory.write.addr.eq(write_addr), memory.write.data.eq(write_data),
                         memory.write.en.eq(write_en)]
            # A channel's entries must come position by position (one accumulator per run):
            # a position below the previous entry's of the same channel clears ``ordered``.
            previous = Signal.like(self.entry.position, name=f"previous_position_{b}")
            open_channel = Signal(name=f"open_channel_{b}")
            # ``full`` is a register set with the last write, not a compare of the count: it
            # feeds the loader's acceptance of the next beat.
            with m.If(clear):
                m.d.sync += [count.eq(0), owned.eq(0), in_order.eq(1), open_channel.eq(0),
                             full.eq(0)]
            with m.Elif(write):
                m.d.sync += [count.eq(count + 1), previous.eq(self.entry.position),
                             open_channel.eq(~self.entry.last), full.eq(count == depth - 1)]
                with m.If(open_channel & (self.entry.position < previous)):
                    m.d.sync += in_order.eq(0)
                with m.If(self.entry.last & (owned != slots)):
                    m.d.sync += owned.eq(owned + 1)

        m.d.comb += [v_wr.addr.eq(self.v_in.addr), v_wr.data.eq(self.v_in.data),
                     v_wr.en.eq(self.v_in.valid)]
        m.d.sync += [self.v_out.valid.eq(self.v_in.valid), self.v_out.addr.eq(self.v_in.addr),
                     self.v_out.last.eq(self.v_in.last), self.v_out.data.eq(self.v_in.data)]

        # -- issue: one weight read per cycle while entries remain -------------------------
        running = Signal()
        pointer = Signal(range(depth + 1))
        half = Signal()
        if banked:
            # The computing bank and its entry count, fixed for the tile.
            run_bank = Signal()
            run_entries = Signal.like(self.entries)
            # The bank is fixed for the tile: its select after the output registers.
            w_rd_data = Mux(run_bank, wmem_1.read.data, wmem.read.data)
            for memory in memories:
                m.d.comb += memory.read.addr.eq(pointer)
            with m.If(self.start):
                m.d.sync += [run_bank.eq(self.run_bank),
                             run_entries.eq(Array(entries)[self.run_bank])]
            start_entries = Array(entries)[self.run_bank]
        else:
            m.d.comb += wmem.read.addr.eq(pointer)
            w_rd_data = wmem.read.data
            run_entries = start_entries = self.entries
        with m.If(self.start):
            m.d.sync += [running.eq(start_entries != 0), pointer.eq(0), half.eq(self.half)]
        with m.Elif(running):
            m.d.sync += pointer.eq(pointer + 1)
            with m.If(pointer == run_entries - 1):
                m.d.sync += running.eq(0)

        # -- latch: the entry registered out of the weight memory (a block RAM's read is slow;
        # its output must not feed the V memory address directly): the second register of
        # ``RegisteredReadMemory``, inside the block RAM on ECP5 ------------------------------
        latch_valid = Signal()
        m.d.sync += latch_valid.eq(running)
        entry = data.View(entry_layout, w_rd_data)

        # -- fetch: read the word of V[channel] that holds the position ---------------------
        fetch_valid = Signal()
        m.d.sync += fetch_valid.eq(latch_valid)
        beat_positions, part_bits = cfg.v_beat_positions, v_part_bits(cfg)
        if part_bits:
            # Beat and element of each position: constant tables, one LUT level each.
            part = Array(Const(xi // beat_positions, part_bits)
                         for xi in range(cfg.positions))[entry.position]
            offset = Array(Const(xi % beat_positions, range(beat_positions))
                           for xi in range(cfg.positions))[entry.position]
        else:
            part, offset = Cat(), entry.position
        m.d.comb += v_rd.addr.eq(Cat(part, entry.channel[:chan_bits], half))

        # -- read: the V word leaves the memory; the entry's fields keep pace --------------
        read_valid = Signal()
        read_value = Signal(signed(widths.weight))
        read_position = Signal.like(entry.position)
        read_offset = Signal(range(beat_positions)) if part_bits else read_position
        read_last = Signal()
        m.d.sync += [read_valid.eq(fetch_valid), read_value.eq(entry.value),
                     read_position.eq(entry.position), read_last.eq(entry.last)]
        if part_bits:
            m.d.sync += read_offset.eq(offset)

        # -- hold: register the V word straight out of its memory (a block RAM's read is slow;
        # the position mux comes after the register); not ``pipelined``, the read
        # stage feeds the mux --------------------------------------------------------------
        if cfg.pipelined:
            hold_valid = Signal()
            hold_value = Signal.like(read_value)
            hold_position = Signal.like(read_position)
            hold_offset = Signal.like(read_offset) if part_bits else hold_position
            hold_last = Signal()
            m.d.sync += [hold_valid.eq(read_valid), hold_value.eq(read_value),
                         hold_position.eq(read_position), hold_last.eq(read_last)]
            if v_registered:
                hold_v = data.View(v_layout, v_rd.data)     # the memory's second register
            else:
                hold_v = Signal(v_layout)
                m.d.sync += hold_v.eq(v_rd.data)
            if part_bits:
                m.d.sync += hold_offset.eq(read_offset)
        else:
            hold_valid, hold_value, hold_position, hold_last = (read_valid, read_value,
                                                                read_position, read_last)
            hold_offset = read_offset
            hold_v = data.View(v_layout, v_rd.data)
        v_selected = Array(hold_v[i] for i in range(beat_positions))[hold_offset]

        # -- select: V[channel][position] and the weight into the registered multiplier
        # (operand registers, then the product register: a DSP block's own on ECP5) --------
        m.submodules.multiplier = multiplier = RegisteredMultiplier(signed(widths.weight),
                                                                    signed(widths.v))
        m.d.comb += [multiplier.a.eq(hold_value), multiplier.b.eq(v_selected)]
        mul_valid = Signal()
        mul_position = Signal.like(hold_position)
        mul_last = Signal()
        m.d.sync += [mul_valid.eq(hold_valid), mul_position.eq(hold_position),
                     mul_last.eq(hold_last)]

        # -- multiply: one product per cycle (the PE's only multiplier). Entries of a channel
        # come position by position (golden.encoding), so one accumulator serves them all:
        # ``flush`` marks an entry whose position run ends here ---------------------------
        add_valid = Signal()
        add_position = Signal.like(mul_position)
        add_last = Signal()
        add_flush = Signal()
        product = Signal(signed(widths.product))
        m.d.sync += [add_valid.eq(mul_valid), add_position.eq(mul_position),
                     add_last.eq(mul_last & mul_valid),
                     add_flush.eq(mul_last | (hold_position != mul_position))]
        m.d.comb += product.eq(multiplier.p)

        # -- add: acc + product; at the end of a position's run the sum goes straight into
        # that position of the result bank slot and the accumulator restarts at 0 ----------
        acc = Signal(signed(widths.accumulator))
        acc_sum = Signal(signed(widths.accumulator))
        m.d.comb += acc_sum.eq(acc + product)
        # With two banks ``clear`` forgets the loading bank only, while a layer may compute.
        clear_acc = Const(0) if banked else self.clear
        with m.If(clear_acc | (add_valid & add_flush)):
            m.d.sync += acc.eq(0)
        with m.Elif(add_valid):
            m.d.sync += acc.eq(acc_sum)

        slot = Signal(range(slots + 1))
        one_hot = Signal(cfg.positions)
        m.d.comb += one_hot.eq(1 << add_position)
        # Positions of the channel with an entry so far; the others hold no sum (``bank_mask``).
        touched = Signal(cfg.positions)
        m.d.comb += [bank.write.eq(add_valid & add_flush), bank.position.eq(add_position),
                     bank.slot.eq(slot[:slot_bits]), bank.half.eq(half), bank.sum.eq(acc_sum),
                     bank.mask_write.eq(add_valid & add_last), bank.mask.eq(touched | one_hot)]
        with m.If(clear_acc | (add_valid & add_last)):
            m.d.sync += touched.eq(0)
        with m.Elif(add_valid):
            m.d.sync += touched.eq(touched | one_hot)
        with m.If(self.start):
            m.d.sync += slot.eq(0)
        with m.Elif(add_valid & add_last):
            m.d.sync += slot.eq(slot + 1)

        m.d.comb += self.done.eq(~(running | latch_valid | fetch_valid | read_valid | hold_valid
                                   | mul_valid | add_valid))

        # -- result bank read port for the collector ---------------------------------------
        m.d.comb += [bank.read_addr.eq(self.bank_addr), bank.read_en.eq(self.bank_en),
                     bank.read_select.eq(self.bank_select), self.bank_data.eq(bank.read_data),
                     self.bank_mask.eq(bank.read_mask)]
        return m
