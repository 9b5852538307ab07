"""Accuracy, Winograd-domain sparsity and hardware cycles of the three pruning methods.

For each seed, trains one dense model (shared by every run of that seed), then prunes it with
each method to each target sparsity under the same training budget, for tiles 4x4 and 6x6;
quantises to int8 and evaluates with golden's integer model; counts the cycles per image of the
int8 file on the default design (the one ``sim.network`` picks: larger layers as channel-split
passes) with golden's cycle model. Every pruned network is quantised twice: per output channel
only (the int8 of weight file v1) and tap-wise (a power-of-two scale per Winograd position,
weight file v2 ``tap_shift``, with the tile's default quantisation-aware fine-tuning: 6 epochs
for 6x6, none for 4x4). Prints one line per run (``[i/N]``) and writes:

* ``--json`` (default ``pruning-DATASET.json``): every run's report, rewritten atomically after
  each run; a rerun with the same file skips the finished cells (tile, method, target, seed)
  and reuses the dense models saved beside it (``pruning-DATASET.dense-seedS.pt``);
* ``--markdown FILE`` and/or ``--update docs/pruning.md`` (the block between
  ``<!-- pruning-table[-DATASET]:begin -->`` and ``<!-- pruning-table[-DATASET]:end -->``,
  without the suffix for digits): mean ± sample standard deviation over the seeds of the
  accuracy (dense, float pruned, both int8), the Winograd-domain sparsity overall and per layer
  and the cycles per image (tap-wise file), the largest tap-shift span, and the highest sparsity
  whose mean loss is at most 0.5 %.

Usage::

    nice python benchmarks/pruning_table.py --update docs/pruning.md        # digits, CPU
    python benchmarks/pruning_table.py --dataset fashion-mnist --device cuda \\
        --markdown pruning-fashion-mnist.md --weights-dir pruned-fashion-mnist

``--jobs N`` runs N cells at once in worker processes (``benchmarks/pruning_runs.py``; the
dense models first, one per seed, and the two tiles of a spatial-magnitude cell share its
pruning, which never looks at the tile). Runs can also be split over separate invocations
(``--tiles``, ``--methods``, ``--seeds``) with one ``--json`` each, then rendered together with
``--from-json a.json b.json --markdown T.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from benchmarks.pruning_runs import (DenseModelMismatch, dense_model,  # noqa: E402
                                     mps_running, run_pool, run_task, tasks_for)
from golden.cli import atomic_output  # noqa: E402
from train.data import DATASETS, load_dataset  # noqa: E402
from train.settings import DEVICES, METHODS, default_settings  # noqa: E402

TARGETS = {"digits": (0.5, 0.6, 0.7, 0.8, 0.9, 0.95), "fashion-mnist": (0.5, 0.6, 0.7, 0.8, 0.9)}
#: The table's training budget where it differs from the dataset's preset (Fashion-MNIST's
#: preset is 10 + 4 epochs, to fit 30 minutes on two CPU cores; the table, on a GPU, runs
#: 12 + 12); --dense-epochs and --prune-epochs override it.
TABLE_BUDGET = {"fashion-mnist": {"dense_epochs": 12, "prune_epochs": 12}}
SEEDS = {"digits": (0, 1, 2), "fashion-mnist": (0, 1, 2)}
MAX_LOSS = 0.005


def markers(dataset: str) -> tuple[str, str]:
    """The begin / end markers of the dataset's table block in a Markdown file."""
    tag = "pruning-table" if dataset == "digits" else f"pruning-table-{dataset}"
    return f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"


def _key(r: dict) -> tuple:
    return r["tile"], r["method"], round(r["target_sparsity"], 6), r["seed"]


def _stat(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    mean = statistics.fmean(values) * scale
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def _groups(results: list[dict]) -> dict:
    order = {m: i for i, m in enumerate(METHODS)}
    groups = {}
    for r in sorted(results, key=lambda r: (r["tile"], order[r["method"]],
                                            r["target_sparsity"], r["seed"])):
        groups.setdefault((r["tile"], r["method"], r["target_sparsity"]), []).append(r)
    return groups


def _loss(rows: list[dict], key: str) -> float:
    return statistics.fmean(r["accuracy"]["dense"] - r["accuracy"][key] for r in rows)


def render(results: list[dict], header: str) -> str:
    """Markdown: per-cell means, per-layer sparsity and the best sparsity at <= 0.5 % loss."""
    groups = _groups(results)
    tap = "int8_tap_wise"
    layers = list(results[0]["quantised_winograd_sparsity"][tap]["layers"]) if results else []
    lines = [header, "",
             "Mean ± sample standard deviation over the seeds (column 'seeds'). Sparsity: "
             "Winograd-domain, of the float pruned network and of the tap-wise int8 file "
             "(weights that round to zero add to it). Accuracy of the dense, pruned and int8 "
             "networks: 'per channel' one scale per output channel (no tap shifts), 'tap-wise' a "
             "power-of-two scale per Winograd position (tap_shift), for 6x6 with 6 epochs of "
             "quantisation-aware fine-tuning. 'span': the largest tap-shift span (hw.generate "
             "--max-tap-shift it needs). Cycles: per image of the tap-wise file on the default "
             "design, weight loads included (golden's cycle model).", "",
             "| tile | method | target | seeds | sparsity | int8 sparsity | dense % | pruned % "
             "| int8 per channel % | int8 tap-wise % | span | cycles / image |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (tile, method, target), rows in groups.items():
        def acc(k, rows=rows):
            return _stat([r["accuracy"][k] for r in rows], 100, 2)
        lines.append(
            f"| {tile} | {method} | {target:.2f} | {len(rows)} "
            f"| {_stat([r['winograd_sparsity']['overall'] for r in rows])} "
            f"| {_stat([r['quantised_winograd_sparsity'][tap]['overall'] for r in rows])} "
            f"| {acc('dense')} | {acc('pruned')} | {acc('int8_per_channel')} | {acc(tap)} "
            f"| {max(r['tap_shift_span'][tap] for r in rows)} "
            f"| {_stat([r['cycles_per_image'][tap]['total'] for r in rows], digits=0)} |")
    lines += ["", "Tap-wise int8 Winograd-domain sparsity per layer (mean over the seeds):", "",
              "| tile | method | target | " + " | ".join(layers) + " |",
              "|---|---|---:|" + "---:|" * len(layers)]
    for (tile, method, target), rows in groups.items():
        cells = [statistics.fmean(r["quantised_winograd_sparsity"][tap]["layers"][n]
                                  for r in rows) for n in layers]
        lines.append(f"| {tile} | {method} | {target:.2f} | "
                     + " | ".join(f"{c:.3f}" for c in cells) + " |")
    lines += ["", "Highest mean Winograd-domain sparsity (of the float pruned network) whose "
              "mean accuracy loss against the dense model is at most 0.5 % ('-' = no cell "
              "qualified):", "",
              "| tile | method | float pruned | int8 per channel | int8 tap-wise |",
              "|---|---|---:|---:|---:|"]
    for tile in dict.fromkeys(k[0] for k in groups):
        for method in dict.fromkeys(k[1] for k in groups):
            best = []
            for key in ("pruned", "int8_per_channel", tap):
                ok = [statistics.fmean(r["winograd_sparsity"]["overall"] for r in rows)
                      for (t, m, _), rows in groups.items()
                      if t == tile and m == method and _loss(rows, key) <= MAX_LOSS + 1e-12]
                best.append(f"{max(ok):.3f}" if ok else "-")
            lines.append(f"| {tile} | {method} | " + " | ".join(best) + " |")
    return "\n".join(lines) + "\n"


def _write_json(path: str, obj) -> None:
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=1)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=DATASETS[:2], default="digits")
    p.add_argument("--data-dir", help="Fashion-MNIST's IDX files (default: the Debian package's)")
    p.add_argument("--tiles", default="4x4,6x6")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--targets", help="comma-separated (default: the dataset's)")
    p.add_argument("--seeds", help="comma-separated (default: 0,1,2)")
    p.add_argument("--seed", type=int, help="one seed: the same as --seeds S")
    p.add_argument("--device", choices=DEVICES, default="cpu")
    p.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at once, in worker processes of one thread each (they share "
                        "the GPU with --device cuda)")
    p.add_argument("--limit", type=int, help="at most N training and test images (quick runs)")
    budget = " (default: TABLE_BUDGET, else the dataset's preset)"
    p.add_argument("--dense-epochs", type=int, help="dense training epochs" + budget)
    p.add_argument("--prune-epochs", type=int, help="pruning + retraining epochs" + budget)
    p.add_argument("--json", help="run reports, read to resume (default pruning-DATASET.json)")
    p.add_argument("--weights-dir", help="also save every run's weight file here")
    p.add_argument("--markdown", help="write the table here")
    p.add_argument("--update", help="Markdown file whose table block to replace")
    p.add_argument("--from-json", nargs="+", metavar="FILE",
                   help="render the reports of earlier runs instead of running")
    p.add_argument("--note", default="", help="text appended to the table's header")
    return p


def main(argv=None) -> int:
    """Run (or render) the table; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.from_json:
        results, header = [], None
        for path in args.from_json:
            with open(path) as f:
                obj = json.load(f)
            results += obj["runs"]
            header = header or obj.get("header")
        dataset = results[0]["dataset"] if results else args.dataset
        return _write(render(results, f"{header or ''} {args.note}".strip()), args, dataset)
    if args.jobs < 1:
        print(f"--jobs must be at least 1, not {args.jobs}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    dataset = args.dataset
    tiles, methods = args.tiles.split(","), args.methods.split(",")
    targets = ([float(t) for t in args.targets.split(",")] if args.targets
               else list(TARGETS[dataset]))
    if args.seed is not None:
        args.seeds = str(args.seed)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(SEEDS[dataset])
    changes = dict(TABLE_BUDGET.get(dataset, {}))
    changes |= {k: v for k, v in (("dense_epochs", args.dense_epochs),
                                 ("prune_epochs", args.prune_epochs)) if v is not None}
    json_path = args.json or f"pruning-{dataset}.json"
    stem = os.path.splitext(json_path)[0]
    done, wall = {}, {}
    if os.path.isfile(json_path):
        with open(json_path) as f:
            saved = json.load(f)
        done = {_key(r): r for r in saved["runs"]}
        wall = saved.get("dense_wall_s", {})
        print(f"{json_path}: {len(done)} finished run(s) kept", flush=True)
    if args.weights_dir:
        os.makedirs(args.weights_dir, exist_ok=True)
    start = time.perf_counter()
    n = len(tiles) * len(methods) * len(targets) * len(seeds)
    pending, bases, dense_paths = [], {}, {}
    for seed in seeds:
        bases[seed] = default_settings(dataset, seed=seed, **changes)
        dense_paths[seed] = f"{stem}.dense-seed{seed}.pt"
        for tile in tiles:
            for method in methods:
                for target in targets:
                    s = default_settings(dataset, tile=tile, method=method, target=target,
                                         seed=seed, **changes)
                    key = (tile, method, round(target, 6), seed)
                    if key not in done:
                        pending.append(s)
                    elif (done[key]["settings"] != json.loads(json.dumps(asdict(s)))
                          or done[key].get("limit") != args.limit):
                        print(f"{json_path}: run {key} was made with other settings; "
                              "use another --json", file=sys.stderr)
                        return 2
    counts = {"ran": 0, "dense": 0}

    def dense_done(seed, trained, seconds):
        if trained:
            wall[f"seed {seed}"] = seconds
            counts["dense"] += 1
            print(f"dense model of seed {seed} trained ({seconds:.1f} s)", flush=True)

    def records_done(task, records):
        for report in records:
            counts["ran"] += 1
            done[_key(report)] = report
            acc = report["accuracy"]
            cycles = report["cycles_per_image"]["int8_tap_wise"]["total"]
            print(f"[{len(done)}/{n}] {report['tile']} {report['method']} target "
                  f"{report['target_sparsity']:.2f} seed {report['seed']}: sparsity "
                  f"{report['winograd_sparsity']['overall']:.3f}, accuracy dense "
                  f"{acc['dense']:.4f} pruned {acc['pruned']:.4f} int8 per channel "
                  f"{acc['int8_per_channel']:.4f} tap-wise {acc['int8_tap_wise']:.4f}, "
                  f"{cycles:,} cycles/image ({report['wall_time_s']:.1f} s)", flush=True)
        _write_json(json_path, {"runs": list(done.values()), "dense_wall_s": wall})

    tasks = tasks_for(pending)
    if args.jobs > 1 and args.device == "cuda" and tasks and not mps_running():
        print(f"pruning_table: note: {args.jobs} processes will share the GPU without the "
              "CUDA MPS daemon and take turns on it; start it first "
              "(nvidia-cuda-mps-control -d)", file=sys.stderr, flush=True)
    try:
        if args.jobs > 1 and tasks:
            run_pool(args.jobs, dataset, args.data_dir, args.limit, args.device, tasks, bases,
                     dense_paths, args.weights_dir, dense_done, records_done)
        for seed in dict.fromkeys(task.seed for task in tasks if args.jobs == 1):
            data = load_dataset(dataset, seed=seed, limit=args.limit, data_dir=args.data_dir)
            t0 = time.perf_counter()
            dense, trained = dense_model(dataset, data, bases[seed], args.limit,
                                         dense_paths[seed], args.device)
            dense_done(seed, trained, time.perf_counter() - t0)
            for task in (task for task in tasks if task.seed == seed):
                records_done(task, run_task(dataset, data, dense, task, args.device,
                                            args.limit, args.weights_dir))
    except DenseModelMismatch as exc:
        print(f"{json_path}: {exc}", file=sys.stderr)
        return 2
    ran, trained_now = counts["ran"], counts["dense"]
    elapsed = time.perf_counter() - start
    runs = list(done.values())
    threads = (f"{args.jobs} processes of 1 thread" if args.jobs > 1
               else f"{args.threads} thread(s)")
    device = (f"{torch.cuda.get_device_name()} ({threads} of {os.cpu_count()} CPUs)"
              if args.device == "cuda"
              else f"{platform.machine()} CPU, {threads} of {os.cpu_count()}")
    base = default_settings(dataset, **changes)
    run_time = sum(r["wall_time_s"] for r in runs) + sum(wall.values())
    header = (f"Generated by `benchmarks/pruning_table.py --dataset {dataset}` on {device}, "
              f"torch {torch.__version__}: {len(runs)} runs, {run_time / 60:.1f} min of "
              f"training and evaluation ({ran} runs and {trained_now} dense models in this "
              f"invocation's {elapsed / 60:.1f} min). Test set of "
              f"{runs[0]['test_images'] if runs else 0} images. Budget per run: "
              f"{base.dense_epochs} dense epochs (shared per seed) + {base.prune_epochs} "
              f"pruning epochs.")
    _write_json(json_path, {"runs": runs, "header": header, "dense_wall_s": wall})
    return _write(render(runs, f"{header} {args.note}".strip()), args, dataset)


def _write(table: str, args, dataset: str) -> int:
    """Print the table; write it to ``--markdown`` and into ``--update``'s marked block."""
    print(table)
    if args.markdown:
        with atomic_output(args.markdown) as tmp, open(tmp, "w") as f:
            f.write(table)
    if args.update:
        begin, end = markers(dataset)
        with open(args.update) as f:
            text = f.read()
        if begin not in text or end not in text:
            print(f"{args.update}: markers {begin} / {end} not found", file=sys.stderr)
            return 2
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        with atomic_output(args.update) as tmp, open(tmp, "w") as f:
            f.write(f"{head}{begin}\n{table}{end}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
