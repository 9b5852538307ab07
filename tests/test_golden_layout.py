"""golden.layout pack/unpack round trips, and bit-for-bit agreement with amaranth.lib.data."""

import numpy as np
import pytest
from amaranth.lib import data

from golden.config import DEFAULT, SMALL
from golden.layout import ArraySpec, Field, StructSpec, pack_array, unpack_array
from golden.protocol import (entry_spec, m_spec, output_transform_input_spec, patch_spec,
                             result_spec, v_spec, y_spec)
from hw.layouts import to_layout


def _random_values(rng, width, signed, shape):
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    # Half extremes, half uniform: both ends of the range are always exercised.
    values = rng.integers(lo, hi, shape, endpoint=True, dtype=np.int64)
    ends = rng.choice(np.array([lo, hi], dtype=np.int64), shape)
    return np.where(rng.random(shape) < 0.5, ends, values)


NESTED = StructSpec((
    Field("flag", 1),
    Field("tile", spec=ArraySpec(5, 3, signed=True)),
    Field("bias", 9, signed=True),
    Field("inner", spec=StructSpec((Field("u", 4), Field("s", 3, signed=True)))),
    Field("count", 7),
))


def _random_struct_values(rng, spec: StructSpec) -> dict:
    out = {}
    for f in spec.fields:
        if isinstance(f.spec, StructSpec):
            out[f.name] = _random_struct_values(rng, f.spec)
        elif isinstance(f.spec, ArraySpec):
            out[f.name] = _random_values(rng, f.spec.width, f.spec.signed, f.spec.count)
        else:
            out[f.name] = int(_random_values(rng, f.width, f.signed, ()))
    return out


def _assert_same(got, want):
    if isinstance(want, dict):
        assert set(got) == set(want)
        for k in want:
            _assert_same(got[k], want[k])
    else:
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _amaranth_fields(const, spec):
    """Read every field of an amaranth ``data.Const`` as plain Python values."""
    if isinstance(spec, ArraySpec):
        return [int(const[i]) for i in range(spec.count)]
    return {f.name: (_amaranth_fields(const[f.name], f.spec) if f.spec is not None
                     else int(const[f.name])) for f in spec.fields}


@pytest.mark.parametrize("width, count, signed", [
    (1, 1, False), (1, 5, True), (8, 16, True), (8, 16, False), (10, 16, True), (33, 4, True),
    (36, 16, True), (62, 3, True), (63, 2, True), (64, 2, True), (63, 3, False),
])
def test_array_round_trip(width, count, signed):
    spec = ArraySpec(width, count, signed)
    assert spec.size == width * count
    rng = np.random.default_rng(width * 100 + count)
    rows = _random_values(rng, width, signed, (12, count))
    words = pack_array(spec, rows)
    assert words == [spec.pack(row) for row in rows]
    assert all(0 <= w < 1 << spec.size for w in words)
    np.testing.assert_array_equal(unpack_array(spec, words), rows)
    for row, word in zip(rows, words, strict=True):
        np.testing.assert_array_equal(spec.unpack(word), row)


def test_array_element_zero_is_least_significant():
    spec = ArraySpec(4, 3, signed=True)
    assert spec.pack([1, 0, 0]) == 0x001
    assert spec.pack([0, 0, -1]) == 0xF00
    assert spec.pack([-8, 7, 2]) == 0x278


def test_array_all_zero_and_all_max():
    spec = ArraySpec(8, 16, signed=True)
    assert spec.pack(np.zeros(16, dtype=int)) == 0
    assert spec.pack(np.full(16, -1)) == (1 << 128) - 1
    assert pack_array(spec, np.full((2, 16), 127)) == [int("7f" * 16, 16)] * 2


def test_array_errors():
    spec = ArraySpec(8, 4, signed=True)
    with pytest.raises(ValueError, match=r"^element 2 = 128 does not fit signed\(8\) "
                                         r"\[-128, 127\]$"):
        spec.pack([0, 1, 128, 0])
    with pytest.raises(ValueError, match=r"^expected 4 elements, got 3$"):
        spec.pack([1, 2, 3])
    # The bulk packer refuses with the same message, naming the first value that does not fit.
    with pytest.raises(ValueError, match=r"^element 1 = -1 does not fit unsigned\(4\) "
                                         r"\[0, 15\]$"):
        pack_array(ArraySpec(4, 2, signed=False), [[3, 2], [3, -1]])
    with pytest.raises(ValueError, match=r"^element 3 = -129 does not fit signed\(8\) "
                                         r"\[-128, 127\]$"):
        pack_array(spec, [[0, 0, 0, 127], [0, 0, 0, -129], [0, 0, 0, 300]])


def test_struct_round_trip_and_offsets():
    assert NESTED.size == 1 + 15 + 9 + 7 + 7
    assert [NESTED.offset(n) for n in ("flag", "tile", "bias", "inner", "count")] == [
        0, 1, 16, 25, 32]
    rng = np.random.default_rng(5)
    for _ in range(50):
        values = _random_struct_values(rng, NESTED)
        word = NESTED.pack(values)
        assert 0 <= word < 1 << NESTED.size
        _assert_same(NESTED.unpack(word), values)
    with pytest.raises(KeyError):
        NESTED.offset("nope")


def _columns(rows: list[dict], spec: StructSpec) -> dict:
    """Per-word field values (as ``StructSpec.pack`` takes them) as columns (as ``pack_array``
    takes them)."""
    return {f.name: (_columns([r[f.name] for r in rows], f.spec)
                     if isinstance(f.spec, StructSpec) else np.array([r[f.name] for r in rows]))
            for f in spec.fields}


@pytest.mark.parametrize("n", [0, 1, 37])
def test_struct_bulk_pack_equals_word_by_word(n):
    rng = np.random.default_rng(n)
    rows = [_random_struct_values(rng, NESTED) for _ in range(n)]
    words = pack_array(NESTED, _columns(rows, NESTED))
    assert words == [NESTED.pack(r) for r in rows]
    got = unpack_array(NESTED, words)
    for i, row in enumerate(rows):
        _assert_same({"flag": got["flag"][i], "tile": got["tile"][i], "bias": got["bias"][i],
                      "inner": {"u": got["inner"]["u"][i], "s": got["inner"]["s"][i]},
                      "count": got["count"][i]}, row)


def test_struct_bulk_errors():
    spec = StructSpec((Field("a", 3), Field("b", 2, signed=True)))
    with pytest.raises(ValueError, match=r"^fields missing: \['b'\], unknown: \['c'\]$"):
        pack_array(spec, {"a": [1], "c": [0]})
    with pytest.raises(ValueError, match=r"^b = 2 does not fit signed\(2\) \[-2, 1\]$"):
        pack_array(spec, {"a": [1, 2], "b": [0, 2]})
    with pytest.raises(ValueError, match=r"^field columns must have equal lengths, not \[1, 2\]$"):
        pack_array(spec, {"a": [1, 2], "b": [0]})


def test_struct_errors():
    spec = StructSpec((Field("a", 3), Field("b", 2, signed=True)))
    with pytest.raises(ValueError, match=r"^fields missing: \['b'\], unknown: \['c'\]$"):
        spec.pack({"a": 1, "c": 0})
    with pytest.raises(ValueError, match=r"^b = 2 does not fit signed\(2\) \[-2, 1\]$"):
        spec.pack({"a": 1, "b": 2})
    with pytest.raises(ValueError, match=r"^a = -1 does not fit unsigned\(3\) \[0, 7\]$"):
        spec.pack({"a": -1, "b": 0})


SPECS = {
    "nested": NESTED,
    "patch": patch_spec(DEFAULT),
    "v-6x6": v_spec(DEFAULT.replace(tile="6x6")),
    "m": m_spec(DEFAULT),
    "y-6x6": y_spec(DEFAULT.replace(tile="6x6")),
    "entry": entry_spec(DEFAULT),
    "entry-small": entry_spec(SMALL),
    "ot-input-requant": output_transform_input_spec(DEFAULT.replace(requant=True)),
    "result-requant-6x6": result_spec(DEFAULT.replace(tile="6x6", requant=True)),
    "result": result_spec(SMALL),
}


def _random_spec_values(rng, spec):
    if isinstance(spec, ArraySpec):
        return _random_values(rng, spec.width, spec.signed, spec.count)
    return _random_struct_values(rng, spec)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_agrees_with_amaranth_const(name):
    """golden's pack is bit for bit amaranth's Const of the layout hw.layouts builds."""
    spec = SPECS[name]
    layout = to_layout(spec)
    assert layout.size == spec.size
    rng = np.random.default_rng(len(name))
    for _ in range(10):
        values = _random_spec_values(rng, spec)
        word = spec.pack(values)
        init = values.tolist() if isinstance(spec, ArraySpec) else _to_init(values, spec)
        assert layout.const(init).as_bits() == word
        _assert_same(_amaranth_fields(data.Const(layout, word), spec), values)


def _to_init(values, spec):
    """Values as amaranth ``Layout.const`` accepts them (lists for arrays)."""
    if isinstance(spec, ArraySpec):
        return [int(v) for v in values]
    return {f.name: (_to_init(values[f.name], f.spec) if f.spec is not None
                     else int(values[f.name])) for f in spec.fields}


def test_to_layout_rejects_other_objects():
    with pytest.raises(TypeError, match=r"spec must be an ArraySpec or StructSpec, not 3"):
        to_layout(3)
