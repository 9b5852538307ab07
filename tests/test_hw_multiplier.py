"""hw.multiplier.RegisteredMultiplier: exact products two cycles after the operands (random and
extreme operands, every cycle a new pair), the ECP5 MULT18X18D with all three register sets,
the fabric version where a MULT18X18D cannot take the operands, and the refusals."""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.sim import Simulator

from hw.multiplier import LATENCY, RegisteredMultiplier
from helpers import instances


def _products(a_width, b_width, pairs):
    dut = RegisteredMultiplier(signed(a_width), signed(b_width))
    got = []

    async def bench(ctx):
        for a, b in pairs + [(0, 0)] * LATENCY:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            await ctx.tick()
            got.append(ctx.get(dut.p))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # After edge n the output holds the product of the operands set before edge n - 1.
    return got[LATENCY - 1:LATENCY - 1 + len(pairs)]


@pytest.mark.parametrize("a_width,b_width", [(8, 10), (8, 15), (2, 2), (18, 18), (20, 9)])
def test_products_are_exact_after_two_cycles(a_width, b_width):
    rng = np.random.default_rng(a_width * 31 + b_width)
    a_lo, a_hi = -(1 << (a_width - 1)), (1 << (a_width - 1)) - 1
    b_lo, b_hi = -(1 << (b_width - 1)), (1 << (b_width - 1)) - 1
    pairs = [(a_lo, b_lo), (a_lo, b_hi), (a_hi, b_lo), (a_hi, b_hi), (0, b_lo), (-1, -1)]
    pairs += [(int(rng.integers(a_lo, a_hi + 1)), int(rng.integers(b_lo, b_hi + 1)))
              for _ in range(60)]
    assert _products(a_width, b_width, pairs) == [a * b for a, b in pairs]


class _Platform:
    """Just what RegisteredMultiplier asks of a platform."""

    def __init__(self, family):
        self.family = family


def test_ecp5_is_one_mult18x18d_with_input_and_output_registers():
    (mult,) = instances(RegisteredMultiplier(signed(8), signed(15)), _Platform("ecp5"))
    assert mult.type == "MULT18X18D"
    params = mult.parameters
    for reg in ("INPUTA", "INPUTB", "OUTPUT"):
        assert params[f"REG_{reg}_CLK"] == "CLK0"
        assert params[f"REG_{reg}_CE"] == "CE0" and params[f"REG_{reg}_RST"] == "RST0"
    assert params["REG_PIPELINE_CLK"] == "NONE" and params["REG_INPUTC_CLK"] == "NONE"
    assert {"A17", "B17", "P35", "SIGNEDA", "SIGNEDB", "CLK0", "CE0", "RST0"} <= set(mult.ports)
    assert all(mult.ports[f"P{n}"][1] == "o" for n in range(36))
    assert all(mult.ports[f"{pin}{n}"][1] == "i" for pin in "AB" for n in range(18))


@pytest.mark.parametrize("family,shapes", [
    ("ice40", (signed(8), signed(10))),
    (None, (signed(8), signed(10))),
    ("ecp5", (signed(19), signed(8))),         # wider than one MULT18X18D takes
])
def test_fabric_registers_elsewhere(family, shapes):
    platform = None if family is None else _Platform(family)
    assert instances(RegisteredMultiplier(*shapes), platform) == []


@pytest.mark.parametrize("a_shape,b_shape,message", [
    (unsigned(8), signed(8), "a_shape must be a signed amaranth Shape of at least 2 bits, "
                             "not unsigned(8)"),
    (signed(8), 8, "b_shape must be a signed amaranth Shape of at least 2 bits, not 8"),
    (signed(1), signed(8), "a_shape must be a signed amaranth Shape of at least 2 bits, "
                           "not signed(1)"),
])
def test_refuses_bad_shapes(a_shape, b_shape, message):
    with pytest.raises(TypeError) as info:
        RegisteredMultiplier(a_shape, b_shape)
    assert str(info.value) == message
