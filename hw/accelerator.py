"""The accelerator top level: the wiring of the program loader, step sequencer, V feeder, input
transform, systolic PE chain, collector and output transform.

Protocol (``golden.program``): one ``cfg`` beat, K ``table`` beats, ``n_entries`` ``weights``
beats, then T * C ``patches`` beats (tile-major, channel-minor); the accelerator answers with
T * K ``results`` beats (tile-major, channel-minor) and then accepts the next ``cfg``.

Refusal (:class:`hw.loader.ProgramLoader`): a ``cfg`` with C or K outside [1, max], no tiles, more
entries than the PE memories hold or a tap shift beyond ``max_tap_shift``, and any ``table`` /
``weights`` beat that cannot be loaded exactly (owner or slot out of range, PE index out of range, a
PE's weight memory or result bank overflowing, an entry for an input channel >= C or a position >=
alpha**2, a PE whose entries do not end a channel or whose channel count differs from the table)
sets ``error`` and returns to waiting for a ``cfg`` without consuming further beats of that layer;
nothing is computed. ``error`` stays set until the next ``cfg`` is accepted. After an error the host
resets the accelerator (or resends from a fresh ``cfg``, having dropped the refused layer's
remaining beats).

Timing is exact and modelled by ``golden.cycles`` (:class:`hw.sequencer.StepSequencer`: lock-step
steps that load tile s, compute tile s - 1 and drain tile s - 2 concurrently)::

    cfg, table, weights -> ProgramLoader -> channel table (Collector), PE weight memories
    patches -> VFeeder -> InputTransform -> VFeeder -> pe_0_0 -> ... -> pe_R-1_C-1 (V chain)
    PE result banks -> Collector [-> TapShift] -> OutputTransform -> results

    ProgramLoader -start-> StepSequencer -finished-> ProgramLoader
    StepSequencer -load-> VFeeder, -compute-> every PE, -drain-> Collector (each one busy back)
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.config import AcceleratorConfig
from golden.cycles import input_transform_latency, output_transform_latency
from golden.protocol import cfg_spec, patch_spec, result_spec, table_spec, weight_spec

from .collector import Collector
from .feeder import VFeeder
from .layouts import to_layout
from .loader import ProgramLoader
from .pe import ProcessingElement
from .sequencer import StepSequencer
from .signatures import BlockComponent, check_config
from .tap_shift import TapShift
from .transform import InputTransform, OutputTransform

__all__ = ["Accelerator"]


class Accelerator(BlockComponent):
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

    class Signature(wiring.Signature):
        """The accelerator's signature for ``config`` (see :class:`Accelerator`); the ports of
        the generated Verilog, known without building the design."""

        def __init__(self, config: AcceleratorConfig):
            check_config(config)
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
    def pe_names(self) -> list[str]:
        """Submodule names of the PEs in chain order (``pe_{row}_{column}``)."""
        rows, cols = self._config.array
        return [f"pe_{r}_{c}" for r in range(rows) for c in range(cols)]

    def elaborate(self, platform):
        m = Module()
        cfg = self._config

        m.submodules.loader = loader = ProgramLoader(cfg)
        m.submodules.sequencer = sequencer = StepSequencer(cfg)
        m.submodules.feeder = feeder = VFeeder(cfg)
        m.submodules.collector = collector = Collector(cfg)
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

        # Program: streams into the loader; the loader fills the table and the PEs.
        for port in ("cfg", "table", "weights"):
            wiring.connect(m, wiring.flipped(getattr(self, port)), getattr(loader, port))
        banked = cfg.weight_banks == 2
        m.d.comb += [self.busy.eq(loader.busy | sequencer.busy) if banked
                     else self.busy.eq(loader.busy), self.error.eq(loader.error)]
        wiring.connect(m, loader.table_write, collector.table_write)
        for p, pe in enumerate(pes):
            # ``clear`` one cycle late from a register per PE (it resets every accumulator):
            # the first weight or check of the layer comes two cycles after the cfg beat.
            clear = Signal(name=f"{self.pe_names[p]}_clear")
            m.d.sync += clear.eq(loader.pe_clear)
            m.d.comb += [pe.clear.eq(clear), pe.write.eq(loader.pe_write[p]),
                         pe.entry.eq(loader.entry_for(p)), loader.pe_full[p].eq(pe.full),
                         loader.pe_channels[p].eq(pe.channels),
                         loader.pe_ordered[p].eq(pe.ordered)]

        if banked:
            # The next layer loads into one bank while the running layer uses the other.
            m.d.comb += [loader.running.eq(sequencer.busy),
                         collector.table_bank.eq(loader.load_bank),
                         collector.run_bank.eq(loader.run_bank)]
            for pe in pes:
                m.d.comb += [pe.load_bank.eq(loader.load_bank), pe.run_bank.eq(loader.run_bank)]

        # The array's control is registered both ways (golden.cycles.COMPUTE_SYNC): the compute
        # start reaches every PE one cycle late, from a register of its own (no chip-wide
        # fan-out), and the sequencer sees the AND of all PEs' ``done`` one cycle late, held
        # busy over the two cycles before the PEs' own ``done`` falls.
        computing = Signal()
        starts = [Signal(name=f"{name}_start") for name in self.pe_names]
        halves = [Signal(name=f"{name}_half") for name in self.pe_names]
        m.d.sync += [start.eq(sequencer.compute) for start in starts]
        m.d.sync += [half.eq(sequencer.compute_half) for half in halves]
        m.d.sync += computing.eq(sequencer.compute | starts[0]
                                 | ~Cat(pe.done for pe in pes).all())

        # Steps: the sequencer runs the loaded layer and starts the three concurrent tasks.
        layer = loader.run_layer if banked else loader.layer
        m.d.comb += [sequencer.start.eq(loader.start), loader.finished.eq(sequencer.finished),
                     sequencer.n_tiles.eq(layer.n_tiles),
                     sequencer.out_channels.eq(layer.out_channels),
                     sequencer.loading.eq(feeder.busy),
                     sequencer.computing.eq(computing),
                     sequencer.draining.eq(collector.busy),
                     sequencer.result.eq(self.results.valid & self.results.ready)]

        # Load: patches -> feeder -> input transform -> feeder -> V chain through every PE.
        wiring.connect(m, wiring.flipped(self.patches), feeder.patches)
        wiring.connect(m, feeder.transform_in, itf.i)
        wiring.connect(m, itf.o, feeder.transform_out)
        wiring.connect(m, feeder.v_out, pes[0].v_in)
        for prev, nxt in zip(pes, pes[1:]):
            wiring.connect(m, prev.v_out, nxt.v_in)
        tail = pes[-1].v_in
        m.d.comb += [feeder.start.eq(sequencer.load), feeder.half.eq(sequencer.load_half),
                     feeder.in_channels.eq(layer.in_channels),
                     feeder.chain_end.eq(tail.valid & tail.last)]

        # Compute: every PE walks its entries of the tile.
        for pe, start, half in zip(pes, starts, halves):
            m.d.comb += [pe.start.eq(start), pe.half.eq(half)]

        # Drain: the collector reads the result banks into the output transform.
        m.d.comb += [collector.start.eq(sequencer.drain), collector.half.eq(sequencer.drain_half),
                     collector.out_channels.eq(layer.out_channels)]
        for p, pe in enumerate(pes):
            m.d.comb += [pe.bank_addr.eq(collector.bank_addr_for(p)),
                         pe.bank_en.eq(collector.bank_en),
                         pe.bank_select.eq(collector.bank_select[p]),
                         collector.bank_data[p].eq(pe.bank_data),
                         collector.bank_mask[p].eq(pe.bank_mask)]
        if cfg.max_tap_shift:
            # Tap shifts: every position of M_k shifted left by the layer's tap_left.
            m.submodules.tap_shift = tap_shift = TapShift(cfg)
            m.d.comb += tap_shift.tap_left.eq(layer.tap_left)
            wiring.connect(m, collector.o, tap_shift.i)
            wiring.connect(m, tap_shift.o, otf.i)
        else:
            wiring.connect(m, collector.o, otf.i)
        wiring.connect(m, otf.o, wiring.flipped(self.results))
        return m
