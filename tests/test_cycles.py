"""golden.cycles: the exact cycle model (checked against the RTL in test_hw_accelerator) and the
utilisation requirements of the default design."""

import json

import numpy as np
import pytest

from golden.config import DEFAULT, PRESETS
from golden.cycles import (COLLECTOR_DEPTH, COMPUTE_SYNC, PE_PIPELINE_DEPTH, collector_depth,
                           drain_tail_cycles, input_transform_latency, layer_cycles,
                           output_transform_latency, pe_pipeline_depth, step_lengths)
from golden.program import compile_layer
from golden.synthetic import layer_from_u, synthetic_layer
from helpers import small_config

CFG = small_config()


def test_single_tile_by_hand():
    """One tile: step 0 loads, step 1 computes, step 2 drains."""
    u = np.zeros((3, 5, 4, 4), dtype=np.int64)
    u[0, :, :2] = 1                       # channel 0: 40 entries, channel 1 empty
    u[2, 0, 0, 0] = -4                    # channel 2: 1 entry
    program = compile_layer(CFG, layer_from_u(CFG, u, padding=0), 4, 4)
    assert program.n_tiles == 1 and program.schedule.makespan == 40
    load = 1 + 5 + input_transform_latency(CFG) + CFG.n_pe
    compute = 1 + 40 + PE_PIPELINE_DEPTH + COMPUTE_SYNC
    drain_and_flush = 3 + COLLECTOR_DEPTH - 1 + output_transform_latency(CFG)
    report = layer_cycles(program)
    assert report.cycles == load + compute + drain_and_flush
    assert report.load_cycles == 1 + 3 + 41
    assert report.nonzero_macs == 41 and report.dense_macs == 3 * 5 * 16
    assert report.direct_macs == 3 * 5 * 9 * 2 * 2
    assert report.utilisation == pytest.approx(41 / (4 * report.cycles))


def test_steps_overlap_load_compute_drain():
    """Middle steps last as long as their slowest unit; an empty layer costs one cycle to
    compute."""
    steps = step_lengths(CFG, in_channels=8, out_channels=3, n_tiles=4, makespan=100)
    load = 8 + input_transform_latency(CFG) + CFG.n_pe
    assert steps.tolist() == ([1 + load] + [1 + 100 + PE_PIPELINE_DEPTH + COMPUTE_SYNC] * 4
                              + [1 + 3 + COLLECTOR_DEPTH])
    empty = step_lengths(CFG, in_channels=8, out_channels=8, n_tiles=2, makespan=0)
    assert empty.tolist() == [1 + load, 1 + load] + [1 + 8 + COLLECTOR_DEPTH] * 2


def test_unpipelined_designs_have_one_pe_and_one_collector_cycle_less():
    plain = CFG.replace(pipelined=False)
    assert (pe_pipeline_depth(CFG), collector_depth(CFG)) == (PE_PIPELINE_DEPTH, COLLECTOR_DEPTH)
    assert (pe_pipeline_depth(plain), collector_depth(plain)) == (PE_PIPELINE_DEPTH - 1,
                                                                  COLLECTOR_DEPTH - 1)
    steps = step_lengths(CFG, in_channels=8, out_channels=3, n_tiles=4, makespan=100)
    fewer = step_lengths(plain, in_channels=8, out_channels=3, n_tiles=4, makespan=100)
    assert (steps - fewer).tolist() == [0, 1, 1, 1, 1, 1]


@pytest.mark.parametrize("tile, drain, beats", [("4x4", 1, 16), ("4x4", 4, 4), ("6x6", 9, 4),
                                                ("6x6", 36, 1)])
def test_narrow_drains_take_beats_per_channel(tile, drain, beats):
    """drain_positions P: K * alpha**2 / P drain beats a tile; the output transform's term
    and accumulator stages take as long as its row and column stages."""
    wide = small_config(tile)
    narrow = wide.replace(drain_positions=drain)
    assert narrow.drain_beats == beats
    # Narrow banks are read in two cycles (block RAM and its output register) when pipelined.
    depth = COLLECTOR_DEPTH + (beats > 1)
    assert collector_depth(narrow) == depth
    assert collector_depth(narrow.replace(pipelined=False)) == COLLECTOR_DEPTH - 1
    steps = step_lengths(narrow, in_channels=8, out_channels=3, n_tiles=4, makespan=10)
    assert steps[-1] == 1 + 3 * beats + depth
    assert steps.tolist() == np.maximum(
        step_lengths(wide, in_channels=8, out_channels=3, n_tiles=4, makespan=10),
        np.where(np.arange(6) >= 2, 1 + 3 * beats + depth, 0)).tolist()
    transform = 2
    assert output_transform_latency(narrow) == transform
    assert output_transform_latency(narrow.replace(requant=True)) == transform + 3
    u = np.zeros((3, 2, wide.alpha, wide.alpha), dtype=np.int64)
    u[0, 0, 0, 0] = 1
    program = compile_layer(narrow, layer_from_u(narrow, u, padding=0), wide.alpha,
                            wide.alpha)
    assert drain_tail_cycles(narrow, 3) == 3 * beats + depth - 1 + transform
    assert layer_cycles(program).cycles == int(step_lengths(
        narrow, 2, 3, 1, program.schedule.makespan)[:2].sum()) + drain_tail_cycles(narrow, 3)


def test_report_counters_are_consistent_and_json():
    layer = synthetic_layer(CFG, 6, 7, 0.6, seed=2)
    program = compile_layer(CFG, layer, 9, 7)
    report = layer_cycles(program)
    nz, skipped = (np.array(report.nonzero_macs_per_position),
                   np.array(report.skipped_macs_per_position))
    assert nz.sum() == report.nonzero_macs
    np.testing.assert_array_equal(nz + skipped, program.n_tiles * 6 * 7)
    assert report.nonzero_macs + skipped.sum() == report.dense_macs
    assert report.multipliers == CFG.n_pe
    assert json.loads(json.dumps(report.as_dict())) == report.as_dict()
    assert layer_cycles(compile_layer(CFG.replace(requant=True), layer, 9, 7,
                                      requant=(1, 0, False))).multipliers == 4 + 4


def _utilisation(config, sparsity, skewed, size=16, seed=0):
    layer = synthetic_layer(config, 64, 64, sparsity, skewed=skewed, seed=seed)
    return layer_cycles(compile_layer(config, layer, size, size)).utilisation


@pytest.mark.parametrize("tile", ["4x4", "6x6"])
@pytest.mark.parametrize("sparsity", [0.6, 0.7, 0.75])
def test_utilisation_position_skewed_at_least_90_percent(tile, sparsity):
    config = DEFAULT if tile == "4x4" else PRESETS["default-6x6"]
    assert _utilisation(config, sparsity, skewed=True) >= 0.90


@pytest.mark.parametrize("tile", ["4x4", "6x6"])
def test_utilisation_dense_at_least_95_percent(tile):
    config = DEFAULT if tile == "4x4" else PRESETS["default-6x6"]
    assert _utilisation(config, 0.0, skewed=False) >= 0.95


def test_skewed_layer_is_skewed():
    """The test weights really are position-skewed: centre positions kept, corners pruned."""
    layer = synthetic_layer(DEFAULT, 64, 64, 0.7, seed=0)
    kept = (layer.U != 0).mean(axis=(0, 1))
    assert kept[1:3, 1:3].mean() > 1.5 * kept[[0, 0, 3, 3], [0, 3, 0, 3]].mean()
