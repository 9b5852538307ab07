"""The step sequencer on its own: which tasks each step starts, their halves, the step lengths
(against golden.cycles.step_lengths and against random task durations), and finishing only
after the layer's last result beat."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.cycles import (COLLECTOR_DEPTH, COMPUTE_SYNC, PE_PIPELINE_DEPTH,
                           input_transform_latency, step_lengths)
from hw.sequencer import StepSequencer

TASKS = ("load", "compute", "drain")
BUSY = {"load": "loading", "compute": "computing", "drain": "draining"}


def run_sequencer(config, n_tiles, out_channels, duration, result_cycles):
    """Start one layer; a task started at cycle t is busy until cycle t + duration(task, step)
    (exclusive), as golden.cycles counts a task of that length. ``result`` pulses at the given
    cycles (from the start cycle). Returns the started tasks per START cycle with their halves,
    the cycle ``finished`` pulsed and the busy cycles."""
    dut = StepSequencer(config)
    log = {"starts": [], "finished": [], "busy": 0}

    async def bench(ctx):
        ctx.set(dut.n_tiles, n_tiles)
        ctx.set(dut.out_channels, out_channels)
        ctx.set(dut.start, 1)
        ends = {task: 0 for task in TASKS}
        steps = 0
        for cycle in range(600):
            for task in TASKS:
                ctx.set(getattr(dut, BUSY[task]), int(cycle < ends[task]))
            ctx.set(dut.result, int(cycle in result_cycles))
            if cycle == 1:
                ctx.set(dut.start, 0)
            started = {task: ctx.get(getattr(dut, f"{task}_half")) for task in TASKS
                       if ctx.get(getattr(dut, task))}
            if started:
                log["starts"].append((cycle, started))
                for task in started:
                    ends[task] = cycle + duration(task, steps)
                steps += 1
            if ctx.get(dut.finished):
                log["finished"].append(cycle)
            if log["finished"] and cycle > log["finished"][0] + 10:
                break
            log["busy"] += ctx.get(dut.busy)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return log


def _expected_starts(n_tiles, lengths):
    """(cycle, {task: half}) of every step: step s starts sum(S_0..S_s-1) after step 0, which
    starts the cycle after ``start``."""
    cycle, out = 1, []
    for s, length in enumerate(lengths):
        tasks = {}
        if s < n_tiles:
            tasks["load"] = s % 2
        if 1 <= s <= n_tiles:
            tasks["compute"] = (s - 1) % 2
        if s >= 2:
            tasks["drain"] = s % 2
        out.append((cycle, tasks))
        cycle += int(length)
    return out, cycle


@pytest.mark.parametrize("n_tiles,c,k,makespan", [(1, 3, 2, 5), (4, 8, 3, 0), (5, 2, 8, 20)])
def test_sequencer_steps_match_golden_cycles(small_config, n_tiles, c, k, makespan):
    """Task durations as the RTL blocks have them: the steps are golden.cycles.step_lengths."""
    config = small_config
    terms = {"load": c + input_transform_latency(config) + config.n_pe,
             "compute": (makespan + PE_PIPELINE_DEPTH if makespan else 1) + COMPUTE_SYNC,
             "drain": k + COLLECTOR_DEPTH}
    lengths = step_lengths(config, c, k, n_tiles, makespan)
    want, flush = _expected_starts(n_tiles, lengths)
    results = set(range(5, 5 + n_tiles * k))              # early results: FLUSH waits for none
    log = run_sequencer(config, n_tiles, k, lambda task, step: terms[task], results)
    assert log["starts"] == want
    assert log["finished"] == [flush]
    assert log["busy"] == flush                            # cycles 1 .. flush


@pytest.mark.parametrize("seed", range(4))
def test_sequencer_random_durations_and_late_results(small_config, seed):
    """Random task lengths per step: each step lasts 1 + its longest task; FLUSH waits for the
    T * K-th result beat, counted over the out_channels of each tile."""
    config = small_config
    rng = np.random.default_rng(seed)
    n_tiles, k = int(rng.integers(1, 6)), int(rng.integers(1, 9))
    table = {(task, s): int(rng.integers(1, 30)) for task in TASKS for s in range(n_tiles + 2)}
    want, flush = _expected_starts(n_tiles, [
        1 + max(table[task, s] for task in tasks) for s, (_, tasks) in enumerate(
            _expected_starts(n_tiles, [1] * (n_tiles + 2))[0])])
    late = flush + int(rng.integers(1, 20))
    results = set(int(r) for r in rng.choice(np.arange(2, late), n_tiles * k - 1, replace=False))
    results.add(late)
    log = run_sequencer(config, n_tiles, k, lambda task, step: table[task, step], results)
    assert log["starts"] == want
    assert log["finished"] == [late + 1]


def test_sequencer_never_finishes_short_of_results(small_config):
    """One result beat missing: the layer does not finish."""
    config = small_config
    log = run_sequencer(config, 2, 3, lambda task, step: 4, set(range(10, 15)))
    assert log["finished"] == [] and log["busy"] == 599
