"""Throughput model (golden.throughput) against hand-computed numbers."""

from __future__ import annotations

import pytest

from golden.config import AcceleratorConfig
from golden.cycles import CycleReport, layer_cycles
from golden.program import compile_layer
from golden.synthetic import synthetic_layer
from golden.throughput import REFERENCE_LAYER, layer_throughput, reference_throughput

#: One PE, 4x4 tile, 4 channels.
TINY = AcceleratorConfig(array=(1, 1), max_in_channels=4, max_out_channels=4)


def _report(cycles: int, direct: int, nonzero: int, multipliers: int, n_pe: int) -> CycleReport:
    return CycleReport(cycles=cycles, load_cycles=1, nonzero_macs=nonzero, dense_macs=nonzero,
                       direct_macs=direct, multipliers=multipliers, n_pe=n_pe,
                       utilisation=nonzero / (n_pe * cycles), skipped_macs_per_position=(),
                       nonzero_macs_per_position=())


def test_layer_throughput_definitions():
    # 1000 cycles at 250 MHz are 4 us; 2 * 5e6 operations in 4 us are 2500 GOPS.
    tp = layer_throughput(_report(1000, 5_000_000, 12_000, 20, 16), 250.0)
    assert tp.seconds == pytest.approx(4e-6, rel=1e-12)
    assert tp.gops == pytest.approx(2500.0, rel=1e-12)
    assert tp.gops_per_multiplier == pytest.approx(125.0, rel=1e-12)
    assert tp.performed_gops == pytest.approx(6.0, rel=1e-12)
    assert tp.utilisation == 12_000 / 16_000


def test_dense_one_pe_layer_by_hand():
    """C = K = 1, 4 x 4 input, padding 1, dense weights, one PE: 4 tiles of 16 entries.

    Steps (golden.cycles): load 1 + 2 + 1 = 4, compute 16 + 7 + 2 = 25, drain 1 + 4 = 5, so
    S_0 = 5, S_1..S_4 = 26 and cycles = 5 + 4 * 26 + (1 + 4 - 1) + 2 = 115. Direct MACs
    1 * 1 * 9 * 4 * 4 = 144; at 100 MHz 288 operations take 1.15 us: 0.25043... GOPS.
    """
    layer = synthetic_layer(TINY, 1, 1, 0.0)
    tp = layer_throughput(layer_cycles(compile_layer(TINY, layer, 4, 4)), 100.0)
    assert (tp.cycles, tp.direct_macs, tp.nonzero_macs, tp.multipliers) == (115, 144, 64, 1)
    assert tp.gops == pytest.approx(288 / 1.15e-6 / 1e9, rel=1e-12)
    assert tp.gops == pytest.approx(0.2504348, rel=1e-6)
    assert tp.performed_gops == pytest.approx(128 / 1.15e-6 / 1e9, rel=1e-12)
    assert tp.utilisation == pytest.approx(64 / 115, rel=1e-12)


def test_reference_throughput_caps_channels_and_rounds():
    """A 4-channel design runs the reference layer at 4 -> 4 channels; the report entry is the
    layer_throughput of that layer, rounded."""
    tp = reference_throughput(TINY, 50.0, 0.5, seed=3)
    h, w = REFERENCE_LAYER["height"], REFERENCE_LAYER["width"]
    assert tp["layer"] == f"4->4 channels, {h}x{w}, 3x3, tile 4x4"
    assert tp["direct_macs"] == 4 * 4 * 9 * h * w
    layer = synthetic_layer(TINY, 4, 4, 0.5, seed=3)
    exact = layer_throughput(layer_cycles(compile_layer(TINY, layer, h, w)), 50.0)
    assert tp["cycles"] == exact.cycles
    assert tp["nonzero_macs"] == exact.nonzero_macs == 8 * 16 * (h // 2) * (w // 2)
    assert tp["gops"] == round(exact.gops, 3)
    assert tp["gops_per_multiplier"] == round(exact.gops, 3)
    assert tp["performed_gops"] == round(exact.performed_gops, 3)


@pytest.mark.parametrize("fmax", [0, -1, float("nan"), True, "100"])
def test_layer_throughput_rejects_bad_fmax(fmax):
    with pytest.raises(ValueError, match=f"fmax_mhz must be a positive number, not {fmax!r}"):
        layer_throughput(_report(10, 1, 1, 1, 1), fmax)


@pytest.mark.parametrize("sparsity", [1.0, -0.1, "0.5"])
def test_reference_throughput_rejects_bad_sparsity(sparsity):
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\), not "
                                         + repr(sparsity)):
        reference_throughput(TINY, 100.0, sparsity)
