"""The V feeder: input patches through the input transform into the head of the systolic V chain.

On ``start`` the feeder opens a window of ``in_channels`` patch beats (one tile, channel-minor)
into the input transform and writes each transformed channel onto the chain with the V memory
address ``Cat(beat, channel, half)``; the tile's last beat carries ``last``. The feeder is busy
until that last beat has reached the end of the chain (``chain_end``).

With ``config.v_beats`` B > 1 a channel goes onto the chain in B beats of
``config.v_beat_positions`` positions, the first straight from the input transform and the others
from a shift register; the feeder takes the input transform's next channel only after the last
beat, so the patches back up and a tile loads in ``B * in_channels`` cycles plus the latencies
(``golden.cycles``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.config import AcceleratorConfig
from golden.protocol import index_bits, patch_spec, v_beat_spec, v_part_bits, v_spec

from .layouts import to_layout
from .pe import VChainSignature
from .signatures import BlockComponent, check_config, layer_field_shape

__all__ = ["VFeeder"]


class VFeeder(BlockComponent):
    """Patch window, input transform hand-off and V chain head of one tile per ``start``.

    Parameters
    ----------
    config : golden.config.AcceleratorConfig
        Patch and V layouts, ``max_in_channels`` and ``v_beats`` (V memory address, beats per
        channel).

    Members
    -------
    patches : In(stream.Signature(to_layout(golden.protocol.patch_spec(config))))
        Input patches, tile-major, channel-minor; accepted only inside a tile's window.
    transform_in : Out(stream.Signature(to_layout(golden.protocol.patch_spec(config))))
        To the input transform.
    transform_out : In(stream.Signature(to_layout(golden.protocol.v_spec(config))))
        From the input transform (always ready with one beat per channel: the chain never
        stalls; with B, ready once every B cycles).
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
        cfg = self._config
        chan_bits, beats = index_bits(cfg.max_in_channels), cfg.v_beats
        in_channels = self.in_channels
        accepted = Signal.like(in_channels)
        written = Signal.like(in_channels)
        half = Signal()
        loading = self.busy
        window = loading & (accepted != in_channels)
        m.d.comb += [self.transform_in.payload.eq(self.patches.payload),
                     self.transform_in.valid.eq(self.patches.valid & window),
                     self.patches.ready.eq(self.transform_in.ready & window)]

        head = self.v_out
        word = Cat(self.transform_out.payload)
        if beats > 1:
            # Beat ``part`` of the channel: beat 0 straight from the input transform, the later
            # ones from ``rest`` (the next one in its low bits).
            beat_bits = v_beat_spec(cfg).size
            part = Signal(range(beats))
            rest = Signal(beat_bits * (beats - 1))
            m.d.comb += self.transform_out.ready.eq(part == 0)
            head_valid = self.transform_out.valid | (part != 0)
            head_data = Mux(part == 0, word[:beat_bits], rest[:beat_bits])
            final_beat = part == beats - 1
            channel_done = head_valid & final_beat
            with m.If(self.transform_out.valid & self.transform_out.ready):
                m.d.sync += [rest.eq(word[beat_bits:]), part.eq(1)]
            with m.Elif(part != 0):
                m.d.sync += [rest.eq(rest[beat_bits:]),
                             part.eq(Mux(part == beats - 1, 0, part + 1))]
            addr = Cat(part[:v_part_bits(cfg)], written[:chan_bits], half)
        else:
            m.d.comb += self.transform_out.ready.eq(1)
            head_valid, head_data, final_beat = self.transform_out.valid, word, 1
            channel_done = head_valid
            addr = Cat(written[:chan_bits], half)
        with m.If(self.start):
            m.d.sync += [loading.eq(1), accepted.eq(0), written.eq(0), half.eq(self.half)]
        with m.Else():
            with m.If(self.patches.valid & self.patches.ready):
                m.d.sync += accepted.eq(accepted + 1)
            with m.If(channel_done):
                m.d.sync += written.eq(written + 1)
            with m.If(self.chain_end):
                m.d.sync += loading.eq(0)
        m.d.comb += [head.valid.eq(head_valid), head.addr.eq(addr),
                     head.last.eq(final_beat & (written == in_channels - 1)),
                     Cat(head.data).eq(head_data)]
        return m
