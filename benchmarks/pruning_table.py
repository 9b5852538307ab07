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

Runs can be split over processes (``--tiles``, ``--methods``, ``--seeds``) with one ``--json``
each, then rendered together with ``--from-json a.json b.json --markdown T.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from golden.cli import atomic_output  # noqa: E402
from golden.cycles import passes_cycles  # noqa: E402
from golden.passes import compile_passes, network_design, plan_passes  # noqa: E402
from golden.weights import save_weights  # noqa: E402
from train.data import DATASETS, load_dataset  # noqa: E402
from train.models import fold_batch_norm  # noqa: E402
from train.pipeline import (accuracy, build_model, prune, quantise_network,  # noqa: E402
                            sparsity_report, train_dense, winograd_weights)
from train.settings import DEVICES, METHODS, default_settings, resolve_device  # noqa: E402

TARGETS = {"digits": (0.5, 0.6, 0.7, 0.8, 0.9, 0.95), "fashion-mnist": (0.5, 0.6, 0.7, 0.8, 0.9)}
SEEDS = {"digits": (0, 1, 2), "fashion-mnist": (0, 1, 2)}
MAX_LOSS = 0.005
#: The two int8 columns: settings changes of each quantisation.
QUANTISERS = {"int8_per_channel": {"tap_shifts": False, "qat_epochs": 0},
              "int8_tap_wise": {"tap_shifts": True}}


def markers(dataset: str) -> tuple[str, str]:
    """The begin / end markers of the dataset's table block in a Markdown file."""
    tag = "pruning-table" if dataset == "digits" else f"pruning-table-{dataset}"
    return f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"


def cycles_per_image(weights) -> dict:
    """Cycles of one image on the design ``sim.network`` picks (:func:`golden.passes.
    network_design`: larger layers as channel-split passes), weight loads included, from
    golden's cycle model alone (no RTL packages needed), in all and per conv layer."""
    config = network_design(weights)
    network, layers = weights.network, {}
    shape = network.input_shape
    for index, op in enumerate(network.ops):
        if op.kind == "conv":
            layer = weights[op.name]
            plan = plan_passes(config, layer, requant=(layer.requant_mult, layer.requant_shift,
                                                       bool(layer.relu)))
            layers[op.name] = passes_cycles(compile_passes(plan, *shape[1:])).total_cycles
        shape = network.shapes[index]
    return {"design": config.name, "total": sum(layers.values()), "layers": layers}


def one_run(dataset: str, data, dense, s, device: str, limit, weights_dir=None) -> dict:
    """Prune ``dense`` with ``s`` on ``device``, fold BatchNorm, quantise both ways, evaluate
    with golden, count cycles; the run's record (weight files saved to ``weights_dir``)."""
    start = time.perf_counter()
    dev = resolve_device(device)
    data_dev = data if dev.type == "cpu" else type(data)(
        data.name, *(t.to(dev) for t in (data.x_train, data.y_train, data.x_test, data.y_test)),
        data.classes)
    model = prune(dense, data_dev, s)
    record = {"dataset": dataset, "tile": s.tile, "method": s.method,
              "target_sparsity": s.target, "seed": s.seed, "settings": asdict(s),
              "limit": limit, "test_images": len(data.x_test), "device": dev.type,
              "accuracy": {"dense": accuracy(dense, data_dev.x_test, data_dev.y_test),
                           "pruned": accuracy(model, data_dev.x_test, data_dev.y_test)},
              "tap_shift_span": {}, "quantised_winograd_sparsity": {},
              "cycles_per_image": {}, "weight_files": {}}
    model = fold_batch_norm(model)
    record["winograd_sparsity"] = sparsity_report(
        [w.cpu() for w in winograd_weights(model, s.tile)], model.conv_names)
    for key, changes in QUANTISERS.items():
        weights, _, acc = quantise_network(model, dataset, data_dev, replace(s, **changes))
        record["accuracy"][key] = acc
        record["tap_shift_span"][key] = max(
            (int(np.ptp(layer.tap_shift)) for layer in weights.layers
             if layer.tap_shift is not None), default=0)
        quant = sparsity_report([torch.from_numpy(layer.U.astype(np.float64))
                                 for layer in weights.layers], model.conv_names)
        record["quantised_winograd_sparsity"][key] = {
            "overall": quant["overall"],
            "layers": {k: v["sparsity"] for k, v in quant["layers"].items()}}
        record["cycles_per_image"][key] = cycles_per_image(weights)
        if weights_dir:
            name = f"{dataset}-{s.tile}-{s.method}-{s.target:.2f}-seed{s.seed}-{key}.npz"
            save_weights(os.path.join(weights_dir, name), weights)
            record["weight_files"][key] = name
    record["wall_time_s"] = time.perf_counter() - start
    return record


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


def _dense(dataset: str, data, settings, limit, path: str, device: str):
    """The dense model of ``settings.seed``: loaded from ``path`` if saved there with the same
    dense settings, else trained and saved (atomically). Returns (model, trained)."""
    made_with = json.dumps({"dataset": dataset, "limit": limit, "seed": settings.seed,
                            "dense_epochs": settings.dense_epochs, "lr": settings.lr,
                            "batch_size": settings.batch_size, "augment": settings.augment})
    if os.path.isfile(path):
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("made_with") != made_with:
            raise SystemExit(f"{path}: dense model made with other settings "
                             f"({saved.get('made_with')}); remove it or use another --json")
        model = build_model(dataset)
        model.load_state_dict(saved["state_dict"])
        return model.to(device), False
    model = train_dense(dataset, data, settings, device=device)
    with atomic_output(path) as tmp:
        torch.save({"state_dict": model.state_dict(), "made_with": made_with}, tmp)
    return model, True


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
    p.add_argument("--limit", type=int, help="at most N training and test images (quick runs)")
    p.add_argument("--dense-epochs", type=int, help="override the dataset's preset")
    p.add_argument("--prune-epochs", type=int, help="override the dataset's preset")
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
    torch.set_num_threads(args.threads)
    dataset = args.dataset
    tiles, methods = args.tiles.split(","), args.methods.split(",")
    targets = ([float(t) for t in args.targets.split(",")] if args.targets
               else list(TARGETS[dataset]))
    if args.seed is not None:
        args.seeds = str(args.seed)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(SEEDS[dataset])
    changes = {k: v for k, v in (("dense_epochs", args.dense_epochs),
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
    i, ran, trained_now = 0, 0, 0
    for seed in seeds:
        data = None
        base = default_settings(dataset, seed=seed, **changes)
        for tile in tiles:
            for method in methods:
                for target in targets:
                    i += 1
                    s = default_settings(dataset, tile=tile, method=method, target=target,
                                         seed=seed, **changes)
                    key = (tile, method, round(target, 6), seed)
                    if key in done:
                        old = done[key]
                        if (old["settings"] != json.loads(json.dumps(asdict(s)))
                                or old.get("limit") != args.limit):
                            print(f"{json_path}: run {key} was made with other settings; "
                                  "use another --json", file=sys.stderr)
                            return 2
                        continue
                    if data is None:
                        data = load_dataset(dataset, seed=seed, limit=args.limit,
                                            data_dir=args.data_dir)
                        t0 = time.perf_counter()
                        dense, trained = _dense(dataset, data, base, args.limit,
                                                f"{stem}.dense-seed{seed}.pt", args.device)
                        if trained:
                            wall[f"seed {seed}"] = time.perf_counter() - t0
                            trained_now += 1
                    report = one_run(dataset, data, dense, s, args.device, args.limit,
                                     args.weights_dir)
                    ran += 1
                    done[key] = report
                    _write_json(json_path, {"runs": list(done.values()), "dense_wall_s": wall})
                    acc = report["accuracy"]
                    cycles = report["cycles_per_image"]["int8_tap_wise"]["total"]
                    print(f"[{i}/{n}] {tile} {method} target {target:.2f} seed {seed}: "
                          f"sparsity {report['winograd_sparsity']['overall']:.3f}, accuracy "
                          f"dense {acc['dense']:.4f} pruned {acc['pruned']:.4f} int8 per "
                          f"channel {acc['int8_per_channel']:.4f} tap-wise "
                          f"{acc['int8_tap_wise']:.4f}, {cycles:,} cycles/image "
                          f"({report['wall_time_s']:.1f} s)", flush=True)
    elapsed = time.perf_counter() - start
    runs = list(done.values())
    device = (torch.cuda.get_device_name() if args.device == "cuda"
              else f"{platform.machine()} CPU, {args.threads} thread(s) of {os.cpu_count()}")
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
