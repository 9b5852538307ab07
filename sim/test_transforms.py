"""The Winograd transform units alone, in both simulators: bit-exact against golden's matrices,
with random valid gaps and backpressure; latency and one-tile-per-cycle throughput when no
stream stalls."""

from __future__ import annotations

import numpy as np
import pytest

from golden.layout import pack_array, unpack_array
from golden.protocol import output_transform_input_spec, patch_spec, result_spec, v_spec
from golden.quant import MAX_SHIFT, MULTIPLIER_BITS, requantize
from golden.widths import signed_range
from sim.testing import design_cache
from sim.runner import run_job
from sim.streams import InOrderScoreboard, stream_run
from sim.units import unit_configs

TILES = ("4x4", "6x6")
N_RANDOM = 200


def _units(tile, simulator):
    return design_cache("transforms", tile, simulator)


def _runs(harness, inputs, expects, seed):
    """An unstalled run (exact timing) and one with random gaps and backpressure."""
    return [stream_run(harness, inputs, expects, seed=seed),
            stream_run(harness, inputs, expects, gaps=0.35, backpressure=0.45, seed=seed + 1)]


def _check_protocol(results):
    for result in results:
        assert not result["unstable"], f"offered beats changed: {result['unstable']}"


def _check_timing(result, prefix, n, latency):
    i, o = result["streams"][f"{prefix}_i"], result["streams"][f"{prefix}_o"]
    assert i["count"] == n and o["count"] == n
    assert o["first"] - i["first"] == latency, "latency differs from the unit's `latency`"
    assert o["last"] - o["first"] == n - 1, "the unit does not take one tile per cycle"


def _extreme_patches(config) -> np.ndarray:
    """All -128, all 127, and for every V position the patches maximising and minimising it."""
    lo, hi = signed_range(config.data_width)
    a = config.alpha
    out = [np.full((a, a), lo), np.full((a, a), hi)]
    for i in range(a):
        for j in range(a):
            coeff = np.outer(config.BT[i], config.BT[j])
            out.append(np.where(coeff > 0, hi, lo))
            out.append(np.where(coeff > 0, lo, hi))
    return np.array(out, dtype=np.int64)


def _m_bounds(config) -> np.ndarray:
    """|M| bound per Winograd position: max_in_channels x the largest |U * V| there."""
    lo, hi = signed_range(config.data_width)
    w = signed_range(config.weight_width)[1]
    a = config.alpha
    bound = np.zeros((a, a), dtype=np.int64)
    for i in range(a):
        for j in range(a):
            c = np.outer(config.BT[i], config.BT[j])
            v_max = max(int(np.where(c > 0, c * hi, c * lo).sum()),
                        -int(np.where(c > 0, c * lo, c * hi).sum()))
            bound[i, j] = config.max_in_channels * w * v_max
    return bound


def _m_tiles(config, rng, n) -> np.ndarray:
    """Random M tiles within the reachable range, plus all-extreme ones."""
    bound = _m_bounds(config)
    tiles = [rng.integers(-bound, bound + 1) for _ in range(n)]
    tiles += [bound, -bound]
    for i in range(config.m):
        for j in range(config.m):
            sign = np.sign(np.outer(config.AT[i], config.AT[j]))
            tiles += [sign * bound, -sign * bound]
    return np.array(tiles, dtype=np.int64)


def _biases(config, rng, n) -> np.ndarray:
    lo, hi = signed_range(config.bias_width)
    b = rng.integers(lo, hi + 1, size=n, dtype=np.int64)
    b[:4] = [lo, hi, 0, -1]
    return b


@pytest.mark.parametrize("tile", TILES)
def test_input_transform(simulator, tile):
    config = unit_configs(tile)["plain"]
    design, latency = _units(tile, simulator)
    rng = np.random.default_rng(11)
    lo, hi = signed_range(config.data_width)
    d = np.concatenate([_extreme_patches(config),
                        rng.integers(lo, hi + 1, size=(N_RANDOM, config.alpha, config.alpha))])
    words = pack_array(patch_spec(config), d.reshape(len(d), -1))
    expected = config.BT @ d @ config.BT.T
    results = run_job(design, _runs(design.harness, {"it_i": words}, {"it_o": len(words)}, 1),
                      name="input_transform")
    _check_protocol(results)
    _check_timing(results[0], "it", len(words), latency["it"])
    for result in results:
        got = unpack_array(v_spec(config), [int(w, 16) for w in result["sinks"]["it_o"]])
        board = InOrderScoreboard("V", describe=lambda i: f"patch {i} {d[i].tolist()}")
        board.compare(got.reshape(-1, config.alpha, config.alpha), expected)
        assert board.passed, board.problems


def _output_transform_case(config, rng, requant: bool):
    m = _m_tiles(config, rng, N_RANDOM)
    n = len(m)
    bias = _biases(config, rng, n)
    y = config.AT @ m @ config.AT.T + bias[:, None, None]
    spec = output_transform_input_spec(config)
    beats = []
    q = None
    if requant:
        mult = rng.integers(0, 1 << MULTIPLIER_BITS, size=n)
        shift = rng.integers(0, MAX_SHIFT + 1, size=n)
        relu = rng.integers(0, 2, size=n)
        mult[:3], shift[:3] = [(1 << MULTIPLIER_BITS) - 1, 1, 0], [0, MAX_SHIFT, 0]
        q = np.array([requantize(y[i], int(mult[i]), int(shift[i]), bool(relu[i]))
                      for i in range(n)], dtype=np.int64)
    for i in range(n):
        fields = {"m": m[i].ravel(), "bias": int(bias[i])}
        if requant:
            fields.update(mult=int(mult[i]), shift=int(shift[i]), relu=int(relu[i]))
        beats.append(spec.pack(fields))
    return beats, y, q


@pytest.mark.parametrize("requant", [False, True], ids=["plain", "requant"])
@pytest.mark.parametrize("tile", TILES)
def test_output_transform(simulator, tile, requant):
    config = unit_configs(tile)["requant" if requant else "plain"]
    prefix = "oq" if requant else "ot"
    design, latency = _units(tile, simulator)
    rng = np.random.default_rng(22 + requant)
    beats, y, q = _output_transform_case(config, rng, requant)
    out_spec = result_spec(config)
    results = run_job(design, _runs(design.harness, {f"{prefix}_i": beats},
                                    {f"{prefix}_o": len(beats)}, 3),
                      name="output_transform")
    _check_protocol(results)
    _check_timing(results[0], prefix, len(beats), latency[prefix])
    for result in results:
        words = [out_spec.unpack(int(w, 16)) for w in result["sinks"][f"{prefix}_o"]]
        mm = config.m
        board = InOrderScoreboard("Y", describe=lambda i: f"tile {i}")
        board.compare([w["y"].reshape(mm, mm) for w in words], y)
        if requant:
            board.compare([w["q"].reshape(mm, mm) for w in words], q)
        assert board.passed, board.problems
