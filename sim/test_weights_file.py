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

import json
import subprocess
import sys
import zlib

import numpy as np
import pytest

from golden.program import compile_layer
from sim.accel import LayerRun, run_layers
from sim.testing import (design_cache, input_size, record_weight_report, small_config,
                         weight_file_design)


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


def _pytest(*args):
    from sim.runner import REPO_ROOT
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "sim/test_weights_file.py", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=300)


def test_config_option_names_or_refuses_the_design(tmp_path):
    """``--config`` runs the given design (the header names it) and refuses, before any test,
    a layer that does not fit it; without ``--config`` the header names the chosen design."""
    from golden.synthetic import synthetic_layer
    from golden.weights import save_weights
    config = small_config()
    save_weights(tmp_path / "w.npz", [synthetic_layer(config, 3, 8, 0.6, seed=1, name="conv1")])
    for name, design in (("fits", config), ("tiny", config.replace(max_out_channels=4))):
        (tmp_path / f"{name}.json").write_text(json.dumps(
            {"manifest_version": 1, "config": design.to_dict()}))
    weights = ["--weights", tmp_path / "w.npz", "--input-size", "6x6"]

    proc = _pytest(*weights, "--config", tmp_path / "fits.json", "--collect-only")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (f"design sparse_winograd_4x4_a2x2_c8 (tile 4x4, 2x2 PEs, channels <= 8 in / 8 "
            f"out), from {tmp_path / 'fits.json'}") in proc.stdout
    assert "test_weight_file_layer[" in proc.stdout and "conv1" in proc.stdout

    proc = _pytest(*weights, "--collect-only")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "design sparse_winograd_4x4 (tile 4x4, 4x4 PEs, channels <= 64 in / 64 out), " \
           "chosen for the file" in proc.stdout

    proc = _pytest(*weights, "--config", tmp_path / "tiny.json")
    assert proc.returncode == 4, proc.stdout + proc.stderr     # a usage error: nothing ran
    tiny = tmp_path / "tiny.json"
    assert (f"layer 'conv1' has 8 output channels; the accelerator's max_out_channels is 4 "
            f"(design sparse_winograd_4x4_a2x2_c8_k4, from {tiny})") in proc.stderr

    proc = _pytest("--config", tmp_path / "fits.json")
    assert proc.returncode == 4 and "--config needs --weights FILE.npz" in proc.stderr
