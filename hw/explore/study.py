"""One exploration: the tasks every design point needs, answered by the cache or the cluster.

Each point that :func:`hw.explore.points.screen` lets through needs a ``synth`` task
(:func:`hw.explore.tasks.synthesise`: generate, synthesise, place and route with ``pnr``) and,
with a network, a ``cycles`` task (:func:`hw.explore.tasks.network_cycles`; one per design,
shared by its targets). A task whose key (:func:`synth_key`, :func:`cycles_key`) is in the
cache is not run (unless ``force``); the others run on Dask (:mod:`hw.explore.runner`), and
each result is stored in the cache as it arrives, so an interrupted exploration resumes where
it stopped. A failed task (a tool failure, or a task that failed for good on the cluster) is
reported in its point's row and is not cached: the next run tries it again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from golden.cli import progress

from . import tasks
from .cache import Cache, key_hash, project_version, tool_versions
from .outputs import point_row
from .points import DesignPoint, network_tile, screen
from .runner import Task, TaskOutcome, dask_client, run_tasks

__all__ = ["STEPS", "Study", "cycles_key", "default_work_dir", "run_study", "synth_key"]

#: The function of each step, looked up when the tasks are made.
STEPS: dict[str, Callable] = {"synth": tasks.synthesise, "cycles": tasks.network_cycles}


def synth_key(point: DesignPoint, pnr: bool, sparsity: float, versions: dict) -> dict:
    """The cache key of a point's ``synth`` task."""
    return {"step": "synth", "config": point.config.to_dict(), "target": point.target,
            "pnr": bool(pnr), "sparsity": sparsity, "versions": versions}


def cycles_key(point: DesignPoint, weights_digest: str, versions: dict) -> dict:
    """The cache key of a design's ``cycles`` task (no target: the same for all)."""
    return {"step": "cycles", "config": point.config.to_dict(), "weights": weights_digest,
            "versions": versions}


@dataclass
class Study:
    """The outcome of :func:`run_study`.

    Members
    -------
    points : list of DesignPoint
    rows : list of dict
        One ``points.csv`` row per point, in grid order (:func:`hw.explore.outputs.point_row`).
    synth : dict
        Point name -> its ``synth`` result (or ``{"error": ...}``), for the points that have
        one.
    tasks : list of dict
        Every task this study needed: ``step``, ``name``, ``source`` (``cache`` or
        ``cluster``), ``pid``, ``host``, ``seconds`` and ``error`` (empty where not known).
    """

    points: list
    rows: list = field(default_factory=list)
    synth: dict = field(default_factory=dict)
    tasks: list = field(default_factory=list)

    def count(self, source: str) -> int:
        """Tasks answered by ``source`` (``cache`` or ``cluster``)."""
        return sum(t["source"] == source for t in self.tasks)

    @property
    def failed(self) -> int:
        """Tasks that failed."""
        return sum(bool(t["error"]) for t in self.tasks)


def run_study(points: list[DesignPoint], *, cache: Cache,
              work_dir: Callable[[DesignPoint], str], weights: bytes | None = None,
              pnr: bool = False, sparsity: float = 0.74, force: bool = False,
              workers: int | None = None, scheduler: str | None = None, retries: int = 2,
              quiet: bool = False) -> Study:
    """Evaluate ``points`` (module docstring).

    Parameters
    ----------
    points : list of DesignPoint
    cache : Cache
    work_dir : callable
        The folder of a point's synthesis on the worker.
    weights : bytes, optional
        A version 2 weight file (validated by the caller); None: synthesis only.
    pnr, sparsity : see :func:`hw.explore.tasks.synthesise`.
    force : bool
        Recompute every task (the cache is written, not read).
    workers, scheduler : see :func:`hw.explore.runner.dask_client`.
    retries : int
        Retries of a task that raised.
    quiet : bool
        No progress lines or bar.

    Raises
    ------
    ConnectionError
        The scheduler cannot be reached.
    """
    study = Study(points=list(points))
    tile, digest = None, None
    if weights is not None:
        tile = network_tile(tasks.weights_from_bytes(weights))
        digest = hashlib.sha256(weights).hexdigest()
    synth_versions, cycles_versions = tool_versions(), project_version()
    screened, needed, per_point = {}, {}, {}
    for point in study.points:
        verdict = screen(point, tile)
        if verdict is not None:
            screened[point.name] = verdict
            continue
        hashes = []
        for step, key, name in [("synth", synth_key(point, pnr, sparsity, synth_versions),
                                 point.name)] + ([] if weights is None else [
                ("cycles", cycles_key(point, digest, cycles_versions), point.config.name)]):
            h = key_hash(key)
            needed.setdefault(h, (step, key, name, point))
            hashes.append(h)
        per_point[point.name] = hashes
    results = {}
    for h, (step, key, name, _) in needed.items():
        cached = None if force else cache.get(key)
        if cached is not None:
            results[h] = cached
            study.tasks.append({"step": step, "name": name, "source": "cache", "pid": None,
                                "host": None, "seconds": None, "error": None})
    todo = [h for h in needed if h not in results]
    if not quiet:
        refused = sum(s == "refused" for s, _ in screened.values())
        where = (f"the scheduler at {scheduler}" if scheduler else
                 f"a local cluster of {workers or os.cpu_count() or 1} worker processes")
        progress(f"{len(study.points)} points ({len(screened) - refused} unusable, {refused} "
                 f"refused); {len(needed)} tasks: {len(needed) - len(todo)} from the cache, "
                 f"{len(todo)} to run" + (f" on {where}" if todo else ""))
    if todo:
        _run(study, todo, needed, results, cache, work_dir, weights, pnr, sparsity,
             workers=workers, scheduler=scheduler, retries=retries, quiet=quiet)
    for point in study.points:
        if point.name in screened:
            status, reason = screened[point.name]
            study.rows.append(point_row(point, status=status, reason=reason))
            continue
        found = [results[h] for h in per_point[point.name]]
        study.synth[point.name] = found[0]
        study.rows.append(point_row(point, synth=found[0],
                                    cycles=found[1] if len(found) > 1 else None))
    return study


def _run(study, todo, needed, results, cache, work_dir, weights, pnr, sparsity, *, workers,
         scheduler, retries, quiet) -> None:
    with dask_client(workers=workers, scheduler=scheduler) as client:
        shared = None
        if any(needed[h][0] == "cycles" for h in todo):
            shared = client.scatter(weights, broadcast=True)    # sent once, not per task
        jobs = []
        for h in todo:
            step, _, name, point = needed[h]
            args = ((point.config.to_dict(), point.target, str(work_dir(point)), pnr, sparsity)
                    if step == "synth" else (point.config.to_dict(), shared))
            jobs.append(Task(key=f"{step}-{h}", label=f"{step} {name}", func=STEPS[step],
                             args=args))

        def finished(outcome: TaskOutcome) -> None:
            h = outcome.task.key.split("-", 1)[1]
            step, key, name, _ = needed[h]
            result = {"error": outcome.error} if outcome.error else outcome.result
            results[h] = result
            error = result.get("error") if isinstance(result, dict) else "not a dict"
            if not error:
                cache.put(key, result)
            study.tasks.append({"step": step, "name": name, "source": "cluster",
                                "pid": outcome.pid, "host": outcome.host,
                                "seconds": outcome.seconds, "error": error})

        run_tasks(client, jobs, retries=retries, on_outcome=finished, quiet=quiet)


def default_work_dir(out_dir) -> Callable[[DesignPoint], Path]:
    """``out_dir/designs/<point name>``."""
    return lambda point: Path(out_dir).resolve() / "designs" / point.name
