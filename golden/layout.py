"""Bit layouts shared by the golden model and the RTL, with NumPy pack/unpack.

The layouts mirror ``amaranth.lib.data``: in an :class:`ArraySpec` element 0 occupies the least
significant bits; in a :class:`StructSpec` fields are laid out in declaration order from the least
significant bit. ``hw`` turns these specs into Amaranth layouts (``hw.layouts``), so a word packed
here is bit for bit what the hardware sees on a port or in a memory.

Packed words are Python ``int`` (arbitrary width); :func:`pack_array` / :func:`unpack_array`
work on whole NumPy arrays of words for bulk transfers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ArraySpec", "Field", "StructSpec", "pack_array", "unpack_array"]


def _check_fits(name: str, value: int, width: int, signed: bool) -> int:
    value = int(value)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if not lo <= value <= hi:
        kind = "signed" if signed else "unsigned"
        raise ValueError(f"{name} = {value} does not fit {kind}({width}) [{lo}, {hi}]")
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


def pack_array(spec: ArraySpec, values: np.ndarray) -> list[int]:
    """Pack rows of a [n, count] integer array into a list of n words (bulk, vectorised)."""
    values = np.asarray(values, dtype=np.int64).reshape(-1, spec.count)
    lo, hi = ((-(1 << (spec.width - 1)), (1 << (spec.width - 1)) - 1) if spec.signed
              else (0, (1 << spec.width) - 1))
    if values.size and (values.min() < lo or values.max() > hi):
        raise ValueError(f"values outside [{lo}, {hi}] for {'signed' if spec.signed else 'unsigned'}"
                         f"({spec.width})")
    raw = (values & ((1 << spec.width) - 1)).astype(object) if spec.width < 63 else [
        [int(v) & ((1 << spec.width) - 1) for v in row] for row in values.tolist()]
    raw = np.asarray(raw, dtype=object).reshape(-1, spec.count)
    words = np.zeros(raw.shape[0], dtype=object)
    for i in range(spec.count):
        words = words | (raw[:, i] << (i * spec.width))
    return [int(w) for w in words]


def unpack_array(spec: ArraySpec, words) -> np.ndarray:
    """Unpack a sequence of n words into an int64 [n, count] array (bulk)."""
    words = np.asarray([int(w) for w in words], dtype=object)
    out = np.zeros((words.size, spec.count), dtype=np.int64)
    if spec.width >= 63:        # raw fields overflow int64 arithmetic: sign-extend as Python ints
        for n, w in enumerate(words):
            out[n] = spec.unpack(w)
        return out
    mask = (1 << spec.width) - 1
    for i in range(spec.count):
        raw = np.array([(int(w) >> (i * spec.width)) & mask for w in words], dtype=np.int64)
        if spec.signed:
            raw = np.where(raw >> (spec.width - 1) & 1, raw - (1 << spec.width), raw)
        out[:, i] = raw
    return out
