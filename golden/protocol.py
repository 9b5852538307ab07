"""Bit layouts of the accelerator's stream payloads (shared by hw, sim and the cycle model).

Every payload is described here as a :mod:`golden.layout` spec; ``hw.layouts`` turns the specs
into ``amaranth.lib.data`` layouts, and the simulators pack and unpack words with the same specs.
Streams that carry the layer program (configuration, channel table, weights) are specified
next to the scheduler in :mod:`golden.program`.
"""

from __future__ import annotations

from .config import AcceleratorConfig
from .layout import Field, StructSpec
from .quant import MAX_SHIFT, MULTIPLIER_BITS

__all__ = ["output_transform_input_spec", "requant_fields", "result_spec"]


def requant_fields() -> tuple[Field, ...]:
    """Per-channel requantisation parameters (see golden.quant)."""
    return (Field("mult", MULTIPLIER_BITS), Field("shift", MAX_SHIFT.bit_length()),
            Field("relu", 1))


def output_transform_input_spec(config: AcceleratorConfig) -> StructSpec:
    """Input of the output transform: one output channel's M tile, its bias and, with the
    requant stage, its requantisation parameters."""
    fields = (Field("m", spec=config.m_spec), Field("bias", config.bias_width, signed=True))
    if config.requant:
        fields += requant_fields()
    return StructSpec(fields)


def result_spec(config: AcceleratorConfig) -> StructSpec:
    """One ``results`` beat: the raw output tile ``y`` and, with the requant stage, ``q``."""
    fields = (Field("y", spec=config.y_spec),)
    if config.requant:
        fields += (Field("q", spec=config.q_spec),)
    return StructSpec(fields)
