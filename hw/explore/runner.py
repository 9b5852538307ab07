"""Running tasks on Dask distributed: a local cluster or any running scheduler, one code path.

:func:`dask_client` gives a :class:`distributed.Client`: of a :class:`distributed.LocalCluster`
of ``workers`` processes with one thread each (the default, the CPU count), or connected to the
scheduler at ``scheduler``. :func:`run_tasks` submits one future per :class:`Task` and handles
each outcome as it finishes (:func:`distributed.as_completed`), with a progress bar. A task
that raises is retried ``retries`` times (``Client.submit(retries=)``); a task whose worker
died is rescheduled by the scheduler on another worker (up to its
``distributed.scheduler.allowed-failures``, then it fails with ``KilledWorker``). A task that
still fails is an outcome with its error, never dropped.

On a scheduler at an address the workers must import this project (the same version) and can
reach the work folders the tasks are given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from distributed import WorkerPlugin

__all__ = ["ReapChildren", "Task", "TaskOutcome", "dask_client", "run_tasks"]


@dataclass(frozen=True)
class Task:
    """One task: ``func(*args)`` on a worker.

    Members
    -------
    key : str
        Unique among the submitted tasks (the Dask key, e.g. ``synth-<cache key hash>``).
    label : str
        What the progress bar shows when it finishes.
    func : callable
        An importable module-level function (pickled by reference).
    args : tuple
        Its arguments (plain values or Dask futures).
    """

    key: str
    label: str
    func: Callable
    args: tuple


@dataclass(frozen=True)
class TaskOutcome:
    """A finished task: its result or its error, and where it ran.

    Members
    -------
    task : Task
    result : object or None
        What ``func`` returned (None when it failed).
    error : str or None
        ``<exception type>: <message>`` on one line when the task failed for good.
    pid : int or None
        The worker process that returned the result.
    host : str or None
        Its host name.
    seconds : float or None
        Wall time of ``func`` on the worker.
    """

    task: Task
    result: Any = None
    error: str | None = None
    pid: int | None = None
    host: str | None = None
    seconds: float | None = None


def _execute(func: Callable, *args) -> dict:
    """Run on a worker: ``func(*args)`` with the process that ran it and its wall time."""
    start = time.monotonic()
    result = func(*args)
    return {"result": result, "pid": os.getpid(), "host": socket.gethostname(),
            "seconds": round(time.monotonic() - start, 3)}


class ReapChildren(WorkerPlugin):
    """Kill a worker's child processes (Yosys, nextpnr) when the worker closes: an interrupted
    local exploration leaves no tool running."""

    name = "hw-explore-reap-children"

    def teardown(self, worker):
        import psutil
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()


@contextlib.contextmanager
def dask_client(*, workers: int | None = None, scheduler: str | None = None,
                timeout: float = 30.0):
    """A :class:`distributed.Client` for the duration of the block (module docstring).

    Parameters
    ----------
    workers : int, optional
        Worker processes of the local cluster (default: the CPU count); ignored with
        ``scheduler``.
    scheduler : str, optional
        Address of a running scheduler, e.g. ``tcp://10.0.0.5:8786``.
    timeout : float
        Seconds to wait for the scheduler.

    Raises
    ------
    ConnectionError
        The scheduler cannot be reached (the message says why, on one line).
    """
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise ConnectionError(" ".join(str(exc).split()) or type(exc).__name__) from None
        with client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        client.register_plugin(ReapChildren())
        yield client


def _error(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def run_tasks(client, tasks: list[Task], *, retries: int = 2,
              on_outcome: Callable[[TaskOutcome], None] | None = None,
              quiet: bool = False) -> list[TaskOutcome]:
    """Run ``tasks`` on ``client``'s cluster; call ``on_outcome`` with each as it finishes.

    Parameters
    ----------
    client : distributed.Client
    tasks : list of Task
    retries : int
        Retries of a task that raised (``Client.submit(retries=)``).
    on_outcome : callable, optional
        Called in this process with every :class:`TaskOutcome`, in finishing order.
    quiet : bool
        No progress bar.

    Returns
    -------
    list of TaskOutcome
        In finishing order: one per task.
    """
    from distributed import as_completed
    from tqdm import tqdm

    by_key = {}
    for task in tasks:
        future = client.submit(_execute, task.func, *task.args, key=task.key, pure=False,
                               retries=retries)
        by_key[future.key] = (future, task)
    outcomes = []
    with tqdm(total=len(tasks), unit="task", file=sys.stderr, disable=quiet,
              dynamic_ncols=True, desc="tasks") as bar:
        for future in as_completed([future for future, _ in by_key.values()]):
            task = by_key[future.key][1]
            try:
                value = future.result()
            except Exception as exc:            # failed for good: reported, never dropped
                outcome = TaskOutcome(task, error=_error(exc))
            else:
                outcome = TaskOutcome(task, result=value["result"], pid=value["pid"],
                                      host=value["host"], seconds=value["seconds"])
            future.release()
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            bar.set_postfix_str(task.label, refresh=False)
            bar.update(1)
    return outcomes
