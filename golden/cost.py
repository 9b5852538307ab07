"""What building a configuration costs, estimated from the config alone, before elaborating.

Amaranth elaborates every memory word (the Verilog initialises each one), so elaboration time,
memory and Verilog size grow with the words of all memories and with the processing elements.
:func:`estimate_build` gives those figures (fitted to ``hw.generate`` runs of the 4x4 design:
default, ``--array 8x8`` and ``--max-channels 256``); :func:`check_buildable` refuses, with the
estimate, what exceeds the documented build limits or this machine's memory. ``hw.generate``,
``hw.synth`` and the simulators call it first, so that a design that cannot be built fails in a
second with the reason instead of ending in a MemoryError after minutes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .config import AcceleratorConfig
from .protocol import entry_spec, result_bank_shape, table_spec, v_address_bits, v_beat_spec

__all__ = ["MAX_BUILD_PES", "MAX_BUILD_WORDS", "BuildCost", "available_memory",
           "check_buildable", "estimate_build"]

#: Most processing elements a design may have to be built (a 16x16 array).
MAX_BUILD_PES = 256
#: Most memory words (all PEs' weight, V and result memories and the table) a design may have
#: to be built: about 3 minutes and 0.6 GB of elaboration (the 4x4 design with 256 channels
#: has 1.06 M).
MAX_BUILD_WORDS = 2**21

# Fitted per-unit costs (two-core machine, Python 3.11, Amaranth 0.5).
_BASE_BYTES, _PE_BYTES, _WORD_BYTES = 110e6, 1.8e6, 190.0
_PE_SECONDS, _WORD_SECONDS = 0.17, 90e-6
_PE_VERILOG, _WORD_VERILOG = 47e3, 39.0


@dataclass(frozen=True)
class BuildCost:
    """Estimated cost of elaborating one design.

    Members
    -------
    pes : int
        Processing elements.
    memory_words, memory_bits : int
        Words and bits of all memories together (exact, from the config).
    elaboration_bytes : int
        Peak memory of ``hw.generate`` (estimate).
    elaboration_seconds : float
        Wall time of ``hw.generate`` (estimate).
    verilog_bytes : int
        Size of the Verilog file (estimate).
    """

    pes: int
    memory_words: int
    memory_bits: int
    elaboration_bytes: int
    elaboration_seconds: float
    verilog_bytes: int

    def __str__(self) -> str:
        return (f"{self.pes} PEs, {self.memory_words:,} memory words "
                f"({self.memory_bits / 8e6:,.1f} MB), estimated "
                f"{self.elaboration_bytes / 1e9:,.1f} GB and "
                f"{_duration(self.elaboration_seconds)} to elaborate, "
                f"{self.verilog_bytes / 1e6:,.0f} MB of Verilog")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.0f} h"


def estimate_build(config: AcceleratorConfig) -> BuildCost:
    """The cost of elaborating ``config`` (memories exact, time and memory estimated)."""
    pes = config.n_pe
    per_pe = [(config.pe_weight_depth, entry_spec(config).size),
              (1 << v_address_bits(config), v_beat_spec(config).size),
              result_bank_shape(config)]
    words = pes * sum(depth for depth, _ in per_pe) + config.max_out_channels
    bits = (pes * sum(depth * width for depth, width in per_pe)
            + config.max_out_channels * table_spec(config).size)
    return BuildCost(
        pes=pes, memory_words=words, memory_bits=bits,
        elaboration_bytes=int(_BASE_BYTES + _PE_BYTES * pes + _WORD_BYTES * words),
        elaboration_seconds=_PE_SECONDS * pes + _WORD_SECONDS * words,
        verilog_bytes=int(_PE_VERILOG * pes + _WORD_VERILOG * words))


def available_memory() -> int | None:
    """Bytes of memory this machine has available now (None where it cannot tell)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_buildable(config: AcceleratorConfig, available: int | None = None) -> BuildCost:
    """Refuse, before any elaboration, a design above the build limits or this machine's memory.

    Parameters
    ----------
    available : int or None
        Bytes of memory to fit in; None asks the machine (:func:`available_memory`).

    Raises
    ------
    ValueError
        Naming the limit and the estimate (:class:`BuildCost`).
    """
    cost = estimate_build(config)
    if cost.pes > MAX_BUILD_PES:
        raise ValueError(f"design {config.name} has {cost.pes} PEs, more than the "
                         f"{MAX_BUILD_PES} that can be built ({cost})")
    if cost.memory_words > MAX_BUILD_WORDS:
        raise ValueError(f"design {config.name} has {cost.memory_words:,} memory words, more "
                         f"than the {MAX_BUILD_WORDS:,} that can be built ({cost}); lower "
                         f"--weight-depth, --max-channels or --array")
    available = available_memory() if available is None else available
    if available is not None and cost.elaboration_bytes > available:
        raise ValueError(f"design {config.name} needs about "
                         f"{math.ceil(cost.elaboration_bytes / 1e8) / 10:.1f} GB to elaborate, "
                         f"more than the {available / 1e9:.1f} GB this machine has available "
                         f"({cost})")
    return cost
