"""Board tops for place and route: a serial harness around a design on an amaranth-boards board.

A generated accelerator has hundreds of port bits (wide stream payloads) and a small FPGA
board has a few free pins. :class:`SerialHarness` feeds every input bit of the wrapped design
from one shift register (a serial input pin) and folds every output bit into one registered
parity bit (a serial output pin): each input is a real register and each output reaches a pin,
so no logic is optimised away and the timing measured is the design's own register-to-register
paths. :class:`BoardTop` puts the
harness on a board; :meth:`Board.platform` constrains the clock to a target frequency (so
place and route optimises for it; nextpnr still reports the achieved maximum).

The harness adds ``in_bits + 1`` flip-flops and a parity tree of about ``out_bits / 3`` LUTs
(reported as ``harness_ffs``); never program a board with it, it computes nothing useful.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from amaranth.hdl import Cat, ClockDomain, Const, Elaboratable, Module, Signal, Value
from amaranth.build import Clock, Resource
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["BOARDS", "Board", "BoardTop", "Device", "ECP5_85F", "ICE40_UP5K", "SerialHarness"]


@dataclass(frozen=True)
class Device:
    """The capacity of an FPGA, in the cells nextpnr places.

    Members
    -------
    part : str
        Device and package as amaranth-boards names them (``platform.device``, ``.package``).
    luts : int
        4-input LUTs.
    ffs : int
        Flip-flops.
    brams : int
        Block RAMs (iCE40: 4 kbit ``SB_RAM40_4K``; ECP5: 18 kbit ``DP16KD``).
    bram_bits : int
        Bits of one block RAM.
    dsps : int
        Hard multipliers (iCE40: ``SB_MAC16``; ECP5: ``MULT18X18D``).
    sprams : int
        Single-port 256 kbit RAMs (iCE40 UltraPlus ``SB_SPRAM256KA``; 0 elsewhere).
    bels : tuple of (str, str)
        ``(resource, nextpnr bel type)`` pairs: the bel that holds each of the resources above,
        as nextpnr's utilisation report names it.
    """

    part: str
    luts: int
    ffs: int
    brams: int
    bram_bits: int
    dsps: int
    sprams: int
    bels: tuple[tuple[str, str], ...]

    def capacity(self) -> dict[str, int]:
        """Available cells of each nextpnr bel type (the denominators of utilisation)."""
        return {bel: getattr(self, resource) for resource, bel in self.bels}


#: iCE40 UP5K: 5280 logic cells, each one LUT4 and one flip-flop (so luts == ffs == cells).
ICE40_UP5K = Device(
    part="iCE40UP5K-SG48", luts=5280, ffs=5280, brams=30, bram_bits=4096, dsps=8, sprams=4,
    bels=(("luts", "ICESTORM_LC"), ("brams", "ICESTORM_RAM"), ("dsps", "ICESTORM_DSP"),
          ("sprams", "ICESTORM_SPRAM")))
#: ECP5 LFE5U-85F: 83640 LUT4s and as many flip-flops, 208 DP16KD, 156 18x18 multipliers.
ECP5_85F = Device(
    part="LFE5U-85F-BG381", luts=83640, ffs=83640, brams=208, bram_bits=18432, dsps=156,
    sprams=0, bels=(("luts", "TRELLIS_COMB"), ("ffs", "TRELLIS_FF"), ("brams", "DP16KD"),
                    ("dsps", "MULT18X18D")))


@dataclass(frozen=True)
class Board:
    """A place-and-route target: an amaranth-boards platform and its device.

    Members
    -------
    name : str
        Command-line name (``--board``).
    family : str
        Yosys/nextpnr family: ``"ice40"`` or ``"ecp5"``.
    platform_class : str
        Class name in :mod:`amaranth_boards` (imported lazily).
    module : str
        Module of :mod:`amaranth_boards` that defines it.
    goal_mhz : float
        Clock target given to place and route (the project's goal for this device).
    description : str
        Board and device, for reports.
    device : Device
        The FPGA and its capacity (the fit check and utilisation read it).
    """

    name: str
    family: str
    platform_class: str
    module: str
    goal_mhz: float
    description: str
    device: Device

    def platform(self, clock_mhz: float | None = None):
        """A fresh platform instance (each build needs its own).

        Parameters
        ----------
        clock_mhz : float, optional
            Constrain the board clock to this frequency instead of the oscillator's, so that
            place and route optimises for it (on the board a PLL would make that clock).
        """
        module = importlib.import_module(f"amaranth_boards.{self.module}")
        cls = getattr(module, self.platform_class)
        if clock_mhz is None:
            return cls()
        if not isinstance(clock_mhz, (int, float)) or isinstance(clock_mhz, bool) \
                or not clock_mhz > 0:
            raise ValueError(f"clock_mhz must be a positive number, not {clock_mhz!r}")
        resources = [
            Resource(r.name, r.number, *r.ios, Clock(clock_mhz * 1e6), r.attrs)
            if (r.name, r.number) == (cls.default_clk, 0) else r
            for r in cls.resources]
        return type(cls.__name__, (cls,), {"resources": resources})()


#: Boards reachable with ``--pnr``, keyed by synthesis target.
BOARDS = {
    "ice40": Board("icebreaker", "ice40", "ICEBreakerPlatform", "icebreaker", 50.0,
                   "iCEBreaker (iCE40 UP5K-SG48)", ICE40_UP5K),
    "ecp5": Board("ulx3s-85f", "ecp5", "ULX3S_85F_Platform", "ulx3s", 150.0,
                  "ULX3S 85F (ECP5 LFE5U-85F-6 CABGA381)", ECP5_85F),
}


def _port_values(design: wiring.Component):
    """(path, flow, value) of every port of ``design``, in signature order."""
    for path, member, value in design.signature.flatten(design):
        yield "__".join(str(p) for p in path), member.flow, Value.cast(value)


class SerialHarness(wiring.Component):
    """Every input bit of ``design`` from a shift register, every output bit into a parity bit.

    Each cycle the input register shifts in ``sin`` and ``sout`` registers the parity (XOR) of
    all of the design's outputs.

    Parameters
    ----------
    design : amaranth.lib.wiring.Component
        The design to wrap (clocked by the ``sync`` domain); it becomes submodule ``dut``.

    Members
    -------
    sin : In(1)
        Serial input.
    sout : Out(1)
        Serial output.
    """

    def __init__(self, design: wiring.Component):
        if not isinstance(design, wiring.Component):
            self._MustUse__silence = True      # refused, not forgotten: no unused warning
            raise TypeError(f"design must be an amaranth.lib.wiring.Component, not {design!r}")
        self._design = design
        ports = list(_port_values(design))
        self._in_bits = sum(len(v) for _, flow, v in ports if flow == In)
        self._out_bits = sum(len(v) for _, flow, v in ports if flow == Out)
        if self._in_bits == 0 or self._out_bits == 0:
            raise ValueError(f"design must have input and output ports, not {self._in_bits} "
                             f"input and {self._out_bits} output bits")
        super().__init__({"sin": In(1), "sout": Out(1)})

    @property
    def design(self) -> wiring.Component:
        """The wrapped design."""
        return self._design

    @property
    def in_bits(self) -> int:
        """Input port bits of the design (= input shift register flip-flops)."""
        return self._in_bits

    @property
    def out_bits(self) -> int:
        """Output port bits of the design (folded into the ``sout`` parity)."""
        return self._out_bits

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self._design

        shift_in = Signal(self._in_bits)
        m.d.sync += shift_in.eq(shift_in << 1 | self.sin)
        outputs = []
        offset = 0
        for _name, flow, value in _port_values(self._design):
            if flow == In:
                m.d.comb += value.eq(shift_in[offset:offset + len(value)])
                offset += len(value)
            else:
                outputs.append(value)

        # One parity flip-flop instead of out_bits capture flip-flops: every output bit still
        # reaches a pin, so nothing is optimised away, and a small device keeps its cells.
        m.d.sync += self.sout.eq(Cat(*outputs).xor())
        return m


class BoardTop(Elaboratable):
    """A :class:`SerialHarness` around ``design`` on a board: ``button`` 0 is the serial input,
    ``led`` 0 the serial output, the board's default clock drives everything, with a power-on
    reset.

    Parameters
    ----------
    design : amaranth.lib.wiring.Component
        The design (usually :class:`hw.accelerator.Accelerator`).
    """

    def __init__(self, design: wiring.Component):
        self.harness = SerialHarness(design)

    def elaborate(self, platform):
        m = Module()
        clk_pin = platform.request(platform.default_clk, dir="-")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_pin)
        m.domains.sync = sync = ClockDomain("sync")
        m.d.comb += sync.clk.eq(clk_buf.i)
        m.submodules.reset_sync = ResetSynchronizer(Const(0), domain="sync")

        m.submodules.harness = self.harness
        m.submodules.sin_buf = sin_buf = io.Buffer("i", platform.request("button", 0, dir="-"))
        m.submodules.sout_buf = sout_buf = io.Buffer("o", platform.request("led", 0, dir="-"))
        # Pin registers keep the pads' paths out of the design's timing.
        m.d.sync += [self.harness.sin.eq(sin_buf.i), sout_buf.o.eq(self.harness.sout)]
        return m
