"""A FuseSoC CAPI2 core for the generated accelerator: ``python -m hw.generate --fusesoc``.

The core names the Verilog and the JSON manifest :func:`hw.generate.generate` writes next to
it, the top level, and a ``lint`` target that runs Verilator's lint-only mode with the waivers of
:data:`sim.tools.VERILATOR_WAIVERS` (the one place they live). The VLNV is
``sparse-winograd:accel:<design name>:<package version>``, the design name being
:attr:`golden.config.AcceleratorConfig.name`. The text is deterministic.

Use it from another FuseSoC project with ``fusesoc library add`` on the output folder (or
``--cores-root``), then ``fusesoc core list`` and ``fusesoc run --target lint <VLNV>``.
"""

from __future__ import annotations

import os
from importlib import metadata

from golden.config import AcceleratorConfig

__all__ = ["CORE_VENDOR", "core_name", "core_text", "write_core"]

#: Vendor and library of the VLNV.
CORE_VENDOR = ("sparse-winograd", "accel")


def _version() -> str:
    try:
        return metadata.version("sparse-winograd-accel")
    except metadata.PackageNotFoundError:   # run from a source tree that is not installed
        return "0"


def core_name(config: AcceleratorConfig) -> str:
    """The core's VLNV, e.g. ``sparse-winograd:accel:sparse_winograd_4x4:0.1.0``."""
    return ":".join((*CORE_VENDOR, config.name, _version()))


def core_text(config: AcceleratorConfig) -> str:
    """The CAPI2 ``.core`` file for the design of ``config`` (files named as generate writes)."""
    from sim.tools import VERILATOR_WAIVERS

    name = config.name
    rows, cols = config.array
    description = (f"Sparse-Winograd CNN accelerator: tile {config.tile}, array {rows}x{cols} "
                   f"({config.multipliers} multipliers), channels up to "
                   f"{config.max_in_channels} in, {config.max_out_channels} out")
    options = ", ".join(VERILATOR_WAIVERS)
    return f"""CAPI=2:
# Written by python -m hw.generate --fusesoc; regenerate it rather than edit it.
name: "{core_name(config)}"
description: "{description}"

filesets:
  rtl:
    files:
      - {name}.v
    file_type: verilogSource
  manifest:
    files:
      - {name}.json
    file_type: user

targets:
  default:
    filesets: [rtl, manifest]
    toplevel: {name}
  lint:
    description: "Verilator lint-only, with the waivers Amaranth's Verilog needs"
    filesets: [rtl]
    toplevel: {name}
    flow: lint
    flow_options:
      tool: verilator
      verilator_options: [{options}]
"""


def write_core(config: AcceleratorConfig, out_dir: str | os.PathLike) -> str:
    """Write ``<name>.core`` into ``out_dir`` atomically; return its path (OSError if not)."""
    from golden.cli import atomic_output

    path = os.path.join(out_dir, f"{config.name}.core")
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(core_text(config))
    return path
