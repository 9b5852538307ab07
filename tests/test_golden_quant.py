"""Requantisation (golden.quant) against an independent exact-rational reference."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.quant import MAX_SHIFT, MULTIPLIER_BITS, quantize_multiplier, requantize


def reference_requantize(y: int, mult: int, shift: int, relu: bool) -> int:
    """round-half-up(y * mult / 2**shift), clamped to int8, then ReLU, with exact rationals."""
    value = Fraction(int(y) * int(mult), 2 ** int(shift))
    q = math.floor(value + Fraction(1, 2)) if shift else int(value)
    q = min(127, max(-128, q))
    return max(q, 0) if relu else q


def _reference_array(y, mult, shift, relu):
    """Per-channel reference for y [K, H, W] (or [N, K, H, W]) with mult, shift of length K."""
    out = np.zeros(y.shape, dtype=np.int64)
    for idx in np.ndindex(y.shape):
        k = idx[-3]
        out[idx] = reference_requantize(y[idx], mult[k], shift[k], relu)
    return out


@pytest.mark.parametrize("y, mult, shift, expected", [
    (5, 1, 1, 3),        # 2.5 -> 3 (tie up)
    (-5, 1, 1, -2),      # -2.5 -> -2 (tie towards +inf)
    (3, 1, 1, 2),        # 1.5 -> 2
    (-3, 1, 1, -1),      # -1.5 -> -1
    (-1, 1, 1, 0),       # -0.5 -> 0
    (7, 1, 2, 2),        # 1.75 -> 2
    (-7, 1, 2, -2),      # -1.75 -> -2
    (6, 1, 2, 2),        # 1.5 -> 2
    (-6, 1, 2, -1),      # -1.5 -> -1
    (127, 1, 0, 127), (128, 1, 0, 127), (-128, 1, 0, -128), (-129, 1, 0, -128),
    (10**9, 2**15 - 1, 0, 127), (-10**9, 2**15 - 1, 0, -128),
    (2**47 - 1, 2**15 - 1, MAX_SHIFT, 127), (-(2**47 - 1), 2**15 - 1, MAX_SHIFT, -128),
    (12345, 0, 3, 0),
])
def test_pinned_rounding_and_clamping(y, mult, shift, expected):
    assert reference_requantize(y, mult, shift, False) == expected
    got = requantize(np.array([[[y]]]), mult, shift)
    assert got.dtype == np.int8 and got.shape == (1, 1, 1)
    assert int(got[0, 0, 0]) == expected


@pytest.mark.parametrize("y, expected", [(-300, 0), (-1, 0), (-3, 0), (5, 3), (1000, 127)])
def test_relu_after_clamp(y, expected):
    assert int(requantize(np.array([[[y]]]), 1, 1, relu=True)[0, 0, 0]) == expected


def test_random_per_channel_against_reference():
    rng = np.random.default_rng(0)
    k = 6
    y = rng.integers(-2**40, 2**40, (k, 5, 7))
    y[:, 0] = rng.integers(-300, 300, (k, 7))         # small values: rounding matters
    y[:, 1, :2] = [-(2**47 - 1), 2**47 - 1]
    mult = rng.integers(0, 2**15, k)
    shift = np.array([0, 1, 2, 17, 33, MAX_SHIFT])
    for relu in (False, True):
        got = requantize(y, mult, shift, relu=relu)
        np.testing.assert_array_equal(got, _reference_array(y, mult, shift, relu))


def test_batched_axis_and_scalars():
    rng = np.random.default_rng(1)
    y = rng.integers(-10**6, 10**6, (2, 3, 4, 5))
    mult, shift = np.array([100, 2000, 31000]), np.array([10, 14, 20])
    np.testing.assert_array_equal(requantize(y, mult, shift),
                                  _reference_array(y, mult, shift, False))
    # Channels on another axis.
    yt = np.moveaxis(y, 1, -1)
    np.testing.assert_array_equal(np.moveaxis(requantize(yt, mult, shift, axis=-1), -1, 1),
                                  requantize(y, mult, shift))
    # Scalars apply to every channel.
    np.testing.assert_array_equal(requantize(y, 1234, 12),
                                  requantize(y, np.full(3, 1234), np.full(3, 12)))


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**47 - 1), 2**47 - 1), st.integers(0, 2**15 - 1),
       st.integers(0, MAX_SHIFT), st.booleans())
def test_property_matches_reference(y, mult, shift, relu):
    got = int(requantize(np.array([[[y]]]), mult, shift, relu=relu)[0, 0, 0])
    assert got == reference_requantize(y, mult, shift, relu)


@pytest.mark.parametrize("kwargs, message", [
    ({"mult": -1, "shift": 0}, r"^mult must lie in \[0, 2\*\*15\)$"),
    ({"mult": 2**15, "shift": 0}, r"^mult must lie in \[0, 2\*\*15\)$"),
    ({"mult": 1, "shift": -1}, r"^shift must lie in \[0, 47\]$"),
    ({"mult": 1, "shift": 48}, r"^shift must lie in \[0, 47\]$"),
])
def test_requantize_parameter_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        requantize(np.zeros((1, 1, 1), dtype=np.int64), **kwargs)


def test_requantize_refuses_huge_outputs():
    with pytest.raises(ValueError, match=r"raw outputs must lie within \+-2\*\*47"):
        requantize(np.array([[[2**47]]]), 1, 0)


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.1, 1 / 3, 2.0 ** -20, 3.999e-3, 1e-9,
                                   123.456, 2.0 ** 14, 0.7071067811865476, 2.0 ** -32])
def test_quantize_multiplier_accuracy(scale):
    mult, shift = quantize_multiplier(scale)
    assert 0 < mult < 2 ** MULTIPLIER_BITS and 0 <= shift <= MAX_SHIFT
    # A full 15-bit mantissa: relative error at most half a unit in the last place.
    assert mult >= 2 ** (MULTIPLIER_BITS - 1)
    assert abs(mult / 2 ** shift - scale) <= scale * 2.0 ** -MULTIPLIER_BITS


def test_quantize_multiplier_powers_of_two_are_exact():
    for e in range(-32, 15):
        mult, shift = quantize_multiplier(2.0 ** e)
        assert Fraction(mult, 2 ** shift) == Fraction(2) ** e


def test_quantize_multiplier_rounding_carry():
    # Just below 1: the mantissa rounds up to 2**15 and must renormalise.
    mult, shift = quantize_multiplier(1 - 2.0 ** -20)
    assert (mult, shift) == (2 ** 14, 14)


def test_quantize_then_requantize_tracks_float_scaling():
    rng = np.random.default_rng(4)
    y = rng.integers(-2**20, 2**20, (4, 8, 8))
    scales = np.array([1e-4, 3.3e-5, 7.7e-6, 2.5e-3])
    mults, shifts = zip(*(quantize_multiplier(float(s)) for s in scales), strict=True)
    q = requantize(y, np.array(mults), np.array(shifts)).astype(np.int64)
    ideal = np.clip(np.round(y * scales[:, None, None]), -128, 127)
    assert np.abs(q - ideal).max() <= 1


@pytest.mark.parametrize("scale, message", [
    (0.0, r"scale must be a positive finite number, not 0\.0"),
    (-1.0, r"scale must be a positive finite number, not -1\.0"),
    (float("nan"), r"scale must be a positive finite number, not nan"),
    (float("inf"), r"scale must be a positive finite number, not inf"),
    ("1", r"scale must be a positive finite number, not '1'"),
    (2.0 ** -34, r"is too small for a shift of at most 47"),
    (2.0 ** 15, r"is too large \(>= 2\*\*15\)"),
])
def test_quantize_multiplier_errors(scale, message):
    with pytest.raises(ValueError, match=message):
        quantize_multiplier(scale)
