"""Speed of a whole trained network through the RTL: ``sim.network`` on the digits network.

Usage::

    python benchmarks/network_speed.py [--weights W.npz] [--images 450] [--jobs J]
                                       [--simulator verilator]

Without ``--weights`` it first trains the default digits network (``python -m train.prune``,
about a minute on two cores) into a temporary folder. It then runs ``--images`` test images
through the default design chosen by ``sim.network`` and prints the one-off simulator build,
the wall time of the simulations, images per second, simulated cycles per second, and the
report's figures (bit-exactness, accuracy, cycles per image, end-to-end utilisation).
Goal: the whole digits test split (450 images) through the RTL in <= 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", *args], cwd=ROOT, check=True)
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", help="a v2 weight file (default: train the digits network)")
    p.add_argument("--images", type=int, default=450, help="test images (default: 450)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            weights = os.path.join(tmp, "W.npz")
            seconds = _run(["train.prune", "--out", weights, "--quiet"])
            print(f"train.prune (digits, defaults): {seconds:.0f} s")
        report = os.path.join(tmp, "report")
        wall = _run(["sim.network", "--weights", weights, "--dataset", "digits",
                     "--images", str(args.images), "--jobs", str(args.jobs),
                     "--simulator", args.simulator, "--out", os.path.join(tmp, "logits.npy"),
                     "--report", report])
        with open(os.path.join(report, "report.json")) as f:
            r = json.load(f)
    simulation = r["simulation_seconds"]
    print(f"sim.network, {r['images']} images, {args.jobs} jobs, {args.simulator}: "
          f"{wall:.0f} s in all, {r['build_seconds']:.0f} s of it the simulator build")
    print(f"  simulations: {simulation:.1f} s wall, {r['images'] / simulation:.2f} images/s, "
          f"{r['simulated_cycles_per_s']:,.0f} simulated cycles/s")
    print(f"  bit-exact: {r['bit_exact']}; accuracy hardware {r['accuracy']['hardware']}, "
          f"golden {r['accuracy']['golden']}")
    print(f"  per image: {r['total_cycles']:,} cycles ({r['compute_cycles']:,} compute, "
          f"{r['load_cycles']:,} weight loading); end-to-end utilisation of the "
          f"{r['multipliers']} array multipliers {100 * r['utilisation_end_to_end']:.1f} %")
    goal = 600.0
    print(f"  goal: 450 images in <= {goal:.0f} s: "
          f"{'met' if wall <= goal else 'missed'} ({wall:.0f} s for {r['images']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
