"""golden.passes: split layers equal the unsplit integer layer, plans fit, cycles sum."""

from __future__ import annotations

import numpy as np
import pytest

from golden.conv import direct_conv2d, winograd_conv2d_int
from golden.cycles import layer_cycles, passes_cycles
from golden.passes import (combine_outputs, compile_passes, golden_pass_outputs, pass_inputs,
                           plan_passes, reference_output, run_passes)
from golden.program import compile_layer, expected_output
from golden.quant import requantize
from golden.schedule import schedule_layer
from golden.encoding import encode
from golden.synthetic import layer_from_u, synthetic_layer
from helpers import small_config

CFG = small_config()


def _requant(rng, k, relu):
    return rng.integers(1, 1 << 15, size=k), rng.integers(12, 22, size=k), relu


@pytest.mark.parametrize("tile", ["4x4", "6x6"])
@pytest.mark.parametrize("c, k, sparsity, size", [
    (19, 13, 0.0, (7, 9)), (40, 24, 0.6, (5, 6)), (9, 17, 0.9, (3, 3)), (8, 8, 0.3, (6, 6)),
    (33, 5, 1.0, (4, 5)), (1, 30, 0.5, (2, 7))])
@pytest.mark.parametrize("requant", [None, False, True], ids=["raw", "rq", "rq-relu"])
@pytest.mark.parametrize("on_chip", [False, True], ids=["host", "stage"])
def test_split_equals_unsplit(tile, c, k, sparsity, size, requant, on_chip):
    config = CFG.replace(tile=tile, requant=on_chip)
    seed = c * 1000 + k
    layer = synthetic_layer(config, c, k, sparsity, skewed=sparsity < 0.8, seed=seed,
                            padding=1 if size[0] > 2 else 2, bias_bits=20)
    rng = np.random.default_rng(seed)
    rq = None if requant is None else _requant(rng, k, requant)
    plan = plan_passes(config, layer, rq)
    x = rng.integers(-128, 128, size=(c, *size)).astype(np.int8)
    y, q = run_passes(plan, x)
    # Independent reference: direct correlation of the float spatial kernel is not exact for
    # pruned U, so compare against the unsplit integer Winograd layer (all channels at once).
    want = winograd_conv2d_int(x, layer.U, config.AT, config.BT, layer.padding,
                               bias=layer.bias_or_zeros, r=config.r)
    assert y.dtype == np.int64 and np.array_equal(y, want)
    assert np.array_equal(reference_output(plan, x)[0], want)
    if rq is None:
        assert q is None
    else:
        assert q.dtype == np.int8 and np.array_equal(q, requantize(want, *rq))
    # Every pass fits the design and stays within its limits.
    groups_c = -(-c // config.max_in_channels)
    assert len(plan.in_groups) == groups_c
    assert plan.requant_on_chip == (rq is not None and on_chip and groups_c == 1)
    covered = np.zeros((k, c), dtype=int)
    for p in plan.passes:
        (c0, c1), (k0, k1) = p.in_range, p.out_range
        assert 0 < c1 - c0 <= config.max_in_channels and 0 < k1 - k0 <= config.max_out_channels
        covered[k0:k1, c0:c1] += 1
        assert (p.layer.bias is not None) == (c0 == 0)
    assert np.all(covered == 1)
    programs = compile_passes(plan, *size)
    for p, program, xp, yp in zip(plan.passes, programs, pass_inputs(plan, x),
                                  golden_pass_outputs(plan, x)):
        assert np.array_equal(expected_output(program, xp), yp)


def test_integer_layer_matches_direct_conv_of_dense_spatial_kernel():
    """The reference is itself the convolution: U = G g G^T of an integer g, 6x6 tile on
    4x4 needs fractions, so the 4x4 tile (integer G * 2) is checked against direct conv."""
    config = CFG.replace(requant=False)
    rng = np.random.default_rng(5)
    g = rng.integers(-3, 4, size=(11, 21, 3, 3))
    G2 = np.rint(2 * config.transform.G_float).astype(np.int64)   # F(2,3): 2G is integral
    U = np.einsum("ia,kcab,jb->kcij", G2, g, G2)                   # 4 * G g G^T
    assert np.abs(U).max() <= 127
    layer = layer_from_u(config, U, padding=1)
    x = rng.integers(-128, 128, size=(21, 6, 7)).astype(np.int8)
    y, _ = run_passes(plan_passes(config, layer), x)
    assert len(plan_passes(config, layer)) == 3 * 2
    assert np.array_equal(y, 4 * direct_conv2d(x.astype(np.int64), g, 1))


def test_layer_that_fits_is_one_pass_with_its_own_name():
    layer = synthetic_layer(CFG, 8, 8, 0.5, seed=1, name="conv1")
    plan = plan_passes(CFG, layer)
    assert len(plan) == 1 and plan.passes[0].name == "conv1"
    program = compile_passes(plan, 6, 6)[0]
    assert program.cfg_words == compile_layer(CFG, layer, 6, 6).cfg_words
    assert passes_cycles([program]).passes[0] == layer_cycles(compile_layer(CFG, layer, 6, 6))


def test_pass_names_and_order():
    layer = synthetic_layer(CFG, 20, 10, 0.5, seed=2, name="c2")
    names = [p.name for p in plan_passes(CFG, layer).passes]
    assert names == [f"c2.k{k0}-{k1}.c{c0}-{c1}" for c0, c1 in ((0, 8), (8, 16), (16, 20))
                     for k0, k1 in ((0, 8), (8, 10))]


def test_output_groups_shrink_to_fit_weight_memory():
    """A small weight memory forces groups below max_out_channels; each is the largest that
    the LPT schedule places (one more channel would not fit)."""
    config = CFG.replace(weight_depth=200)       # dense channel: 8 * 16 = 128 entries
    layer = synthetic_layer(config, 8, 24, 0.0, seed=3)
    plan = plan_passes(config, layer)
    sizes = [p.out_range[1] - p.out_range[0] for p in plan.passes]
    assert sum(sizes) == 24 and max(sizes) < config.max_out_channels
    assert sizes[0] == 4                     # 4 PEs x one 128-entry channel; 5 do not fit
    U = np.asarray(layer.U)
    for p in plan.passes:
        k0, k1 = p.out_range
        schedule_layer(encode(U[k0:k1]), config)
        if k1 < 24:
            with pytest.raises(ValueError):
                schedule_layer(encode(U[k0:k1 + 1]), config)
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=(8, 5, 5))
    assert np.array_equal(run_passes(plan, x)[0], reference_output(plan, x)[0])


def test_refused_when_one_channel_cannot_fit_a_pe():
    config = CFG.replace(weight_depth=100)
    U = np.zeros((3, 12, 4, 4), dtype=np.int64)
    U[1, :8] = 1                                  # 128 entries in input group 0..7
    U[2, 8:] = 1                                  # 64 entries in group 8..11: fits
    layer = layer_from_u(config, U, name="big")
    with pytest.raises(ValueError, match=r"layer 'big': output channel 1 has 128 weight entries "
                                         r"in input channels 0\.\.7 \(8 of at most 8 per pass\); "
                                         r"a PE holds at most pe_weight_depth = 100"):
        plan_passes(config, layer)
    U[1, :8, 0] = 0                               # 96 entries: now it fits
    plan = plan_passes(config, layer_from_u(config, U, name="big"))
    assert len(plan.in_groups) == 2


def test_cycles_of_passes_are_the_sum_of_pass_models():
    layer = synthetic_layer(CFG, 40, 24, 0.5, seed=4)
    plan = plan_passes(CFG, layer)
    programs = compile_passes(plan, 9, 7)
    model = passes_cycles(programs)
    reports = [layer_cycles(p) for p in programs]
    assert len(reports) == 5 * 3
    assert model.cycles == sum(r.cycles for r in reports)
    assert model.load_cycles == sum(1 + p.out_channels + p.sparse.nnz for p in programs)
    assert model.total_cycles == model.cycles + model.load_cycles
    assert model.exposed_load_cycles == model.load_cycles
    t = programs[0].n_tiles
    assert model.nonzero_macs == np.count_nonzero(layer.U) * t
    assert model.dense_macs == t * 24 * 40 * 16
    assert model.direct_macs == 24 * 40 * 9 * 9 * 7
    zeros = (np.asarray(layer.U).reshape(24, 40, 16) == 0).sum(axis=(0, 1)) * t
    assert model.skipped_macs_per_position == tuple(int(v) for v in zeros)


def test_combine_checks_shapes_and_on_chip_q():
    config = CFG.replace(requant=True)
    layer = synthetic_layer(config, 4, 12, 0.5, seed=6)
    rq = (np.full(12, 3000), np.full(12, 14), True)
    plan = plan_passes(config, layer, rq)
    assert plan.requant_on_chip and len(plan) == 2
    raw = golden_pass_outputs(plan, np.ones((4, 5, 5), dtype=np.int8))
    with pytest.raises(ValueError, match="give every pass.s q output"):
        combine_outputs(plan, raw)
    with pytest.raises(ValueError, match=r"output must have shape \[4, H, W\]"):
        combine_outputs(plan, [raw[0], raw[1][:3]])
    with pytest.raises(ValueError, match=r"input must have shape \[4, H, W\]"):
        run_passes(plan, np.ones((5, 5, 5), dtype=np.int8))


@pytest.mark.parametrize("on_chip", [False, True], ids=["host", "stage"])
def test_v2_layer_requantises_as_golden_network(on_chip):
    """By default a plan takes the layer's own v2 requantisation; the split layer equals
    ``golden.network.conv_op`` (one input group of 9 channels with the wide design, two with
    the 8-channel one)."""
    from golden.network import conv_op
    from golden.synthetic import synthetic_network
    weights = synthetic_network(CFG, input_shape=(9, 6, 5), widths=(19,), pool_after=(),
                                seed=8)
    layer = weights.layers[0]
    x = np.random.default_rng(8).integers(-128, 128, size=(9, 6, 5)).astype(np.int8)
    want_q, want_raw = conv_op(layer, x)
    for config in (CFG.replace(requant=on_chip), CFG.replace(requant=on_chip,
                                                             max_in_channels=16)):
        plan = plan_passes(config, layer)
        assert plan.requant is not None
        assert plan.requant_on_chip == (on_chip and config.max_in_channels == 16)
        y, q = run_passes(plan, x)
        assert np.array_equal(y, want_raw) and np.array_equal(q, want_q)
        for p in plan.passes:
            k0, k1 = p.out_range
            assert np.array_equal(p.layer.requant_mult, layer.requant_mult[k0:k1])
        assert run_passes(plan_passes(config, layer, None), x)[1] is None


def test_two_weight_banks_hide_the_loads_of_later_passes():
    """weight_banks 2 with one lane per PE: each pass's load overlaps the pass before; only
    the part longer than that pass's cycles + 2 is exposed (the first pass's all of it)."""
    config = CFG.replace(weight_banks=2, weight_lanes=CFG.n_pe)
    layer = synthetic_layer(config, 40, 24, 0.5, seed=4)
    programs = compile_passes(plan_passes(config, layer), 9, 7)
    model = passes_cycles(programs)
    reports = model.passes
    want = reports[0].load_cycles + sum(max(0, b.load_cycles - a.cycles - 2)
                                        for a, b in zip(reports, reports[1:]))
    assert model.exposed_load_cycles == want < model.load_cycles
    assert model.total_cycles == model.cycles + want
    narrow = passes_cycles(compile_passes(plan_passes(CFG, layer), 9, 7))
    assert model.cycles == narrow.cycles and model.load_cycles < narrow.load_cycles
