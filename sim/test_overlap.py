"""Two weight banks: consecutive layer programs in one run, without a reset between them, the
next layer's weights loading while the previous layer computes.

Every layer's outputs are compared bit-exactly with golden; the cycles from the first patch to
the last result equal ``golden.cycles.sequence_cycles`` exactly when no stream stalls (a hidden
load costs nothing, an exposed one exactly its exposed part) and are at least that with random
gaps and backpressure. The same design also runs single layers as ``golden.cycles`` models.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.cycles import LAYER_SWITCH, exposed_load_cycles, layer_cycles, sequence_cycles
from golden.program import compile_layer
from golden.synthetic import synthetic_layer
from sim.accel import LayerRun, accelerator_depths, run_layers, run_sequence
from sim.testing import design_cache, small_config

#: Two banks and one lane per PE of the 2x2 array: one build for every test here.
CONFIG = small_config("4x4", weight_banks=2, weight_lanes=4)

#: Harness memories with room for the programs of three layers.
DEPTHS = tuple(sorted({**accelerator_depths(CONFIG), "cfg": 4,
                       "table": 4 * CONFIG.max_out_channels}.items()))

pytestmark = pytest.mark.simulators("verilator")


def _program(c, k, sparsity, h, w, seed, name):
    layer = synthetic_layer(CONFIG, c, k, sparsity, skewed=True, seed=seed, name=name)
    return compile_layer(CONFIG, layer, h, w)


def _input(rng, program):
    g = program.grid
    return rng.integers(-128, 128, size=(program.in_channels, g.in_h, g.in_w))


def _sequences():
    """(name, programs): loads hidden behind compute, a load longer than the layer before it
    (partly exposed), and one layer twice (the banks swap back)."""
    big = _program(8, 8, 0.3, 8, 8, 1, "big")
    small = _program(3, 5, 0.7, 6, 5, 2, "small")
    tiny = _program(2, 2, 0.8, 2, 2, 3, "tiny")
    dense = _program(8, 8, 0.0, 4, 4, 4, "dense")
    return {"hidden": [big, small, big], "exposed": [tiny, dense, small]}


SEQUENCES = _sequences()


def test_model_of_the_sequences():
    """The cases mean what their names say (golden's model alone)."""
    for name, programs in SEQUENCES.items():
        reports = [layer_cycles(p) for p in programs]
        exposed = [exposed_load_cycles(CONFIG, a.cycles, b.load_cycles)
                   for a, b in zip(reports, reports[1:])]
        assert (max(exposed) > 0) == (name == "exposed"), (name, exposed)
        assert sequence_cycles(programs) == (sum(r.cycles for r in reports) + sum(exposed)
                                             + (LAYER_SWITCH - 1) * (len(programs) - 1))
    with pytest.raises(ValueError, match="weight_banks 2, not 1"):
        sequence_cycles([compile_layer(small_config("4x4"), programs[0].layer, 4, 4)])


@pytest.mark.parametrize("stalled", [False, True], ids=["unstalled", "stalled"])
@pytest.mark.parametrize("case", SEQUENCES, ids=list(SEQUENCES))
def test_sequence_in_one_run(simulator, case, stalled):
    programs = SEQUENCES[case]
    rng = np.random.default_rng(len(case))
    inputs = [_input(rng, p) for p in programs]
    design = design_cache("accelerator", (CONFIG, DEPTHS), simulator)
    kwargs = {"gaps": 0.3, "backpressure": 0.4, "seed": 5} if stalled else {}
    outputs, cycles, problems = run_sequence(design, programs, inputs, **kwargs)
    assert not problems, problems
    assert all(y is not None for y in outputs)
    model = sequence_cycles(programs)
    assert cycles == model if not stalled else cycles >= model


def test_single_layers_as_modelled(simulator):
    """One layer at a time (reset between) on the two-bank design: golden.cycles exactly."""
    rng = np.random.default_rng(9)
    design = design_cache("accelerator", (CONFIG, DEPTHS), simulator)
    runs = []
    for program in SEQUENCES["exposed"]:
        x = _input(rng, program)
        runs += [LayerRun(program, x), LayerRun(program, x, gaps=0.3, backpressure=0.4)]
    outcomes = run_layers(design, runs)
    assert all(o.passed for o in outcomes), [o.problems for o in outcomes]
