"""Measure the synthesis goals of the designs the timing-and-area issue names, routed.

Usage::

    python benchmarks/synth_goals.py [--out build/synth-goals] [--only ecp5-4x4,up5k-1pe]
                                     [--synth-only]

Each design is synthesised, placed and routed with YoWASP (minutes each, the default ECP5
designs far longer on a loaded machine; the first YoWASP call compiles WebAssembly); its report
lands in ``OUT/<name>/report.json``. Prints one table row per design: target, routed Fmax,
LUT4, FF, LUT-RAM, block RAM / SPRAM, DSP, LUT4 per multiplier and dense-equivalent GOPS per
multiplier at the routed Fmax on the reference layer (``golden.throughput``, 74 %
position-skewed sparsity, the design's own tile: F(4x4, 3x3) for the 6x6 tile), then each
goal with its measured value. ``--synth-only`` skips place and route (no Fmax, no GOPS).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from golden.config import DEFAULT, PRESETS  # noqa: E402
from golden.throughput import reference_throughput  # noqa: E402
from hw.synth import SynthError, run  # noqa: E402

#: WinoGen (DAC'24) dense-equivalent GOPS per DSP: the published anchor.
WINOGEN_GOPS_PER_DSP = 3.80
SPARSITY = 0.74

#: The smallest UP5K designs: one and two PEs, 4 channels, 16-bit bias, result banks drained
#: two positions per cycle (``drain_positions``: 38-bit words, block RAM instead of flip-flops;
#: what makes two PEs fit).
_UP5K = DEFAULT.replace(max_in_channels=4, max_out_channels=4, bias_width=16,
                        drain_positions=2)

#: The default 4x4 design with V in 4 beats of 4 positions and result banks drained one
#: position per cycle (``v_beats`` 4, ``drain_positions`` 1): half its LUTs, 0.4 % more cycles
#: on the reference layer, and the first full-size 4x4 design nextpnr routes.
_ECP5_4X4_NARROW = DEFAULT.replace(v_beats=4, drain_positions=1)

#: name -> (config, target)
DESIGNS = {
    "ecp5-4x4": (DEFAULT, "ecp5"),
    "ecp5-4x4-narrow": (_ECP5_4X4_NARROW, "ecp5"),
    "ecp5-6x6": (PRESETS["default-6x6"], "ecp5"),
    "up5k-1pe": (_UP5K.replace(array=(1, 1)), "ice40"),
    "up5k-2pe": (_UP5K.replace(array=(1, 2)), "ice40"),
}

#: (goal text, design, measure(row) -> value or None, passes(value) -> bool)
GOALS = [
    (">= 150 MHz routed, default 4x4, ECP5-85F", "ecp5-4x4", lambda r: r["fmax"],
     lambda v: v >= 150),
    (">= 150 MHz routed, default 6x6, ECP5-85F", "ecp5-6x6", lambda r: r["fmax"],
     lambda v: v >= 150),
    ("<= 800 LUT4 per multiplier, default 4x4, ECP5", "ecp5-4x4",
     lambda r: r["luts_per_mult"], lambda v: v <= 800),
    (">= 4.5 GOPS per multiplier, default 6x6, 74 %", "ecp5-6x6",
     lambda r: r["gops_per_mult"], lambda v: v >= 4.5),
    (">= 2 PEs fit the UP5K at >= 48 MHz", "up5k-2pe", lambda r: r["fmax"],
     lambda v: v >= 48),
]

COLUMNS = ("design", "target", "Fmax MHz", "LUT4", "FF", "LUT-RAM", "BRAM", "SPRAM", "DSP",
           "LUT4/mult", "GOPS/mult")


def measure(name: str, out: Path, pnr: bool) -> dict:
    """Synthesise [and place and route] design ``name``; its table row as a dict."""
    config, target = DESIGNS[name]
    started = time.monotonic()
    report = run(config, target, out / name, pnr=pnr, sparsity=SPARSITY)
    res = report["resources"]
    row = {"design": name, "target": target, "fmax": None, "fits": None,
           "luts": res["luts"], "ffs": res["ffs"], "lutram": res.get("lutram", 0),
           "bram": res["bram"], "spram": res.get("spram", 0), "dsp": res["dsp"],
           "luts_per_mult": round(res["luts"] / config.multipliers),
           "gops_per_mult": None, "seconds": round(time.monotonic() - started)}
    if pnr:
        row["fits"] = report["pnr"]["fits"]
        row["board"] = report["pnr"]["board_description"]
        if row["fits"]:
            row["fmax"] = report["pnr"]["fmax_mhz"]
            row["gops_per_mult"] = reference_throughput(
                config, row["fmax"], SPARSITY)["gops_per_multiplier"]
        else:
            row["use"] = ", ".join(f"{bel} {u['used']}/{u['available']}"
                                   for bel, u in report["pnr"]["utilisation"].items())
    return row


def _cell(value) -> str:
    return "-" if value is None else str(value)


def table(rows: list[dict]) -> list[str]:
    """The rows as a markdown table; a design that does not fit says so in its Fmax cell."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        fmax = "does not fit" if r["fits"] is False else _cell(r["fmax"])
        lines.append("| " + " | ".join(
            [r["design"], r["target"], fmax] + [_cell(r[k]) for k in (
                "luts", "ffs", "lutram", "bram", "spram", "dsp", "luts_per_mult",
                "gops_per_mult")]) + " |")
    return lines


def goal_lines(rows: list[dict]) -> list[str]:
    """One line per goal whose design was measured: measured value, met or missed."""
    by_name = {r["design"]: r for r in rows}
    lines = []
    for text, name, value_of, passes in GOALS:
        if name not in by_name:
            continue
        row = by_name[name]
        value = value_of(row)
        verdict = ("does not fit" if row["fits"] is False else "not measured" if value is None
                   else "met" if passes(value) else "missed")
        lines.append(f"{text}: {_cell(value)} ({verdict})")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/synth-goals")
    parser.add_argument("--only", default=",".join(DESIGNS),
                        help=f"comma-separated subset of {', '.join(DESIGNS)}")
    parser.add_argument("--synth-only", action="store_true",
                        help="synthesis only: no place and route, Fmax or GOPS")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in DESIGNS]
    if not names or unknown:
        parser.exit(2, f"{parser.prog}: error: --only: unknown design "
                       f"{(unknown or [''])[0]!r}; choose from {', '.join(DESIGNS)}\n")
    rows, failures = [], []
    for n, name in enumerate(names, 1):
        config, target = DESIGNS[name]
        print(f"== [{n}/{len(names)}] {name}: tile {config.tile}, array "
              f"{config.array[0]}x{config.array[1]}, {config.max_in_channels} channels, "
              f"{target}", flush=True)
        try:
            rows.append(measure(name, Path(args.out), not args.synth_only))
        except SynthError as exc:
            failures.append(f"{name}: tool failure: {exc}")
    print("\n".join(table(rows) + [""] + goal_lines(rows) + failures))
    for r in rows:
        if r["fits"] is False:
            print(f"{r['design']} does not fit {r['board']}: {r['use']}")
    print("wall time: " + ", ".join(f"{r['design']} {r['seconds']} s" for r in rows))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
