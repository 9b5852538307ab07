"""Run one layer of a weight file through the cycle-accurate RTL simulation.

Usage::

    python -m sim.layer --weights W.npz --layer NAME --input X.npy --out Y.npy --report R.json
                        [--simulator verilator|icarus] [--array RxC] [--max-channels N]
                        [--requant MULT SHIFT [--relu]] [--waves]

The contract of ``python -m golden.run``, through the generated Verilog: ``X`` is int8
[C, H, W] or [N, C, H, W]; ``Y`` is the RTL's output, int64 [[N,] K, Hout, Wout] (int8 with
``--requant``), and must equal golden.run's. ``R.json`` holds ``cycles`` (first input patch to
last result, summed over images), ``model_cycles`` (``golden.cycles``), ``load_cycles``,
``multipliers``, ``nonzero_macs``, ``utilisation``, ``skipped_macs_per_position`` (work
counters summed over images), ``simulator``, ``tile``, the design and per-image figures.

Exit status: 0 when outputs and cycle counts match golden; 1 on a mismatch (the message names
the first differing index; Y.npy and R.json are still written); 2 on bad input (one line on
stderr). ``--waves`` writes an FST waveform next to Y (``Y.fst``); otherwise none is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from golden.config import DEFAULT, AcceleratorConfig, parse_array
from golden.cycles import layer_cycles, utilisation
from golden.run import (CliError, check_input_fits, check_output_path, load_input, load_layer,
                        one_line, run_layer)
from golden.transforms import TILES

__all__ = ["build_parser", "design_config", "main"]

PROG = "sim.layer"


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports errors as a :class:`golden.run.CliError`."""

    def error(self, message):
        raise CliError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    p = _OneLineParser(prog=f"python -m {PROG}",
                       description="Run one layer of a sparse-Winograd weight file through the "
                                   "cycle-accurate RTL simulation and check it against golden.")
    p.add_argument("--weights", required=True, metavar="W.npz", help="weight file (format v1)")
    p.add_argument("--layer", required=True, metavar="NAME", help="layer to run")
    p.add_argument("--input", required=True, metavar="X.npy",
                   help="int8 input, [C, H, W] or [N, C, H, W]")
    p.add_argument("--out", required=True, metavar="Y.npy",
                   help="output: the RTL's int64 outputs (int8 with --requant)")
    p.add_argument("--report", required=True, metavar="R.json", help="JSON report")
    p.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"],
                   help="simulator (default verilator)")
    p.add_argument("--array", default=f"{DEFAULT.array[0]}x{DEFAULT.array[1]}", metavar="RxC",
                   help="PE array of the simulated design (default %(default)s)")
    p.add_argument("--max-channels", type=int, default=DEFAULT.max_in_channels, metavar="N",
                   help="channel limit of the simulated design (raised to the layer's, rounded "
                        "up to a power of two; default %(default)s)")
    p.add_argument("--requant", nargs=2, type=int, metavar=("MULT", "SHIFT"), default=None,
                   help="simulate the requant stage and output int8 (as golden.run)")
    p.add_argument("--relu", action="store_true", help="ReLU after requantising")
    p.add_argument("--waves", action="store_true", help="write an FST waveform next to --out")
    return p


def _pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def design_config(layer, array: tuple[int, int], requant: bool,
                  max_channels: int = DEFAULT.max_in_channels) -> AcceleratorConfig:
    """The design that runs ``layer``: its tile, ``array`` PEs and channel limits of at least
    ``max_channels`` (raised to the layer's, rounded up to powers of two, so that similar
    layers share a build)."""
    tiles = {TILES[t]: t for t in TILES}
    tile = tiles.get((layer.m, layer.r))
    if tile is None:
        raise CliError(f"layer '{layer.name}' is F({layer.m},{layer.r}); the RTL supports "
                       f"{', '.join(f'F({m},{r}) ({t})' for t, (m, r) in TILES.items())}")
    return DEFAULT.replace(tile=tile, array=array, requant=requant,
                           max_in_channels=max(max_channels, _pow2(layer.in_channels)),
                           max_out_channels=max(max_channels, _pow2(layer.out_channels)))


def _check_paths(args):
    check_output_path(args.out, "--out", ".npy")
    check_output_path(args.report, "--report", ".json")


def _progress(step: int, total: int, text: str) -> None:
    print(f"[{step}/{total}] {text}", file=sys.stderr, flush=True)


def _show_progress(report: dict) -> None:
    got, want = report["received"]["results"], report["expected"]["results"]
    print(f"      ... {report['cycles']:,} cycles, {got:,}/{want:,} results", file=sys.stderr,
          flush=True)


def _run(argv) -> tuple[int, str]:
    args = build_parser().parse_args(argv)
    if args.relu and args.requant is None:
        raise CliError("--relu needs --requant MULT SHIFT")
    try:
        array = parse_array(args.array)
    except ValueError as exc:
        raise CliError(f"--array: {one_line(exc)}") from None
    if not 1 <= args.max_channels <= 4096:
        raise CliError(f"--max-channels must lie in [1, 4096], not {args.max_channels}")
    _check_paths(args)
    from sim.tools import find_simulator, waves_problem
    info = find_simulator(args.simulator)
    if not info.available:
        raise CliError(f"--simulator {args.simulator}: {info.reason}")
    if args.waves and waves_problem(args.simulator):
        raise CliError(f"--waves: {waves_problem(args.simulator)}")
    layer = load_layer(args.weights, args.layer)
    x = load_input(args.input)
    check_input_fits(x, layer, args.input)
    h, w = x.shape[-2:]
    config = design_config(layer, array, args.requant is not None, args.max_channels)
    from golden.program import compile_layer
    requant = None
    if args.requant is not None:
        requant = (args.requant[0], args.requant[1], bool(args.relu))
    try:
        program = compile_layer(config, layer, h, w, requant=requant)
    except ValueError as exc:
        raise CliError(one_line(exc)) from None
    try:
        golden = run_layer(layer, x, args.requant, args.relu)
    except ValueError as exc:
        raise CliError(f"--requant {' '.join(map(str, args.requant))}: {one_line(exc)}") \
            from None

    from sim.accel import LayerRun, accelerator_depths, build_accelerator, run_layers
    images = x if x.ndim == 4 else x[None]
    model = layer_cycles(program)
    steps = 4
    _progress(1, steps, f"design: tile {config.tile}, {array[0]}x{array[1]} PEs, "
                        f"channels <= {config.max_in_channels}/{config.max_out_channels}"
                        f"{', requant' if config.requant else ''}; generating Verilog")
    depths = accelerator_depths(config, program.n_tiles * program.in_channels,
                                program.n_tiles * program.out_channels)
    _progress(2, steps, f"building with {args.simulator} (reused when cached; a new "
                        f"Verilator build takes minutes)")
    from sim.runner import SimulationError
    waves = os.path.splitext(args.out)[0] + ".fst" if args.waves else None
    try:
        design = build_accelerator(config, args.simulator, depths=depths, waves=args.waves)
        _progress(3, steps, f"simulating {len(images)} image(s) of {model.cycles} cycles each "
                            f"(golden.cycles)")
        start = time.perf_counter()
        outcomes = run_layers(design, [LayerRun(program, img) for img in images],
                              waves=waves, name="layer", progress=_show_progress)
    except SimulationError as exc:
        return 1, f"{layer.name}: {one_line(exc)}"
    wall = time.perf_counter() - start
    _progress(4, steps, f"comparing with golden ({wall:.1f} s)")

    q = args.requant is not None
    problems = []
    for n, o in enumerate(outcomes):
        problems += [f"image {n}: {p}" if len(images) > 1 else p for p in o.problems]
    rtl = None
    if all(o.y is not None for o in outcomes):
        rtl = np.stack([o.y_q if q else o.y for o in outcomes])
    first = None
    if rtl is not None:
        rtl = rtl if x.ndim == 4 else rtl[0]
        rtl = rtl.astype(np.int8 if q else np.int64)
        diff = np.argwhere(rtl != golden)
        if diff.size:
            first = [int(i) for i in diff[0]]
        np.save(args.out, rtl, allow_pickle=False)

    cycles = sum(o.cycles for o in outcomes)
    report = model.as_dict()
    n = len(images)
    # Work counters of every image (the model's are per image).
    for key in ("nonzero_macs", "dense_macs", "direct_macs"):
        report[key] *= n
    for key in ("skipped_macs_per_position", "nonzero_macs_per_position"):
        report[key] = [v * n for v in report[key]]
    report.update({
        "layer": layer.name, "simulator": args.simulator, "simulator_version": info.version,
        "tile": config.tile, "array": list(array), "design": config.as_dict(),
        "images": len(images), "cycles": cycles, "model_cycles": model.cycles * len(images),
        "load_cycles": outcomes[0].load_cycles, "model_load_cycles": model.load_cycles,
        "utilisation": utilisation(report["nonzero_macs"], config.n_pe, cycles),
        "per_image": [{"cycles": o.cycles, "load_cycles": o.load_cycles,
                       "simulated_cycles": o.simulated_cycles, "passed": o.passed}
                      for o in outcomes],
        "wall_seconds": wall, "passed": not problems and first is None and rtl is not None,
        "first_mismatch": first, "problems": problems,
        "waves": waves,
    })
    with open(args.report, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    if first is not None:
        return 1, (f"{layer.name}: RTL output differs from golden at index {first}: "
                   f"{int(rtl[tuple(first)])} != {int(golden[tuple(first)])}")
    if problems:
        return 1, f"{layer.name}: {problems[0]}"
    return 0, (f"{layer.name}: RTL == golden, {cycles} cycles ({model.cycles * len(images)} "
               f"modelled), {config.multipliers} multipliers, utilisation "
               f"{report['utilisation']:.1%}, {args.simulator} -> {args.out}, {args.report}"
               + (f", {waves}" if waves else ""))


def main(argv=None) -> int:
    """Command-line entry point: 0 pass, 1 mismatch with golden, 2 bad input."""
    try:
        status, message = _run(argv)
    except CliError as exc:
        print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    print(message, file=sys.stdout if status == 0 else sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
