"""Synthesis of one design unit with Yosys: the scripts, the run, the cell counts.

A run elaborates the unit to RTLIL, records the coarse netlist (``proc; flatten; opt; wreduce``:
the ``$mul`` cells the RTL asked for and the memory bits), then maps it with ``synth_<target>``
and records ``stat -json``. :func:`classify_cells` groups each target's cell types into LUTs,
flip-flops, carry cells, DSP/MAC blocks, block RAMs and the rest.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from golden.config import AcceleratorConfig
from hw.generate import top_name
from hw.units import UNITS

from .tools import Progress, run_tool

__all__ = ["RENAME_BIT_NAMES", "TARGETS", "breakdown", "check_unit", "classify_cells",
           "design_stat", "synthesize", "unit_top_name", "yosys_script"]

#: Yosys synthesis command of each target (``{top}`` is the top module).
TARGETS = {
    # Generic 4-LUT mapping; memories stay $mem_v2 cells (mapping them to gates says nothing).
    "generic": ("synth -flatten -top {top} -run :fine\n"
                "opt -fast -full\ntechmap\nopt -fast\nabc -lut 4\nopt -fast"),
    # -dsp: the UltraPlus parts (the iCEBreaker's UP5K) have SB_MAC16 multipliers.
    "ice40": "synth_ice40 -dsp -top {top}",
    "ecp5": "synth_ecp5 -top {top}",
    "xilinx": "synth_xilinx -flatten -noiopad -family xc7 -top {top}",
}

# Cell-type patterns of each resource class, per target.
_CLASSES = {
    "generic": {"luts": r"\$lut", "ffs": r"\$_(S?DFF|DFFE|SDFFE|SDFFCE|ALDFF|DLATCH).*",
                "memories": r"\$mem(_v2)?"},
    "ice40": {"luts": r"SB_LUT4", "ffs": r"SB_DFF.*", "carry": r"SB_CARRY", "dsp": r"SB_MAC16",
              "bram": r"SB_RAM40_4K.*", "spram": r"SB_SPRAM256KA"},
    "ecp5": {"luts": r"LUT4", "ffs": r"TRELLIS_FF", "carry": r"CCU2[CD]",
             "dsp": r"MULT18X18[CD]|ALU54[AB]|MULT9X9[CD]", "bram": r"DP16KD|PDPW16KD",
             "lutram": r"TRELLIS_DPR16X4|DPR16X4[CD]", "muxes": r"PFUMX|L6MUX21"},
    "xilinx": {"luts": r"LUT[1-6]", "ffs": r"FD[CPRSE]E?(_1)?", "carry": r"CARRY[48]",
               "dsp": r"DSP48E[12]?", "bram": r"RAMB(18|36)E[12]?",
               "lutram": r"RAM(32|64|128|256)X\w+|RAM(32|64)M|SRL(C)?(16|32)E?",
               "muxes": r"MUXF[78]"},
}
# Cells that are bookkeeping, not hardware.
_IGNORED = re.compile(r"\$scopeinfo")

#: Amaranth names the elements of an ArrayLayout view "port[3]"; ABC's reintegration creates
#: the same names for bits and trips an assertion (YosysHQ/yosys#4349). The views carry no
#: logic, so making those names private changes nothing but the crash.
RENAME_BIT_NAMES = "rename -hide w:*[[]*"


def check_unit(unit: str) -> None:
    """Raise ``ValueError`` unless ``unit`` names an entry of :data:`hw.units.UNITS`."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {unit!r}")


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")


def unit_top_name(config: AcceleratorConfig, unit: str) -> str:
    """Module name of ``unit``: the generated top's name, suffixed by the unit's."""
    base = top_name(config)
    return base if unit == "accelerator" else f"{base}_{unit.replace('-', '_')}"


def yosys_script(target: str, top: str, source: str) -> str:
    """The Yosys script that reads ``source`` (RTLIL ``.il`` or Verilog), writes the coarse
    netlist's ``coarse.json`` and, after ``synth_<target>``, ``stat.json``."""
    _check_target(target)
    reader = "read_rtlil" if source.endswith(".il") else "read_verilog"
    return "\n".join([
        f"{reader} {source}",
        f"hierarchy -check -top {top}",
        RENAME_BIT_NAMES,
        "design -save input",
        # Coarse netlist: the multipliers the RTL asked for, before any mapping.
        "proc", "flatten", "opt -nodffe -nosdff", "wreduce", "opt_clean",
        "tee -q -o coarse.json stat -json",
        "design -load input",
        TARGETS[target].format(top=top),
        "tee -q -o stat.json stat -json",
        "",
    ])


def classify_cells(cells: dict[str, int], target: str) -> dict[str, int]:
    """Resource counts of a ``stat -json`` cell table.

    Parameters
    ----------
    cells : dict of str to int
        Cell type -> count.
    target : str
        One of :data:`TARGETS`: which cell types are LUTs, flip-flops, ...

    Returns
    -------
    dict of str to int
        ``luts``, ``ffs``, ``carry``, ``dsp``, ``bram``, the target's other classes, and
        ``cells`` (every hardware cell, classified or not).
    """
    _check_target(target)
    classes = {name: re.compile(pattern) for name, pattern in _CLASSES[target].items()}
    counts = {name: 0 for name in ("luts", "ffs", "carry", "dsp", "bram")}
    counts.update({name: 0 for name in classes})
    total = 0
    for cell_type, n in cells.items():
        if _IGNORED.fullmatch(cell_type):
            continue
        total += n
        for name, pattern in classes.items():
            if pattern.fullmatch(cell_type):
                counts[name] += n
                break
    counts["cells"] = total
    return counts


def design_stat(path: Path) -> dict:
    """The whole-design entry of a ``stat -json`` file (its only module when flattened)."""
    stat = json.loads(Path(path).read_text(encoding="utf-8"))
    if "design" in stat:
        return stat["design"]
    return next(iter(stat["modules"].values()))


def _yosys_version(log_path: Path) -> str:
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("Yosys "):
            return line.split(" (")[0]
    return "unknown"


def synthesize(config: AcceleratorConfig, target: str, out_dir, *, unit: str = "accelerator",
               progress: Progress | None = None) -> dict:
    """Synthesise ``unit`` of ``config`` for ``target`` in ``out_dir``.

    Parameters
    ----------
    config : AcceleratorConfig
        The design.
    target : str
        One of :data:`TARGETS`.
    out_dir : path-like
        Work directory (created): ``<top>.il``, ``synth.ys``, ``synth.log``, ``stat.json``.
    unit : str
        One of :data:`hw.units.UNITS`.
    progress : Progress, optional
        Progress lines (two steps).

    Returns
    -------
    dict
        The report: ``design``, ``target``, ``synth_command``, ``yosys``, ``resources``,
        ``cells_by_type``, ``multipliers`` (``mul_cells`` of the coarse netlist, ``expected``
        from :attr:`hw.units.Unit.multipliers`), ``memories`` and ``seconds``.

    Raises
    ------
    ValueError
        Unknown target or unit.
    SynthError
        A tool failed.
    """
    _check_target(target)
    check_unit(unit)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress = progress or Progress(2)
    top = unit_top_name(config, unit)
    steps = {}

    def elaborate():
        from amaranth.back import rtlil
        text = rtlil.convert(UNITS[unit](config), name=top, emit_src=False)
        (out / f"{top}.il").write_text(text, encoding="utf-8")

    start = time.monotonic()
    progress.run(f"elaborate {top} (tile {config.tile}, array {config.array[0]}x"
                 f"{config.array[1]}, channels <= {config.max_in_channels})", elaborate)
    steps["elaborate"] = round(time.monotonic() - start, 2)

    (out / "synth.ys").write_text(yosys_script(target, top, f"{top}.il"), encoding="utf-8")
    start = time.monotonic()
    progress.run(f"yosys {TARGETS[target].splitlines()[0].split(' -top')[0]} ({target})",
                 run_tool, "yosys", ["-q", "-l", "synth.log", "synth.ys"], out, "yosys.out")
    steps["synthesis"] = round(time.monotonic() - start, 2)

    coarse = design_stat(out / "coarse.json")
    final = design_stat(out / "stat.json")
    cells = {k: int(v) for k, v in sorted(final.get("num_cells_by_type", {}).items())
             if not _IGNORED.fullmatch(k)}
    coarse_cells = coarse.get("num_cells_by_type", {})
    return {
        "design": {"top": top, "unit": unit, "config": config.as_dict()},
        "target": target,
        "synth_command": TARGETS[target].format(top=top),
        "yosys": _yosys_version(out / "synth.log"),
        "resources": classify_cells(cells, target),
        "cells_by_type": cells,
        "multipliers": {"mul_cells": int(coarse_cells.get("$mul", 0)),
                        "expected": UNITS[unit].multipliers(config)},
        "memories": {"count": int(coarse.get("num_memories", 0)),
                     "bits": int(coarse.get("num_memory_bits", 0))},
        "seconds": steps,
    }


def breakdown(config: AcceleratorConfig, out_dir, *, unit: str = "accelerator",
              progress: Progress | None = None) -> dict:
    """Resources per submodule of a hierarchical (not flattened) generic 4-LUT synthesis of
    ``unit``: where the area goes.

    Needs the RTLIL that :func:`synthesize` wrote in ``out_dir``. Returns submodule name (or
    ``"(top level)"``) -> ``{"luts", "ffs", "memories"}``.
    """
    check_unit(unit)
    out = Path(out_dir)
    top = unit_top_name(config, unit)
    script = "\n".join([f"read_rtlil {top}.il", f"hierarchy -check -top {top}",
                        RENAME_BIT_NAMES,
                        TARGETS["generic"].replace("synth -flatten", "synth").format(top=top),
                        "tee -q -o breakdown.json stat -json", ""])
    (out / "breakdown.ys").write_text(script, encoding="utf-8")
    progress = progress or Progress(1)
    progress.run("yosys hierarchical 4-LUT synthesis (breakdown)", run_tool, "yosys",
                 ["-q", "-l", "breakdown.log", "breakdown.ys"], out, "yosys-breakdown.out")
    stat = json.loads((out / "breakdown.json").read_text(encoding="utf-8"))
    modules = {}
    for name, module in stat["modules"].items():
        name = name.lstrip("\\")
        short = name[len(top) + 1:] if name.startswith(top + ".") else "(top level)"
        cells = {k: v for k, v in module.get("num_cells_by_type", {}).items()
                 if k.startswith("$")}
        res = classify_cells(cells, "generic")
        modules[short] = {"luts": res["luts"], "ffs": res["ffs"], "memories": res["memories"]}
    return modules
