"""The program loader: accepts a layer's ``cfg``, ``table`` and ``weights`` beats, loads them
into the channel table and the PEs' weight memories, and refuses what cannot be loaded exactly.

Protocol (``golden.protocol`` specs, ``golden.program`` words): one ``cfg`` beat, K ``table``
beats, then ``n_entries`` ``weights`` beats. A refused layer sets ``error`` and returns to
waiting for a ``cfg`` without consuming further beats of that layer (see
:class:`ProgramLoader`). An accepted layer is handed to the step sequencer (``start``); the
loader then waits for ``finished`` before it accepts the next ``cfg``.

With ``weight_banks`` 2 the loader loads the next layer while this one runs: it returns to
waiting for a ``cfg`` as soon as it hands a layer to the sequencer, loads the next layer into the
other bank of the PEs' weight memories and the channel table, and hands it over (``start``) in
the first cycle the sequencer is idle (``running`` low), swapping the banks.

With ``weight_lanes`` L > 1 a ``weights`` beat carries one entry for each of the L PEs of one
group (``golden.protocol.weight_spec``), each lane checked and written on its own.

Timing: the ``cfg`` beat takes one cycle, every ``table`` and ``weights`` beat one cycle when
offered, and the consistency check one cycle (``golden.cycles.layer_cycles`` ``load_cycles``).
A refused ``cfg`` takes two: the loader learns of the refusal from registered flags.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.config import AcceleratorConfig
from golden.protocol import cfg_spec, entry_spec, table_spec, weight_spec
from golden.schedule import result_slots

from .layouts import to_layout
from .signatures import BlockComponent, check_config, TableWriteSignature

__all__ = ["ProgramLoader"]


class ProgramLoader(BlockComponent):
    """Layer program loader with the layer registers and the refusal checks.

    Refused, with ``error`` set: a ``cfg`` with C or K outside [1, max], no tiles, more entries than
    the PE memories hold or a ``tap_left`` beyond ``max_tap_shift``; a ``table`` beat whose owner or
    slot is out of range (unless ``empty``) or, with ``split_channels``, that splits a channel of
    the last PE; a ``weights`` beat (or, with lanes, a valid lane) for a PE outside the array, a
    full PE, an input channel >= C, a position >= alpha**2, or a channel beyond the PE's result
    bank; and, after the last beat, any PE whose entries do not end a channel, whose channel
    count (a split channel counts in both PEs) differs from the table or whose entries go back
    in position inside a channel (``golden.encoding`` order; ``pe_ordered``). ``error`` stays
    set until the next ``cfg`` is accepted.

    Parameters
    ----------
    config : golden.config.AcceleratorConfig
        PE count, ``pe_weight_depth``, channel limits and the beat layouts.

    Members
    -------
    cfg : In(stream.Signature(to_layout(golden.protocol.cfg_spec(config))))
        Layer configuration (one beat per layer).
    table : In(stream.Signature(to_layout(golden.protocol.table_spec(config))))
        One row per output channel, written to ``table_write``.
    weights : In(stream.Signature(to_layout(golden.protocol.weight_spec(config))))
        Compressed weight entries with their PE index.
    layer : Out(to_layout(golden.protocol.cfg_spec(config)))
        The accepted ``cfg`` (registered; stable while the layer runs). Its channel and entry
        counts keep only the bits their limits need: after a refused ``cfg`` they hold its
        counts' low bits.
    busy : Out(1)
        A layer is loading or running.
    error : Out(1)
        The last layer was refused.
    table_write : Out(hw.signatures.TableWriteSignature(config))
        Channel table writes (row ``k`` at the ``k``-th ``table`` beat).
    pe_clear : Out(1)
        Forget the PEs' loaded layer (with the ``cfg`` beat).
    pe_write : Out(n_pe)
        Bit ``p``: append ``pe_entry`` to PE ``p``'s weight memory (also for the beat that a
        layer is refused at: that layer never runs, and the next ``cfg`` clears the PEs).
    pe_entry : Out(to_layout(golden.protocol.entry_spec(config)))
        The entry of the current ``weights`` beat; with ``weight_lanes`` L > 1 an array of L,
        entry ``j`` for the PEs ``p`` with ``p % L == j`` (:meth:`entry_for`).
    pe_full : In(n_pe)
        Bit ``p``: PE ``p``'s weight memory is full.
    pe_channels : In(range(result_slots + 1)).array(n_pe)
        Channels each PE has been loaded with.
    pe_ordered : In(n_pe)
        Bit ``p``: PE ``p``'s entries come position by position inside each channel.
    start : Out(1)
        The program is loaded and consistent: run the layer (one cycle).
    finished : In(1)
        The running layer's last result has left; accept the next ``cfg``.
    load_bank, run_bank : Out(1)
        With ``weight_banks`` 2 only: the bank being loaded, and the running layer's.
    run_layer : Out(to_layout(golden.protocol.cfg_spec(config)))
        With ``weight_banks`` 2 only: the running layer's ``cfg`` (``layer`` is the loading
        one's).
    running : In(1)
        With ``weight_banks`` 2 only: the sequencer runs a layer.
    """

    class Signature(wiring.Signature):
        """The loader's signature for ``config`` (see :class:`ProgramLoader`)."""

        def __init__(self, config: AcceleratorConfig):
            check_config(config)
            super().__init__({
                "cfg": In(stream.Signature(to_layout(cfg_spec(config)))),
                "table": In(stream.Signature(to_layout(table_spec(config)))),
                "weights": In(stream.Signature(to_layout(weight_spec(config)))),
                "layer": Out(to_layout(cfg_spec(config))),
                "busy": Out(1),
                "error": Out(1),
                "table_write": Out(TableWriteSignature(config)),
                "pe_clear": Out(1),
                "pe_write": Out(config.n_pe),
                "pe_entry": (Out(to_layout(entry_spec(config))) if config.weight_lanes == 1
                             else Out(to_layout(entry_spec(config))).array(config.weight_lanes)),
                "pe_full": In(config.n_pe),
                "pe_channels": In(range(result_slots(config) + 1)).array(config.n_pe),
                "pe_ordered": In(config.n_pe),
                "start": Out(1),
                "finished": In(1),
                **({"load_bank": Out(1), "run_bank": Out(1),
                    "run_layer": Out(to_layout(cfg_spec(config))), "running": In(1)}
                   if config.weight_banks == 2 else {}),
            })

    def entry_for(self, pe: int):
        """The ``pe_entry`` signal PE ``pe`` writes."""
        lanes = self._config.weight_lanes
        return self.pe_entry if lanes == 1 else self.pe_entry[pe % lanes]

    def _lane_checks(self, m, channels_full):
        """``bad`` (some valid lane cannot be loaded) and, per PE, the write condition and
        the entry's ``last`` of a wide ``weights`` beat."""
        cfg = self._config
        lanes, groups = cfg.weight_lanes, cfg.weight_groups
        w_in, layer = self.weights.payload, self.layer
        group = Signal(range(max(groups, 2)))
        m.d.comb += group.eq(w_in.group)
        bad = [w_in.group >= groups]
        writes = []
        for j in range(lanes):
            lane = getattr(w_in, f"lane{j}")
            entry = lane.entry
            m.d.comb += self.pe_entry[j].eq(entry)
            members = range(j, cfg.n_pe, lanes)
            pe_full = Array(self.pe_full[p] for p in members)[group]
            pe_channels_full = Array(channels_full[p] for p in members)[group]
            bad.append(lane.valid & ((entry.channel >= layer.in_channels)
                                     | (entry.position >= cfg.positions) | pe_full
                                     | (entry.last & pe_channels_full)))
            writes += [(g * lanes + j, lane.valid & (group == g), entry.last)
                       for g in range(groups)]
        return Cat(*bad).any(), writes

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        n_pe, slots = cfg.n_pe, result_slots(cfg)
        layer = self.layer
        cfg_in, t_in, w_in = self.cfg.payload, self.table.payload, self.weights.payload

        beat = Signal(range(max(cfg.max_out_channels, 1) + 1))     # table beat counter
        # Weight beats still to come, counted down: the last one is ``== 1`` (no subtractor
        # between the layer register and the state machine).
        entries_left = Signal(range(n_pe * cfg.pe_weight_depth + 1))
        owned = [Signal(range(slots + 1), name=f"owned_{p}") for p in range(n_pe)]
        pending = [Signal(name=f"pending_{p}") for p in range(n_pe)]
        # Compares precomputed a beat early, so that a beat's acceptance (which enables the
        # state, the counters and every PE's write) starts from registers: the last table
        # row, no weights, the last weight beat, and per PE ``pe_channels == slots`` (set
        # with the write of the entry that ends the PE's last slot).
        table_last, no_weights, weights_last = (Signal(name=name) for name in
                                                ("table_last", "no_weights", "weights_last"))
        channels_full = [Signal(name=f"channels_full_{p}") for p in range(n_pe)]

        if cfg.weight_lanes == 1:
            entry = w_in.entry
            w_pe = Signal(range(max(n_pe, 2)))
            m.d.comb += w_pe.eq(w_in.pe)
            pe_full = Array(self.pe_full[p] for p in range(n_pe))[w_pe]
            pe_channels_full = Array(channels_full)[w_pe]
            bad_entry = ((w_in.pe >= n_pe) | (entry.channel >= layer.in_channels)
                         | (entry.position >= cfg.positions) | pe_full
                         | (entry.last & pe_channels_full))
            writes = [(p, w_in.pe == p, entry.last) for p in range(n_pe)]
            m.d.comb += self.pe_entry.eq(entry)
        else:
            bad_entry, writes = self._lane_checks(m, channels_full)
        bad_table = ~t_in.empty & ((t_in.owner >= n_pe) | (t_in.slot >= slots))
        if cfg.split_channels:
            # A split channel's second part is in the next PE: the last PE has none.
            bad_table |= ~t_in.empty & t_in.split & (t_in.owner == n_pe - 1)
        consistent = Cat(*(~pending[p] & (owned[p] == self.pe_channels[p])
                           & self.pe_ordered[p] for p in range(n_pe))).all()

        # The cfg checks, one flag per field: each a short compare of the beat, registered
        # apart and ORed only where ``error`` is read (one OR of them all, with the state's
        # enable behind it, took a UP5K's clock).
        c, k = cfg_in.in_channels, cfg_in.out_channels
        refusals = [(c == 0) | (c > cfg.max_in_channels),
                    (k == 0) | (k > cfg.max_out_channels),
                    cfg_in.n_tiles == 0,
                    cfg_in.n_entries > n_pe * cfg.pe_weight_depth]
        # A field of max_tap_shift.bit_length() bits holds values above the maximum only when
        # the maximum is not all ones (a constant compare otherwise, which Verilator's lint
        # refuses).
        if cfg.max_tap_shift & (cfg.max_tap_shift + 1):
            refusals.append(Cat(cfg_in.tap_left[p] > cfg.max_tap_shift
                                for p in range(cfg.positions)).any())
        # ``error``: a flag per cfg check (set with the cfg beat) or a later refusal.
        cfg_refused = Signal(len(refusals))
        refused_later = Signal()
        m.d.comb += self.error.eq(cfg_refused.any() | refused_later)

        m.d.comb += [self.table_write.addr.eq(beat), self.table_write.data.eq(t_in)]
        with m.FSM(name="loader"):
            with m.State("IDLE"):
                m.d.comb += self.cfg.ready.eq(1)
                with m.If(self.cfg.valid):
                    m.d.sync += [cfg_refused.eq(Cat(refusals)), refused_later.eq(0),
                                 layer.eq(cfg_in)]
                    # An accepted cfg's counts fit their limits: the layer register keeps only
                    # the bits they can use, so that every compare against it, here and in the
                    # blocks it drives, is as narrow as the limit, not the field.
                    for name, limit in (("in_channels", cfg.max_in_channels),
                                        ("out_channels", cfg.max_out_channels),
                                        ("n_entries", n_pe * cfg.pe_weight_depth)):
                        bits = min(limit.bit_length(), len(getattr(cfg_in, name)))
                        m.d.sync += getattr(layer, name).eq(getattr(cfg_in, name)[:bits])
                    m.d.sync += [beat.eq(0), entries_left.eq(cfg_in.n_entries),
                                 table_last.eq(k == 1), no_weights.eq(cfg_in.n_entries == 0),
                                 weights_last.eq(cfg_in.n_entries == 1)]
                    m.d.sync += [o.eq(0) for o in owned] + [p.eq(0) for p in pending]
                    m.d.sync += [f.eq(0) for f in channels_full]
                    m.d.comb += self.pe_clear.eq(1)
                    # Refused or not, on to TABLE: the state's enable does not wait for the
                    # refusal's wide compares, which only set ``error``. A refused layer
                    # leaves TABLE in its first cycle, consuming nothing.
                    m.next = "TABLE"
            with m.State("TABLE"):
                m.d.comb += [self.busy.eq(~self.error), self.table.ready.eq(~self.error),
                             self.table_write.en.eq(self.table.valid & ~self.error
                                                    & ~bad_table)]
                with m.If(self.error):
                    m.next = "IDLE"
                with m.Elif(self.table.valid):
                    with m.If(bad_table):
                        m.d.sync += refused_later.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        with m.If(~t_in.empty):
                            for p in range(n_pe):
                                owns = t_in.owner == p
                                if cfg.split_channels and p:
                                    # A split channel counts in its owner and the next PE.
                                    owns |= t_in.split & (t_in.owner == p - 1)
                                with m.If(owns):
                                    m.d.sync += owned[p].eq(owned[p] + 1)
                        m.d.sync += [beat.eq(beat + 1),
                                     table_last.eq(beat + 2 == layer.out_channels)]
                        with m.If(table_last):
                            with m.If(no_weights):
                                m.next = "CHECK"
                            with m.Else():
                                m.next = "WEIGHTS"
            with m.State("WEIGHTS"):
                m.d.comb += [self.busy.eq(1), self.weights.ready.eq(1)]
                with m.If(self.weights.valid):
                    # The PEs write the beat before it is checked (their write enables are
                    # the beat's PE decode, not the checks): a refused layer never runs, and
                    # the next cfg clears what it wrote.
                    for p, selected, _last in writes:
                        m.d.comb += self.pe_write[p].eq(selected)
                    with m.If(bad_entry):
                        m.d.sync += refused_later.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        for p, selected, last in writes:
                            with m.If(selected):
                                m.d.sync += pending[p].eq(~last)
                                with m.If(last):
                                    m.d.sync += channels_full[p].eq(
                                        self.pe_channels[p] == slots - 1)
                        m.d.sync += [entries_left.eq(entries_left - 1),
                                     weights_last.eq(entries_left == 2)]
                        with m.If(weights_last):
                            m.next = "CHECK"
            if cfg.weight_banks == 1:
                with m.State("CHECK"):
                    m.d.comb += self.busy.eq(1)
                    with m.If(consistent):
                        m.d.comb += self.start.eq(1)
                        m.next = "RUN"
                    with m.Else():
                        m.d.sync += refused_later.eq(1)
                        m.next = "IDLE"
                with m.State("RUN"):
                    m.d.comb += self.busy.eq(1)
                    with m.If(self.finished):
                        m.next = "IDLE"
            else:
                def hand_over():
                    # Run the loaded bank; the next cfg loads into the other one.
                    m.d.comb += self.start.eq(1)
                    m.d.sync += [self.run_layer.eq(layer), self.run_bank.eq(self.load_bank),
                                 self.load_bank.eq(~self.load_bank)]
                    m.next = "IDLE"

                with m.State("CHECK"):
                    m.d.comb += self.busy.eq(1)
                    with m.If(~consistent):
                        m.d.sync += refused_later.eq(1)
                        m.next = "IDLE"
                    with m.Elif(self.running):
                        m.next = "HOLD"
                    with m.Else():
                        hand_over()
                with m.State("HOLD"):
                    m.d.comb += self.busy.eq(1)
                    with m.If(~self.running):
                        hand_over()
        return m
