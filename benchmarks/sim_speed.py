"""Simulated cycles per second of the accelerator RTL under cocotb, Verilator and Icarus.

Usage::

    python benchmarks/sim_speed.py [--simulators verilator,icarus] [--sparsity 0.5]

Runs a 64 -> 64-channel 32 x 32 layer (3 x 3, padding 1) on the default design (4x4 tile, 4x4
PEs, 64 channels) with Verilator. Icarus is roughly a hundred times slower, so it runs a
16 -> 16-channel 8 x 8 layer on the same design (printed in its row). The figure is simulated
clock cycles over the wall time of the run itself (``run`` high to ``done``); the bulk load of
the harness memories and the read-back are printed separately, as is the one-off build.
Cycles per CPU-second of the simulator process is printed too: unlike the wall-clock figure it
does not drop when other jobs share the machine.
Goal: >= 100 000 cycles/s with Verilator.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from golden.config import DEFAULT  # noqa: E402
from golden.program import compile_layer  # noqa: E402
from golden.synthetic import synthetic_layer  # noqa: E402
from sim.accel import LayerRun, accelerator_depths, build_accelerator, run_layers  # noqa: E402
from sim.tools import find_simulator  # noqa: E402

#: (in channels, out channels, height, width) per simulator.
LAYERS = {"verilator": (64, 64, 32, 32), "icarus": (16, 16, 8, 8)}


def measure(simulator: str, sparsity: float) -> dict:
    """Build (or reuse) the default design and time one unstalled layer."""
    c, k, h, w = LAYERS[simulator]
    config = DEFAULT
    layer = synthetic_layer(config, c, k, sparsity, seed=1, padding=1, name=f"c{c}k{k}")
    program = compile_layer(config, layer, h, w)
    x = np.random.default_rng(2).integers(-128, 128, size=(c, h, w))
    depths = accelerator_depths(config, program.n_tiles * c, program.n_tiles * k)
    start = time.perf_counter()
    design = build_accelerator(config, simulator, depths=depths)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    (outcome,) = run_layers(design, [LayerRun(program, x)], name="speed")
    total_s = time.perf_counter() - start
    return {"simulator": simulator, "layer": f"{c}->{k} {h}x{w}", "passed": outcome.passed,
            "cycles": outcome.simulated_cycles, "run_s": outcome.wall_seconds,
            "rate": outcome.simulated_cycles / outcome.wall_seconds,
            "cpu_rate": outcome.simulated_cycles / max(outcome.cpu_seconds, 1e-9),
            "total_s": total_s, "build_s": build_s, "reused": design.build_seconds == 0.0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulators", default="verilator,icarus",
                        help="comma-separated simulators (default: verilator,icarus)")
    parser.add_argument("--sparsity", type=float, default=0.5,
                        help="Winograd-domain weight sparsity of the layer (default 0.5)")
    args = parser.parse_args(argv)
    print(f"design: tile {DEFAULT.tile}, {DEFAULT.array[0]}x{DEFAULT.array[1]} PEs, "
          f"{DEFAULT.max_in_channels} channels; sparsity {args.sparsity:.0%}")
    print(f"{'simulator':10} {'layer':14} {'cycles':>9} {'run s':>8} {'cycles/s':>10} "
          f"{'cyc/CPU-s':>10} {'load+run s':>10} {'build s':>8}  result")
    for sim in args.simulators.split(","):
        info = find_simulator(sim)
        if not info.available:
            print(f"{sim:10} skipped: {info.reason}")
            continue
        r = measure(sim, args.sparsity)
        build = "reused" if r["reused"] else f"{r['build_s']:.0f}"
        print(f"{sim:10} {r['layer']:14} {r['cycles']:9d} {r['run_s']:8.2f} {r['rate']:10.0f} "
              f"{r['cpu_rate']:10.0f} {r['total_s']:10.2f} {build:>8}  "
              f"{'bit-exact' if r['passed'] else 'FAILED'}")
        if sim == "verilator":
            print(f"{'':10} goal >= 100000 cycles/s (wall): "
                  f"{'met' if r['rate'] >= 1e5 else 'NOT met'}; a loaded machine lowers the "
                  f"wall-clock figure, cycles per CPU-second is load-independent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
