"""The tap shift stage: every accumulated Winograd position shifted left by its layer's
``max(tap_shift) - tap_shift`` before the output transform (weight file v2 tap shifts).

Combinational and multiplier-free: one left shifter per position (a multiplexer over the
``max_tap_shift + 1`` shifted copies of its wires), between the collector and the output
transform, so that it adds no cycle and ``golden.cycles`` holds unchanged. The accelerator
builds it only when ``config.max_tap_shift`` > 0; the shifted width is
``config.widths.shifted`` (``golden.widths``: the accumulator plus ``max_tap_shift`` bits).
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.config import AcceleratorConfig
from golden.protocol import collector_output_spec, output_transform_input_spec, tap_left_spec

from .layouts import to_layout
from .signatures import BlockComponent, check_config

__all__ = ["TapShift"]


class TapShift(BlockComponent):
    """Left shift of every position of one output channel's ``M`` tile by ``tap_left``.

    Parameters
    ----------
    config : golden.config.AcceleratorConfig
        Tile (positions), widths and ``max_tap_shift`` (at least 1).

    Members
    -------
    i : In(stream.Signature(to_layout(golden.protocol.collector_output_spec(config))))
        ``M``, bias [and requant parameters] from the collector.
    o : Out(stream.Signature(to_layout(golden.protocol.output_transform_input_spec(config))))
        The same beat with ``m[p] = i.m[p] << tap_left[p]``; valid and ready pass through.
    tap_left : In(to_layout(golden.protocol.tap_left_spec(config)))
        The layer's left shifts (the ``cfg`` beat's field), each at most ``max_tap_shift``
        (the program loader refuses larger ones); held while the layer runs.
    """

    class Signature(wiring.Signature):
        """The tap shift stage's signature for ``config`` (see :class:`TapShift`)."""

        def __init__(self, config: AcceleratorConfig):
            check_config(config)
            if config.max_tap_shift < 1:
                raise ValueError(f"config.max_tap_shift must be at least 1 for a tap shift "
                                 f"stage, not {config.max_tap_shift}")
            super().__init__({
                "i": In(stream.Signature(to_layout(collector_output_spec(config)))),
                "o": Out(stream.Signature(to_layout(output_transform_input_spec(config)))),
                "tap_left": In(to_layout(tap_left_spec(config))),
            })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        i, o = self.i.payload, self.o.payload
        width = cfg.widths.shifted
        m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
        for name, _ in to_layout(collector_output_spec(cfg)):
            if name != "m":
                m.d.comb += o[name].eq(i[name])
        for p in range(cfg.positions):
            # tap_left[p] <= max_tap_shift, so the shifted value fits ``width`` bits exactly.
            m.d.comb += o.m[p].eq((i.m[p] << self.tap_left[p])[:width].as_signed())
        return m
