"""The simulator build cache: a per-user cache folder (XDG), moved by $SIM_BUILD_DIR or
--build-dir, never the source checkout; an interrupted build is redone by the next request;
an input size the harness cannot hold stops `pytest sim/` with one usage error."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hostile import REPO, weight_members, write_zip

from sim import runner


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("SIM_BUILD_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield tmp_path
    runner.set_build_root(None)


def test_default_is_the_per_user_cache(clean_env, monkeypatch):
    home = clean_env / "home"
    assert runner.build_root() == (home / ".cache" / "sparse-winograd" / "sim_build").resolve()
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert runner.build_root() == (home / ".cache" / "sparse-winograd" / "sim_build").resolve()
    monkeypatch.setenv("XDG_CACHE_HOME", str(clean_env / "xdg"))
    assert runner.build_root() == (clean_env / "xdg" / "sparse-winograd" / "sim_build")
    assert runner.REPO_ROOT not in runner.build_root().parents


def test_environment_and_option_move_it(clean_env, monkeypatch):
    monkeypatch.setenv("SIM_BUILD_DIR", str(clean_env / "env"))
    assert runner.build_root() == clean_env / "env"
    runner.set_build_root(clean_env / "opt")
    assert runner.build_root() == clean_env / "opt"
    runner.set_build_root(None)
    assert runner.build_root() == clean_env / "env"


class _FlakyRunner:
    """A runner whose first build is interrupted (Ctrl-C) half-way."""

    builds = 0

    def build(self, sources, build_dir, **kwargs):
        type(self).builds += 1
        (Path(build_dir) / "half-built.o").write_text("partial")
        if type(self).builds == 1:
            raise KeyboardInterrupt


def test_interrupted_build_is_redone(clean_env, monkeypatch):
    monkeypatch.setenv("SIM_BUILD_DIR", str(clean_env / "cache"))
    monkeypatch.setattr(runner, "_get_runner", lambda simulator: _FlakyRunner())
    monkeypatch.setattr(runner, "find_simulator",
                        lambda simulator: SimpleNamespace(available=True, version="test"))
    texts = {"top.v": "module top; endmodule\n"}
    with pytest.raises(KeyboardInterrupt):
        runner._build("demo", texts, "top", "icarus", False, "")
    (build_dir,) = (clean_env / "cache" / "icarus").iterdir()
    assert not (build_dir / "build.stamp").exists()
    (build_dir / "stale.o").write_text("half-written")
    again, seconds = runner._build("demo", texts, "top", "icarus", False, "")
    assert not (build_dir / "stale.o").exists()
    assert again == build_dir and _FlakyRunner.builds == 2
    assert (build_dir / "build.stamp").exists()
    assert runner._build("demo", texts, "top", "icarus", False, "") == (build_dir, 0.0)
    assert _FlakyRunner.builds == 2


def test_pytest_sim_refuses_an_input_size_the_harness_cannot_hold(tmp_path):
    weights = write_zip(tmp_path / "w.npz", weight_members(k=2, c=3))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--co", "-p", "no:cacheprovider",
         "sim/test_weights_file.py", "--weights", str(weights),
         "--input-size", "100000x100000"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert line.startswith(f"ERROR: --weights {weights}: the layer needs a ")
    assert "harness patches memory, more than the 4,194,304" in line


def test_build_dir_option_of_sim_layer(clean_env, capsys):
    from sim import layer
    weights = write_zip(clean_env / "w.npz", weight_members(k=2, c=3))
    (clean_env / "file").write_text("")
    args = ["--weights", str(weights), "--layer", "conv1", "--input", str(clean_env / "no.npy"),
            "--out", str(clean_env / "y.npy")]
    assert layer.main([*args, "--build-dir", str(clean_env / "file" / "sub")]) == 2
    assert "--build-dir" in capsys.readouterr().err
    assert layer.main([*args, "--build-dir", str(clean_env / "cache")]) == 2   # no input
    assert runner.build_root() == clean_env / "cache"
