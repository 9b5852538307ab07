"""Run a whole network (weight file version 2) on the accelerator RTL, checking every layer.

The network runs layer by layer over all images: each ``conv`` op runs on the accelerator as
the passes of ``golden.passes`` (one pass when the layer fits the design), for every image, on
one built design; ``maxpool2``, ``flatten`` and ``linear`` run on the host in
``golden.network``. The input of every op is what the hardware path produced for the op before
it, never golden's, so the logits are the hardware's. After every op the output of every image
is compared bit-exactly with ``golden.network.run_network``'s trace; the first difference (the
lowest image of the first op that differs) stops the run and is named (:class:`Mismatch`).

Images are spread over ``jobs`` threads, each driving its own simulator process on the shared
build (the simulators run as child processes, so the threads do not contend for Python). The
cycle figures come from the measured RTL runs and are checked against ``golden.cycles`` by
``sim.accel.check_layer`` (exact when unstalled).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from golden.config import AcceleratorConfig
from golden.network import run_network, run_op
from golden.passes import PassPlan, compile_passes, network_design, plan_passes
from golden.report import PassRecord, overlap_loads
from golden.weights import WeightFile

from .accel import accelerator_depths, build_accelerator, run_layers
from .passes import collect_passes, pass_runs

__all__ = ["Mismatch", "NetworkOutcome", "NetworkPlan", "network_design", "plan_network",
           "run_network_rtl"]


@dataclass(frozen=True)
class Mismatch:
    """The first difference between the hardware path and golden."""

    image: int
    op: str
    index: tuple
    got: int
    want: int
    detail: str = ""

    def __str__(self) -> str:
        text = (f"image {self.image}, op {self.op}: output {list(self.index)} is {self.got}, "
                f"golden {self.want}")
        return f"{text} ({self.detail})" if self.detail else text


@dataclass
class NetworkOutcome:
    """What a network run on the RTL produced.

    Members
    -------
    logits : ndarray [N, O] of int64 or None
        The hardware path's logits; None when the run stopped at a mismatch.
    golden_logits : ndarray [N, O] of int64
    records : list of golden.report.PassRecord
        Every conv pass of one image with its measured cycles (every image's are checked
        against the cycle model, so unstalled they are the same for all images).
    mismatch : Mismatch or None
    problems : list of str
        Everything that failed (cycle counts, beat counts, error flags, mismatches).
    simulated_cycles : int
        Clock cycles the simulators ran, all images and passes.
    simulation_seconds : float
        Wall time of the simulations.
    build_seconds : float
        Wall time of the simulator build (0 when reused).
    """

    logits: np.ndarray | None
    golden_logits: np.ndarray
    records: list[PassRecord]
    mismatch: Mismatch | None
    simulated_cycles: int
    simulation_seconds: float
    build_seconds: float
    problems: list = field(default_factory=list)

    @property
    def bit_exact(self) -> bool:
        """Every op's output of every image equalled golden's."""
        return self.mismatch is None

    @property
    def passed(self) -> bool:
        """Bit-exact, and every pass's beat counts, cycles and error flag as modelled."""
        return self.mismatch is None and not self.problems


@dataclass(frozen=True)
class NetworkPlan:
    """The passes of every conv op of a network on one design, compiled for its input sizes."""

    config: AcceleratorConfig
    plans: dict          # op index -> golden.passes.PassPlan
    programs: dict       # op index -> list of golden.program.LayerProgram

    @property
    def depths(self) -> dict:
        """Harness memory depths that hold the largest pass (``sim.accel.accelerator_depths``)."""
        programs = [p for ps in self.programs.values() for p in ps]
        patches = max(p.n_tiles * p.in_channels for p in programs)
        results = max(p.n_tiles * p.out_channels for p in programs)
        return accelerator_depths(self.config, patches, results)


def plan_network(weights: WeightFile, config: AcceleratorConfig) -> NetworkPlan:
    """Split and compile every conv op of ``weights`` for ``config`` before any simulation.

    Raises
    ------
    ValueError
        If a layer cannot run on ``config`` (the message names the layer and the limit).
    """
    network = weights.network
    plans, programs = {}, {}
    shape = network.input_shape
    for index, op in enumerate(network.ops):
        if op.kind == "conv":
            layer = weights[op.name]
            if (layer.m, layer.r) != (config.m, config.r):
                raise ValueError(f"layer '{layer.name}' is F({layer.m},{layer.r}) but the "
                                 f"design's tile {config.tile} is F({config.m},{config.r})")
            requant = (layer.requant_mult, layer.requant_shift, bool(layer.relu))
            plan: PassPlan = plan_passes(config, layer, requant=requant)
            plans[index] = plan
            programs[index] = compile_passes(plan, shape[1], shape[2])
        shape = network.shapes[index]
    return NetworkPlan(config, plans, programs)


def _first_difference(got: np.ndarray, want: np.ndarray) -> tuple | None:
    diff = np.argwhere(got != want)
    return None if diff.size == 0 else tuple(int(i) for i in diff[0])


def _chunks(n: int, jobs: int, chunk: int | None) -> list[range]:
    # A few chunks per thread keep the progress bar moving and the threads busy to the end;
    # each chunk costs one simulator start.
    size = chunk or max(1, min(64, math.ceil(n / (4 * jobs))))
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def run_network_rtl(weights: WeightFile, config: AcceleratorConfig, images: np.ndarray, *,
                    simulator: str = "verilator", jobs: int = 1, chunk: int | None = None,
                    plan: NetworkPlan | None = None, progress=None,
                    log=None) -> NetworkOutcome:
    """Run int8 ``images`` [N, C, H, W] through the network on the RTL (module docstring).

    Parameters
    ----------
    weights : WeightFile
        A version 2 file (``golden.network.load_network``).
    config : AcceleratorConfig
        The design; layers larger than it run as passes.
    images : ndarray [N, C, H, W] of int8
        Quantised images (``golden.network.quantize_input``).
    simulator : str
        "verilator" or "icarus".
    jobs : int
        Simulator processes running at once.
    chunk : int, optional
        Images per simulator process (default: a few chunks per job).
    plan : NetworkPlan, optional
        ``plan_network(weights, config)`` when already at hand.
    progress : callable, optional
        ``progress(op, images_done, images)`` after every chunk.
    log : callable, optional
        Receives one-line messages (the build).

    Returns
    -------
    NetworkOutcome
    """
    images = np.asarray(images)
    if images.dtype != np.int8 or images.ndim != 4:
        raise ValueError(f"images must be int8 [N, C, H, W], not {images.dtype} "
                         f"{list(images.shape)}")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, not {jobs!r}")
    plan = plan or plan_network(weights, config)
    golden_logits, trace = run_network(weights, images, trace=True)
    design = build_accelerator(config, simulator, depths=plan.depths)
    if log is not None:
        log(f"{simulator} build of {config.name}: "
            + (f"{design.build_seconds:.0f} s" if design.build_seconds else "reused"))
    sim_start = time.perf_counter()
    n = images.shape[0]
    x = images
    records: list[PassRecord] = []
    problems: list[str] = []
    simulated = 0

    def outcome(logits, mismatch) -> NetworkOutcome:
        # Consecutive passes as one image runs them: with two weight banks each pass's load
        # hides behind the pass before (the RTL's overlap is checked by sim/test_overlap).
        return NetworkOutcome(logits, golden_logits, overlap_loads(records, config), mismatch,
                              simulated, time.perf_counter() - sim_start, design.build_seconds,
                              problems)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for index, op in enumerate(weights.network.ops):
            name = str(op)
            if op.kind != "conv":
                x = run_op(weights, index, x).output
            else:
                layer_plan, programs = plan.plans[index], plan.programs[index]

                def run_chunk(images_range, layer_plan=layer_plan, programs=programs,
                              x=x, name=name):
                    runs = [r for i in images_range
                            for r in pass_runs(layer_plan, programs, x[i], seed=i)]
                    outcomes = run_layers(design, runs, name=name.replace(":", "-"))
                    per = len(programs)
                    return [collect_passes(layer_plan, programs, x[i],
                                           outcomes[j * per:(j + 1) * per])
                            for j, i in enumerate(images_range)]

                chunks = _chunks(n, jobs, chunk)
                results = [None] * n
                done = 0
                for images_range, outs in zip(chunks, pool.map(run_chunk, chunks)):
                    for i, out in zip(images_range, outs):
                        results[i] = out
                    done += len(images_range)
                    if progress is not None:
                        progress(name, done, n)
                simulated += sum(o.simulated_cycles for r in results for o in r.outcomes)
                for i, r in enumerate(results):
                    problems.extend(f"image {i}, op {name}: {p}" for p in r.problems)
                records.extend(results[0].records())
                if any(r.y_q is None for r in results):
                    bad = next(i for i, r in enumerate(results) if r.y_q is None)
                    return outcome(None, Mismatch(bad, name, (), 0, 0, "no output: "
                                                  + "; ".join(results[bad].problems)))
                x = np.stack([r.y_q for r in results]).astype(np.int8)
            want = trace[index].output
            for i in range(n):
                where = _first_difference(x[i], want[i])
                if where is not None:
                    return outcome(None, Mismatch(
                        i, name, where, int(x[i][where]), int(want[i][where]),
                        f"{int(np.sum(x[i] != want[i]))} of {x[i].size} differ"))
    return outcome(x.astype(np.int64), None)
