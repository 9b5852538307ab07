"""Command line of ``python -m hw.explore``.

``python -m hw.explore --weights W.npz --tiles 4x4,6x6 --arrays 1x1,2x2,4x4 --max-channels
16,32,64 --targets ecp5,ice40 [--pnr] [--scheduler ADDRESS | --workers N] [--force] --out DIR``
evaluates every design point of the grid for the network of ``W.npz`` on Dask and writes
``DIR/points.csv``, ``DIR/pareto.md``, ``DIR/pareto-<target>.png`` and ``DIR/tasks.csv`` (every
task: from the cache or run, on which worker process, how long). Results are cached in
``DIR/cache`` (``--cache``). Bad arguments print one line ``hw.explore: error: ...`` and exit 2;
a point whose task failed is reported in ``points.csv`` and makes the exit status 1. The
summary goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
from pathlib import Path

from golden.cli import (CliError, OneLineParser, check_output_dir, claim_output, one_line,
                        progress, run_main, write_text)
from golden.network import load_network
from golden.passes import network_design
from golden.transforms import TILES, parse_tile
from golden.config import parse_array
from golden.weights import WeightFileError
from hw.boards import BOARDS
from hw.synth.yosys import TARGETS

from .cache import Cache
from .outputs import FAILED, write_outputs
from .points import grid
from .study import default_work_dir, run_study

__all__ = ["PROG", "TASK_COLUMNS", "list_type", "main", "make_parser", "tasks_csv_text"]

#: Program name in usage and error lines.
PROG = "hw.explore"
#: Columns of ``tasks.csv``.
TASK_COLUMNS = ("step", "name", "source", "pid", "host", "seconds", "error")


def list_type(parse, what: str):
    """An argparse type: a comma-separated list, each item read by ``parse`` (which raises
    ValueError naming the bad item)."""
    def convert(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"must be a comma-separated list of {what}, "
                                             f"not {text!r}")
        try:
            values = [parse(t) for t in items]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(one_line(exc)) from None
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"lists {what} more than once: {text!r}")
        return values
    return convert


def _tile(text: str) -> str:
    parse_tile(text)
    return text


def _channels(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 4096:
        raise ValueError(f"channels must be integers in [1, 4096], not {text!r}")
    return int(text)


def _target(text: str) -> str:
    if text not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {text!r}")
    return text


def _count(name: str, low: int):
    def convert(text: str) -> int:
        if not text.strip().isdigit() or int(text) < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, not {text!r}")
        return int(text)
    return convert


def make_parser() -> OneLineParser:
    """The parser of ``python -m hw.explore``."""
    p = OneLineParser(prog=PROG, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                      description="Explore accelerator designs for a network on Dask: for "
                                  "every tile x array x channel limit x target, synthesise "
                                  "(and place and route) the design and run the network "
                                  "through golden's exact cycle model; write points.csv, "
                                  "pareto.md and Pareto plots.")
    p.add_argument("--weights", required=True, metavar="W.npz",
                   help="the network: a weight file version 2 (python -m train.prune)")
    p.add_argument("--tiles", type=list_type(_tile, "tiles"), default=["4x4"],
                   help=f"comma-separated tiles ({', '.join(TILES)}); a tile the network's "
                        "layers are not made for is reported as unusable")
    p.add_argument("--arrays", type=list_type(parse_array, "arrays"), default=[(1, 1), (2, 2)],
                   help="comma-separated RxC processing-element arrays")
    p.add_argument("--max-channels", type=list_type(_channels, "channel limits"),
                   default=[16, 32], help="comma-separated channel limits (input = output; "
                                          "larger layers run as channel-split passes)")
    p.add_argument("--targets", type=list_type(_target, "targets"), default=["ecp5"],
                   help=f"comma-separated synthesis targets ({', '.join(TARGETS)})")
    p.add_argument("--pnr", action="store_true",
                   help="also place and route (ice40: iCEBreaker UP5K, ecp5: ULX3S 85F) for "
                        "Fmax, latency, images/s and GOPS")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="run on the Dask scheduler at ADDRESS (e.g. tcp://host:8786) "
                            "instead of a local cluster")
    where.add_argument("--workers", type=_count("--workers", 1), default=None,
                       help="worker processes of the local cluster (default: the CPU count, "
                            f"{os.cpu_count()} here)")
    p.add_argument("--retries", type=_count("--retries", 0), default=2,
                   help="retries of a task that raised")
    p.add_argument("--force", action="store_true", help="recompute every task (ignore the "
                                                        "cache; it is rewritten)")
    p.add_argument("--out", default="build/explore", help="output directory")
    p.add_argument("--cache", default=None, help="cache directory (default OUT/cache)")
    p.add_argument("--quiet", action="store_true", help="no progress lines or bar")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; bad arguments exit 2 with one line."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.pnr:
        no_board = [t for t in args.targets if t not in BOARDS]
        if no_board:
            parser.error(f"--pnr needs --targets from {', '.join(BOARDS)}, not "
                         f"{no_board[0]!r}")
    return args


def tasks_csv_text(tasks: list[dict]) -> str:
    """``tasks.csv``: :data:`TASK_COLUMNS`, one line per task."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TASK_COLUMNS)
    for t in tasks:
        writer.writerow(["" if t[c] is None else t[c] for c in TASK_COLUMNS])
    return out.getvalue()


def _read_weights(path: str):
    try:
        weights = load_network(path)
        return weights, network_design(weights), Path(path).read_bytes()
    except WeightFileError as exc:
        raise CliError(f"--weights {one_line(exc)}") from None
    except ValueError as exc:
        raise CliError(f"--weights {path}: {one_line(exc)}") from None
    except OSError as exc:
        raise CliError(f"--weights {path}: cannot be read ({exc.strerror or exc})") from None


def _main(argv: list[str] | None) -> int:
    args = parse_args(argv)
    weights, base, data = _read_weights(args.weights)
    try:
        points = grid(base, args.tiles, args.arrays, args.max_channels, args.targets)
    except ValueError as exc:
        raise CliError(one_line(exc)) from None
    check_output_dir(args.out)
    if args.cache is not None:
        check_output_dir(args.cache, "--cache")
    out = Path(args.out)
    names = ["points.csv", "pareto.md", "tasks.csv"] + [f"pareto-{t}.png" for t in args.targets]
    for name in names:          # removed if the run fails: no stale result passes for this one
        claim_output(out / name)
    out.mkdir(parents=True, exist_ok=True)
    cache = Cache(args.cache if args.cache is not None else out / "cache")
    try:
        study = run_study(points, cache=cache, work_dir=default_work_dir(out), weights=data,
                          pnr=args.pnr, force=args.force, workers=args.workers,
                          scheduler=args.scheduler, retries=args.retries, quiet=args.quiet)
    except ConnectionError as exc:
        raise CliError(f"--scheduler {args.scheduler}: cannot connect ({one_line(exc)})") \
            from None
    except OSError as exc:
        raise CliError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    title = f"{Path(args.weights).name} ({len(points)} design points)"
    written = write_outputs(study.rows, args.targets, out, title)
    write_text(out / "tasks.csv", tasks_csv_text(study.tasks))
    failed = sum(r["status"] == FAILED for r in study.rows)
    pids = {(t["host"], t["pid"]) for t in study.tasks if t["source"] == "cluster"}
    if not args.quiet:
        progress(f"wrote {', '.join(str(p) for p in written)} and {out / 'tasks.csv'}")
    print(f"{len(points)} points: {sum(r['status'] == 'ok' for r in study.rows)} ok, "
          f"{sum(r['status'] == 'unusable' for r in study.rows)} unusable, "
          f"{sum(r['status'] == 'refused' for r in study.rows)} refused, {failed} failed; "
          f"{len(study.tasks)} tasks: {study.count('cluster')} run on {len(pids)} worker "
          f"processes, {study.count('cache')} from the cache; wrote {out / 'points.csv'} "
          f"and {out / 'pareto.md'}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m hw.explore``; returns the exit status.

    Exit status: 0 done, 1 a point's task failed (reported in ``points.csv``), 2 bad
    arguments or input (one line ``hw.explore: error: ...`` on stderr), 130 interrupted
    (finished tasks stay cached: the next run resumes).
    """
    return run_main(PROG, lambda: _main(argv))

