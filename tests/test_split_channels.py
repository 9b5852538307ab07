"""Split channels (``split_channels``): the schedule cuts an output channel over two
consecutive PEs and the collector adds the partial sums. Schedule invariants, the program's
entries, and whole layers in Amaranth's simulator: bit-exact under random gaps and
backpressure, cycles equal to ``golden.cycles`` unstalled, refusal of a bad split row."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.config import DEFAULT, AcceleratorConfig
from golden.cycles import layer_cycles
from golden.encoding import encode
from golden.layout import unpack_array
from golden.program import (compile_layer, expected_output, expected_output_q, unpack_results,
                            unpack_results_q)
from golden.protocol import cfg_spec, table_spec, weight_spec
from golden.schedule import result_slots, schedule_layer
from golden.synthetic import synthetic_layer
from helpers import sparse_with_counts
from test_hw_accelerator import _input, _layer, _refusal_sim, _requant, run_layers

#: Four PEs, room for two channels each: splits happen for K up to 8.
CFG = AcceleratorConfig(tile="4x4", array=(2, 2), max_in_channels=4, max_out_channels=8,
                        split_channels=True)
CFG_6 = AcceleratorConfig(tile="6x6", array=(1, 3), max_in_channels=3, max_out_channels=5,
                          split_channels=True, requant=True)
CFG_BANKS = CFG.replace(weight_banks=2, weight_lanes=2)


def test_config_field_name_and_message():
    assert CFG.name == "sparse_winograd_4x4_a2x2_c4_k8_sc"
    assert DEFAULT.replace(split_channels=True).name == "sparse_winograd_4x4_sc"
    assert AcceleratorConfig.from_dict(CFG.to_dict()) == CFG
    legacy = {k: v for k, v in DEFAULT.to_dict().items() if k != "split_channels"}
    assert AcceleratorConfig.from_dict(legacy).split_channels is False
    with pytest.raises(ValueError, match=r"^split_channels must be a bool, not 1$"):
        DEFAULT.replace(split_channels=1)


def _check_split_schedule(sched, sparse, config):
    counts = sparse.counts
    n_pe, slots = config.n_pe, result_slots(config)
    covered = np.zeros(counts.size, dtype=np.int64)
    for pe in range(n_pe):
        runs = sched.pe_runs(pe)
        assert len(runs) == len(sched.pe_channels[pe]) <= slots
        assert sum(stop - first for _, first, stop in runs) == sched.pe_entries[pe]
        assert sched.pe_entries[pe] <= config.pe_weight_depth
        for slot, (k, first, stop) in enumerate(runs):
            assert 0 <= first < stop <= counts[k]
            covered[k] += stop - first
            if sched.split[k] and sched.owner[k] != pe:
                # The second part: slot 0 of the owner's next PE, the channel's last entries.
                assert slot == 0 and sched.owner[k] == pe - 1 and stop == counts[k]
                assert stop - first == sched.split[k]
            else:
                assert sched.owner[k] == pe and sched.slot[k] == slot and first == 0
                if sched.split[k]:      # the first part is its owner's last channel
                    assert slot == len(runs) - 1 and stop == counts[k] - sched.split[k]
    np.testing.assert_array_equal(covered, counts)
    np.testing.assert_array_equal(sched.owner < 0, counts == 0)
    assert sched.entries == sparse.nnz


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 64), min_size=1, max_size=8))
def test_split_schedule_is_valid_and_never_worse_than_lpt(counts):
    sparse = sparse_with_counts(counts)
    sched = schedule_layer(sparse, CFG)
    _check_split_schedule(sched, sparse, CFG)
    lpt = schedule_layer(sparse, CFG.replace(split_channels=False))
    assert sched.makespan <= lpt.makespan
    total = sum(counts)
    # No schedule with at most two parts per channel beats these bounds.
    assert sched.makespan >= max(-(-total // CFG.n_pe), -(-max(counts) // 2))
    if sched.makespan == lpt.makespan:
        assert not sched.split.any()        # no split unless it shortens the makespan


def test_split_schedule_balances_few_channels_and_large_layers():
    """16 channels on 16 PEs: LPT's makespan is the largest channel, the split one the mean
    rounded up; on a 64 -> 64 layer the split schedule is valid and no longer than LPT's."""
    config = DEFAULT.replace(split_channels=True)
    sparse = encode(synthetic_layer(config, 16, 16, 0.7, skewed=True, seed=4).U)
    sched = schedule_layer(sparse, config)
    _check_split_schedule(sched, sparse, config)
    lpt = schedule_layer(sparse, DEFAULT)
    assert lpt.makespan == sparse.counts.max()
    assert sched.split.any() and sched.makespan == -(-sparse.nnz // 16)
    for seed in range(3):
        big = encode(synthetic_layer(config, 64, 64, 0.7, skewed=True, seed=seed).U)
        split = schedule_layer(big, config)
        _check_split_schedule(split, big, config)
        assert split.makespan <= schedule_layer(big, DEFAULT).makespan


def test_program_entries_are_the_channels_split():
    """The weights stream holds every nonzero weight once, in its PE's part order, each part
    ending with last; the table marks exactly the split channels."""
    layer = synthetic_layer(CFG, 4, 3, 0.5, skewed=True, seed=2)
    program = compile_layer(CFG, layer, 4, 4)
    sched, sparse = program.schedule, program.sparse
    assert sched.split.any()
    table = unpack_array(table_spec(CFG), program.table_words)
    np.testing.assert_array_equal(table["split"], sched.split > 0)
    beats = unpack_array(weight_spec(CFG), program.weight_words)
    for pe in range(CFG.n_pe):
        mine = beats["pe"] == pe
        got = {name: beats["entry"][name][mine] for name in ("value", "position", "channel")}
        want = {name: [] for name in got}
        lasts = []
        for k, first, stop in sched.pe_runs(pe):
            idx = np.arange(sparse.starts[k] + first, sparse.starts[k] + stop)
            for name in got:
                want[name] += getattr(sparse, name)[idx].tolist()
            lasts += [0] * (idx.size - 1) + [1]
        for name in got:
            assert got[name].tolist() == want[name]
        assert beats["entry"]["last"][mine].tolist() == lasts


CASES = [
    # config, C, K, H, W, density
    (CFG, 3, 2, 5, 3, 0.6),
    (CFG, 4, 5, 4, 5, 0.9),
    (CFG, 1, 6, 3, 4, 1.0),
    (CFG_6, 3, 2, 5, 5, 0.7),
    (CFG_6, 2, 5, 4, 6, 1.0),
    (CFG_BANKS, 4, 3, 4, 4, 0.8),
]


def _program(case):
    config, c, k, h, w, density = case
    seed = c * 100 + k * 10 + h
    layer = _layer(config, c, k, density, seed)
    rq = _requant(k, seed) if config.requant else None
    program = compile_layer(config, layer, h, w, requant=rq)
    assert program.schedule.split.any(), "the case must split a channel"
    return program, _input(config, c, h, w, seed)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].name}-C{c[1]}K{c[2]}")
def test_split_layers_bit_exact_with_gaps_and_backpressure(case):
    program, x = _program(case)
    config = case[0]
    (words,), _, state = run_layers(config, [(program, x)], gap=0.3, stall=0.4, seed=7)
    np.testing.assert_array_equal(unpack_results(program, words), expected_output(program, x))
    if config.requant:
        np.testing.assert_array_equal(unpack_results_q(program, words),
                                      expected_output_q(program, x))
    assert state["busy"] == 0 and state["error"] == 0


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].name}-C{c[1]}K{c[2]}")
def test_split_layers_cycles_match_model_when_unstalled(case):
    program, x = _program(case)
    (words,), log, _ = run_layers(case[0], [(program, x)])
    e, report = log.edges, layer_cycles(program)
    assert e["results"][-1] - e["patches"][0] + 1 == report.cycles
    assert max(e["table"] + e["weights"]) - e["cfg"][0] + 1 == report.load_cycles
    np.testing.assert_array_equal(unpack_results(program, words), expected_output(program, x))


def test_extreme_values_in_both_parts():
    """Weights +-127 against -128 inputs at C = max: both partial sums near the accumulator's
    range ends, their sum exact."""
    config = CFG
    layer = _layer(config, 4, 3, 1.0, 5, extreme=True)
    program = compile_layer(config, layer, 3, 4)
    assert program.schedule.split.any()
    x = _input(config, 4, 3, 4, 0, extreme=True)
    (words,), _, _ = run_layers(config, [(program, x)], gap=0.1, stall=0.5, seed=3)
    np.testing.assert_array_equal(unpack_results(program, words), expected_output(program, x))


def test_refuses_a_split_of_the_last_pe_and_a_miscounted_split():
    config = CFG
    cfg_word = cfg_spec(config).pack({"in_channels": 1, "out_channels": 1, "n_tiles": 1,
                                      "n_entries": 2})
    tspec, wspec = table_spec(config), weight_spec(config)

    def weight(pe, last=1):
        return wspec.pack({"pe": pe, "entry": {"value": 3, "position": 0, "channel": 0,
                                               "last": last}})
    row = {"owner": 0, "slot": 0, "empty": 0, "bias": 0, "split": 1}
    good = _refusal_sim(config, cfg_word, [tspec.pack(row)], [weight(0), weight(1)])
    assert good["error"] == 0
    cases = [
        ([tspec.pack({**row, "owner": config.n_pe - 1})], [weight(3), weight(3)]),
        ([tspec.pack(row)], [weight(0), weight(2)]),        # second part on the wrong PE
        ([tspec.pack({**row, "split": 0})], [weight(0), weight(1)]),    # part not counted
    ]
    for table_words, weight_words in cases:
        seen = _refusal_sim(config, cfg_word, table_words, weight_words)
        assert seen["error"] == 1 and seen["busy"] == 0, (table_words, weight_words)
        assert seen["consumed"]["patches"] == 0
