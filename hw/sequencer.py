"""The step sequencer: runs a loaded layer as lock-step steps over its tiles.

Step ``s`` (0 <= s <= n_tiles + 1) starts, in one cycle, loading tile ``s`` into V memory half
``s mod 2``, computing tile ``s - 1`` from the other half and draining tile ``s - 2`` from result
bank half ``s mod 2``, each only if that tile exists. The next step starts one cycle after all
three have finished. After the last step the sequencer waits until the layer's last result
beat has left (``finished``). ``golden.cycles`` models exactly this timing.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.config import AcceleratorConfig

from .signatures import BlockComponent, check_config, layer_field_shape

__all__ = ["StepSequencer"]


class StepSequencer(BlockComponent):
    """Lock-step load / compute / drain sequencing of one layer's tiles.

    Parameters
    ----------
    config : golden.config.AcceleratorConfig
        Sets the widths of the tile and channel counts.

    Members
    -------
    start : In(1)
        Run a layer of ``n_tiles`` tiles and ``out_channels`` output channels (one cycle).
    n_tiles : In(layer_field_shape(config, "n_tiles"))
        Tiles of the layer, at least 1 (the loader refuses 0); held while it runs (from the
        cycle after ``start``).
    out_channels : In(layer_field_shape(config, "out_channels"))
        Output channels (result beats per tile); held while the layer runs.
    load : Out(1)
        Start loading the step's tile (one cycle).
    load_half : Out(1)
        V memory half the loading tile goes to.
    compute : Out(1)
        Start computing the previous step's tile (one cycle).
    compute_half : Out(1)
        V memory and result bank half of the computing tile.
    drain : Out(1)
        Start draining the tile computed in the previous step (one cycle).
    drain_half : Out(1)
        Result bank half of the draining tile.
    loading : In(1)
        The V feeder is busy.
    computing : In(1)
        Some PE is busy.
    draining : In(1)
        The collector is busy.
    result : In(1)
        A result beat left the accelerator.
    busy : Out(1)
        A layer is running.
    finished : Out(1)
        The layer's last result beat has left (one cycle; a new ``start`` is taken next cycle).
    """

    class Signature(wiring.Signature):
        """The sequencer's signature for ``config`` (see :class:`StepSequencer`)."""

        def __init__(self, config: AcceleratorConfig):
            check_config(config)
            super().__init__({
                "start": In(1),
                "n_tiles": In(layer_field_shape(config, "n_tiles")),
                "out_channels": In(layer_field_shape(config, "out_channels")),
                "load": Out(1),
                "load_half": Out(1),
                "compute": Out(1),
                "compute_half": Out(1),
                "drain": Out(1),
                "drain_half": Out(1),
                "loading": In(1),
                "computing": In(1),
                "draining": In(1),
                "result": In(1),
                "busy": Out(1),
                "finished": Out(1),
            })

    def elaborate(self, platform):
        m = Module()
        n_tiles, out_channels = self.n_tiles, self.out_channels
        # Every count runs down to a constant, and every compare of a count is registered with
        # the count, so no carry chain from the layer's fields reaches an enable or a task
        # start. ``steps_left``: steps after this one (n_tiles + 1 in step 0, 0 in the last).
        parity = Signal()
        first = Signal()
        steps_left = Signal(len(n_tiles) + 1)
        has_load, has_compute, has_drain, final = (
            Signal(name=name) for name in ("has_load", "has_compute", "has_drain", "final"))
        # Result beats leave tile-major, channel-minor; FLUSH waits for the last tile's.
        tiles_left = Signal.like(n_tiles)
        channels_left = Signal.like(out_channels)
        results_last, results_done = Signal(), Signal()
        # Tile s loads into half s mod 2, tile s - 1 computes from the other half, and tile
        # s - 2 drains the result bank half it was computed into (s - 2 = s mod 2).
        m.d.comb += [self.load_half.eq(parity), self.compute_half.eq(~parity),
                     self.drain_half.eq(parity)]
        stepped = ~self.loading & ~self.computing & ~self.draining

        with m.FSM(name="sequencer"):
            with m.State("IDLE"):
                with m.If(self.start):
                    # Step 0 loads tile 0 only (n_tiles >= 1) and is not the last.
                    m.d.sync += [parity.eq(0), first.eq(1), results_done.eq(0),
                                 has_load.eq(1), has_compute.eq(0), has_drain.eq(0),
                                 final.eq(0)]
                    m.next = "START"
            with m.State("START"):
                m.d.comb += [self.busy.eq(1), self.load.eq(has_load),
                             self.compute.eq(has_compute), self.drain.eq(has_drain)]
                with m.If(first):
                    # The layer's fields hold from here on; no result comes before step 2.
                    m.d.sync += [first.eq(0), steps_left.eq(n_tiles + 1),
                                 tiles_left.eq(n_tiles), channels_left.eq(out_channels),
                                 results_last.eq(out_channels == 1)]
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(stepped):
                    with m.If(final):
                        m.next = "FLUSH"
                    with m.Else():
                        # Step s + 1 (steps_left - 1 after it) loads tile s + 1 if there is
                        # one, computes tile s (s <= n_tiles) and drains tile s - 1 (s >= 1,
                        # i.e. step s computed).
                        m.d.sync += [parity.eq(~parity), steps_left.eq(steps_left - 1),
                                     has_load.eq(steps_left >= 3),
                                     has_compute.eq(steps_left >= 2), has_drain.eq(has_compute),
                                     final.eq(steps_left == 1)]
                        m.next = "START"
            with m.State("FLUSH"):
                m.d.comb += self.busy.eq(1)
                with m.If(results_done):
                    m.d.comb += self.finished.eq(1)
                    m.next = "IDLE"

        with m.If(self.result):
            with m.If(results_last):
                m.d.sync += [channels_left.eq(out_channels), results_last.eq(out_channels == 1),
                             tiles_left.eq(tiles_left - 1), results_done.eq(tiles_left == 1)]
            with m.Else():
                m.d.sync += [channels_left.eq(channels_left - 1),
                             results_last.eq(channels_left == 2)]
        return m
