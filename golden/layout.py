"""Bit layouts shared by the golden model and the RTL, with NumPy pack/unpack.

The layouts mirror ``amaranth.lib.data``: in an :class:`ArraySpec` element 0 occupies the least
significant bits; in a :class:`StructSpec` fields are laid out in declaration order from the least
significant bit. ``hw`` turns these specs into Amaranth layouts (``hw.layouts``), so a word packed
here is bit for bit what the hardware sees on a port or in a memory. The specs of the
accelerator's ports and memories are in :mod:`golden.protocol`.

Packed words are Python ``int`` (arbitrary width); :func:`pack_array` / :func:`unpack_array`
are the one vectorised packer, for bulk transfers of many words of one spec.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .widths import check_range

__all__ = ["ArraySpec", "Field", "StructSpec", "pack_array", "unpack_array"]


def _check_fits(name: str, value: int, width: int, signed: bool) -> int:
    value = int(value)
    check_range(name, value, width, signed)
    return value & ((1 << width) - 1)


def _sign_extend(raw: int, width: int, signed: bool) -> int:
    if signed and raw >> (width - 1) & 1:
        return raw - (1 << width)
    return raw


@dataclass(frozen=True)
class Field:
    """One field of a :class:`StructSpec`: a name, a width and signedness, or a nested spec."""

    name: str
    width: int = 0
    signed: bool = False
    spec: "ArraySpec | StructSpec | None" = None

    @property
    def size(self) -> int:
        """Width in bits."""
        return self.spec.size if self.spec is not None else self.width


@dataclass(frozen=True)
class ArraySpec:
    """``count`` elements of ``width`` bits, element 0 in the least significant bits."""

    width: int
    count: int
    signed: bool = True

    @property
    def size(self) -> int:
        """Width in bits."""
        return self.width * self.count

    def pack(self, values) -> int:
        """Pack a sequence of ``count`` integers into one word."""
        values = np.asarray(values).ravel()
        if values.size != self.count:
            raise ValueError(f"expected {self.count} elements, got {values.size}")
        word = 0
        for i, v in enumerate(values.tolist()):
            word |= _check_fits(f"element {i}", v, self.width, self.signed) << (i * self.width)
        return word

    def unpack(self, word: int) -> np.ndarray:
        """Unpack one word into an int64 array of ``count`` elements."""
        mask = (1 << self.width) - 1
        return np.array([_sign_extend((int(word) >> (i * self.width)) & mask, self.width,
                                      self.signed) for i in range(self.count)], dtype=np.int64)


@dataclass(frozen=True)
class StructSpec:
    """Fields in declaration order from the least significant bit (as ``StructLayout``)."""

    fields: tuple[Field, ...]

    @property
    def size(self) -> int:
        """Width in bits."""
        return sum(f.size for f in self.fields)

    def offset(self, name: str) -> int:
        """Bit offset of field ``name``."""
        pos = 0
        for f in self.fields:
            if f.name == name:
                return pos
            pos += f.size
        raise KeyError(name)

    def pack(self, values: dict) -> int:
        """Pack a dict of field values (nested specs take their own value types)."""
        missing = [f.name for f in self.fields if f.name not in values]
        extra = sorted(set(values) - {f.name for f in self.fields})
        if missing or extra:
            raise ValueError(f"fields missing: {missing}, unknown: {extra}")
        word, pos = 0, 0
        for f in self.fields:
            if f.spec is not None:
                word |= f.spec.pack(values[f.name]) << pos
            else:
                word |= _check_fits(f.name, values[f.name], f.width, f.signed) << pos
            pos += f.size
        return word

    def unpack(self, word: int) -> dict:
        """Unpack one word into a dict of field values."""
        out, pos = {}, 0
        for f in self.fields:
            raw = (int(word) >> pos) & ((1 << f.size) - 1)
            out[f.name] = (f.spec.unpack(raw) if f.spec is not None
                           else _sign_extend(raw, f.width, f.signed))
            pos += f.size
        return out


def _pack_column(name: str, values, width: int, signed: bool) -> np.ndarray:
    """Range-check one integer column and return its raw ``width``-bit fields (object ints)."""
    values = np.asarray(values, dtype=np.int64)
    check_range(name, values, width, signed)
    if width < 63:
        return (values & ((1 << width) - 1)).astype(object)
    return np.array([v & ((1 << width) - 1) for v in values.tolist()], dtype=object)


def _pack_words(spec: ArraySpec | StructSpec, values) -> np.ndarray:
    """Pack ``values`` of ``spec`` into a 1-D object array of words (see :func:`pack_array`)."""
    if isinstance(spec, ArraySpec):
        rows = np.asarray(values, dtype=np.int64).reshape(-1, spec.count)
        columns = [(_pack_column(f"element {i}", rows[:, i], spec.width, spec.signed),
                    spec.width) for i in range(spec.count)]
    else:
        missing = [f.name for f in spec.fields if f.name not in values]
        extra = sorted(set(values) - {f.name for f in spec.fields})
        if missing or extra:
            raise ValueError(f"fields missing: {missing}, unknown: {extra}")
        columns = [(_pack_words(f.spec, values[f.name]) if f.spec is not None
                    else _pack_column(f.name, values[f.name], f.width, f.signed), f.size)
                   for f in spec.fields]
        lengths = sorted({len(column) for column, _ in columns})
        if len(lengths) > 1:
            raise ValueError(f"field columns must have equal lengths, not {lengths}")
    words = np.zeros(len(columns[0][0]) if columns else 0, dtype=object)
    pos = 0
    for raw, size in columns:
        words = words | (raw << pos)
        pos += size
    return words


def pack_array(spec: ArraySpec | StructSpec, values) -> list[int]:
    """Pack n values of ``spec`` into a list of n words (bulk, vectorised).

    Parameters
    ----------
    spec : ArraySpec or StructSpec
    values : array_like or dict
        For an :class:`ArraySpec`, an integer array [n, count] (one row per word). For a
        :class:`StructSpec`, a dict with one column of n values per field; a nested spec's
        column is what :func:`pack_array` takes for that spec.

    Raises
    ------
    ValueError
        Naming the element or field and the first value that does not fit it.
    """
    return [int(w) for w in _pack_words(spec, values)]


def unpack_array(spec: ArraySpec | StructSpec, words):
    """Unpack a sequence of n words (bulk): for an :class:`ArraySpec` an int64 [n, count] array,
    for a :class:`StructSpec` a dict of per-field columns (nested specs unpacked likewise)."""
    words = [int(w) for w in words]
    if isinstance(spec, StructSpec):
        out, pos = {}, 0
        for f in spec.fields:
            mask = (1 << f.size) - 1
            raw = [(w >> pos) & mask for w in words]
            out[f.name] = (unpack_array(f.spec, raw) if f.spec is not None
                           else np.array([_sign_extend(r, f.width, f.signed) for r in raw],
                                         dtype=np.int64))
            pos += f.size
        return out
    out = np.zeros((len(words), spec.count), dtype=np.int64)
    if spec.width >= 63:        # raw fields overflow int64 arithmetic: sign-extend as Python ints
        for n, w in enumerate(words):
            out[n] = spec.unpack(w)
        return out
    mask = (1 << spec.width) - 1
    for i in range(spec.count):
        raw = np.array([(w >> (i * spec.width)) & mask for w in words], dtype=np.int64)
        if spec.signed:
            raw = np.where(raw >> (spec.width - 1) & 1, raw - (1 << spec.width), raw)
        out[:, i] = raw
    return out
