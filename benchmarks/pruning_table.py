"""Accuracy and Winograd-domain sparsity of the three pruning methods on digits, int8 with and
without tap shifts, over several seeds.

Per seed, trains one dense model (shared by every run of that seed), then prunes it with each
method to each target sparsity under the same training budget, for tiles 4x4 and 6x6, and
quantises every pruned network twice: per output channel only (the int8 of weight file v1) and
tap-wise (a power-of-two scale per Winograd position, weight file v2 ``tap_shift``, with the
tile's default quantisation-aware fine-tuning: 6 epochs for 6x6, none for 4x4); both int8
networks are evaluated with golden's integer model. Prints one line per run (``[i/N]``) and a
Markdown table of means and spreads (min-max) over the seeds; with ``--update docs/pruning.md``
the table replaces the block between the markers ``<!-- pruning-table:begin -->`` and
``<!-- pruning-table:end -->``.

Usage::

    nice python benchmarks/pruning_table.py --seeds 0,1,2 --update docs/pruning.md \
        --json pruning.json

Runs can be split over processes (``--tiles``, ``--methods``, ``--seeds``) with one ``--json``
each, then rendered together with ``--from-json a.json b.json --update docs/pruning.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import textwrap
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from train.data import load_digits  # noqa: E402
from train.pipeline import (METHODS, PruneSettings, accuracy, prune,  # noqa: E402
                            quantise_network, sparsity_report, train_dense, winograd_weights)

BEGIN, END = "<!-- pruning-table:begin -->", "<!-- pruning-table:end -->"
TARGETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
MAX_LOSS = 0.005
#: The two int8 columns: settings changes of each quantisation.
QUANTISERS = {"int8_per_channel": {"tap_shifts": False, "qat_epochs": 0},
              "int8_tap_wise": {"tap_shifts": True}}


def one_run(data, dense, s: PruneSettings) -> dict:
    """Prune ``dense`` with ``s``, quantise it both ways, evaluate; the run's record."""
    start = time.perf_counter()
    model = prune(dense, data, s)
    record = {"tile": s.tile, "method": s.method, "target_sparsity": s.target, "seed": s.seed,
              "sparsity": sparsity_report(winograd_weights(model, s.tile),
                                          model.conv_names)["overall"],
              "accuracy": {"dense": accuracy(dense, data.x_test, data.y_test),
                           "pruned": accuracy(model, data.x_test, data.y_test)},
              "tap_shift_span": {}}
    for key, changes in QUANTISERS.items():
        weights, _, acc = quantise_network(model, "digits", data, replace(s, **changes))
        record["accuracy"][key] = acc
        record["tap_shift_span"][key] = max(
            (int(np.ptp(layer.tap_shift)) for layer in weights.layers
             if layer.tap_shift is not None), default=0)
    record["wall_time_s"] = time.perf_counter() - start
    return record


def _cell(values) -> str:
    """Mean and, over several seeds, the spread min-max, in per cent."""
    values = [100 * v for v in values]
    text = f"{np.mean(values):.2f} %"
    if len(values) > 1:
        text += f" ({min(values):.2f}-{max(values):.2f})"
    return text


def _groups(results):
    keys = dict.fromkeys((r["tile"], r["method"], r["target_sparsity"]) for r in results)
    return [(key, [r for r in results if (r["tile"], r["method"], r["target_sparsity"]) == key])
            for key in keys]


def _best(groups, tile, method, key):
    """Largest mean sparsity whose mean accuracy ``key`` lost at most MAX_LOSS (vs dense)."""
    ok = [np.mean([r["sparsity"] for r in rows]) for (t, m, _), rows in groups
          if (t, m) == (tile, method)
          and np.mean([r["accuracy"]["dense"] - r["accuracy"][key] for r in rows])
          <= MAX_LOSS + 1e-12]
    return max(ok, default=None)


def render(results: list[dict], header: str) -> str:
    """Markdown: per-setting table (mean over seeds) and the best sparsity at <= 0.5 % loss."""
    groups = _groups(results)
    seeds = sorted({r["seed"] for r in results})
    lines = [textwrap.fill(header, 100), "",
             textwrap.fill(f"Columns: Winograd-domain sparsity of the float pruned network; "
                           f"test accuracy of the dense, pruned and int8 networks, mean over "
                           f"seeds {', '.join(map(str, seeds))} (min-max in brackets). 'per "
                           f"channel': one scale per output channel (no tap shifts); 'tap-wise': "
                           f"a power-of-two scale per Winograd position (tap_shift), for 6x6 "
                           f"with 6 epochs of quantisation-aware fine-tuning; 'span': the "
                           f"largest tap shift span (hw.generate --max-tap-shift it needs).",
                           100), "",
             "| tile | method | target | sparsity | dense | pruned | int8 per channel "
             "| int8 tap-wise | span |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (tile, method, target), rows in groups:
        acc = {k: [r["accuracy"][k] for r in rows]
               for k in ("dense", "pruned", *QUANTISERS)}
        span = max(r["tap_shift_span"]["int8_tap_wise"] for r in rows)
        lines.append(f"| {tile} | {method} | {target:.2f} "
                     f"| {np.mean([r['sparsity'] for r in rows]):.3f} "
                     + " ".join(f"| {_cell(acc[k])}" for k in ("dense", "pruned", *QUANTISERS))
                     + f" | {span} |")
    lines += ["", textwrap.fill("Highest Winograd-domain sparsity reached with at most 0.5 % "
                                "mean accuracy loss (against the dense model; '-' = no run "
                                "qualified):", 100), "",
              "| tile | method | float pruned | int8 per channel | int8 tap-wise |",
              "|---|---|---:|---:|---:|"]
    for tile in dict.fromkeys(r["tile"] for r in results):
        for method in dict.fromkeys(r["method"] for r in results):
            cells = [_best(groups, tile, method, k) for k in ("pruned", *QUANTISERS)]
            text = ["-" if c is None else f"{c:.3f}" for c in cells]
            lines.append(f"| {tile} | {method} | " + " | ".join(text) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """Run (or render) the table; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiles", default="4x4,6x6")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--targets", default=",".join(str(t) for t in TARGETS))
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--json", help="write all run records here")
    p.add_argument("--update", help="Markdown file whose table block to replace")
    p.add_argument("--from-json", nargs="+", metavar="FILE",
                   help="render the records of earlier runs instead of running")
    p.add_argument("--note", default="", help="text appended to the table's header")
    args = p.parse_args(argv)
    if args.from_json:
        results, headers = [], []
        for path in args.from_json:
            with open(path) as f:
                saved = json.load(f)
            results += saved["runs"]
            headers += [saved["header"]] if "header" in saved else []
        order = {m: i for i, m in enumerate(METHODS)}
        results.sort(key=lambda r: (r["tile"], order[r["method"]], r["target_sparsity"],
                                    r["seed"]))
        return _write(render(results, " ".join([*headers, args.note]).strip()), args.update)
    torch.set_num_threads(1)
    tiles, methods = args.tiles.split(","), args.methods.split(",")
    targets = [float(t) for t in args.targets.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    start = time.perf_counter()
    results, n, i = [], len(seeds) * len(tiles) * len(methods) * len(targets), 0
    for seed in seeds:
        data = load_digits(seed)
        base = PruneSettings(seed=seed)
        dense = train_dense("digits", data, base)
        print(f"seed {seed}: dense model trained in {time.perf_counter() - start:.1f} s",
              flush=True)
        for tile in tiles:
            for method in methods:
                for target in targets:
                    i += 1
                    s = PruneSettings(tile=tile, method=method, target=target, seed=seed)
                    record = one_run(data, dense, s)
                    results.append(record)
                    if args.json:       # after every run, so that partial results survive
                        with open(args.json, "w") as f:
                            json.dump({"runs": results}, f, indent=1)
                    acc = record["accuracy"]
                    print(f"[{i}/{n}] seed {seed} {tile} {method} target {target:.2f}: sparsity "
                          f"{record['sparsity']:.3f}, accuracy dense {acc['dense']:.4f} pruned "
                          f"{acc['pruned']:.4f} int8 per channel {acc['int8_per_channel']:.4f} "
                          f"tap-wise {acc['int8_tap_wise']:.4f} ({record['wall_time_s']:.1f} s)",
                          flush=True)
    wall = time.perf_counter() - start
    header = (f"Generated by `benchmarks/pruning_table.py` (seeds {args.seeds}, digits test set "
              f"of {len(data.x_test)} images: one image = {100 / len(data.x_test):.2f} %) in "
              f"{wall / 60:.1f} min on {platform.machine()} with {os.cpu_count()} CPU cores "
              f"(shared with other jobs), torch {torch.__version__}, 1 thread. Budget per run: "
              f"{base.dense_epochs} dense epochs (shared per seed) + {base.prune_epochs} pruning "
              f"epochs.")
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
