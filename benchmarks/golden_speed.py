"""Time the bit-exact integer golden layer against a direct NumPy convolution of the same layer.

Usage::

    python benchmarks/golden_speed.py [--channels 64] [--size 32] [--runs 5]

For each hardware tile the layer is C -> C channels on a size x size int8 input, padding 1, with
a random integer 3x3 filter g. The Winograd weights are ``U = Gs g Gs^T`` where ``Gs`` is G scaled
to integers, so the integer golden computes ``s**2`` times the direct convolution exactly; the
script checks that before timing. Prints the median of ``--runs`` runs of each and the ratio.
The goal is < 1 s for each model at the default size.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))    # run from a plain checkout

from golden.conv import direct_conv2d, winograd_conv2d_int  # noqa: E402
from golden.transforms import TILES, tile_transform  # noqa: E402

GOAL_SECONDS = 1.0


def _median_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_tile(tile: str, channels: int, size: int, runs: int, seed: int = 0) -> dict:
    """Time one tile; returns the medians in seconds."""
    tr = tile_transform(tile)
    scale = math.lcm(*(v.denominator for row in tr.G for v in row))
    Gs = np.array([[int(v * scale) for v in row] for row in tr.G], dtype=np.int64)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (channels, size, size)).astype(np.int8)
    g = rng.integers(-127, 128, (channels, channels, tr.r, tr.r)).astype(np.int64)
    U = np.einsum("xi,kcij,yj->kcxy", Gs, g, Gs)
    AT, BT = tr.AT_int, tr.BT_int

    y_wino = winograd_conv2d_int(x, U, AT, BT, 1)
    y_direct = direct_conv2d(x, g, 1)
    if not np.array_equal(y_wino, scale * scale * y_direct):
        raise SystemExit(f"{tile}: integer golden and direct convolution disagree")
    return {
        "golden": _median_seconds(lambda: winograd_conv2d_int(x, U, AT, BT, 1), runs),
        "direct": _median_seconds(lambda: direct_conv2d(x, g, 1), runs),
    }


def main(argv=None) -> int:
    """Print the timing table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=64, help="C = K (default: 64)")
    parser.add_argument("--size", type=int, default=32, help="H = W (default: 32)")
    parser.add_argument("--runs", type=int, default=5, help="runs per median (default: 5)")
    args = parser.parse_args(argv)
    for name in ("channels", "size", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, not {getattr(args, name)}")

    print(f"layer {args.channels}->{args.channels} channels, {args.size}x{args.size}, "
          f"padding 1, int8 input; median of {args.runs} runs")
    print(f"{'tile':<6} {'integer golden':>15} {'direct numpy':>13} {'golden/direct':>14}  goal")
    for tile in sorted(TILES):
        t = bench_tile(tile, args.channels, args.size, args.runs)
        met = "met" if max(t["golden"], t["direct"]) < GOAL_SECONDS else "MISSED"
        print(f"{tile:<6} {t['golden']:>13.3f} s {t['direct']:>11.3f} s "
              f"{t['golden'] / t['direct']:>13.2f}x  < {GOAL_SECONDS:g} s {met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
