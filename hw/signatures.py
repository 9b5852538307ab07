"""Signatures shared by the accelerator's blocks, and the config check every block starts with."""

from __future__ import annotations

from amaranth.hdl import Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from golden.config import AcceleratorConfig
from golden.protocol import cfg_spec, table_spec

from .layouts import to_layout

__all__ = ["BlockComponent", "TableWriteSignature", "check_config", "layer_field_shape"]


def check_config(config) -> AcceleratorConfig:
    """``config`` itself; ``TypeError`` unless it is an :class:`AcceleratorConfig`."""
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be a golden.config.AcceleratorConfig, not {config!r}")
    return config


class BlockComponent(wiring.Component):
    """A block whose signature is built from the config alone: a subclass defines a nested
    ``Signature(config)`` (which checks the config first) and gets ``config`` and its ports."""

    Signature: type

    def __init__(self, config: AcceleratorConfig):
        signature = self.Signature(config)
        self._config = config
        super().__init__(signature)

    @property
    def config(self) -> AcceleratorConfig:
        """The accelerator configuration."""
        return self._config


def layer_field_shape(config: AcceleratorConfig, name: str) -> Shape:
    """Shape of field ``name`` of the ``cfg`` beat (the layer registers have the same)."""
    return to_layout(cfg_spec(config))[name].shape


class TableWriteSignature(wiring.Signature):
    """Writes into the channel table (one row per output channel), from the program loader.

    Members
    -------
    addr : Out(unsigned)
        Output channel ``k`` (as many bits as the table memory's address).
    data : Out(to_layout(golden.protocol.table_spec(config)))
        The row of ``k``: owner PE, slot, empty flag, bias [, requant parameters].
    en : Out(1)
        Write ``data`` at ``addr`` at this clock edge.
    """

    def __init__(self, config: AcceleratorConfig):
        check_config(config)
        super().__init__({
            "addr": Out((config.max_out_channels - 1).bit_length()),
            "data": Out(to_layout(table_spec(config))),
            "en": Out(1),
        })
