"""Layers larger than the design on the RTL: every pass of ``golden.passes`` on one build.

A 40 -> 24 channel layer on the 8-channel test design (``small_config``, shared with
``sim/test_accelerator.py``) runs as 5 x 3 passes in one simulator process; every pass must be
bit-exact and take exactly ``golden.cycles`` cycles unstalled, and the host's combination must
equal the unsplit golden layer.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.config import DEFAULT
from golden.conv import winograd_conv2d_int
from golden.cycles import layer_cycles, passes_cycles
from golden.passes import plan_passes
from golden.quant import requantize
from golden.synthetic import synthetic_layer
from sim.testing import design_cache
from sim.passes import run_layer_passes
from sim.test_accelerator import BACKPRESSURE, GAPS, small_config


def _design(config, simulator):
    return design_cache("accelerator", (config, None), simulator)


def _failures(outcome):
    return "\n".join(outcome.problems)


@pytest.mark.simulators("verilator")
def test_split_layer_bit_and_cycle_exact(simulator):
    config = small_config("4x4")
    layer = synthetic_layer(config, 40, 24, 0.55, seed=21, bias_bits=24, name="wide")
    rng = np.random.default_rng(21)
    mult, shift = rng.integers(1, 1 << 15, size=24), rng.integers(16, 26, size=24)
    plan = plan_passes(config, layer, (mult, shift, True))
    assert len(plan) == 15 and len(plan.in_groups) == 5 and not plan.requant_on_chip
    x = rng.integers(-128, 128, size=(40, 5, 7)).astype(np.int8)
    outcome = run_layer_passes(_design(config, simulator), plan, x)
    assert outcome.passed, _failures(outcome)

    want = winograd_conv2d_int(x, layer.U, config.AT, config.BT, layer.padding,
                               bias=layer.bias_or_zeros, r=config.r)
    assert np.array_equal(outcome.y, want)
    assert outcome.y_q.dtype == np.int8
    assert np.array_equal(outcome.y_q, requantize(want, mult, shift, True))
    # Unstalled: every pass exactly as modelled, the layer the sum of its pass models.
    model = passes_cycles(outcome.programs)
    assert [o.cycles for o in outcome.outcomes] == [layer_cycles(p).cycles
                                                   for p in outcome.programs]
    assert outcome.cycles == model.cycles and outcome.load_cycles == model.load_cycles
    records = outcome.records()
    assert [r.stall_cycles for r in records] == [0] * 15
    assert {r.layer for r in records} == {"wide"}
    assert sum(r.nonzero_macs for r in records) == np.count_nonzero(layer.U) * 3 * 4


@pytest.mark.simulators("verilator")
def test_split_layer_under_stalls(simulator):
    """Random gaps and backpressure on every pass: still bit-exact, never faster."""
    config = small_config("4x4")
    layer = synthetic_layer(config, 11, 13, 0.3, seed=22, name="stalled")
    plan = plan_passes(config, layer)
    x = np.random.default_rng(22).integers(-128, 128, size=(11, 6, 5)).astype(np.int8)
    outcome = run_layer_passes(_design(config, simulator), plan, x, gaps=GAPS,
                               backpressure=BACKPRESSURE, seed=3)
    assert outcome.passed, _failures(outcome)
    assert len(plan) == 4 and outcome.y_q is None
    assert np.array_equal(outcome.y, outcome.expected)
    assert outcome.cycles > passes_cycles(outcome.programs).cycles
    assert all(r.stall_cycles > 0 for r in outcome.records())


@pytest.mark.slow
@pytest.mark.simulators("verilator")
@pytest.mark.parametrize("c, relu", [(6, True), (13, False)], ids=["one-group", "two-groups"])
def test_split_on_the_requant_design(simulator, c, relu):
    """With one input group the requant stage's int8 outputs are the layer's; with two the
    host requantises the summed partial sums (shares the build of ``test_requant_stage``)."""
    config = small_config("4x4").replace(requant=True)
    layer = synthetic_layer(config, c, 20, 0.4, seed=23, name="rq")
    rng = np.random.default_rng(23)
    mult, shift = rng.integers(1, 1 << 15, size=20), rng.integers(10, 24, size=20)
    plan = plan_passes(config, layer, (mult, shift, relu))
    assert plan.requant_on_chip == (c <= 8) and len(plan) == 3 * len(plan.in_groups)
    x = rng.integers(-128, 128, size=(c, 7, 7)).astype(np.int8)
    outcome = run_layer_passes(_design(config, simulator), plan, x)
    assert outcome.passed, _failures(outcome)
    assert np.array_equal(outcome.y_q, requantize(outcome.expected, mult, shift, relu))
    assert outcome.cycles == passes_cycles(outcome.programs).cycles


@pytest.mark.slow
@pytest.mark.simulators("verilator")
def test_128_channels_on_default_design(simulator):
    """A VGG-sized 128 -> 128 layer on the default 64-channel design (shares the build of
    ``test_default_design_full_layer``): 2 x 2 passes, bit-exact and cycle-exact."""
    layer = synthetic_layer(DEFAULT, 128, 128, 0.6, seed=24, name="vgg128")
    plan = plan_passes(DEFAULT, layer)
    assert len(plan) == 4
    x = np.random.default_rng(24).integers(-128, 128, size=(128, 8, 8)).astype(np.int8)
    outcome = run_layer_passes(_design(DEFAULT, simulator), plan, x)
    assert outcome.passed, _failures(outcome)
    assert np.array_equal(outcome.y, outcome.expected)
    assert outcome.cycles == passes_cycles(outcome.programs).cycles
