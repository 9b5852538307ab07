"""Design-space exploration for a user's network on Dask distributed.

Usage::

    python -m hw.explore --weights W.npz --tiles 4x4,6x6 --arrays 1x1,2x2,4x4 \\
        --max-channels 16,32,64 --targets ecp5,ice40 [--pnr] \\
        [--scheduler ADDRESS | --workers N] [--force] --out DIR

For every design point (tile x array x channel limit x synthesis target) it generates and
synthesises the design (and places and routes it with ``--pnr``) and runs the whole network
through golden's exact cycle model, channel-split passes and exposed weight loads included:
fits, Fmax, resources, cycles per image, latency and images/s at Fmax, end-to-end utilisation,
dense-equivalent GOPS, GOPS per multiplier and per 1k LUTs (``DIR/points.csv``), the
Pareto-optimal designs for latency vs LUTs and vs block RAMs per target (``DIR/pareto.md``)
and their plots. Tasks (one per point and step) run on a Dask ``LocalCluster`` or on any
running scheduler, results are cached on disk by configuration and tool versions.

Modules: :mod:`~hw.explore.points` (the grid, points that need no task),
:mod:`~hw.explore.tasks` (the worker functions), :mod:`~hw.explore.cache` (keys, versions, the
on-disk cache), :mod:`~hw.explore.runner` (Dask client, futures, retries, progress),
:mod:`~hw.explore.study` (which tasks, from the cache or the cluster), :mod:`~hw.explore.outputs`
(CSV, Pareto fronts, markdown, plots), :mod:`~hw.explore.cli` (the command line).
"""

from .cache import Cache, key_hash, tool_versions
from .cli import main, make_parser
from .outputs import CSV_COLUMNS, pareto_front, point_row, write_outputs
from .points import DesignPoint, grid, screen
from .runner import Task, TaskOutcome, dask_client, run_tasks
from .study import STEPS, Study, run_study
from .tasks import network_cycles, network_figures, synthesise

__all__ = [
    "CSV_COLUMNS", "Cache", "DesignPoint", "STEPS", "Study", "Task", "TaskOutcome",
    "dask_client", "grid", "key_hash", "main", "make_parser", "network_cycles",
    "network_figures", "pareto_front", "point_row", "run_study", "run_tasks", "screen",
    "synthesise", "tool_versions", "write_outputs",
]
