"""The V feeder: input patches through the input transform into the head of the systolic V chain.

On ``start`` the feeder opens a window of ``in_channels`` patch beats (one tile, channel-minor)
into the input transform and writes each transformed channel onto the chain with the V memory
address ``Cat(channel, half)``; the tile's last channel carries ``last``. The feeder is busy
until that last beat has reached the end of the chain (``chain_end``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.config import AcceleratorConfig
from golden.protocol import index_bits, patch_spec, v_spec

from .layouts import to_layout
from .pe import VChainSignature
from .signatures import BlockComponent, check_config, layer_field_shape

__all__ = ["VFeeder"]


class VFeeder(BlockComponent):
    """Patch window, input transform hand-off and V chain head of one tile per ``start``.

    Parameters
    ----------
    config : golden.config.AcceleratorConfig
        Patch and V layouts, ``max_in_channels`` (V memory address).

    Members
    -------
    patches : In(stream.Signature(to_layout(golden.protocol.patch_spec(config))))
        Input patches, tile-major, channel-minor; accepted only inside a tile's window.
    transform_in : Out(stream.Signature(to_layout(golden.protocol.patch_spec(config))))
        To the input transform.
    transform_out : In(stream.Signature(to_layout(golden.protocol.v_spec(config))))
        From the input transform (always ready: the chain never stalls).
    v_out : Out(hw.pe.VChainSignature(config))
        Head of the V chain (the first PE's ``v_in``).
    start : In(1)
        Load one tile into V memory half ``half`` (one cycle).
    half : In(1)
        Sampled with ``start``.
    in_channels : In(layer_field_shape(config, "in_channels"))
        Channels per tile; held while the layer runs.
    chain_end : In(1)
        The tile's last beat is at the end of the chain (the last PE's ``v_in``).
    busy : Out(1)
        A tile is loading (from ``start`` until ``chain_end``).
    """

    class Signature(wiring.Signature):
        """The feeder's signature for ``config`` (see :class:`VFeeder`)."""

        def __init__(self, config: AcceleratorConfig):
            check_config(config)
            super().__init__({
                "patches": In(stream.Signature(to_layout(patch_spec(config)))),
                "transform_in": Out(stream.Signature(to_layout(patch_spec(config)))),
                "transform_out": In(stream.Signature(to_layout(v_spec(config)))),
                "v_out": Out(VChainSignature(config)),
                "start": In(1),
                "half": In(1),
                "in_channels": In(layer_field_shape(config, "in_channels")),
                "chain_end": In(1),
                "busy": Out(1),
            })

    def elaborate(self, platform):
        m = Module()
        chan_bits = index_bits(self._config.max_in_channels)
        in_channels = self.in_channels
        accepted = Signal.like(in_channels)
        written = Signal.like(in_channels)
        half = Signal()
        loading = self.busy
        window = loading & (accepted != in_channels)
        m.d.comb += [self.transform_in.payload.eq(self.patches.payload),
                     self.transform_in.valid.eq(self.patches.valid & window),
                     self.patches.ready.eq(self.transform_in.ready & window),
                     self.transform_out.ready.eq(1)]
        with m.If(self.start):
            m.d.sync += [loading.eq(1), accepted.eq(0), written.eq(0), half.eq(self.half)]
        with m.Else():
            with m.If(self.patches.valid & self.patches.ready):
                m.d.sync += accepted.eq(accepted + 1)
            with m.If(self.transform_out.valid):
                m.d.sync += written.eq(written + 1)
            with m.If(self.chain_end):
                m.d.sync += loading.eq(0)
        head = self.v_out
        m.d.comb += [head.valid.eq(self.transform_out.valid),
                     head.addr.eq(Cat(written[:chan_bits], half)),
                     head.last.eq(written == in_channels - 1),
                     head.data.eq(self.transform_out.payload)]
        return m
