"""``pytest sim/ --weights FILE.npz [--input-size HxW]``: every layer of a user's weight file
through the RTL on random int8 input, bit-exact against golden, with a per-layer report
(cycles, multipliers, nonzero MACs, utilisation, skipped MACs per Winograd position,
pass/fail) printed at the end of the session.

The design is the default one (4x4 PEs) with the file's tile and channel limits of at least 64
(raised to the largest layer, rounded up to a power of two): one build per file.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from golden.config import DEFAULT
from golden.program import compile_layer
from sim.accel import LayerRun, accelerator_depths, run_layers
from sim.conftest import design_cache, input_size, record_weight_report
from sim.layer import design_config


def _file_design(weights, h, w):
    """One configuration and harness for every layer of the file."""
    configs = {design_config(layer, DEFAULT.array, False) for layer in weights.layers}
    tiles = {c.tile for c in configs}
    if len(tiles) > 1:
        pytest.fail(f"{weights.source}: layers use several tiles ({', '.join(sorted(tiles))}); "
                    "one accelerator runs one tile")
    config = DEFAULT.replace(tile=tiles.pop(),
                             max_in_channels=max(c.max_in_channels for c in configs),
                             max_out_channels=max(c.max_out_channels for c in configs))
    words = [compile_layer(config, layer, h, w) for layer in weights.layers]
    depths = accelerator_depths(config, max(p.n_tiles * p.in_channels for p in words),
                                max(p.n_tiles * p.out_channels for p in words))
    return config, depths


@pytest.mark.simulators("verilator")
def test_weight_file_layer(simulator, weight_layer, request):
    weights, name = weight_layer
    h, w = input_size(request.config)
    config, depths = _file_design(weights, h, w)
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
