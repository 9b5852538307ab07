"""Per-pass and network reports: ``report.json``, ``layers.csv``, ``report.md`` and PNG plots.

A :class:`PassRecord` holds one conv pass of one image (every image runs the same passes; the
never-stalled cycles do not depend on the data). Its counters are those of
``golden.cycles.CycleReport``, with the measured cycles where the pass ran on the RTL:

* ``cycles``: first input patch to last result (``CycleReport.cycles``); it ends with the
  ``drain_cycles`` of ``golden.cycles.drain_tail_cycles`` (the last tile's drain), and the rest,
  ``compute_cycles``, is the lock-step array steps;
* ``load_cycles``: ``cfg`` to the last weight (``CycleReport.load_cycles``);
* ``exposed_load_cycles``: the part of ``load_cycles`` the pass before does not hide
  (``golden.cycles.exposed_load_cycles``: all of it with one weight bank; :func:`overlap_loads`);
* ``stall_cycles``: measured ``cycles + load_cycles`` beyond the model's (0 never stalled);
* ``utilisation``: ``golden.cycles.utilisation(nonzero_macs, n_pe, cycles)``, as
  ``CycleReport``.

Network figures (:class:`NetworkFigures`) add accuracy and speed; ``report.json`` has
``images``, ``accuracy`` {``hardware``, ``golden``, [``float``]}, ``bit_exact``,
``multipliers``, ``total_cycles`` (per image, exposed loads included: ``compute_cycles +
exposed_load_cycles``), ``compute_cycles`` (the passes' ``cycles``), ``load_cycles`` (all
loads), ``exposed_load_cycles``, ``utilisation_end_to_end`` (``utilisation(nonzero MACs,
multipliers, total_cycles)``), ``images_per_s_at_fmax``, ``simulated_cycles_per_s`` and
``layers`` (one entry per pass), and where the run came from: ``simulated_cycles``,
``simulation_seconds``, ``build_seconds``, ``simulator`` and ``design`` (name and config).
``layers.csv`` uses SCALE-Sim's column names where they apply.
Every file is written atomically (a temporary file, then ``os.replace``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from dataclasses import dataclass

import numpy as np

from .cli import atomic_output
from .cycles import (CycleReport, drain_tail_cycles, exposed_load_cycles, layer_cycles,
                     utilisation)

__all__ = [
    "CSV_COLUMNS",
    "NetworkFigures",
    "PassRecord",
    "overlap_loads",
    "pass_record",
    "report_dict",
    "write_report",
]

#: Columns of ``layers.csv``: SCALE-Sim's names first, then ours.
CSV_COLUMNS = ("LayerID", "Layer", "Pass", "Total Cycles", "Stall Cycles", "Overall Util %",
               "Compute Util %", "Load Cycles", "Compute Cycles", "Drain Cycles",
               "Nonzero MACs", "Dense MACs", "Direct MACs", "Skipped MACs")


@dataclass(frozen=True)
class PassRecord:
    """Figures of one conv pass for one image (module docstring).

    Members
    -------
    name : str
        The pass (``golden.passes.LayerPass.name``).
    layer : str
        The network layer it belongs to (passes of one layer share it).
    cycles, load_cycles, drain_cycles, stall_cycles : int
    nonzero_macs, dense_macs, direct_macs : int
        As ``golden.cycles.CycleReport``.
    n_pe : int
        Processing elements (the denominator of ``utilisation``).
    skipped_macs_per_position : tuple of tuple of int
        [alpha][alpha] dense Winograd multiplications skipped at each position.
    exposed_load_cycles : int or None
        Load cycles not hidden behind the pass before (None: all, ``load_cycles``).
    """

    name: str
    layer: str
    cycles: int
    load_cycles: int
    drain_cycles: int
    stall_cycles: int
    nonzero_macs: int
    dense_macs: int
    direct_macs: int
    n_pe: int
    skipped_macs_per_position: tuple[tuple[int, ...], ...]
    exposed_load_cycles: int | None = None

    @property
    def exposed_load(self) -> int:
        """``exposed_load_cycles``, or ``load_cycles`` when not set."""
        return self.load_cycles if self.exposed_load_cycles is None else self.exposed_load_cycles

    @property
    def compute_cycles(self) -> int:
        """``cycles - drain_cycles``: the array steps."""
        return self.cycles - self.drain_cycles

    @property
    def total_cycles(self) -> int:
        """``load_cycles + cycles``."""
        return self.load_cycles + self.cycles

    @property
    def utilisation(self) -> float:
        """``golden.cycles.utilisation(nonzero_macs, n_pe, cycles)``."""
        return utilisation(self.nonzero_macs, self.n_pe, self.cycles)

    @property
    def skipped_macs(self) -> int:
        """All skipped dense multiplications."""
        return int(np.sum(self.skipped_macs_per_position))

    def as_dict(self) -> dict:
        """The ``report.json`` entry of this pass."""
        return {"name": self.name, "layer": self.layer, "cycles": self.cycles,
                "load_cycles": self.load_cycles, "exposed_load_cycles": self.exposed_load,
                "drain_cycles": self.drain_cycles,
                "stall_cycles": self.stall_cycles, "nonzero_macs": self.nonzero_macs,
                "dense_macs": self.dense_macs, "direct_macs": self.direct_macs,
                "utilisation": self.utilisation,
                "skipped_macs_per_position": [list(row)
                                              for row in self.skipped_macs_per_position]}


def pass_record(program, *, layer: str | None = None, model: CycleReport | None = None,
                cycles: int | None = None, load_cycles: int | None = None) -> PassRecord:
    """The record of one pass program (``golden.program.LayerProgram``).

    Parameters
    ----------
    program : LayerProgram
    layer : str, optional
        The network layer (default: the program's layer name).
    model : CycleReport, optional
        ``golden.cycles.layer_cycles(program)`` when already at hand.
    cycles, load_cycles : int, optional
        Measured on the RTL (default: the model's); the excess over the model is
        ``stall_cycles``.
    """
    model = model or layer_cycles(program)
    cycles = model.cycles if cycles is None else int(cycles)
    load_cycles = model.load_cycles if load_cycles is None else int(load_cycles)
    alpha = program.config.alpha
    skipped = np.asarray(model.skipped_macs_per_position, dtype=np.int64).reshape(alpha, alpha)
    return PassRecord(
        name=program.layer.name, layer=program.layer.name if layer is None else layer,
        cycles=cycles, load_cycles=load_cycles,
        drain_cycles=drain_tail_cycles(program.config, program.out_channels),
        stall_cycles=cycles + load_cycles - model.cycles - model.load_cycles,
        nonzero_macs=model.nonzero_macs, dense_macs=model.dense_macs,
        direct_macs=model.direct_macs, n_pe=model.n_pe,
        skipped_macs_per_position=tuple(tuple(int(v) for v in row) for row in skipped))


def overlap_loads(records: list[PassRecord], config) -> list[PassRecord]:
    """``records`` of consecutive passes (in run order, one image) with their
    ``exposed_load_cycles`` on ``config`` (a design with two weight banks hides a pass's load
    behind the pass before, ``golden.cycles.exposed_load_cycles``)."""
    out, previous = [], None
    for record in records:
        exposed = exposed_load_cycles(config, previous, record.load_cycles)
        out.append(dataclasses.replace(record, exposed_load_cycles=exposed))
        previous = record.cycles
    return out


@dataclass(frozen=True)
class NetworkFigures:
    """Network-level figures of a run.

    Members
    -------
    images : int
    accuracy_hardware, accuracy_golden, accuracy_float : float or None
        Fractions in [0, 1]; None where no labels (or no float model) are at hand.
    bit_exact : bool
        Every layer output of every image equalled golden's.
    multipliers : int
        The array's multipliers (``AcceleratorConfig.n_pe``): the ones that do MACs. The
        requant stage's m**2 multipliers scale outputs and are not counted.
    fmax_mhz : float or None
        Clock for ``images_per_s_at_fmax`` (None leaves it null).
    simulated_cycles : int
        Clock cycles the simulators ran (all images, all passes).
    simulation_seconds : float
        Wall time they took.
    design : dict or None
        ``{"name": AcceleratorConfig.name, "config": AcceleratorConfig.to_dict()}``.
    simulator : str or None
    build_seconds : float or None
        Wall time of the simulator build (0 when an earlier build was reused).
    """

    images: int
    bit_exact: bool
    multipliers: int
    simulated_cycles: int
    simulation_seconds: float
    accuracy_hardware: float | None = None
    accuracy_golden: float | None = None
    accuracy_float: float | None = None
    fmax_mhz: float | None = None
    design: dict | None = None
    simulator: str | None = None
    build_seconds: float | None = None


def report_dict(records: list[PassRecord], figures: NetworkFigures) -> dict:
    """The content of ``report.json`` (module docstring)."""
    records = list(records)
    if not records:
        raise ValueError("a report needs at least one pass record")
    compute = sum(r.cycles for r in records)
    load = sum(r.load_cycles for r in records)
    exposed = sum(r.exposed_load for r in records)
    total = compute + exposed
    accuracy = {"hardware": figures.accuracy_hardware, "golden": figures.accuracy_golden}
    if figures.accuracy_float is not None:
        accuracy["float"] = figures.accuracy_float
    per_s = None
    if figures.fmax_mhz is not None:
        per_s = figures.fmax_mhz * 1e6 / total
    return {
        "images": figures.images,
        "accuracy": accuracy,
        "bit_exact": bool(figures.bit_exact),
        "multipliers": figures.multipliers,
        "total_cycles": total,
        "compute_cycles": compute,
        "load_cycles": load,
        "exposed_load_cycles": exposed,
        "utilisation_end_to_end": utilisation(sum(r.nonzero_macs for r in records),
                                              figures.multipliers, total),
        "images_per_s_at_fmax": per_s,
        "simulated_cycles_per_s": (figures.simulated_cycles / figures.simulation_seconds
                                   if figures.simulation_seconds > 0 else None),
        "simulated_cycles": figures.simulated_cycles,
        "simulation_seconds": figures.simulation_seconds,
        "build_seconds": figures.build_seconds,
        "simulator": figures.simulator,
        "design": figures.design,
        "layers": [r.as_dict() for r in records],
    }


def _csv_text(records: list[PassRecord]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for i, r in enumerate(records):
        writer.writerow([i, r.layer, r.name, r.total_cycles, r.stall_cycles,
                         f"{100 * utilisation(r.nonzero_macs, r.n_pe, r.total_cycles):.4f}",
                         f"{100 * r.utilisation:.4f}", r.load_cycles, r.compute_cycles,
                         r.drain_cycles, r.nonzero_macs, r.dense_macs, r.direct_macs,
                         r.skipped_macs])
    return out.getvalue()


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _markdown(report: dict, records: list[PassRecord], plots: list[str]) -> str:
    acc = report["accuracy"]
    per_s = report["images_per_s_at_fmax"]
    sim_rate = report["simulated_cycles_per_s"]
    lines = [
        "# Network run", "",
        "| figure | value |", "|---|---|",
        f"| images | {report['images']} |",
        f"| accuracy on the hardware path | {_percent(acc['hardware'])} |",
        f"| accuracy of golden | {_percent(acc['golden'])} |",
    ]
    if "float" in acc:
        lines.append(f"| accuracy of the float model | {_percent(acc['float'])} |")
    lines += [
        f"| bit-exact with golden | {'yes' if report['bit_exact'] else '**no**'} |",
        f"| multipliers | {report['multipliers']} |",
        f"| cycles per image (loads included) | {report['total_cycles']:,} |",
        f"| compute cycles per image | {report['compute_cycles']:,} |",
        f"| weight-load cycles per image | {report['load_cycles']:,} |",
        f"| end-to-end multiplier utilisation | {_percent(report['utilisation_end_to_end'])} |",
        f"| images per second at fmax | {'n/a' if per_s is None else f'{per_s:,.1f}'} |",
        f"| simulated cycles per second | "
        f"{'n/a' if sim_rate is None else f'{sim_rate:,.0f}'} |",
        "", "## Conv passes", "",
        "| # | pass | total cycles | load | compute | drain | stall | nonzero MACs | "
        "dense MACs | direct MACs | utilisation |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(records):
        lines.append(f"| {i} | {r.name} | {r.total_cycles:,} | {r.load_cycles:,} | "
                     f"{r.compute_cycles:,} | {r.drain_cycles:,} | {r.stall_cycles:,} | "
                     f"{r.nonzero_macs:,} | {r.dense_macs:,} | {r.direct_macs:,} | "
                     f"{_percent(r.utilisation)} |")
    lines += ["", "Utilisation: nonzero MACs / (PEs x cycles) per pass; end to end: nonzero "
              "MACs / (multipliers x cycles per image, loads included).", ""]
    lines += [f"![{os.path.splitext(p)[0]}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _atomic_write(path: str, write) -> None:
    """Call ``write(handle)`` on a binary file that replaces ``path`` only once complete
    (``golden.cli.atomic_output``)."""
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        write(handle)


def _by_layer(records: list[PassRecord]) -> list[tuple[str, list[PassRecord]]]:
    """Records grouped by network layer, in order of first appearance."""
    groups: dict[str, list[PassRecord]] = {}
    for r in records:
        groups.setdefault(r.layer, []).append(r)
    return list(groups.items())


def _plot_cycles(records, handle) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _by_layer(records)
    names = [name for name, _ in groups]
    parts = [("load", "load_cycles", "tab:orange"), ("compute", "compute_cycles", "tab:blue"),
             ("drain", "drain_cycles", "tab:green")]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(names) + 2), 4))
    bottom = np.zeros(len(names))
    for label, attr, color in parts:
        values = np.array([sum(getattr(r, attr) for r in rs) for _, rs in groups], dtype=float)
        ax.bar(names, values, bottom=bottom, label=label, color=color)
        bottom += values
    ax.set(ylabel="cycles per image", title="Cycles per layer (all passes)")
    ax.tick_params(axis="x", labelrotation=45 if len(names) > 4 else 0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)


def _plot_skipped(records, handle) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _by_layer(records)
    cols = min(4, len(groups))
    rows = -(-len(groups) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.axis("off")
    for ax, (name, rs) in zip(axes.flat, groups):
        grid = np.sum([np.asarray(r.skipped_macs_per_position) for r in rs], axis=0)
        image = ax.imshow(grid, cmap="viridis")
        alpha = grid.shape[0]
        ax.set(title=name, xticks=range(alpha), yticks=range(alpha))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle("Skipped MACs per Winograd position (per image)")
    fig.tight_layout()
    fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)


def write_report(directory: str | os.PathLike, records: list[PassRecord],
                 figures: NetworkFigures) -> dict[str, str]:
    """Write ``report.json``, ``layers.csv``, ``report.md``, ``cycles.png`` and
    ``skipped_macs.png`` into ``directory`` (created if missing), each atomically.

    Returns
    -------
    dict of str to str
        File kind (``json``, ``csv``, ``md``, ``cycles_png``, ``skipped_png``) to path.
    """
    records = list(records)
    report = report_dict(records, figures)
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    paths = {kind: os.path.join(directory, name) for kind, name in (
        ("json", "report.json"), ("csv", "layers.csv"), ("md", "report.md"),
        ("cycles_png", "cycles.png"), ("skipped_png", "skipped_macs.png"))}
    _atomic_write(paths["cycles_png"], lambda h: _plot_cycles(records, h))
    _atomic_write(paths["skipped_png"], lambda h: _plot_skipped(records, h))
    _atomic_write(paths["csv"], lambda h: h.write(_csv_text(records).encode()))
    text = _markdown(report, records, ["cycles.png", "skipped_macs.png"])
    _atomic_write(paths["md"], lambda h: h.write(text.encode()))
    _atomic_write(paths["json"],
                  lambda h: h.write((json.dumps(report, indent=2) + "\n").encode()))
    return paths
