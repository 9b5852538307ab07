"""``pytest sim/ --weights FILE.npz [--input-size HxW]``: every layer of a user's weight file
through the RTL on random int8 input, bit-exact against golden, with a per-layer report
(cycles, multipliers, nonzero MACs, utilisation, skipped MACs per Winograd position,
pass/fail) printed at the end of the session.

``--config DESIGN.json`` (a manifest written by ``hw.generate``) runs exactly that design and
refuses, before any test, a layer that does not fit it. Without it the design is the default
one (4x4 PEs) with the file's tile and channel limits of at least 64 (raised to the largest
layer, rounded up to a power of two): one build per file. The session header names the design.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from golden.program import compile_layer
from sim.accel import LayerRun, run_layers
from sim.conftest import design_cache, input_size, record_weight_report, weight_file_design


@pytest.mark.simulators("verilator")
def test_weight_file_layer(simulator, weight_layer, request):
    weights, name = weight_layer
    h, w = input_size(request.config)
    config, depths, _ = weight_file_design(request.config)
    layer = weights[name]
    program = compile_layer(config, layer, h, w)
    design = design_cache("accelerator", (config, tuple(sorted(depths.items()))), simulator)
    x = np.random.default_rng(zlib.crc32(name.encode())).integers(
        -128, 128, size=(layer.in_channels, h, w))
    plain, stalled = run_layers(design, [
        LayerRun(program, x), LayerRun(program, x, gaps=0.2, backpressure=0.3, seed=1)])
    row = plain.report()
    row["passed"] = plain.passed and stalled.passed
    row["problems"] = plain.problems + [f"stalled: {p}" for p in stalled.problems]
    record_weight_report(row)
    assert row["passed"], f"layer '{name}': " + "; ".join(row["problems"])
