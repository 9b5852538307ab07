"""Split channels on the RTL (Verilator): layers whose schedule cuts output channels over two
PEs, run back to back on a two-bank design and one at a time.

Every layer's outputs are compared bit-exactly with golden; the cycles equal
``golden.cycles.sequence_cycles`` (a sequence) and ``golden.cycles.layer_cycles`` (a single
layer, checked by ``sim.accel.run_layers``) when no stream stalls, and are at least that with
random gaps and backpressure.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.cycles import sequence_cycles
from golden.program import compile_layer
from golden.synthetic import synthetic_layer
from sim.accel import LayerRun, accelerator_depths, run_layers, run_sequence
from sim.testing import design_cache, small_config

#: Split channels, two banks and one lane per PE of the 2x2 array (8 channels: 2 slots per PE).
CONFIG = small_config("4x4", weight_banks=2, weight_lanes=4, split_channels=True)

#: Harness memories with room for the programs of three layers.
DEPTHS = tuple(sorted({**accelerator_depths(CONFIG), "cfg": 4,
                       "table": 4 * CONFIG.max_out_channels}.items()))

pytestmark = pytest.mark.simulators("verilator")


def _program(c, k, sparsity, h, w, seed):
    layer = synthetic_layer(CONFIG, c, k, sparsity, skewed=True, seed=seed, name=f"l{seed}")
    return compile_layer(CONFIG, layer, h, w)


#: 1 -> 6 (a first layer), 8 -> 3 (fewer channels than PEs), 4 -> 6: every one splits.
PROGRAMS = [_program(1, 6, 0.3, 6, 6, 1), _program(8, 3, 0.6, 5, 4, 2),
            _program(4, 6, 0.5, 4, 5, 3)]


def _inputs(seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, size=(p.in_channels, p.grid.in_h, p.grid.in_w))
            for p in PROGRAMS]


def test_every_layer_splits_a_channel():
    for program in PROGRAMS:
        assert program.schedule.split.any(), program.layer.name
        lpt = compile_layer(CONFIG.replace(split_channels=False), program.layer,
                            program.grid.in_h, program.grid.in_w)
        assert program.schedule.makespan < lpt.schedule.makespan


@pytest.mark.parametrize("stalled", [False, True], ids=["unstalled", "stalled"])
def test_split_sequence_in_one_run(simulator, stalled):
    design = design_cache("accelerator", (CONFIG, DEPTHS), simulator)
    kwargs = {"gaps": 0.3, "backpressure": 0.4, "seed": 6} if stalled else {}
    outputs, cycles, problems = run_sequence(design, PROGRAMS, _inputs(1), **kwargs)
    assert not problems, problems
    assert all(y is not None for y in outputs)
    model = sequence_cycles(PROGRAMS)
    assert cycles == model if not stalled else cycles >= model


def test_split_single_layers_as_modelled(simulator):
    design = design_cache("accelerator", (CONFIG, DEPTHS), simulator)
    runs = []
    for program, x in zip(PROGRAMS, _inputs(2)):
        runs += [LayerRun(program, x), LayerRun(program, x, gaps=0.3, backpressure=0.4)]
    outcomes = run_layers(design, runs)
    assert all(o.passed for o in outcomes), [o.problems for o in outcomes]
