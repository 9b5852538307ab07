"""Compressed sparse weight encoding (golden.encoding): round trips, order and memory words."""

import numpy as np
import pytest

from golden.config import DEFAULT
from golden.encoding import decode, encode, pack_entries, unpack_entries
from golden.protocol import entry_spec


def _random_U(rng, k, c, a, sparsity):
    U = rng.integers(-127, 128, (k, c, a, a))
    U[rng.random(U.shape) < sparsity] = 0
    return U.astype(np.int8)


def _reference_entries(U):
    """(k, c, position, value) of every nonzero, by explicit loops in the documented order."""
    k_n, c_n, a, _ = U.shape
    out = []
    for k in range(k_n):
        for i in range(a):
            for j in range(a):
                for c in range(c_n):
                    if U[k, c, i, j] != 0:
                        out.append((k, c, i * a + j, int(U[k, c, i, j])))
    return out


def _entry_spec(alpha, max_in_channels, weight_width=8):
    """The entry spec of a design with tile side ``alpha`` and these limits."""
    return entry_spec(DEFAULT.replace(tile={4: "4x4", 6: "6x6"}[alpha],
                                      max_in_channels=max_in_channels, weight_width=weight_width))


SHAPES = [(1, 1, 4), (3, 5, 4), (4, 2, 6), (7, 3, 6), (2, 64, 4)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.75, 0.97, 1.0])
def test_encode_decode_round_trip(shape, sparsity):
    k, c, a = shape
    rng = np.random.default_rng(k * 1000 + c * 10 + a + int(sparsity * 100))
    U = _random_U(rng, k, c, a, sparsity)
    sw = encode(U)
    assert (sw.out_channels, sw.in_channels, sw.alpha) == (k, c, a)
    assert sw.nnz == np.count_nonzero(U)
    back = decode(sw)
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, U)
    ref = _reference_entries(U)
    kk = np.repeat(np.arange(k), sw.counts)
    got = list(zip(kk.tolist(), sw.channel.tolist(), sw.position.tolist(), sw.value.tolist(),
                   strict=True))
    assert got == ref


def test_dense_extremes_and_all_zero():
    dense = np.full((2, 3, 4, 4), -127, dtype=np.int8)
    dense[1] = 127
    sw = encode(dense)
    assert sw.nnz == dense.size and sw.counts.tolist() == [48, 48]
    np.testing.assert_array_equal(decode(sw), dense)
    empty = encode(np.zeros((3, 2, 6, 6), dtype=np.int8))
    assert empty.nnz == 0 and empty.counts.tolist() == [0, 0, 0]
    assert empty.starts.tolist() == [0, 0, 0, 0]
    assert not decode(empty).any() and decode(empty).shape == (3, 2, 6, 6)
    spec = _entry_spec(6, 2)
    assert pack_entries(empty, spec) == []


def test_runs_starts_and_position_counts():
    U = np.zeros((4, 2, 4, 4), dtype=np.int8)
    U[0, 1, 2, 3] = 5
    U[0, 0, 0, 0] = -1
    U[2, 1, 1, 1] = 7            # output channel 1 and 3 are empty
    sw = encode(U)
    assert sw.counts.tolist() == [2, 0, 1, 0]
    assert sw.starts.tolist() == [0, 2, 2, 3, 3]
    assert sw.run(0) == slice(0, 2) and sw.run(1) == slice(2, 2) and sw.run(2) == slice(2, 3)
    assert sw.channel.tolist() == [0, 1, 1]
    assert sw.position.tolist() == [0, 11, 5]
    assert sw.value.tolist() == [-1, 5, 7]
    expected = np.zeros(16, dtype=np.int64)
    expected[[0, 11, 5]] = 1
    np.testing.assert_array_equal(sw.position_counts(), expected)


@pytest.mark.parametrize("alpha, channels, weight_width, widths", [
    (4, 64, 8, (8, 4, 6, 1)), (6, 64, 8, (8, 6, 6, 1)), (4, 1, 8, (8, 4, 1, 1)),
    (4, 65, 8, (8, 4, 7, 1)), (6, 16, 4, (4, 6, 4, 1)), (4, 2, 8, (8, 4, 1, 1)),
])
def test_entry_spec_fields(alpha, channels, weight_width, widths):
    spec = _entry_spec(alpha, channels, weight_width)
    assert [f.name for f in spec.fields] == ["value", "position", "channel", "last"]
    assert tuple(f.width for f in spec.fields) == widths
    assert [f.signed for f in spec.fields] == [True, False, False, False]
    assert spec.size == sum(widths)
    # Every index fits: the largest position and channel round-trip.
    word = spec.pack({"value": -(1 << (weight_width - 1)), "position": alpha * alpha - 1,
                      "channel": channels - 1, "last": 1})
    assert spec.unpack(word) == {"value": -(1 << (weight_width - 1)),
                                 "position": alpha * alpha - 1, "channel": channels - 1,
                                 "last": 1}


@pytest.mark.parametrize("sparsity", [0.0, 0.6, 1.0])
@pytest.mark.parametrize("alpha", [4, 6])
def test_pack_entries_words(alpha, sparsity):
    rng = np.random.default_rng(alpha + int(10 * sparsity))
    k, c = 5, 9
    U = _random_U(rng, k, c, alpha, sparsity)
    U[2] = 0                                    # an empty output channel in the middle
    sw = encode(U)
    spec = _entry_spec(alpha, 16)
    words = pack_entries(sw, spec)
    assert len(words) == sw.nnz
    # Independent bit composition: value | position << 8 | channel << (8 + pbits) | last << ...
    pbits = (alpha * alpha - 1).bit_length()
    expected, ref = [], _reference_entries(U)
    for n, (kk, cc, pp, vv) in enumerate(ref):
        last = n == len(ref) - 1 or ref[n + 1][0] != kk
        expected.append((vv & 0xFF) | pp << 8 | cc << (8 + pbits) | int(last) << (8 + pbits + 4))
    assert words == expected
    entries = unpack_entries(words, spec)
    assert [(e["channel"], e["position"], e["value"]) for e in entries] == [
        (cc, pp, vv) for _, cc, pp, vv in ref]
    assert sum(e["last"] for e in entries) == np.count_nonzero(sw.counts)


def test_pack_entries_channel_subset_and_order():
    U = np.zeros((3, 2, 4, 4), dtype=np.int8)
    U[0, 0, 0, 1] = 3
    U[1, 1, 3, 3] = -4
    U[1, 0, 0, 0] = 9
    U[2, 1, 2, 2] = 1
    sw = encode(U)
    spec = _entry_spec(4, 2)
    words = pack_entries(sw, spec, channels=[2, 1])
    got = [(e["value"], e["last"]) for e in unpack_entries(words, spec)]
    assert got == [(1, 1), (9, 0), (-4, 1)]
    assert pack_entries(sw, spec, channels=[]) == []


def test_pack_entries_refuses_channel_beyond_spec():
    U = np.zeros((1, 5, 4, 4), dtype=np.int8)
    U[0, 4, 0, 0] = 1
    with pytest.raises(ValueError, match=r"channel = 4 does not fit unsigned\(2\)"):
        pack_entries(encode(U), _entry_spec(4, 4))


@pytest.mark.parametrize("shape", [(2, 3, 4), (1, 1, 4, 3), (4, 4, 4, 4, 1)])
def test_encode_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=r"U must have shape \[K, C, alpha, alpha\], not "):
        encode(np.zeros(shape, dtype=np.int8))
