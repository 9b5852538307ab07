"""Exact cycle model of the accelerator RTL (``hw.accelerator``) for one layer.

Definitions (every stream handshake counts on the rising clock edge where ``valid & ready``):

* ``cycles``: from the first ``patches`` transfer to the last ``results`` transfer, both
  inclusive, when the host never stalls (``patches`` always valid, ``results`` always ready).
* ``load_cycles``: from the ``cfg`` transfer to the last layer-program transfer (``table`` or
  ``weights``), inclusive, with never-stalled ``cfg``/``table``/``weights``:
  ``1 + K + B`` with B the ``weights`` beats (``golden.program.weight_beats``: the entry count
  with one weight lane, the sum of each PE group's largest count with several).

The array runs in lock-step *steps* s = 0 .. T + 1 (T tiles). Step s loads tile s (s < T),
computes tile s - 1 (1 <= s <= T) and drains tile s - 2 (s >= 2); a step starts with a one-cycle
``start`` and ends when its active units are done::

    load    = B * C + L_in + n_pe          (C patches, B = v_beats chain beats each, input
                                            transform, V chain of n_pe hops)
    compute = makespan + PE_PIPELINE_DEPTH (1 when the layer has no nonzero weight)
              + COMPUTE_SYNC               (registered start to the PEs and done back)
    drain   = K * G + COLLECTOR_DEPTH      (table and result-bank reads, G beats per channel)

(``PE_PIPELINE_DEPTH`` and ``COLLECTOR_DEPTH`` one cycle less each for a design that is not
``pipelined``: :func:`pe_pipeline_depth`, :func:`collector_depth`, and ``COLLECTOR_DEPTH`` one
more where the result bank read takes two cycles, ``golden.protocol.bank_read_latency``;
``G`` is ``config.drain_beats``, 1 unless ``drain_positions`` is below ``alpha**2``)
    S_s     = 1 + max(active terms of step s)

and the layer takes ``cycles = sum(S_s, s = 0 .. T) + K * G + COLLECTOR_DEPTH - 1 + L_out``:
the first patch transfers one cycle after step 0 starts, the last drain beat enters the output
transform ``K * G + COLLECTOR_DEPTH - 1`` cycles after step T + 1 starts and leaves it
``L_out`` cycles later. ``makespan`` is the largest per-PE entry count of :mod:`golden.schedule`.

Consecutive layers (``weight_banks`` 2, :func:`sequence_cycles`): layer i + 1's ``cfg`` is taken
the cycle after layer i's program is handed to the sequencer (one cycle before layer i's first
patch) and loads into the other bank while layer i runs. Layer i + 1's first patch transfers
``LAYER_SWITCH`` cycles after layer i's last result (the sequencer finishes, idles one cycle,
takes ``start``, starts step 0), later by the part of its load that layer i does not hide::

    exposed_load(i + 1) = max(0, load_cycles(i + 1) - cycles(i) - 2)

With one bank a layer's ``cfg`` is taken only after the previous layer's last result, so its
whole ``load_cycles`` is exposed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import AcceleratorConfig
from .protocol import bank_read_latency

__all__ = [
    "COLLECTOR_DEPTH",
    "COMPUTE_SYNC",
    "CycleReport",
    "LAYER_SWITCH",
    "PE_PIPELINE_DEPTH",
    "PassesCycles",
    "collector_depth",
    "drain_tail_cycles",
    "exposed_load_cycles",
    "input_transform_latency",
    "layer_cycles",
    "output_transform_latency",
    "passes_cycles",
    "pe_pipeline_depth",
    "sequence_cycles",
    "step_lengths",
    "utilisation",
]

#: Cycles a PE needs beyond one per entry: issue, latch, fetch, read, hold (the V word
#: registered), select, multiply, add, then ``done`` (``hw.pe``); one less without the hold
#: stage (``pipelined`` False, :func:`pe_pipeline_depth`).
PE_PIPELINE_DEPTH = 7
#: Cycles the array adds to a compute step: the registered start broadcast to the PEs and the
#: registered AND of their ``done`` back to the sequencer.
COMPUTE_SYNC = 2
#: Cycles the collector needs beyond one per channel: issue, table read, bank read, the
#: output register (``done`` with the last beat's transfer); one less without the output
#: register (``pipelined`` False, :func:`collector_depth`).
COLLECTOR_DEPTH = 4


def pe_pipeline_depth(config: AcceleratorConfig) -> int:
    """``PE_PIPELINE_DEPTH`` of ``config``'s PEs (without the hold stage unless pipelined)."""
    return PE_PIPELINE_DEPTH if config.pipelined else PE_PIPELINE_DEPTH - 1


def collector_depth(config: AcceleratorConfig) -> int:
    """``COLLECTOR_DEPTH`` of ``config``'s collector: no output register unless pipelined, one
    more cycle where the bank read takes two (``golden.protocol.bank_read_latency``)."""
    depth = COLLECTOR_DEPTH if config.pipelined else COLLECTOR_DEPTH - 1
    return depth + bank_read_latency(config) - 1
#: With two weight banks: cycles from a layer's last ``results`` transfer to the next (loaded)
#: layer's first ``patches`` transfer (sequencer finished, idle with ``start``, step 0 start).
LAYER_SWITCH = 4


def input_transform_latency(config: AcceleratorConfig) -> int:
    """Pipeline latency of ``hw.transform.InputTransform`` (row, column stage)."""
    return 2


def output_transform_latency(config: AcceleratorConfig) -> int:
    """Pipeline latency of ``hw.transform.OutputTransform`` (row, column stage, and three
    requant stages when present; with ``drain_positions`` below ``alpha**2`` a term and an
    accumulator stage instead of the row and column stages), from the transfer of a
    channel's last beat."""
    return 5 if config.requant else 2


@dataclass(frozen=True)
class CycleReport:
    """Cycles and work of one layer (counters as Timeloop / SCALE-Sim users know them).

    Members
    -------
    cycles : int
        First ``patches`` to last ``results`` transfer, inclusive (never-stalled streams).
    load_cycles : int
        ``cfg`` to last program transfer, inclusive.
    nonzero_macs : int
        Multiply-accumulates the PEs perform (nonzero weights x tiles).
    dense_macs : int
        Multiplications of dense Winograd: ``T * K * C * alpha**2``.
    direct_macs : int
        Multiplications of direct 3x3 convolution: ``K * C * r**2 * Hout * Wout``.
    multipliers : int
        Physical multipliers of the design (``config.multipliers``).
    utilisation : float
        ``nonzero_macs / (n_pe * cycles)``.
    skipped_macs_per_position, nonzero_macs_per_position : tuple of int
        Dense Winograd multiplications skipped (pruned) / performed at each Winograd position.
    """

    cycles: int
    load_cycles: int
    nonzero_macs: int
    dense_macs: int
    direct_macs: int
    multipliers: int
    n_pe: int
    utilisation: float
    skipped_macs_per_position: tuple[int, ...]
    nonzero_macs_per_position: tuple[int, ...]

    def as_dict(self) -> dict:
        """Plain JSON-able dict."""
        return {
            "cycles": self.cycles, "load_cycles": self.load_cycles,
            "nonzero_macs": self.nonzero_macs, "dense_macs": self.dense_macs,
            "direct_macs": self.direct_macs, "multipliers": self.multipliers,
            "n_pe": self.n_pe, "utilisation": self.utilisation,
            "skipped_macs_per_position": list(self.skipped_macs_per_position),
            "nonzero_macs_per_position": list(self.nonzero_macs_per_position),
        }


def drain_tail_cycles(config: AcceleratorConfig, out_channels: int) -> int:
    """Cycles of ``cycles`` after the last step: the last tile's drain and output transform,
    ``K * G + COLLECTOR_DEPTH - 1 + L_out`` (the rest of ``cycles`` is the steps ``0 .. T``)."""
    return (out_channels * config.drain_beats + collector_depth(config) - 1
            + output_transform_latency(config))


def utilisation(nonzero_macs: int, multipliers: int, cycles: int) -> float:
    """Fraction of ``multipliers x cycles`` multiplier slots doing a nonzero MAC (0 for no
    cycles): the one definition used by every report."""
    return nonzero_macs / (multipliers * cycles) if cycles else 0.0


def step_lengths(config: AcceleratorConfig, in_channels: int, out_channels: int,
                 n_tiles: int, makespan: int) -> np.ndarray:
    """Length ``S_s`` of every step s = 0 .. T + 1 (module docstring), int64 [T + 2]."""
    s = np.arange(n_tiles + 2)
    # A patch every v_beats cycles: its transformed channel leaves the feeder in v_beats beats.
    load = np.where(s < n_tiles, config.v_beats * in_channels + input_transform_latency(config)
                    + config.n_pe, 0)
    compute_time = (makespan + pe_pipeline_depth(config) if makespan else 1) + COMPUTE_SYNC
    compute = np.where((s >= 1) & (s <= n_tiles), compute_time, 0)
    drain = np.where(s >= 2, out_channels * config.drain_beats + collector_depth(config), 0)
    return 1 + np.maximum(np.maximum(load, compute), drain)


def layer_cycles(program) -> CycleReport:
    """The exact cycle count and work of ``program`` (a ``golden.program.LayerProgram``).

    See the module docstring for the definitions; ``hw.accelerator`` is checked against this in
    simulation.
    """
    config = program.config
    c, k, t = program.in_channels, program.out_channels, program.n_tiles
    steps = step_lengths(config, c, k, t, program.schedule.makespan)
    cycles = int(steps[:t + 1].sum()) + drain_tail_cycles(config, k)
    nnz = program.sparse.nnz
    per_position = program.sparse.position_counts() * t
    dense_per_position = t * k * c
    grid = program.grid
    return CycleReport(
        cycles=cycles,
        load_cycles=1 + k + len(program.weight_words),
        nonzero_macs=nnz * t,
        dense_macs=t * k * c * config.positions,
        direct_macs=k * c * config.r * config.r * grid.out_h * grid.out_w,
        multipliers=config.multipliers,
        n_pe=config.n_pe,
        utilisation=utilisation(nnz * t, config.n_pe, cycles),
        skipped_macs_per_position=tuple(int(dense_per_position - v) for v in per_position),
        nonzero_macs_per_position=tuple(int(v) for v in per_position),
    )


def exposed_load_cycles(config: AcceleratorConfig, previous_cycles: int | None,
                        load_cycles: int) -> int:
    """Load cycles of a layer (its ``load_cycles``) that the layer before it (its ``cycles``,
    None for the first) does not hide: all of them with one weight bank or for the first layer,
    else ``max(0, load_cycles - previous_cycles - 2)`` (module docstring)."""
    if previous_cycles is None or config.weight_banks == 1:
        return load_cycles
    return max(0, load_cycles - previous_cycles - 2)


def sequence_cycles(programs) -> int:
    """Cycles from the first ``patches`` transfer of ``programs[0]`` to the last ``results``
    transfer of ``programs[-1]`` when the programs and patches of all are sent back to back
    with never-stalled streams, on a design with two weight banks (module docstring).

    Raises
    ------
    ValueError
        If there are no programs, they are for different designs, or the design has one bank.
    """
    programs = list(programs)
    if not programs:
        raise ValueError("programs must not be empty")
    config = programs[0].config
    if any(p.config != config for p in programs):
        raise ValueError("the programs must be compiled for one design")
    if config.weight_banks != 2:
        raise ValueError(f"sequence_cycles models weight_banks 2, not {config.weight_banks}")
    reports = [layer_cycles(p) for p in programs]
    total = reports[0].cycles
    for previous, report in zip(reports, reports[1:]):
        total += (LAYER_SWITCH - 1 + report.cycles
                  + exposed_load_cycles(config, previous.cycles, report.load_cycles))
    return total


@dataclass(frozen=True)
class PassesCycles:
    """The cycle model of a split layer: one ``CycleReport`` per pass and their sums.

    Members
    -------
    passes : tuple of CycleReport
        :func:`layer_cycles` of every pass program.
    config : AcceleratorConfig or None
        The design (its ``weight_banks`` decide which loads the pass before hides); None
        counts every load.
    """

    passes: tuple[CycleReport, ...]
    config: AcceleratorConfig | None = None

    @property
    def cycles(self) -> int:
        """Sum of the passes' ``cycles`` (first patch to last result of each)."""
        return sum(r.cycles for r in self.passes)

    @property
    def load_cycles(self) -> int:
        """Sum of the passes' ``load_cycles``."""
        return sum(r.load_cycles for r in self.passes)

    @property
    def exposed_load_cycles(self) -> int:
        """Load cycles the pass before does not hide (:func:`exposed_load_cycles`;
        the first pass's load is all exposed)."""
        if self.config is None:
            return self.load_cycles
        previous, exposed = None, 0
        for report in self.passes:
            exposed += exposed_load_cycles(self.config, previous, report.load_cycles)
            previous = report.cycles
        return exposed

    @property
    def total_cycles(self) -> int:
        """``cycles + exposed_load_cycles``: the layer with its weight loads."""
        return self.cycles + self.exposed_load_cycles

    @property
    def nonzero_macs(self) -> int:
        """Multiply-accumulates of all passes."""
        return sum(r.nonzero_macs for r in self.passes)

    @property
    def dense_macs(self) -> int:
        """Dense Winograd multiplications (equal to the unsplit layer's)."""
        return sum(r.dense_macs for r in self.passes)

    @property
    def direct_macs(self) -> int:
        """Direct-convolution multiplications (equal to the unsplit layer's)."""
        return sum(r.direct_macs for r in self.passes)

    @property
    def skipped_macs_per_position(self) -> tuple[int, ...]:
        """Skipped dense multiplications per Winograd position, summed over passes."""
        return tuple(int(v) for v in np.sum([r.skipped_macs_per_position
                                             for r in self.passes], axis=0))


def passes_cycles(programs) -> PassesCycles:
    """The cycle model of a split layer's pass programs (``golden.passes.compile_passes``)."""
    programs = list(programs)
    return PassesCycles(passes=tuple(layer_cycles(p) for p in programs),
                        config=programs[0].config if programs else None)
