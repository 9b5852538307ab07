"""The transform units on their own, side by side in one build per tile.

:class:`TransformUnits` places ``hw.transform.InputTransform(config)``,
``hw.transform.OutputTransform(config)`` and an ``OutputTransform`` of the same tile with the
requant stage next to each other, each with its own streams (``it_*``, ``ot_*``, ``oq_*``), so
that one simulator build covers all three units of a tile. Nothing connects them: each is
tested alone against golden.
"""

from __future__ import annotations

import functools

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring


from .harness import StreamHarness
from .runner import BuiltDesign, build_harnessed
from .testing import small_config

__all__ = ["UNIT_DEPTH", "TransformUnits", "build_transform_units", "unit_configs"]

#: Harness words per transform stream.
UNIT_DEPTH = 4096


def unit_configs(tile: str) -> dict:
    """The configurations the units are built for: ``plain`` and ``requant``."""
    base = small_config(tile)
    return {"plain": base, "requant": base.replace(requant=True)}


class TransformUnits(wiring.Component):
    """Input transform, output transform and requantising output transform of one tile.

    Parameters
    ----------
    tile : str
        "4x4" or "6x6".

    Members
    -------
    it_i, it_o : streams of ``InputTransform``
    ot_i, ot_o : streams of ``OutputTransform`` (no requant stage)
    oq_i, oq_o : streams of ``OutputTransform`` with the requant stage
    """

    def __init__(self, tile: str):
        from hw.transform import InputTransform, OutputTransform
        configs = unit_configs(tile)
        self._tile = tile
        self._units = {"it": InputTransform(configs["plain"]),
                       "ot": OutputTransform(configs["plain"]),
                       "oq": OutputTransform(configs["requant"])}
        members = {}
        for prefix, unit in self._units.items():
            # The units' own members (In/Out stream signatures) re-exposed under new names.
            members[f"{prefix}_i"] = unit.signature.members["i"]
            members[f"{prefix}_o"] = unit.signature.members["o"]
        super().__init__(members)

    @property
    def tile(self) -> str:
        """The tile of all three units."""
        return self._tile

    @property
    def latencies(self) -> dict:
        """Pipeline latency of each unit, by stream prefix."""
        return {prefix: unit.latency for prefix, unit in self._units.items()}

    def elaborate(self, platform):
        m = Module()
        names = {"it": "input_transform", "ot": "output_transform",
                 "oq": "output_transform_requant"}
        for prefix, unit in self._units.items():
            m.submodules[names[prefix]] = unit
            wiring.connect(m, wiring.flipped(getattr(self, f"{prefix}_i")), unit.i)
            wiring.connect(m, unit.o, wiring.flipped(getattr(self, f"{prefix}_o")))
        return m


@functools.cache
def _units_verilog(tile: str) -> tuple:
    top = TransformUnits(tile)
    name = f"transform_units_{tile}"
    return top, name, verilog.convert(top, name=name, emit_src=False)


def build_transform_units(tile: str, simulator: str = "verilator") -> tuple:
    """Compile :class:`TransformUnits` for ``tile``; returns (design, latencies)."""
    top, name, text = _units_verilog(tile)
    latencies = top.latencies
    harness = StreamHarness(name, top.signature,
                            depths={n: UNIT_DEPTH for n in top.signature.members})
    design: BuiltDesign = build_harnessed(f"units-{tile}", text, name, harness, simulator)
    return design, latencies
