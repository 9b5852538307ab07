"""Every block that can be built, simulated and synthesised on its own from a configuration.

``UNITS[name](config)`` builds the component; ``python -m hw.synth --unit NAME`` synthesises it.
The classes are imported when a unit is built, so listing the units (``--help``, argument
errors) costs no RTL imports.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from amaranth.lib import wiring

from golden.config import AcceleratorConfig

__all__ = ["UNITS", "Unit"]


@dataclass(frozen=True)
class Unit:
    """One synthesisable block.

    Members
    -------
    component : str
        ``"module:Class"`` of the :class:`amaranth.lib.wiring.Component`; its constructor takes
        the configuration alone.
    description : str
        One line for listings and ``--help``.
    multipliers : callable(config) -> int
        ``$mul`` cells its coarse netlist must have.
    """

    component: str
    description: str
    multipliers: Callable[[AcceleratorConfig], int] = lambda config: 0

    def __call__(self, config: AcceleratorConfig) -> wiring.Component:
        """The component for ``config``."""
        module, name = self.component.split(":")
        return getattr(importlib.import_module(module), name)(config)


#: The units by ``--unit`` name, the whole accelerator first.
UNITS: dict[str, Unit] = {
    "accelerator": Unit("hw.accelerator:Accelerator",
                        "the whole accelerator (every block below, wired)",
                        lambda config: config.multipliers),
    "program-loader": Unit("hw.loader:ProgramLoader",
                           "cfg/table/weights loader with the refusal checks"),
    "step-sequencer": Unit("hw.sequencer:StepSequencer",
                           "lock-step load/compute/drain sequencing of a layer's tiles"),
    "v-feeder": Unit("hw.feeder:VFeeder",
                     "patch window into the input transform and the V chain head"),
    "input-transform": Unit("hw.transform:InputTransform",
                            "V = BT d BT^T, one patch per cycle, shifts and adds"),
    "pe": Unit("hw.pe:ProcessingElement",
               "zero-skip processing element with its weight, V and result memories",
               lambda config: 1),
    "result-bank": Unit("hw.result_bank:ResultBank",
                        "a PE's double-buffered result bank and mask, read by the collector"),
    "collector": Unit("hw.collector:Collector",
                      "channel table and result bank reader into the output transform"),
    "tap-shift": Unit("hw.tap_shift:TapShift",
                      "left shift of every Winograd position by its tap shift (needs "
                      "--max-tap-shift >= 1)"),
    # The requant stage multiplies each of the m x m outputs by its channel's multiplier.
    "output-transform": Unit("hw.transform:OutputTransform",
                             "Y = AT M AT^T + bias [+ requant], one tile per cycle",
                             lambda config: config.m * config.m if config.requant else 0),
}
