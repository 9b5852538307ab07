"""Run a whole trained network (weight file version 2) through the accelerator RTL.

Usage::

    python -m sim.network --weights W.npz [--config DESIGN.json]
                          (--input X.npy [--labels Y.npy] | --dataset NAME [--images N])
                          [--simulator verilator|icarus] [--jobs J] [--fmax MHZ]
                          --out LOGITS.npy --report DIR

Every conv op runs on the accelerator (``sim.netrun``: as passes when the layer is larger than
the design, the requant stage on chip when the layer fits one input-channel group); pooling,
flatten and the linear head run on the host in ``golden.network``. Every op's output of every
image is compared bit-exactly with golden; the first difference stops the run with exit status
1 naming the image, the op and the index. The report directory receives ``report.json``,
``layers.csv``, ``report.md`` and two plots (``golden.report``); the summary goes to stdout,
progress to stderr, bad input is one line and exit status 2.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from golden.cli import (CliError, OneLineParser, check_output_dir, check_output_path, progress,
                        run_main, save_npy)
from golden.options import read_config
from golden.network import accuracy, add_image_arguments, load_images, load_network
from golden.report import NetworkFigures, write_report
from golden.weights import WeightFileError

from .accel import check_simulable
from .netrun import network_design, plan_network, run_network_rtl
from .runner import set_build_root
from .tools import BUILD_DIR_HELP

__all__ = ["build_parser", "main"]

PROG = "sim.network"


def build_parser() -> OneLineParser:
    """The command-line parser (``--help`` lists every option and its default)."""
    p = OneLineParser(
        PROG, description="Run images through a whole network (weight file version 2) on the "
                          "accelerator RTL, check every layer against golden bit for bit, and "
                          "report accuracy, cycles and utilisation.")
    p.add_argument("--weights", required=True, metavar="W.npz",
                   help="weight file, version 2 (docs/weight-format.md); required")
    p.add_argument("--config", metavar="DESIGN.json",
                   help="simulate exactly this design (a manifest written by hw.generate); "
                        "default: the default design with the file's tile and the requant "
                        "stage")
    add_image_arguments(p)
    p.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator",
                   help="default: verilator")
    p.add_argument("--jobs", type=int, metavar="J", default=os.cpu_count() or 1,
                   help="simulator processes at once, sharing one build; default: the CPU "
                        "count")
    p.add_argument("--fmax", type=float, metavar="MHZ",
                   help="clock for images_per_s_at_fmax in the report; default: leave it null")
    p.add_argument("--out", required=True, metavar="LOGITS.npy",
                   help="the hardware path's int64 logits [N, O]; required")
    p.add_argument("--report", required=True, metavar="DIR",
                   help="report directory (created): report.json, layers.csv, report.md, "
                        "cycles.png, skipped_macs.png; required")
    p.add_argument("--build-dir", default=None, metavar="DIR", help=BUILD_DIR_HELP)
    return p


def _bar(total_ops: int):
    """A tqdm bar per conv op on stderr (images done of all)."""
    from tqdm import tqdm
    bars = {}

    def update(op, done, n):
        bar = bars.get(op)
        if bar is None:
            bar = bars[op] = tqdm(total=n, desc=op, unit="image", file=sys.stderr,
                                  leave=True, dynamic_ncols=True)
        bar.update(done - bar.n)
        if done == n:
            bar.close()
    return update


def _run(argv) -> int:
    args = build_parser().parse_args(argv)
    if args.jobs < 1:
        raise CliError(f"--jobs must be a positive integer, not {args.jobs}")
    if args.fmax is not None and not args.fmax > 0:
        raise CliError(f"--fmax must be a positive number of MHz, not {args.fmax}")
    check_output_path(args.out, inputs=[("--weights", args.weights), ("--input", args.input),
                                        ("--labels", args.labels), ("--config", args.config)])
    check_output_dir(args.report, "--report")
    if args.build_dir is not None:
        check_output_dir(args.build_dir, "--build-dir")
        set_build_root(args.build_dir)
    try:
        weights = load_network(args.weights)
    except WeightFileError as exc:
        raise CliError(f"weights {exc}") from None
    images, labels, where = load_images(args, weights)
    if images.ndim == 3:
        images = images[None]
        labels = None if labels is None else np.asarray(labels).reshape(1)
    if args.config is not None:
        config, source = read_config(args.config), f"from {args.config}"
    else:
        try:
            config = network_design(weights)
        except ValueError as exc:
            raise CliError(f"{args.weights}: {exc}") from None
        source = "chosen for the network (--config DESIGN.json to give one)"
    try:
        plan = plan_network(weights, config)
        check_simulable(config, plan.depths)        # before generating or building anything
    except ValueError as exc:
        raise CliError(f"{args.weights}: {exc} (design {config.name})") from None
    passes = sum(len(p) for p in plan.programs.values())
    progress(f"{PROG}: design {config.name} {source}; {images.shape[0]} image(s) from {where}; "
             f"{len(plan.plans)} conv ops as {passes} passes")
    outcome = run_network_rtl(weights, config, images, simulator=args.simulator,
                              jobs=args.jobs, plan=plan, progress=_bar(len(plan.plans)),
                              log=lambda text: progress(f"{PROG}: {text}"))
    hw_accuracy = golden_accuracy = None
    if labels is not None:
        golden_accuracy = accuracy(outcome.golden_logits, labels)
        if outcome.logits is not None:
            hw_accuracy = accuracy(outcome.logits, labels)
    figures = NetworkFigures(images=int(images.shape[0]), bit_exact=outcome.bit_exact,
                             multipliers=config.n_pe,
                             simulated_cycles=outcome.simulated_cycles,
                             simulation_seconds=outcome.simulation_seconds,
                             accuracy_hardware=hw_accuracy, accuracy_golden=golden_accuracy,
                             fmax_mhz=args.fmax,
                             design={"name": config.name, "config": config.to_dict()},
                             simulator=args.simulator, build_seconds=outcome.build_seconds)
    try:
        paths = write_report(args.report, outcome.records, figures)
    except OSError as exc:
        raise CliError(f"--report {args.report}: cannot write ({exc})") from None
    if outcome.mismatch is not None:
        print(f"{PROG}: the RTL differs from golden: {outcome.mismatch}", file=sys.stderr)
        return 1
    save_npy(args.out, outcome.logits)
    if outcome.problems:
        for line in outcome.problems[:10]:
            print(f"{PROG}: {line}", file=sys.stderr)
        print(f"{PROG}: bit-exact, but {len(outcome.problems)} check(s) failed", file=sys.stderr)
        return 1
    report = paths["json"]
    score = "" if hw_accuracy is None else f", accuracy {hw_accuracy:.4f} (golden " \
        f"{golden_accuracy:.4f})"
    print(f"{images.shape[0]} image(s) through {config.name} on {args.simulator}: bit-exact"
          f"{score}; report {report}, logits {args.out}")
    return 0


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status (0, 1 when the RTL differs, 2 on bad
    input)."""
    return run_main(PROG, lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
