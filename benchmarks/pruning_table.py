"""Accuracy and Winograd-domain sparsity of the three pruning methods on digits.

Trains one dense model (shared by every run), then prunes it with each method to each target
sparsity under the same training budget, for tiles 4x4 and 6x6; quantises to int8 and evaluates
with golden's integer model. Prints one line per run (``[i/N]``) and a Markdown table; with
``--update docs/pruning.md`` the table replaces the block between the markers
``<!-- pruning-table:begin -->`` and ``<!-- pruning-table:end -->``.

Usage::

    nice python benchmarks/pruning_table.py --update docs/pruning.md --json pruning.json

Runs can be split over processes (``--tiles``, ``--methods``) with one ``--json`` each, then
rendered together with ``--from-json a.json b.json --update docs/pruning.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import textwrap
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from train.data import load_digits  # noqa: E402
from train.pipeline import METHODS, PruneSettings, run, train_dense  # noqa: E402

BEGIN, END = "<!-- pruning-table:begin -->", "<!-- pruning-table:end -->"
TARGETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
MAX_LOSS = 0.005


def _best(rows, key):
    """Largest Winograd-domain sparsity whose accuracy ``key`` lost at most MAX_LOSS."""
    ok = [r for r in rows if r["accuracy"]["dense"] - r["accuracy"][key] <= MAX_LOSS + 1e-12]
    return max((r["winograd_sparsity"]["overall"] for r in ok), default=None)


def render(results: list[dict], header: str) -> str:
    """Markdown: per-run table and the best sparsity at <= 0.5 % accuracy loss."""
    lines = [textwrap.fill(header, 100), "",
             textwrap.fill("Columns: Winograd-domain sparsity of the float pruned network "
                           "and of the int8 file (weights that round to zero add to it); test "
                           "accuracy of the dense, pruned and int8 networks.", 100), "",
             "| tile | method | target | sparsity | int8 sparsity | dense | pruned | int8 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        acc = r["accuracy"]
        lines.append(
            f"| {r['tile']} | {r['method']} | {r['target_sparsity']:.2f} "
            f"| {r['winograd_sparsity']['overall']:.3f} "
            f"| {r['quantised_winograd_sparsity']['overall']:.3f} "
            f"| {100 * acc['dense']:.2f} % | {100 * acc['pruned']:.2f} % "
            f"| {100 * acc['quantised']:.2f} % |")
    lines += ["", textwrap.fill("Highest Winograd-domain sparsity reached with at most 0.5 % "
                                "accuracy loss (against the dense model; '-' = no run "
                                "qualified):", 100), "",
              "| tile | method | float pruned | int8 (golden integer model) |",
              "|---|---|---:|---:|"]
    for tile in dict.fromkeys(r["tile"] for r in results):
        for method in dict.fromkeys(r["method"] for r in results):
            rows = [r for r in results if r["tile"] == tile and r["method"] == method]
            cells = [_best(rows, k) for k in ("pruned", "quantised")]
            text = ["-" if c is None else f"{c:.3f}" for c in cells]
            lines.append(f"| {tile} | {method} | {text[0]} | {text[1]} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """Run (or render) the table; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiles", default="4x4,6x6")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--targets", default=",".join(str(t) for t in TARGETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write all run reports here")
    p.add_argument("--update", help="Markdown file whose table block to replace")
    p.add_argument("--from-json", nargs="+", metavar="FILE",
                   help="render the reports of earlier runs instead of running")
    p.add_argument("--note", default="", help="text appended to the table's header")
    args = p.parse_args(argv)
    if args.from_json:
        results = []
        for path in args.from_json:
            with open(path) as f:
                results += json.load(f)["runs"]
        order = {m: i for i, m in enumerate(METHODS)}
        results.sort(key=lambda r: (r["tile"], order[r["method"]], r["target_sparsity"]))
        return _write(render(results, args.note), args.update)
    torch.set_num_threads(1)
    tiles = args.tiles.split(",")
    methods = args.methods.split(",")
    targets = [float(t) for t in args.targets.split(",")]
    start = time.perf_counter()
    data = load_digits(args.seed)
    base = PruneSettings(seed=args.seed)
    dense = train_dense("digits", data, base)
    print(f"dense model trained in {time.perf_counter() - start:.1f} s", flush=True)
    results, n, i = [], len(tiles) * len(methods) * len(targets), 0
    for tile in tiles:
        for method in methods:
            for target in targets:
                i += 1
                s = PruneSettings(tile=tile, method=method, target=target, seed=args.seed)
                _, report = run("digits", data, s, dense=dense)
                results.append(report)
                if args.json:       # after every run, so that partial results survive
                    with open(args.json, "w") as f:
                        json.dump({"runs": results}, f, indent=1)
                acc = report["accuracy"]
                print(f"[{i}/{n}] {tile} {method} target {target:.2f}: sparsity "
                      f"{report['winograd_sparsity']['overall']:.3f}, accuracy dense "
                      f"{acc['dense']:.4f} pruned {acc['pruned']:.4f} int8 "
                      f"{acc['quantised']:.4f} ({report['wall_time_s']:.1f} s)", flush=True)
    wall = time.perf_counter() - start
    header = (f"Generated by `benchmarks/pruning_table.py` (seed {args.seed}, digits test set of "
              f"{len(data.x_test)} images: one image = {100 / len(data.x_test):.2f} %) in "
              f"{wall / 60:.1f} min on {platform.machine()} with {os.cpu_count()} CPU cores "
              f"(shared with other jobs), torch {torch.__version__}, 1 thread. Budget per run: "
              f"{base.dense_epochs} dense epochs (shared) + {base.prune_epochs} pruning epochs.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": results, "header": header}, f, indent=1)
    return _write(render(results, f"{header} {args.note}".strip()), args.update)


def _write(table: str, update: str | None) -> int:
    """Print the table and, if asked, replace the marked block of ``update`` with it."""
    print(table)
    if update:
        with open(update) as f:
            text = f.read()
        if BEGIN not in text or END not in text:
            print(f"{update}: markers {BEGIN} / {END} not found", file=sys.stderr)
            return 2
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        with open(update, "w") as f:
            f.write(f"{head}{BEGIN}\n{table}{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
