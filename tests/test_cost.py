"""golden.cost: memory words are counted exactly from the config; designs above the build
limits or the machine's memory are refused with the estimate; sim refuses huge harnesses."""

import pytest

from golden.config import DEFAULT, SMALL
from golden.cost import (MAX_BUILD_PES, MAX_BUILD_WORDS, check_buildable, estimate_build)


def test_memory_words_of_the_default_design():
    cost = estimate_build(DEFAULT)
    # 16 PEs x (4096 weights + 128 V words + 8 result words) + the 64-word table.
    assert cost.memory_words == 16 * (4096 + 128 + 8) + 64
    assert cost.pes == 16
    # hw.generate measured 151 MB, 6.7 s and 3.4 MB of Verilog for it.
    assert 100e6 < cost.elaboration_bytes < 300e6
    assert 3 < cost.elaboration_seconds < 15
    assert 2e6 < cost.verilog_bytes < 5e6


def test_documented_presets_are_buildable():
    for config in (DEFAULT, SMALL, DEFAULT.replace(tile="6x6"), DEFAULT.replace(requant=True),
                   DEFAULT.replace(array=(16, 16)),
                   DEFAULT.replace(max_in_channels=256, max_out_channels=256)):
        check_buildable(config, available=8 * 2**30)


@pytest.mark.parametrize("changes, message", [
    ({"max_in_channels": 4096, "max_out_channels": 4096},
     r"has 268,578,816 memory words, more than the 2,097,152 that can be built \(16 PEs, "
     r"268,578,816 memory words .* estimated 51\.\d GB and 7 h to elaborate"),
    ({"array": (64, 64)}, r"has 4096 PEs, more than the 256 that can be built"),
    ({"weight_depth": 10**9}, r"16,000,002,240 memory words, more than the 2,097,152"),
])
def test_refusals_name_the_limit_and_the_estimate(changes, message):
    with pytest.raises(ValueError, match=message):
        check_buildable(DEFAULT.replace(**changes))


def test_machine_memory_limit():
    with pytest.raises(ValueError, match=r"needs about 0\.2 GB to elaborate, more than the "
                                         r"0\.1 GB this machine has available"):
        check_buildable(DEFAULT, available=10**8)
    assert MAX_BUILD_PES == 256 and MAX_BUILD_WORDS == 2**21


def test_simulation_refuses_a_huge_harness():
    from sim.accel import MAX_HARNESS_WORDS, accelerator_depths, check_simulable
    check_simulable(DEFAULT, accelerator_depths(DEFAULT, 2**16, 2**16))
    with pytest.raises(ValueError, match=r"needs a 8,388,608-word harness patches memory, "
                                         r"more than the 4,194,304"):
        check_simulable(DEFAULT, accelerator_depths(DEFAULT, 2**23, 2**10))
    assert MAX_HARNESS_WORDS == 2**22
