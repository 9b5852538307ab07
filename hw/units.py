"""The design units that can be built on their own, by name (``hw.synth --unit NAME``).

Each entry of :data:`UNITS` is a callable that takes an :class:`~golden.config.AcceleratorConfig`
and returns an :class:`amaranth.lib.wiring.Component`; :data:`UNIT_DESCRIPTIONS` says in one
line what each is, and :data:`UNIT_MULTIPLIERS` how many ``$mul`` cells its RTL asks for (the
synthesis flow checks the coarse netlist against it).
"""

from __future__ import annotations

from typing import Callable

from amaranth.lib import wiring

from golden.config import AcceleratorConfig
from hw.accelerator import Accelerator
from hw.transform import InputTransform, OutputTransform

__all__ = ["UNITS", "UNIT_DESCRIPTIONS", "UNIT_MULTIPLIERS"]

#: Unit name -> constructor from the configuration alone.
UNITS: dict[str, Callable[[AcceleratorConfig], wiring.Component]] = {
    "accelerator": Accelerator,
    "input-transform": InputTransform,
    "output-transform": OutputTransform,
}

#: Unit name -> one-line description.
UNIT_DESCRIPTIONS: dict[str, str] = {
    "accelerator": "the whole accelerator (loader, PE array, transforms, collector)",
    "input-transform": "shift-add input transform V = BT d BT^T, one patch per beat",
    "output-transform": "shift-add output transform Y = AT M AT^T + bias (and the requant stage)",
}

#: Unit name -> multipliers its RTL contains (``$mul`` cells before technology mapping).
UNIT_MULTIPLIERS: dict[str, Callable[[AcceleratorConfig], int]] = {
    "accelerator": lambda config: config.multipliers,
    "input-transform": lambda config: 0,
    # The requantise stage multiplies each of the m x m outputs by its channel's multiplier.
    "output-transform": lambda config: config.m * config.m if config.requant else 0,
}
