"""golden.schedule: LPT assignment of output channels to PEs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.config import DEFAULT, AcceleratorConfig
from golden.encoding import encode
from golden.schedule import result_slots, schedule_layer
from golden.synthetic import synthetic_layer
from helpers import sparse_with_counts

SMALL = AcceleratorConfig(array=(2, 3), max_in_channels=4, max_out_channels=13)


def _check_invariants(sched, sparse, config):
    counts = sparse.counts
    assert sched.owner.shape == sched.slot.shape == (sparse.out_channels,)
    np.testing.assert_array_equal(sched.owner < 0, counts == 0)
    np.testing.assert_array_equal(sched.slot < 0, counts == 0)
    seen = []
    for pe, channels in enumerate(sched.pe_channels):
        assert len(channels) <= result_slots(config)
        for slot, k in enumerate(channels):
            assert sched.owner[k] == pe and sched.slot[k] == slot
        assert sched.pe_entries[pe] == counts[list(channels)].sum()
        assert sched.pe_entries[pe] <= config.pe_weight_depth
        seen += channels
    assert sorted(seen) == np.flatnonzero(counts).tolist()
    assert sched.entries == sparse.nnz
    assert sched.makespan == (sched.pe_entries.max() if sched.pe_entries.size else 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 64), min_size=1, max_size=13))
def test_schedule_is_a_valid_assignment_within_the_lpt_bound(counts):
    sparse = sparse_with_counts(counts)
    sched = schedule_layer(sparse, SMALL)
    _check_invariants(sched, sparse, SMALL)
    total, n_pe = sum(counts), SMALL.n_pe
    # Lower bounds of any schedule, and Graham's list-scheduling upper bound.
    assert sched.makespan >= max(max(counts), -(-total // n_pe))
    if len(counts) <= n_pe:      # one channel per PE at most: the optimum is the largest channel
        assert sched.makespan == max(counts)
    assert sched.makespan <= total / n_pe + max(counts)


def test_schedule_balances_position_skewed_default_layer():
    layer = synthetic_layer(DEFAULT, 64, 64, 0.7, seed=3)
    sparse = encode(layer.U)
    sched = schedule_layer(sparse, DEFAULT)
    _check_invariants(sched, sparse, DEFAULT)
    assert sched.balance >= 0.97
    # Deterministic: the same weights give the same schedule.
    again = schedule_layer(sparse, DEFAULT)
    np.testing.assert_array_equal(sched.owner, again.owner)
    assert sched.pe_channels == again.pe_channels


def test_schedule_all_zero_layer():
    sparse = sparse_with_counts([0, 0, 0])
    sched = schedule_layer(sparse, SMALL)
    assert sched.makespan == 0 and sched.balance == 1.0
    assert (sched.owner == -1).all()


def test_schedule_refuses_too_many_output_channels():
    with pytest.raises(ValueError, match="layer 'conv9' has 14 output channels; the "
                                         "accelerator's max_out_channels is 13"):
        schedule_layer(sparse_with_counts([1] * 14), SMALL, "conv9")


def test_schedule_refuses_channel_larger_than_weight_memory():
    config = SMALL.replace(weight_depth=10)
    with pytest.raises(ValueError, match="output channel 1 has 11 weight entries; a PE holds "
                                         "at most pe_weight_depth = 10"):
        schedule_layer(sparse_with_counts([3, 11]), config, "c")


def test_schedule_refuses_when_memories_overflow():
    config = SMALL.replace(weight_depth=10)        # 6 PEs x 10 entries < 7 x 9
    with pytest.raises(ValueError, match="does not fit any PE"):
        schedule_layer(sparse_with_counts([9] * 7), config, "c")


def test_schedule_type_errors():
    with pytest.raises(TypeError, match="sparse must be a SparseWeights"):
        schedule_layer(np.zeros((1, 1, 4, 4)), SMALL)
    with pytest.raises(TypeError, match="config must be an AcceleratorConfig"):
        schedule_layer(sparse_with_counts([1]), "4x4")
