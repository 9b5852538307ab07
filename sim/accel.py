"""Run layers through the generated accelerator RTL and check them against golden.

The device is ``hw.generate.generate_verilog(config)``, the Verilog users get, compiled inside a
:class:`sim.harness.StreamHarness`. One layer run sends the layer program (``cfg``, ``table``,
``weights``) and the input patches from the harness memories, with optional random valid gaps
on every input and random backpressure on ``results``, then compares:

* every result word, unpacked by ``golden.program.unpack_results``, bit-exactly with
  ``golden.program.expected_output`` (an in-order scoreboard: beat i must be tile i // K,
  channel i % K);
* the cycle count (first ``patches`` to last ``results`` transfer, inclusive) with
  ``golden.cycles.layer_cycles``: exactly when no stream stalls, at least as many otherwise;
  likewise ``load_cycles`` (``cfg`` to the last program beat).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from golden.config import AcceleratorConfig
from golden.cost import check_buildable
from golden.cycles import CycleReport, layer_cycles, sequence_cycles, utilisation
from golden.program import (LayerProgram, expected_output, expected_output_q, patch_words,
                            unpack_results, unpack_results_q)

from .harness import StreamHarness
from .runner import BuiltDesign, build_harnessed, run_job
from .streams import stream_run

__all__ = [
    "INPUT_STREAMS",
    "MAX_HARNESS_WORDS",
    "LayerOutcome",
    "LayerRun",
    "accelerator_depths",
    "accelerator_verilog",
    "build_accelerator",
    "check_layer",
    "check_simulable",
    "run_layers",
    "run_sequence",
]

#: The accelerator's input streams, in protocol order.
INPUT_STREAMS = ("cfg", "table", "weights", "patches")


def _pow2_at_least(n: int, floor: int) -> int:
    return 1 << max(int(n) - 1, floor - 1, 0).bit_length()


def accelerator_depths(config: AcceleratorConfig, patch_words_needed: int = 0,
                       result_words_needed: int = 0) -> dict:
    """Harness memory depths for ``config``: the whole layer program always fits; the patch
    and result memories are powers of two with room for at least 256 tiles (a 32 x 32 input
    with the 4x4 tile) at the channel maximum, so that most layers share one build."""
    floor = max(4096, 256 * max(config.max_in_channels, config.max_out_channels))
    return {
        "cfg": 2,
        "table": config.max_out_channels,
        "weights": max(1, config.n_pe * config.pe_weight_depth),
        "patches": _pow2_at_least(patch_words_needed, floor),
        "results": _pow2_at_least(result_words_needed, floor),
    }


#: Most words the harness's patch or result memory may have: a simulation that needs more
#: (a larger input, e.g. ``--input-size``) is refused before building.
MAX_HARNESS_WORDS = 2**22


def check_simulable(config: AcceleratorConfig, depths: dict) -> None:
    """Refuse, before generating anything, a design that cannot be built
    (:func:`golden.cost.check_buildable`) or harness memories above
    :data:`MAX_HARNESS_WORDS` (ValueError naming the memory, its words and the limit)."""
    check_buildable(config)
    for stream in ("patches", "results"):
        if depths[stream] > MAX_HARNESS_WORDS:
            raise ValueError(f"the layer needs a {depths[stream]:,}-word harness {stream} "
                             f"memory, more than the {MAX_HARNESS_WORDS:,} a simulation may "
                             f"have; simulate a smaller input")


@functools.cache
def accelerator_verilog(config: AcceleratorConfig) -> str:
    """``hw.generate.generate_verilog(config)``, generated once per process."""
    from hw.generate import generate_verilog
    return generate_verilog(config)


def build_accelerator(config: AcceleratorConfig, simulator: str = "verilator", *,
                      depths: dict | None = None, waves: bool = False) -> BuiltDesign:
    """Generate (``hw.generate``) and compile the accelerator for ``config`` in a harness."""
    from hw.accelerator import Accelerator
    name = config.name
    depths = depths or accelerator_depths(config)
    check_simulable(config, depths)
    harness = StreamHarness(name, Accelerator.Signature(config), depths=depths)
    key = f"accel-{name}-p{depths['patches']}-r{depths['results']}"
    return build_harnessed(key, accelerator_verilog(config), name, harness, simulator, waves)


@dataclass
class LayerRun:
    """One layer to run: its program, its input and the stall behaviour.

    Members
    -------
    program : golden.program.LayerProgram
    x : ndarray [C, H, W] of int
    gaps : float
        Probability of a pause cycle on every input stream (random valid gaps).
    backpressure : float
        Probability that ``results.ready`` is low in a cycle.
    seed : int
        Seed of the pause patterns.
    abort_after : int or None
        Reset the device this many cycles into the run (the run is then not checked).
    """

    program: LayerProgram
    x: np.ndarray
    gaps: float = 0.0
    backpressure: float = 0.0
    seed: int = 0
    abort_after: int | None = None

    @property
    def stalled(self) -> bool:
        """Some stream may stall."""
        return self.gaps > 0 or self.backpressure > 0


@dataclass
class LayerOutcome:
    """The checked result of one :class:`LayerRun`.

    Members
    -------
    y, expected : ndarray [K, Hout, Wout] of int64
        RTL and golden outputs (``y`` is None when the result count was wrong).
    y_q : ndarray [K, Hout, Wout] of int64 or None
        The RTL's requantised outputs (requant stage only).
    first_mismatch : tuple or None
        Index (k, h, w) of the first differing output, None when bit-exact.
    cycles, load_cycles : int
        Measured (see the module docstring).
    model : golden.cycles.CycleReport
    problems : list of str
        Everything that failed; empty means passed.
    """

    name: str
    y: np.ndarray | None
    y_q: np.ndarray | None
    expected: np.ndarray
    first_mismatch: tuple | None
    cycles: int
    load_cycles: int
    model: CycleReport
    stalled: bool
    simulated_cycles: int
    wall_seconds: float
    cpu_seconds: float
    problems: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Outputs bit-exact, cycle counts as modelled, no error flag."""
        return not self.problems

    def report(self) -> dict:
        """Per-layer figures (cycles, multipliers, MACs, utilisation, per-position skips)."""
        d = self.model.as_dict()
        d.update(name=self.name, cycles=self.cycles, model_cycles=self.model.cycles,
                 load_cycles=self.load_cycles, model_load_cycles=self.model.load_cycles,
                 utilisation=utilisation(self.model.nonzero_macs, self.model.n_pe,
                                         self.cycles),
                 stalled=self.stalled, passed=self.passed, problems=list(self.problems))
        return d


def _job_run(run: LayerRun, design: BuiltDesign, model: CycleReport) -> dict:
    program = run.program
    inputs = {"cfg": program.cfg_words, "table": program.table_words,
              "weights": program.weight_words, "patches": patch_words(program, run.x)}
    # Generous: every stall can at worst add its cycle to the run.
    slack = 1.0 / ((1.0 - run.gaps) * (1.0 - run.backpressure))
    budget = int((model.cycles + model.load_cycles + len(inputs["patches"])) * 4 * slack) + 2000
    try:
        return stream_run(design.harness, inputs,
                          {"results": program.n_tiles * program.out_channels},
                          gaps=run.gaps, backpressure=run.backpressure, seed=run.seed,
                          timeout_cycles=budget, abort_after=run.abort_after)
    except ValueError as exc:
        raise ValueError(f"layer '{program.layer.name}': {exc}") from None


def check_layer(run: LayerRun, result: dict, model: CycleReport | None = None) -> LayerOutcome:
    """Compare one run's bench result with golden (outputs, counts, cycles, error flag)."""
    program = run.program
    model = model or layer_cycles(program)
    expected = expected_output(program, run.x)
    streams = result["streams"]
    problems = []
    if result["timed_out"]:
        problems.append("timed out before all results arrived")
    n_expected = program.n_tiles * program.out_channels
    got = streams["results"]["count"]
    if got != n_expected:
        problems.append(f"received {got} result beats, expected {n_expected}")
    for name in INPUT_STREAMS:
        want = {"cfg": 1, "table": len(program.table_words),
                "weights": len(program.weight_words),
                "patches": program.n_tiles * program.in_channels}[name]
        if streams[name]["count"] != want:
            problems.append(f"{name}: {streams[name]['count']} beats consumed, expected {want}")
    if result["outputs"].get("error"):
        problems.append("the accelerator raised 'error'")
    for name in result["unstable"]:
        problems.append(f"{name}: an offered beat was withdrawn or changed before transfer")
    y, y_q, first = None, None, None
    words = [int(w, 16) for w in result["sinks"]["results"]]
    if len(words) == n_expected:
        y = unpack_results(program, words)
        checks = [("output", y, expected)]
        if program.requant is not None:
            y_q = unpack_results_q(program, words)
            checks.append(("requantised output", y_q, expected_output_q(program, run.x)))
        for what, got_y, want_y in checks:
            diff = np.argwhere(got_y != want_y)
            if diff.size:
                index = tuple(int(i) for i in diff[0])
                first = first or index
                problems.append(f"{what} {list(index)} is {int(got_y[index])}, golden "
                                f"{int(want_y[index])} ({len(diff)} of {got_y.size} differ)")
    cycles = streams["results"]["last"] - streams["patches"]["first"] + 1
    program_last = max(streams["table"]["last"], streams["weights"]["last"]
                       if program.weight_words else 0)
    load = program_last - streams["cfg"]["first"] + 1
    if not problems:
        if run.stalled:
            if cycles < model.cycles:
                problems.append(f"{cycles} cycles with stalls, fewer than the model's "
                                f"{model.cycles}")
        elif cycles != model.cycles:
            problems.append(f"{cycles} cycles, golden.cycles predicts {model.cycles}")
        if not run.gaps and load != model.load_cycles:
            problems.append(f"{load} load cycles, golden.cycles predicts {model.load_cycles}")
        elif run.gaps and load < model.load_cycles:
            problems.append(f"{load} load cycles with gaps, fewer than the model's "
                            f"{model.load_cycles}")
    return LayerOutcome(name=program.layer.name, y=y, y_q=y_q, expected=expected,
                        first_mismatch=first,
                        cycles=cycles, load_cycles=load, model=model, stalled=run.stalled,
                        simulated_cycles=result["cycles"],
                        wall_seconds=result["wall_seconds"],
                        cpu_seconds=result["cpu_seconds"], problems=problems)


def run_layers(design: BuiltDesign, runs: list[LayerRun], *, waves=None,
               name: str = "layers", progress=None) -> list[LayerOutcome | None]:
    """Run ``runs`` in one simulator process (a reset before each) and check them.

    Aborted runs (``abort_after``) give None. ``waves`` names an FST file to write;
    ``progress`` receives the bench's progress reports (see :func:`sim.runner.run_job`).
    """
    models = [layer_cycles(r.program) for r in runs]
    job = [_job_run(r, design, m) for r, m in zip(runs, models)]
    results = run_job(design, job, waves=waves, name=name, progress=progress)
    return [None if r.abort_after is not None else check_layer(r, res, m)
            for r, res, m in zip(runs, results, models)]


def run_sequence(design: BuiltDesign, programs: list[LayerProgram], inputs: list, *,
                 gaps: float = 0.0, backpressure: float = 0.0, seed: int = 0,
                 name: str = "sequence") -> tuple[list, int, list[str]]:
    """Run consecutive layer programs in one run, without a reset between them: every
    program and every input patch is offered back to back from the start (a design with two
    weight banks loads the next program while a layer computes).

    Returns
    -------
    outputs : list of ndarray [K, Hout, Wout] of int64 or None
        Each layer's raw outputs (None when the result count was wrong).
    cycles : int
        First ``patches`` to last ``results`` transfer, inclusive.
    problems : list of str
        Differences from golden (outputs, beat counts, error flag, and, unstalled, cycles other
        than ``golden.cycles.sequence_cycles``; stalled, fewer).
    """
    streams = {"cfg": [], "table": [], "weights": [], "patches": []}
    for program, x in zip(programs, inputs, strict=True):
        streams["cfg"] += program.cfg_words
        streams["table"] += program.table_words
        streams["weights"] += program.weight_words
        streams["patches"] += patch_words(program, x)
    counts = [p.n_tiles * p.out_channels for p in programs]
    model = sequence_cycles(programs)
    job = stream_run(design.harness, streams, {"results": sum(counts)}, gaps=gaps,
                     backpressure=backpressure, seed=seed,
                     timeout_cycles=4 * (model + sum(len(w) for w in streams.values())) + 2000)
    (result,) = run_job(design, [job], name=name)
    problems = []
    if result["timed_out"]:
        problems.append("timed out before all results arrived")
    if result["outputs"].get("error"):
        problems.append("the accelerator raised 'error'")
    for stream_name, words in streams.items():
        if result["streams"][stream_name]["count"] != len(words):
            problems.append(f"{stream_name}: {result['streams'][stream_name]['count']} beats "
                            f"consumed, expected {len(words)}")
    words = [int(w, 16) for w in result["sinks"]["results"]]
    outputs = []
    if len(words) != sum(counts):
        problems.append(f"received {len(words)} result beats, expected {sum(counts)}")
        outputs = [None] * len(programs)
    else:
        at = 0
        for program, x, n in zip(programs, inputs, counts):
            y = unpack_results(program, words[at:at + n])
            at += n
            want = expected_output(program, x)
            if not np.array_equal(y, want):
                index = tuple(int(i) for i in np.argwhere(y != want)[0])
                problems.append(f"layer '{program.layer.name}': output {list(index)} is "
                                f"{int(y[index])}, golden {int(want[index])}")
            outputs.append(y)
    cycles = result["streams"]["results"]["last"] - result["streams"]["patches"]["first"] + 1
    if not problems:
        stalled = gaps > 0 or backpressure > 0
        if not stalled and cycles != model:
            problems.append(f"{cycles} cycles, golden.cycles.sequence_cycles predicts {model}")
        elif stalled and cycles < model:
            problems.append(f"{cycles} cycles with stalls, fewer than the model's {model}")
    return outputs, cycles, problems
