"""Amaranth layouts built from golden's layout specs (the single source of every bit layout)."""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from golden.layout import ArraySpec, Field, StructSpec

__all__ = ["to_layout"]


def _field_shape(field: Field):
    if field.spec is not None:
        return to_layout(field.spec)
    return signed(field.width) if field.signed else unsigned(field.width)


def to_layout(spec: ArraySpec | StructSpec) -> data.Layout:
    """The ``lib.data`` layout of ``spec``: ``ArrayLayout`` (element 0 in the least significant
    bits) or ``StructLayout`` (fields from the least significant bit, in declaration order)."""
    if isinstance(spec, ArraySpec):
        shape = signed(spec.width) if spec.signed else unsigned(spec.width)
        return data.ArrayLayout(shape, spec.count)
    if isinstance(spec, StructSpec):
        return data.StructLayout({f.name: _field_shape(f) for f in spec.fields})
    raise TypeError(f"spec must be an ArraySpec or StructSpec, not {spec!r}")
