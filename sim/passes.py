"""Run a layer larger than the design on the RTL, as the passes of ``golden.passes``.

Every pass is an ordinary layer run (:class:`sim.accel.LayerRun`) on one built design, all in
one simulator process (a reset before each). Each pass is checked on its own against golden
(outputs bit-exact, cycles equal to ``golden.cycles`` when unstalled, see
:func:`sim.accel.check_layer`); the passes' RTL outputs are then combined on the host
(``golden.passes.combine_outputs``: exact partial sums, bias, requantisation) and compared with
the unsplit golden layer (``golden.passes.reference_output``).

:func:`pass_runs` and :func:`collect_passes` split the work so that a caller can put the passes
of several layers and images into one :func:`sim.accel.run_layers` call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from golden.cycles import PassesCycles
from golden.passes import (PassPlan, combine_outputs, compile_passes, pass_inputs,
                           reference_output)
from golden.report import PassRecord, pass_record

from .accel import LayerOutcome, LayerRun, run_layers
from .runner import BuiltDesign

__all__ = ["PassesOutcome", "collect_passes", "pass_runs", "run_layer_passes"]


@dataclass
class PassesOutcome:
    """The checked result of one split layer on the RTL.

    Members
    -------
    plan : golden.passes.PassPlan
    programs : list of golden.program.LayerProgram
        The pass programs (``golden.passes.compile_passes``).
    outcomes : list of LayerOutcome
        Every pass, checked against its golden pass output and cycle model.
    y : ndarray [K, Hout, Wout] of int64 or None
        The combined RTL output (None when a pass returned the wrong number of results).
    y_q : ndarray [K, Hout, Wout] of int8 or None
        The requantised output (``plan.requant``): the chip's with one input group, the host's
        requantisation of ``y`` otherwise.
    expected, expected_q : ndarray or None
        The unsplit golden layer.
    first_mismatch : tuple or None
        First differing index (k, h, w) of the combined output.
    problems : list of str
        Everything that failed (each pass's problems named by pass); empty means passed.
    """

    plan: PassPlan
    programs: list
    outcomes: list[LayerOutcome]
    y: np.ndarray | None
    y_q: np.ndarray | None
    expected: np.ndarray
    expected_q: np.ndarray | None
    first_mismatch: tuple | None
    problems: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every pass passed and the combined output equals the unsplit golden layer."""
        return not self.problems

    @property
    def cycles(self) -> int:
        """Measured cycles of all passes (first patch to last result of each, summed)."""
        return sum(o.cycles for o in self.outcomes)

    @property
    def load_cycles(self) -> int:
        """Measured load cycles of all passes."""
        return sum(o.load_cycles for o in self.outcomes)

    @property
    def model(self) -> PassesCycles:
        """The cycle model of the passes (``golden.cycles.passes_cycles``)."""
        return PassesCycles(passes=tuple(o.model for o in self.outcomes),
                            config=self.plan.config)

    def records(self) -> list[PassRecord]:
        """``golden.report.PassRecord`` of every pass, with its measured cycles."""
        return [pass_record(p, layer=self.plan.layer.name, model=o.model, cycles=o.cycles,
                            load_cycles=o.load_cycles)
                for p, o in zip(self.programs, self.outcomes)]


def pass_runs(plan: PassPlan, programs, x, *, gaps: float = 0.0, backpressure: float = 0.0,
              seed: int = 0) -> list[LayerRun]:
    """The runs of every pass of ``plan`` on input ``x`` [C, H, W] (``programs`` from
    ``golden.passes.compile_passes``); pass i uses pause seed ``seed + i``."""
    return [LayerRun(program, xp, gaps=gaps, backpressure=backpressure, seed=seed + i)
            for i, (program, xp) in enumerate(zip(programs, pass_inputs(plan, x)))]


def collect_passes(plan: PassPlan, programs, x,
                   outcomes: list[LayerOutcome]) -> PassesOutcome:
    """Combine the checked pass outcomes of :func:`pass_runs` and compare the layer with the
    unsplit golden layer."""
    expected, expected_q = reference_output(plan, x)
    problems = [f"pass '{o.name}': {p}" for o in outcomes for p in o.problems]
    y = y_q = first = None
    if all(o.y is not None for o in outcomes):
        q = [o.y_q for o in outcomes] if plan.requant_on_chip else None
        y, y_q = combine_outputs(plan, [o.y for o in outcomes], q)
        checks = [("output", y, expected)]
        if plan.requant is not None:
            checks.append(("requantised output", y_q, expected_q))
        for what, got, want in checks:
            diff = np.argwhere(got != want)
            if diff.size:
                index = tuple(int(i) for i in diff[0])
                first = first or index
                problems.append(f"layer '{plan.layer.name}': combined {what} {list(index)} is "
                                f"{int(got[index])}, golden {int(want[index])} ({len(diff)} "
                                f"of {got.size} differ)")
    else:
        problems.append(f"layer '{plan.layer.name}': a pass returned no output; not combined")
    return PassesOutcome(plan=plan, programs=list(programs), outcomes=list(outcomes), y=y,
                         y_q=y_q, expected=expected, expected_q=expected_q,
                         first_mismatch=first, problems=problems)


def run_layer_passes(design: BuiltDesign, plan: PassPlan, x, *, gaps: float = 0.0,
                     backpressure: float = 0.0, seed: int = 0, name: str = "passes",
                     progress=None) -> PassesOutcome:
    """Run every pass of ``plan`` on ``design`` (built for ``plan.config``) in one simulator
    process, check each and the combined layer.

    Parameters
    ----------
    design : BuiltDesign
        ``sim.accel.build_accelerator(plan.config, ...)``, with harness memories deep enough
        for one pass (``sim.accel.accelerator_depths``).
    plan : golden.passes.PassPlan
    x : ndarray [C, H, W] of int
    gaps, backpressure, seed
        Stall behaviour of every pass (:class:`sim.accel.LayerRun`).
    name, progress
        As :func:`sim.accel.run_layers`.

    Returns
    -------
    PassesOutcome
    """
    x = np.asarray(x)
    programs = compile_passes(plan, int(x.shape[-2]), int(x.shape[-1]))
    runs = pass_runs(plan, programs, x, gaps=gaps, backpressure=backpressure, seed=seed)
    outcomes = run_layers(design, runs, name=name, progress=progress)
    return collect_passes(plan, programs, x, outcomes)
