"""Run one layer of a weight file through the cycle-accurate RTL simulation.

Usage::

    python -m sim.layer --weights W.npz --layer NAME --input X.npy --out Y.npy [--report R.json]
                        [--config DESIGN.json | --array RxC --max-channels N ...]
                        [--simulator verilator|icarus] [--requant MULT SHIFT [--relu]] [--waves]

The contract of ``python -m golden.run``, through the generated Verilog: ``X`` is int8
[C, H, W] or [N, C, H, W]; ``Y`` is the RTL's output, int64 [[N,] K, Hout, Wout] (int8 with
``--requant``), and must equal golden.run's. ``R.json`` holds ``cycles`` (first input patch to
last result, summed over images), ``model_cycles`` (``golden.cycles``), ``load_cycles``,
``multipliers``, ``nonzero_macs``, ``utilisation``, ``skipped_macs_per_position`` (work
counters summed over images), ``simulator``, ``tile``, the design (``design_name``, ``design``
and ``design_file``, the ``--config`` manifest or null) and per-image figures.

The design: ``--config DESIGN.json`` (a manifest written by ``hw.generate``) simulates exactly
that design, and a layer that does not fit it is refused naming the limit. Without it the
design is chosen for the layer (:func:`design_config`), the accelerator options given (the
same as ``hw.generate``'s) override that choice, and the progress lines say which design runs.

Exit status: 0 when outputs and cycle counts match golden; 1 on a mismatch (the message names
the first differing index; Y.npy and R.json are still written); 2 on bad input (one line on
stderr); 130 when interrupted. ``--waves`` writes an FST waveform next to Y (``Y.fst``);
otherwise none is written.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from golden.cli import (CliError, OneLineParser, check_input_fits, check_output_dir,
                        check_output_path, claim_output, load_input, load_layer, one_line,
                        progress, run_main, save_npy, write_json)
from golden.options import (add_config_arguments, config_from_args, given_config_options,
                            read_config)
from golden.config import DEFAULT, AcceleratorConfig
from golden.cycles import layer_cycles, utilisation
from golden.run import run_layer
from golden.transforms import TILES
from sim.tools import BUILD_DIR_HELP

__all__ = ["DESIGN_OPTIONS", "build_parser", "describe", "design_config", "file_design",
           "main"]

PROG = "sim.layer"

#: The accelerator options sim.layer takes (the tile comes from the layer, the requant stage
#: from --requant MULT SHIFT).
DESIGN_OPTIONS = ("--array", "--max-channels", "--max-in-channels", "--max-out-channels",
                  "--data-width", "--weight-width", "--bias-width", "--weight-depth",
                  "--max-tap-shift", "--weight-lanes", "--weight-banks")


def build_parser() -> OneLineParser:
    """The command-line parser."""
    p = OneLineParser(prog=PROG,
                      description="Run one layer of a sparse-Winograd weight file through the "
                                  "cycle-accurate RTL simulation and check it against golden.")
    p.add_argument("--weights", required=True, metavar="W.npz", help="weight file (version 1 or 2)")
    p.add_argument("--layer", required=True, metavar="NAME", help="layer to run")
    p.add_argument("--input", required=True, metavar="X.npy",
                   help="int8 input, [C, H, W] or [N, C, H, W]")
    p.add_argument("--out", required=True, metavar="Y.npy",
                   help="output: the RTL's int64 outputs (int8 with --requant)")
    p.add_argument("--report", default=None, metavar="R.json",
                   help="JSON report: cycles, utilisation, the design ... (default: none)")
    p.add_argument("--config", default=None, metavar="DESIGN.json",
                   help="simulate exactly this design: a manifest written by hw.generate "
                        "(default: a design chosen for the layer: its tile, 4x4 PEs and channel "
                        "limits of 64, or the layer's channel counts rounded up to powers of "
                        "two where larger; the options below change that choice)")
    p.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"],
                   help="simulator (default verilator)")
    p.add_argument("--requant", nargs=2, type=int, metavar=("MULT", "SHIFT"), default=None,
                   help="simulate the requant stage and output int8 (as golden.run)")
    p.add_argument("--relu", action="store_true", help="ReLU after requantising")
    p.add_argument("--waves", action="store_true", help="write an FST waveform next to --out")
    p.add_argument("--build-dir", default=None, metavar="DIR", help=BUILD_DIR_HELP)
    add_config_arguments(p, DESIGN_OPTIONS, chosen="as the design chosen without --config")
    return p


def _pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def design_config(layer, array: tuple[int, int] = DEFAULT.array,
                  requant: bool = False) -> AcceleratorConfig:
    """The design chosen for ``layer`` when none is given: its tile, ``array`` PEs, channel
    limits of at least the default's, raised to the layer's rounded up to powers of two (so
    that similar layers share a build), and a tap shift stage as wide as the layer's tap
    shifts span."""
    tiles = {TILES[t]: t for t in TILES}
    tile = tiles.get((layer.m, layer.r))
    if tile is None:
        raise CliError(f"layer '{layer.name}' is F({layer.m},{layer.r}); the RTL supports "
                       f"{', '.join(f'F({m},{r}) ({t})' for t, (m, r) in TILES.items())}")
    return DEFAULT.replace(
        tile=tile, array=array, requant=requant,
        max_in_channels=max(DEFAULT.max_in_channels, _pow2(layer.in_channels)),
        max_out_channels=max(DEFAULT.max_out_channels, _pow2(layer.out_channels)),
        max_tap_shift=int(layer.tap_left_shifts.max()))


def _design(args, layer) -> tuple[AcceleratorConfig, str]:
    """The design to simulate and where it comes from (a file, or chosen)."""
    if args.config is None:
        chosen = design_config(layer, requant=args.requant is not None)
        given = given_config_options(args)
        return config_from_args(args, chosen), ("chosen for the layer" if not given else
                                                f"chosen for the layer, {', '.join(given)} "
                                                "as given")
    return read_config(args.config), f"from {args.config}"


def file_design(weights, in_h: int, in_w: int, config: AcceleratorConfig | None = None,
                source: str = "chosen for the file") -> tuple[AcceleratorConfig, dict, str]:
    """The design that runs every layer of ``weights`` on ``in_h`` x ``in_w`` inputs, the
    harness memory depths it needs and where the design comes from.

    ``config`` None chooses one (:func:`design_config` of every layer, the largest limits);
    a given design is used as it is.

    Raises
    ------
    CliError
        If the layers need several tiles, or a layer does not fit the design (naming the limit).
    """
    from golden.program import compile_layer
    from sim.accel import accelerator_depths, check_simulable
    if config is None:
        chosen = {design_config(layer) for layer in weights.layers}
        tiles = {c.tile for c in chosen}
        if len(tiles) > 1:
            raise CliError(f"{weights.source}: layers use several tiles "
                           f"({', '.join(sorted(tiles))}); one accelerator runs one tile")
        config = DEFAULT.replace(tile=tiles.pop(),
                                 max_in_channels=max(c.max_in_channels for c in chosen),
                                 max_out_channels=max(c.max_out_channels for c in chosen),
                                 max_tap_shift=max(c.max_tap_shift for c in chosen))
    programs = []
    for layer in weights.layers:
        try:
            programs.append(compile_layer(config, layer, in_h, in_w))
        except ValueError as exc:
            raise CliError(f"{one_line(exc)} (design {config.name}, {source})") from None
    depths = accelerator_depths(config, max(p.n_tiles * p.in_channels for p in programs),
                                max(p.n_tiles * p.out_channels for p in programs))
    try:
        check_simulable(config, depths)
    except ValueError as exc:
        raise CliError(f"{one_line(exc)} (design {config.name}, {source}, input "
                       f"{in_h}x{in_w})") from None
    return config, depths, source


def describe(config: AcceleratorConfig) -> str:
    """One line naming ``config`` and its main parameters."""
    return (f"{config.name} (tile {config.tile}, {config.array[0]}x{config.array[1]} PEs, "
            f"channels <= {config.max_in_channels} in / {config.max_out_channels} out"
            f"{', requant' if config.requant else ''})")


def _check_paths(args):
    inputs = [("--weights", args.weights), ("--input", args.input), ("--config", args.config)]
    check_output_path(args.out, "--out", ".npy", inputs)
    if args.report is not None:
        check_output_path(args.report, "--report", ".json", inputs)
    if args.waves:
        claim_output(os.path.splitext(args.out)[0] + ".fst")


def _progress(step: int, total: int, text: str) -> None:
    progress(f"[{step}/{total}] {text}")


def _show_progress(report: dict) -> None:
    got, want = report["received"]["results"], report["expected"]["results"]
    progress(f"      ... {report['cycles']:,} cycles, {got:,}/{want:,} results")


def _run(argv) -> tuple[int, str]:
    args = build_parser().parse_args(argv)
    if args.relu and args.requant is None:
        raise CliError("--relu needs --requant MULT SHIFT")
    if args.config is not None and given_config_options(args):
        raise CliError(f"{given_config_options(args)[0]} cannot be combined with --config "
                       f"(the design file fixes every design option)")
    _check_paths(args)
    if args.config is not None:
        read_config(args.config)                        # a bad design file fails first
    from sim.tools import find_simulator, waves_problem
    info = find_simulator(args.simulator)
    if not info.available:
        raise CliError(f"--simulator {args.simulator}: {info.reason}")
    if args.waves and waves_problem(args.simulator):
        raise CliError(f"--waves: {waves_problem(args.simulator)}")
    if args.build_dir is not None:
        check_output_dir(args.build_dir, "--build-dir")
        from sim.runner import set_build_root
        set_build_root(args.build_dir)
    layer = load_layer(args.weights, args.layer)
    x = load_input(args.input)
    check_input_fits(x, layer, args.input)
    h, w = x.shape[-2:]
    config, source = _design(args, layer)
    from golden.program import compile_layer
    requant = None
    if args.requant is not None:
        requant = (args.requant[0], args.requant[1], bool(args.relu))
    try:
        program = compile_layer(config, layer, h, w, requant=requant)
    except ValueError as exc:
        raise CliError(f"{one_line(exc)} (design {config.name}, {source})") from None
    from sim.accel import (LayerRun, accelerator_depths, build_accelerator, check_simulable,
                           run_layers)
    depths = accelerator_depths(config, program.n_tiles * program.in_channels,
                                program.n_tiles * program.out_channels)
    try:
        check_simulable(config, depths)
    except ValueError as exc:
        raise CliError(f"{one_line(exc)} (design {config.name}, {source}, input "
                       f"{list(x.shape)})") from None
    try:
        golden = run_layer(layer, x, args.requant, args.relu)
    except ValueError as exc:
        raise CliError(f"--requant {' '.join(map(str, args.requant))}: {one_line(exc)}") \
            from None

    images = x if x.ndim == 4 else x[None]
    model = layer_cycles(program)
    steps = 4
    _progress(1, steps, f"design {describe(config)}, {source}; generating Verilog")
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
        save_npy(args.out, rtl)

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
        "tile": config.tile, "array": list(config.array), "design_name": config.name,
        "design": config.to_dict(), "design_file": args.config,
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
    if args.report is not None:
        write_json(args.report, report)
    if first is not None:
        return 1, (f"{layer.name}: RTL output differs from golden at index {first}: "
                   f"{int(rtl[tuple(first)])} != {int(golden[tuple(first)])}")
    if problems:
        return 1, f"{layer.name}: {problems[0]}"
    return 0, (f"{layer.name}: RTL == golden on {config.name}, {cycles} cycles "
               f"({model.cycles * len(images)} modelled), {config.multipliers} multipliers, "
               f"utilisation "
               f"{report['utilisation']:.1%}, {args.simulator} -> "
               + ", ".join(p for p in (args.out, args.report, waves) if p))


def main(argv=None) -> int:
    """Command-line entry point: 0 pass, 1 mismatch with golden, 2 bad input, 130 interrupted."""
    def body():
        status, message = _run(argv)
        print(message, file=sys.stdout if status == 0 else sys.stderr)
        return status
    return run_main(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
