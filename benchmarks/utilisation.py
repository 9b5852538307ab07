"""Print multiplier utilisation of the default designs from the exact cycle model.

For a C -> K layer (default 64 -> 64, 16 x 16 input, padding 1) with dense, uniformly sparse and
position-skewed Winograd weights (``golden.synthetic``), on the 4x4- and 6x6-tile default
designs (4x4 PEs), print cycles, utilisation = nonzero MACs / (PEs x cycles), the schedule's
balance and, for comparison, the best utilisation of a design that pins one zero-skip
multiplier to each Winograd position (per tile it waits for the busiest position).

Usage::

    python benchmarks/utilisation.py [--channels 64] [--size 16] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))    # run from a plain checkout

from golden.config import DEFAULT  # noqa: E402
from golden.cycles import layer_cycles  # noqa: E402
from golden.program import compile_layer  # noqa: E402
from golden.synthetic import synthetic_layer  # noqa: E402

LAYERS = [("dense", 0.0, False), ("uniform 70%", 0.7, False), ("skewed 60%", 0.6, True),
          ("skewed 70%", 0.7, True), ("skewed 75%", 0.75, True), ("skewed 90%", 0.9, True)]


def measure(tile: str, channels: int, size: int, split_channels: bool = False) -> list[dict]:
    """One row per layer kind for the default design with ``tile`` [and split channels]."""
    config = replace(DEFAULT, tile=tile, max_in_channels=max(channels, 1),
                     max_out_channels=max(channels, 1), split_channels=split_channels)
    rows = []
    for name, sparsity, skewed in LAYERS:
        layer = synthetic_layer(config, channels, channels, sparsity, skewed=skewed, seed=1)
        program = compile_layer(config, layer, size, size)
        report = layer_cycles(program)
        per_position = program.sparse.position_counts()
        pinned = (per_position.sum() / (per_position.size * per_position.max())
                  if per_position.max() else 1.0)
        rows.append({"tile": tile, "layer": name, "sparsity": sparsity,
                     "cycles": report.cycles, "utilisation": report.utilisation,
                     "balance": program.schedule.balance, "pinned_utilisation": float(pinned),
                     "kept_per_position_min": float(per_position.min() / channels ** 2),
                     "kept_per_position_max": float(per_position.max() / channels ** 2),
                     "report": report.as_dict()})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=64, help="C = K (default: 64)")
    parser.add_argument("--size", type=int, default=16, help="input height = width (default: 16)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--split-channels", action="store_true",
                        help="the design with split_channels (default: whole channels)")
    args = parser.parse_args(argv)
    if args.channels < 1 or args.size < 1:
        print("error: --channels and --size must be positive", file=sys.stderr)
        return 2
    rows = []
    print(f"{args.channels}->{args.channels} channels, {args.size}x{args.size} input, padding 1, "
          f"{DEFAULT.array[0]}x{DEFAULT.array[1]} PEs"
          + (", split channels" if args.split_channels else ""))
    print(f"{'tile':5} {'layer':12} {'cycles':>9} {'util':>7} {'balance':>8} "
          f"{'pinned':>7} {'kept/position':>15}")
    for tile in ("4x4", "6x6"):
        for row in measure(tile, args.channels, args.size, args.split_channels):
            rows.append(row)
            print(f"{row['tile']:5} {row['layer']:12} {row['cycles']:9d} "
                  f"{row['utilisation']:7.2%} {row['balance']:8.4f} "
                  f"{row['pinned_utilisation']:7.2%} "
                  f"{row['kept_per_position_min']:6.1%}-{row['kept_per_position_max']:6.1%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1, default=lambda o: o.tolist()
                      if isinstance(o, np.ndarray) else str(o))
    return 0


if __name__ == "__main__":
    sys.exit(main())
