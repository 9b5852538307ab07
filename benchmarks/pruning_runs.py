"""The runs behind ``benchmarks/pruning_table.py``: one cell's record, the dense models, and a
pool of worker processes that runs many cells at once.

A *cell* is (tile, method, target, seed). Spatial magnitude pruning never looks at the tile
(the transform comes after it), so its cells of one (target, seed) are one *task*: the network
is pruned once and quantised for every tile. Every other task is one cell.

With ``jobs`` > 1 the tasks run in that many spawned processes (one PyTorch thread each; with
``--device cuda`` they share the GPU): the dense model of each seed is trained first, in a
task of its own, and the seed's cells are queued when it is saved. Records come back as tasks
finish; the caller saves them, so an interrupted table keeps every finished cell.
"""

from __future__ import annotations

import concurrent.futures as futures
import json
import multiprocessing
import os
import time
from dataclasses import asdict, replace

import numpy as np
import torch

from golden.cli import atomic_output
from golden.cycles import passes_cycles
from golden.passes import compile_passes, network_design, plan_passes
from golden.weights import save_weights
from train.data import load_dataset
from train.models import fold_batch_norm
from train.pipeline import (accuracy, build_model, prune, quantise_network, sparsity_report,
                            train_dense, winograd_weights)
from train.settings import resolve_device

__all__ = ["QUANTISERS", "DenseModelMismatch", "Task", "cycles_per_image", "dense_model",
           "mps_running", "run_pool", "run_task", "tasks_for"]

#: The two int8 columns: settings changes of each quantisation.
QUANTISERS = {"int8_per_channel": {"tap_shifts": False, "qat_epochs": 0},
              "int8_tap_wise": {"tap_shifts": True}}
#: Rough relative cost of a task by (method, tile), to start the longest first.
_COST = {"winograd-magnitude": 3, "spatial-magnitude": 3, "spatial-winograd": 2}


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


class DenseModelMismatch(ValueError):
    """A saved dense model was trained with other settings than the table's."""


class Task:
    """Cells that share one pruning run: ``settings`` (one per tile, otherwise equal)."""

    def __init__(self, settings: list):
        self.settings = settings

    @property
    def seed(self) -> int:
        return self.settings[0].seed

    @property
    def cost(self) -> int:
        s = self.settings[0]
        return _COST[s.method] * len(self.settings) + (2 if s.tile == "6x6" else 0)

    def __repr__(self):
        s = self.settings[0]
        tiles = ",".join(x.tile for x in self.settings)
        return f"{tiles} {s.method} target {s.target:.2f} seed {s.seed}"


def tasks_for(pending: list) -> list[Task]:
    """Group pending cells' settings into tasks (spatial-magnitude: one per target and seed)."""
    groups = {}
    for s in pending:
        key = ((s.method, s.target, s.seed) if s.method == "spatial-magnitude"
               else (s.method, s.target, s.seed, s.tile))
        groups.setdefault(key, []).append(s)
    return [Task(g) for g in groups.values()]


def _record(dataset, data_dev, dense, model, s, limit, weights_dir, pruned_s, shared) -> dict:
    """The record of cell ``s`` from its pruned float ``model`` (BatchNorm not yet folded)."""
    start = time.perf_counter()
    record = {"dataset": dataset, "tile": s.tile, "method": s.method,
              "target_sparsity": s.target, "seed": s.seed, "settings": asdict(s),
              "limit": limit, "test_images": len(data_dev.x_test),
              "device": data_dev.x_train.device.type,
              "accuracy": {"dense": accuracy(dense, data_dev.x_test, data_dev.y_test),
                           "pruned": accuracy(model, data_dev.x_test, data_dev.y_test)},
              "tap_shift_span": {}, "quantised_winograd_sparsity": {},
              "cycles_per_image": {}, "weight_files": {}}
    if shared:
        record["pruning_shared_with"] = shared
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
    record["wall_time_s"] = pruned_s + time.perf_counter() - start
    return record


def run_task(dataset: str, data, dense, task: Task, device: str, limit,
             weights_dir=None) -> list[dict]:
    """Prune ``dense`` once for the task on ``device``, then fold BatchNorm, quantise both ways,
    evaluate with golden and count cycles for each of its tiles; one record per cell (its
    ``wall_time_s`` counts the shared pruning in full)."""
    start = time.perf_counter()
    dev = resolve_device(device)
    data_dev = data if dev.type == "cpu" else type(data)(
        data.name, *(t.to(dev) for t in (data.x_train, data.y_train, data.x_test, data.y_test)),
        data.classes)
    model = prune(dense.to(dev), data_dev, task.settings[0])
    pruned_s = time.perf_counter() - start
    tiles = [s.tile for s in task.settings]
    return [_record(dataset, data_dev, dense, model, s, limit, weights_dir, pruned_s,
                    [t for t in tiles if t != s.tile])
            for s in task.settings]


def dense_made_with(dataset: str, settings, limit) -> str:
    """The identity of a dense model: what it was trained with."""
    return json.dumps({"dataset": dataset, "limit": limit, "seed": settings.seed,
                       "dense_epochs": settings.dense_epochs, "lr": settings.lr,
                       "batch_size": settings.batch_size, "augment": settings.augment})


def dense_model(dataset: str, data, settings, limit, path: str, device: str):
    """The dense model of ``settings.seed``: loaded from ``path`` if saved there with the same
    dense settings, else trained and saved (atomically). Returns (model, trained).

    Raises
    ------
    DenseModelMismatch
        If ``path`` holds a model made with other settings.
    """
    made_with = dense_made_with(dataset, settings, limit)
    if os.path.isfile(path):
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("made_with") != made_with:
            raise DenseModelMismatch(f"{path}: dense model made with other settings "
                             f"({saved.get('made_with')}); remove it or use another --json")
        model = build_model(dataset)
        model.load_state_dict(saved["state_dict"])
        return model.to(device), False
    model = train_dense(dataset, data, settings, device=device)
    with atomic_output(path) as tmp:
        torch.save({"state_dict": model.state_dict(), "made_with": made_with}, tmp)
    return model, True


def mps_running() -> bool:
    """Whether a CUDA MPS control daemon is listening (its pipe, in ``CUDA_MPS_PIPE_DIRECTORY``
    or the default ``/tmp/nvidia-mps``). Without one, processes sharing a GPU take turns on it
    instead of running their kernels side by side, so a pool of small training runs gains
    nothing (measured: 15 workers on one H200 finished no cell in 490 s; 14 under MPS ran
    10.7 times one process)."""
    pipe = os.environ.get("CUDA_MPS_PIPE_DIRECTORY") or "/tmp/nvidia-mps"
    return os.path.exists(os.path.join(pipe, "control"))


# Worker processes: the dataset is loaded once per process, dense models once per seed.
_WORKER: dict = {}


def _init_worker(dataset, data_dir, limit, device):
    torch.set_num_threads(1)
    _WORKER.update(dataset=dataset, limit=limit, device=device, dense={}, data={})
    _WORKER["data_dir"] = data_dir


def _data(seed: int):
    if seed not in _WORKER["data"]:
        _WORKER["data"][seed] = load_dataset(_WORKER["dataset"], seed=seed,
                                             limit=_WORKER["limit"],
                                             data_dir=_WORKER["data_dir"])
    return _WORKER["data"][seed]


def _dense_job(settings, path: str) -> tuple[int, bool, float]:
    start = time.perf_counter()
    _, trained = dense_model(_WORKER["dataset"], _data(settings.seed), settings,
                             _WORKER["limit"], path, _WORKER["device"])
    return settings.seed, trained, time.perf_counter() - start


def _task_job(task: Task, base, path: str, weights_dir) -> list[dict]:
    seed = task.seed
    if seed not in _WORKER["dense"]:
        _WORKER["dense"][seed], _ = dense_model(_WORKER["dataset"], _data(seed), base,
                                                _WORKER["limit"], path, _WORKER["device"])
    return run_task(_WORKER["dataset"], _data(seed), _WORKER["dense"][seed], task,
                    _WORKER["device"], _WORKER["limit"], weights_dir)


def run_pool(jobs: int, dataset: str, data_dir, limit, device: str, tasks: list[Task],
             bases: dict, dense_paths: dict, weights_dir, on_dense, on_records) -> None:
    """Run ``tasks`` in ``jobs`` spawned processes, dense models first.

    ``bases[seed]`` are the dense settings and ``dense_paths[seed]`` the model files of the
    seeds; ``on_dense(seed, trained, seconds)`` and ``on_records(task, records)`` are called
    in this process as each finishes. A failed task raises here, after the running ones were
    cancelled; finished tasks have been handed over by then.
    """
    by_seed = {}
    for task in sorted(tasks, key=lambda t: -t.cost):
        by_seed.setdefault(task.seed, []).append(task)
    context = multiprocessing.get_context("spawn")      # CUDA cannot be used after a fork
    with futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                                     initargs=(dataset, data_dir, limit, device)) as pool:
        running = {pool.submit(_dense_job, bases[seed], dense_paths[seed]): ("dense", seed)
                   for seed in by_seed}
        try:
            while running:
                done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    kind, what = running.pop(future)
                    result = future.result()
                    if kind == "dense":
                        on_dense(*result)
                        for task in by_seed[what]:
                            running[pool.submit(_task_job, task, bases[what],
                                                dense_paths[what], weights_dir)] = ("task", task)
                    else:
                        on_records(what, result)
        except BaseException:
            # The executor forgets its processes on shutdown: stop the running tasks first.
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
