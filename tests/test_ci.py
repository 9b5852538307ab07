""".ci/run runs the slow lint and default-size simulation tests after the default suite, and
the node ids it names exist and are slow tests (a renamed test would silently drop out)."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _slow_selection() -> list[str]:
    text = (REPO / ".ci" / "run").read_text()
    command = re.search(r"timeout (\d+) \.venv/bin/python -m pytest -m slow \\\n(.*?)\n\S",
                        text, re.S)
    assert command, "no slow pytest command in .ci/run"
    assert int(command.group(1)) <= 25 * 60
    return re.findall(r'"([^"]+::[^"]+)"', command.group(2))


def test_ci_runs_the_slow_lint_and_default_size_simulations():
    ids = _slow_selection()
    assert any("lint" in i for i in ids) and any("default_design_full_layer" in i for i in ids)
    listed = subprocess.run([sys.executable, "-m", "pytest", "-m", "slow", "--co", "-q",
                             "-p", "no:cacheprovider", *ids, "--simulators", "verilator"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stdout[-2000:] + listed.stderr[-2000:]
    collected = [line for line in listed.stdout.splitlines() if "::" in line]
    assert len(collected) >= 5
    for node in ids:
        assert any(line.startswith(node) for line in collected), node
