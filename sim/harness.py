"""A stream test harness around a device's Verilog module: Python stays out of the per-cycle
path.

Each input stream of the device under test gets a *source*: a memory the bench fills in bulk
(through VPI, before the run), a word counter and a pause pattern that inserts random gaps
between transfers. Each output stream gets a *sink*: a pause pattern that drops ``ready`` at
random, a capture memory and a transfer counter. Cycle counters stamp the first and the last
transfer of every stream. The bench sets the counts, raises ``run`` and sleeps until ``done``;
the simulator runs the whole layer at native speed.

Pause patterns are pause generators (as in cocotbext-axi) materialised into memory: bit ``t`` of
the pattern, for cycle ``t`` modulo its period, set means "pause" (a source presents no new
word; a sink holds ``ready`` low). A source never withdraws ``valid`` before its transfer and
keeps the payload stable, as :mod:`amaranth.lib.stream` requires of a transmitter.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import ClockSignal, Const, Instance, Module, ResetSignal, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["COUNTER_WIDTH", "PAUSE_WORD", "RAM_SOURCE", "StreamHarness", "stream_ports"]

#: Width of the word and cycle counters (4 G cycles is far beyond any simulated layer).
COUNTER_WIDTH = 32
#: Bits of a pause-pattern memory word.
PAUSE_WORD = 32
#: The plain-Verilog memory the harness instantiates (deep memories without initial blocks).
RAM_SOURCE = Path(__file__).resolve().parent / "hdl" / "harness_ram.v"


def _width(shape) -> int:
    if isinstance(shape, data.Layout):
        return shape.size
    return Shape.cast(shape).width


def stream_ports(signature: wiring.Signature) -> tuple[dict, dict, dict]:
    """Split a device signature into (sources, sinks, others).

    ``sources`` and ``sinks`` map each input / output stream name to its payload width;
    ``others`` maps each remaining port name to ``(flow, width)``.
    """
    sources, sinks, others = {}, {}, {}
    for name, member in signature.members.items():
        if member.is_signature and isinstance(member.signature, stream.Signature):
            width = _width(member.signature.members["payload"].shape)
            # A stream member seen from the device: In(stream) is data flowing into it.
            (sources if member.flow == In else sinks)[name] = width
        elif member.is_port:
            others[name] = (member.flow, _width(member.shape))
        else:
            raise TypeError(f"port {name!r} of the device is neither a stream nor a plain port")
    return sources, sinks, others


class StreamHarness(wiring.Component):
    """Sources, sinks, pause patterns and cycle stamps around a device's Verilog module.

    Parameters
    ----------
    device_name : str
        Verilog module name of the device (compiled alongside the harness).
    device_signature : wiring.Signature
        The device's Amaranth signature; streams become ``<name>__payload/valid/ready`` ports.
    depths : dict of str to int
        Memory depth (words) of every stream, by stream name.
    pause_words : int
        Words of :data:`PAUSE_WORD` bits in each pause pattern (period ``pause_words * 32``).
    clocked : bool
        The device has ``clk`` and ``rst`` ports.

    Members
    -------
    run : In(1)
        Start the sources and sinks (hold high for the whole run).
    done : Out(1)
        Every source sent its ``count`` words and every sink received ``expect`` words.
    cycles : Out(32)
        Cycles since ``run`` rose, frozen at ``done``.
    <source>_count : In(32), <source>_sent : Out(32)
        Words to send, words sent.
    <sink>_expect : In(32), <sink>_received : Out(32)
        Words expected, words received (also beyond ``expect``; captured up to the depth).
    <sink>_unstable : Out(1)
        Sticky: the device withdrew ``valid`` or changed the payload of an offered beat
        before it was accepted (a stream protocol violation).
    <stream>_first, <stream>_last : Out(32)
        Cycle of the stream's first and last transfer.
    dev_<port>
        The device's other ports, passed through.
    """

    def __init__(self, device_name: str, device_signature: wiring.Signature, *,
                 depths: dict, pause_words: int = 64, clocked: bool = True):
        if not isinstance(device_name, str) or not device_name.isidentifier():
            raise ValueError(f"device_name must be a Verilog identifier, not {device_name!r}")
        if not isinstance(device_signature, wiring.Signature):
            raise TypeError(f"device_signature must be a wiring.Signature, "
                            f"not {device_signature!r}")
        sources, sinks, others = stream_ports(device_signature)
        streams = {**sources, **sinks}
        if not streams:
            raise ValueError("the device has no streams to drive")
        missing = sorted(set(streams) - set(depths))
        unknown = sorted(set(depths) - set(streams))
        if missing or unknown:
            raise ValueError(f"depths must name every stream ({', '.join(sorted(streams))}); "
                             f"missing: {missing}, unknown: {unknown}")
        for name, depth in depths.items():
            if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
                raise ValueError(f"depth of stream {name!r} must be a positive integer, "
                                 f"not {depth!r}")
            if depth >= 1 << COUNTER_WIDTH:
                raise ValueError(f"depth of stream {name!r} must be below 2**{COUNTER_WIDTH}")
        if not isinstance(pause_words, int) or isinstance(pause_words, bool) or pause_words < 1:
            raise ValueError(f"pause_words must be a positive integer, not {pause_words!r}")
        if pause_words & (pause_words - 1):
            raise ValueError(f"pause_words must be a power of two, not {pause_words}")
        self._device_name = device_name
        self._sources, self._sinks, self._others = sources, sinks, others
        self._depths = dict(depths)
        self._pause_words = pause_words
        self._clocked = bool(clocked)

        members = {"run": In(1), "done": Out(1), "cycles": Out(COUNTER_WIDTH)}
        for name in sources:
            members[f"{name}_count"] = In(COUNTER_WIDTH)
            members[f"{name}_sent"] = Out(COUNTER_WIDTH)
        for name in sinks:
            members[f"{name}_expect"] = In(COUNTER_WIDTH)
            members[f"{name}_received"] = Out(COUNTER_WIDTH)
            members[f"{name}_unstable"] = Out(1)
        for name in streams:
            members[f"{name}_first"] = Out(COUNTER_WIDTH)
            members[f"{name}_last"] = Out(COUNTER_WIDTH)
        for name, (flow, width) in others.items():
            members[f"dev_{name}"] = flow(width)
        super().__init__(members)

    @property
    def device_name(self) -> str:
        """Verilog module name of the device."""
        return self._device_name

    @property
    def sources(self) -> dict:
        """Input streams of the device: name -> payload width."""
        return dict(self._sources)

    @property
    def sinks(self) -> dict:
        """Output streams of the device: name -> payload width."""
        return dict(self._sinks)

    @property
    def depths(self) -> dict:
        """Memory depth of every stream."""
        return dict(self._depths)

    @property
    def outputs(self) -> list:
        """The device's other (non-stream) outputs, passed through as ``dev_<name>``."""
        return [name for name, (flow, _) in self._others.items() if flow == Out]

    @property
    def pause_words(self) -> int:
        """Words in each pause pattern."""
        return self._pause_words

    @property
    def pause_period(self) -> int:
        """Cycles after which a pause pattern repeats."""
        return self._pause_words * PAUSE_WORD

    def _ram(self, m, name, width, depth, raddr, we=0, waddr=0, wdata=0):
        aw = max(1, ceil_log2(depth))
        rdata = Signal(width, name=f"{name}_rdata")
        m.submodules[name] = Instance(
            "harness_ram", p_WIDTH=width, p_DEPTH=depth, p_ADDR_WIDTH=aw,
            i_clk=ClockSignal(), i_raddr=raddr[:aw], o_rdata=rdata,
            i_we=we, i_waddr=Const(waddr, aw) if isinstance(waddr, int) else waddr[:aw],
            i_wdata=Const(wdata, width) if isinstance(wdata, int) else wdata)
        return rdata

    def elaborate(self, platform):
        m = Module()
        ports = {}
        if self._clocked:
            ports["i_clk"] = ClockSignal()
            ports["i_rst"] = Signal(name="device_rst")
            m.d.comb += ports["i_rst"].eq(ResetSignal())
        done = Signal()
        active = Signal()
        m.d.comb += active.eq(self.run & ~done)
        with m.If(active):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        pause_bits = ceil_log2(PAUSE_WORD)
        pause_addr = self.cycles[pause_bits:pause_bits + max(1, ceil_log2(self._pause_words))]
        pause_bit = self.cycles[:pause_bits]

        def stamp(name, transfer):
            seen = Signal(name=f"{name}_seen")
            with m.If(transfer):
                m.d.sync += [seen.eq(1), getattr(self, f"{name}_last").eq(self.cycles)]
                with m.If(~seen):
                    m.d.sync += getattr(self, f"{name}_first").eq(self.cycles)

        finished = []
        for name, width in self._sources.items():
            count, sent = getattr(self, f"{name}_count"), getattr(self, f"{name}_sent")
            valid = Signal(name=f"{name}_valid")
            ready = Signal(name=f"{name}_ready")
            payload = self._ram(m, f"{name}_data", width, self._depths[name], sent)
            pattern = self._ram(m, f"{name}_pause", PAUSE_WORD, self._pause_words, pause_addr)
            paused = pattern.bit_select(pause_bit, 1)
            transfer = valid & ready
            next_sent = Signal(COUNTER_WIDTH, name=f"{name}_next")
            m.d.comb += next_sent.eq(sent + transfer)
            with m.If(transfer):
                m.d.sync += sent.eq(next_sent)
            # A new word is offered only once the previous one transferred.
            with m.If(~valid | transfer):
                m.d.sync += valid.eq(active & (next_sent < count) & ~paused)
            stamp(name, transfer)
            ports[f"i_{name}__payload"] = payload
            ports[f"i_{name}__valid"] = valid
            ports[f"o_{name}__ready"] = ready
            finished.append(sent == count)

        for name, width in self._sinks.items():
            expect = getattr(self, f"{name}_expect")
            received = getattr(self, f"{name}_received")
            valid = Signal(name=f"{name}_valid")
            ready = Signal(name=f"{name}_ready")
            payload = Signal(width, name=f"{name}_payload")
            pattern = self._ram(m, f"{name}_pause", PAUSE_WORD, self._pause_words, pause_addr)
            paused = pattern.bit_select(pause_bit, 1)
            m.d.comb += ready.eq(self.run & ~paused)
            transfer = valid & ready
            depth = self._depths[name]
            self._ram(m, f"{name}_data", width, depth, Const(0, COUNTER_WIDTH),
                      we=transfer & (received < depth), waddr=received, wdata=payload)
            with m.If(transfer):
                m.d.sync += received.eq(received + 1)
            stamp(name, transfer)
            # An offered beat must stay valid and unchanged until it is accepted.
            held = Signal(name=f"{name}_held")
            held_payload = Signal(width, name=f"{name}_held_payload")
            m.d.sync += [held.eq(valid & ~ready), held_payload.eq(payload)]
            with m.If(held & (~valid | (payload != held_payload))):
                m.d.sync += getattr(self, f"{name}_unstable").eq(1)
            ports[f"o_{name}__payload"] = payload
            ports[f"o_{name}__valid"] = valid
            ports[f"i_{name}__ready"] = ready
            finished.append(received >= expect)

        for name, (flow, _) in self._others.items():
            prefix = "i" if flow == In else "o"
            ports[f"{prefix}_{name}"] = getattr(self, f"dev_{name}")

        all_finished = Const(1)
        for f in finished:
            all_finished = all_finished & f
        m.d.comb += [done.eq(self.run & all_finished), self.done.eq(done)]
        m.submodules.device = Instance(self._device_name, **ports)
        return m
