"""End-to-end multiplier utilisation of whole networks, one image, loads included.

Usage::

    python benchmarks/network_efficiency.py [--weights W.npz] [--json FILE]

Figures come from golden's exact cycle model (``golden.cycles``: the RTL equals it cycle for
cycle when unstalled; ``sim.network`` and ``sim/test_overlap.py`` confirm it on the RTL), the
same measure as ``sim.network``'s ``utilisation_end_to_end``: nonzero MACs / (n_pe x (compute
cycles + exposed load cycles)) of one image, every conv pass in network order.

Networks:

* ``digits``: the network of ``python -m train.prune`` (without ``--weights`` the digits
  network is trained first, about a minute), on its own tile; ``--weights`` measures any
  weight file v2 instead (named by its file), on its tile with the ``max_tap_shift`` its tap
  shifts need (as ``sim.network`` picks);
* ``vgg28``: a VGG-style network on 28x28 single-channel inputs, conv 32 - pool - conv 64 - pool
  - conv 128 (3x3, padding 1), random position-skewed Winograd weights at 70 % sparsity
  (``golden.synthetic``), on the 4x4 and the 6x6 tile.

Designs: the default design with the network's tile and the requant stage (``before``: one
weight lane, one weight bank), then ``lanes``: ``weight_lanes`` = n_pe (one beat loads every PE),
``after``: also ``weight_banks`` 2 (the next pass loads while this one computes), and
``after, half depth``: with half the default ``weight_depth`` per bank, so that both banks take
the block RAM of one default bank (the design that fits the ECP5-85F), and ``after, split``:
``after`` with ``split_channels`` (an output channel may be split over two PEs, so that layers
with few channels per PE balance), and ``after, split, narrow``: that with ``v_beats`` 4 and
``drain_positions`` 1, the narrow design of ``benchmarks/synth_goals.py`` that routes on the
ECP5 (not with tap shifts, which the narrow drain does not support).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))    # run from a plain checkout

from golden.config import DEFAULT  # noqa: E402
from golden.cycles import exposed_load_cycles, layer_cycles, utilisation  # noqa: E402
from golden.network import load_network  # noqa: E402
from golden.passes import compile_passes, layer_requant, network_design, plan_passes  # noqa: E402
from golden.synthetic import synthetic_layer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: VGG-style network: (input channels, output channels, input side) of each conv.
VGG28 = [(1, 32, 28), (32, 64, 14), (64, 128, 7)]


def designs(tile: str, max_tap_shift: int = 0) -> dict:
    """The compared designs for ``tile`` (module docstring)."""
    base = DEFAULT.replace(tile=tile, requant=True, max_tap_shift=max_tap_shift)
    after = base.replace(weight_lanes=base.n_pe, weight_banks=2)
    found = {"before": base, "lanes": base.replace(weight_lanes=base.n_pe), "after": after,
             "after, half depth": after.replace(weight_depth=base.pe_weight_depth // 2),
             "after, split": after.replace(split_channels=True)}
    if max_tap_shift == 0:
        # The narrow design that routes on the ECP5 (benchmarks/synth_goals.py): its drains
        # take alpha**2 beats per channel, exposed where a pass has few MACs per channel.
        found["after, split, narrow"] = found["after, split"].replace(v_beats=4,
                                                                      drain_positions=1)
    return found


def digits_layers(path: str):
    """(layer, in_h, in_w) of every conv of a v2 weight file, in network order."""
    weights = load_network(path)
    network, shape, out = weights.network, weights.network.input_shape, []
    for index, op in enumerate(network.ops):
        if op.kind == "conv":
            out.append((weights[op.name], shape[1], shape[2]))
        shape = network.shapes[index]
    return out


def vgg_layers(config):
    """(layer, in_h, in_w) of the VGG-style network for ``config``'s tile."""
    return [(synthetic_layer(config, c, k, 0.7, skewed=True, seed=i, name=f"conv{i}"), s, s)
            for i, (c, k, s) in enumerate(VGG28)]


def measure(config, layers) -> dict:
    """Per-layer and overall figures of one image on ``config``."""
    rows, previous = [], None
    for layer, h, w in layers:
        requant = layer_requant(layer) or (1, 0, False)
        plan = plan_passes(config, layer, requant=requant)
        row = {"layer": layer.name, "shape": f"{layer.in_channels}->{layer.out_channels} "
               f"@{h}x{w}", "passes": len(plan.passes), "cycles": 0, "load_cycles": 0,
               "exposed_load_cycles": 0, "nonzero_macs": 0}
        for program in compile_passes(plan, h, w):
            report = layer_cycles(program)
            row["cycles"] += report.cycles
            row["load_cycles"] += report.load_cycles
            row["exposed_load_cycles"] += exposed_load_cycles(config, previous,
                                                              report.load_cycles)
            row["nonzero_macs"] += report.nonzero_macs
            previous = report.cycles
        row["utilisation_compute"] = utilisation(row["nonzero_macs"], config.n_pe,
                                                 row["cycles"])
        row["utilisation_end_to_end"] = utilisation(
            row["nonzero_macs"], config.n_pe, row["cycles"] + row["exposed_load_cycles"])
        rows.append(row)
    total = sum(r["cycles"] + r["exposed_load_cycles"] for r in rows)
    return {"design": config.name, "layers": rows, "total_cycles": total,
            "compute_cycles": sum(r["cycles"] for r in rows),
            "exposed_load_cycles": sum(r["exposed_load_cycles"] for r in rows),
            "utilisation_end_to_end": utilisation(sum(r["nonzero_macs"] for r in rows),
                                                  config.n_pe, total)}


def table(results: list[dict]) -> str:
    """Markdown: one row per network, tile and design, per-layer end-to-end utilisation."""
    lines = ["| network | tile | design | cycles/image (compute + exposed load) | "
             "per layer, end to end | overall |", "|---|---|---|---:|---|---:|"]
    for r in results:
        m = r["figures"]
        per_layer = ", ".join(f"{row['utilisation_end_to_end']:.0%}" for row in m["layers"])
        lines.append(f"| {r['network']} | {r['tile']} | {r['design']} | {m['total_cycles']:,} "
                     f"({m['compute_cycles']:,} + {m['exposed_load_cycles']:,}) | {per_layer} "
                     f"| **{m['utilisation_end_to_end']:.1%}** |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", help="a v2 weight file (default: train the digits network)")
    p.add_argument("--json", help="also write every figure to this JSON file")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            weights = os.path.join(tmp, "W.npz")
            subprocess.run([sys.executable, "-m", "train.prune", "--out", weights, "--quiet"],
                           cwd=ROOT, check=True)
        digits = digits_layers(weights)
        picked = network_design(load_network(weights))
    results = []
    label = Path(args.weights).stem if args.weights else "digits"
    for name, design in designs(picked.tile, picked.max_tap_shift).items():
        results.append({"network": label, "tile": picked.tile, "design": name,
                         "figures": measure(design, digits)})
    for tile in ("4x4", "6x6"):
        for name, design in designs(tile).items():
            results.append({"network": "vgg28", "tile": tile, "design": name,
                            "figures": measure(design, vgg_layers(design))})
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
