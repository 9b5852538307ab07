"""A signed multiplier registered at its inputs and its output, as DSP blocks want it.

``p`` is ``a * b`` of the operands presented two cycles earlier: the operands are registered,
multiplied, and the product is registered. On ECP5 (a platform whose ``family`` is ``"ecp5"``)
the unit is one ``MULT18X18D`` with its A, B and output registers enabled (REG_INPUTA,
REG_INPUTB, REG_OUTPUT on CLK0): Yosys maps a ``$mul`` to an unregistered MULT18X18D, whose
~3.9 ns of combinational delay between fabric registers caps the clock near 140 MHz, while
nextpnr times a registered one by its clock-to-out and setup alone. Everywhere else (simulation,
Verilog, the other targets) it is the same two register stages around a ``*``, one ``$mul``.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, ResetSignal, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LATENCY", "RegisteredMultiplier"]

#: Cycles from operands to their product.
LATENCY = 2
#: The widest signed operand one MULT18X18D takes.
_ECP5_OPERAND = 18


def _check_shape(name: str, shape) -> Shape:
    if not isinstance(shape, Shape) or not shape.signed or shape.width < 2:
        raise TypeError(f"{name} must be a signed amaranth Shape of at least 2 bits, "
                        f"not {shape!r}")
    return shape


class RegisteredMultiplier(wiring.Component):
    """``p = a * b`` with registered operands and a registered product (``LATENCY`` 2).

    Parameters
    ----------
    a_shape, b_shape : amaranth.hdl.Shape
        Signed operand shapes.

    Members
    -------
    a : In(a_shape)
        First operand.
    b : In(b_shape)
        Second operand.
    p : Out(signed(a_shape.width + b_shape.width))
        The exact product of the operands of two cycles before.
    """

    def __init__(self, a_shape: Shape, b_shape: Shape):
        self._a_shape = _check_shape("a_shape", a_shape)
        self._b_shape = _check_shape("b_shape", b_shape)
        super().__init__({"a": In(a_shape), "b": In(b_shape),
                          "p": Out(signed(a_shape.width + b_shape.width))})

    def _fits_ecp5(self) -> bool:
        return max(self._a_shape.width, self._b_shape.width) <= _ECP5_OPERAND

    def elaborate(self, platform):
        m = Module()
        if getattr(platform, "family", None) == "ecp5" and self._fits_ecp5():
            self._ecp5(m)
            return m
        a, b = Signal(self._a_shape), Signal(self._b_shape)
        m.d.sync += [a.eq(self.a), b.eq(self.b), self.p.eq(a * b)]
        return m

    def _ecp5(self, m: Module) -> None:
        """One MULT18X18D, operands sign-extended to 18 bits, every register on CLK0."""
        a = Signal(signed(_ECP5_OPERAND))
        b = Signal(signed(_ECP5_OPERAND))
        product = Signal(2 * _ECP5_OPERAND)
        m.d.comb += [a.eq(self.a), b.eq(self.b), self.p.eq(product[:len(self.p)])]
        ports = {f"i_A{n}": a[n] for n in range(_ECP5_OPERAND)}
        ports |= {f"i_B{n}": b[n] for n in range(_ECP5_OPERAND)}
        ports |= {f"i_C{n}": Const(0) for n in range(_ECP5_OPERAND)}
        ports |= {f"o_P{n}": product[n] for n in range(2 * _ECP5_OPERAND)}
        registers = {f"p_REG_{reg}_{what}": f"{what}0" if what != "CLK" else "CLK0"
                     for reg in ("INPUTA", "INPUTB", "OUTPUT") for what in ("CLK", "CE", "RST")}
        m.submodules.mult18 = Instance(
            "MULT18X18D",
            **registers,
            p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE", p_GSR="DISABLED",
            p_RESETMODE="SYNC", p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED",
            p_CAS_MATCH_REG="FALSE", p_HIGHSPEED_CLK="NONE",
            p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED",
            p_CLK3_DIV="ENABLED",
            i_SIGNEDA=Const(1), i_SIGNEDB=Const(1), i_SOURCEA=Const(0), i_SOURCEB=Const(0),
            i_CLK0=ClockSignal("sync"), i_CE0=Const(1), i_RST0=ResetSignal("sync"),
            **ports)
