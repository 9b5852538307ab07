"""Measure the synthesis goals: Fmax of the default design on ECP5-85F and iCE40 UP5K, GOPS per
multiplier of F(4x4, 3x3) at 74 % sparsity (WinoGen's 3.80 GOPS/DSP is the anchor).

Usage::

    python benchmarks/synth_goals.py [--out build/synth-goals] [--only ecp5,ice40,6x6]

Each design is synthesised, placed and routed with YoWASP (minutes each; the first YoWASP call
compiles WebAssembly) and its report lands in ``OUT/<name>/report.json``. Prints one line per
goal: goal, measured, gap.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from golden.config import DEFAULT, PRESETS  # noqa: E402
from golden.throughput import reference_throughput  # noqa: E402
from hw.synth import SynthError, run  # noqa: E402

#: WinoGen (DAC'24) dense-equivalent GOPS per DSP: the published anchor.
WINOGEN_GOPS_PER_DSP = 3.80
SPARSITY = 0.74

#: name -> (config, target, goal Fmax in MHz or None)
DESIGNS = {
    "ecp5": (DEFAULT, "ecp5", 150.0),
    "ice40": (DEFAULT, "ice40", 50.0),
    "6x6": (PRESETS["default-6x6"], "ecp5", None),
    # The smallest accelerator (one PE, 4 channels): the UP5K fallback when the default does
    # not fit.
    "ice40-tiny": (DEFAULT.replace(array=(1, 1), max_in_channels=4, max_out_channels=4),
                   "ice40", 50.0),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/synth-goals")
    parser.add_argument("--only", default=",".join(DESIGNS),
                        help=f"comma-separated subset of {', '.join(DESIGNS)}")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in DESIGNS]
    if unknown:
        parser.exit(2, f"{parser.prog}: error: unknown design {unknown[0]!r}; choose from "
                       f"{', '.join(DESIGNS)}\n")
    lines = []
    for n, name in enumerate(names, 1):
        config, target, goal = DESIGNS[name]
        print(f"== [{n}/{len(names)}] {name}: tile {config.tile}, array "
              f"{config.array[0]}x{config.array[1]}, {target}", flush=True)
        try:
            report = run(config, target, Path(args.out) / name, pnr=True, sparsity=SPARSITY)
        except SynthError as exc:
            lines.append(f"{name}: tool failure: {exc}")
            continue
        pnr = report["pnr"]
        res = report["resources"]
        if not pnr["fits"]:
            use = ", ".join(f"{bel} {u['used']}/{u['available']}"
                            for bel, u in pnr["utilisation"].items())
            lines.append(f"{name}: does NOT fit {pnr['board_description']} ({use}); "
                         f"{res['luts']} LUTs, {res['ffs']} FFs, {res['bram']} BRAM")
            continue
        fmax = pnr["fmax_mhz"]
        goal_text = (f"goal {goal:g} MHz, gap {fmax - goal:+.1f} MHz"
                     if goal else "no Fmax goal")
        tp = reference_throughput(config, fmax, SPARSITY)
        lines.append(f"{name}: Fmax {fmax} MHz on {pnr['board_description']} ({goal_text}); "
                     f"{res['luts']} LUTs, {res['ffs']} FFs, {res['bram']} BRAM; "
                     f"{tp['gops']} GOPS, {tp['gops_per_multiplier']} GOPS/multiplier at "
                     f"{SPARSITY:.0%} (goal >= 4 for 6x6; WinoGen {WINOGEN_GOPS_PER_DSP})")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
