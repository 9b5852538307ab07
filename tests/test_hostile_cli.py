"""The red-team cases of the command-line tools: each is one line and exit status 2 (130 / 143
for SIGINT / SIGTERM) within 10 s under a 1 GiB address-space ceiling, no output is left behind
and no input is changed."""

import os
import resource
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hostile import (REPO, assert_refused, npy_header, run_capped, weight_members, write_zip,
                     zip_bomb_member)

from golden import run as golden_run


@pytest.fixture
def files(tmp_path):
    weights = write_zip(tmp_path / "w.npz", weight_members(k=2, c=3))
    rng = np.random.default_rng(1)
    np.save(tmp_path / "x.npy", rng.integers(-128, 128, (3, 6, 6)).astype(np.int8))
    huge_u = weight_members()
    huge_u["conv1/U.npy"] = npy_header((10**6, 10**6, 4, 4)) + bytes(64)
    return {"root": tmp_path, "weights": weights, "x": tmp_path / "x.npy",
            "huge_u": write_zip(tmp_path / "huge_u.npz", huge_u)}


def _timed(module, *args):
    start = time.monotonic()
    result = run_capped(module, *args, timeout=60)
    assert time.monotonic() - start < 10, "took 10 s or more"
    return result


@pytest.mark.parametrize("module", ["golden.run", "sim.layer"])
def test_weight_member_claiming_1e12_elements(files, module):
    out = files["root"] / "y.npy"
    result = _timed(module, "--weights", files["huge_u"], "--layer", "conv1",
                    "--input", files["x"], "--out", out)
    assert_refused(result, module, "key 'conv1/U'", "declared shape [1000000, 1000000, 4, 4]",
                   "limit of 256 MiB")
    assert not out.exists()


def test_input_header_claiming_16e10_elements(files):
    path = files["root"] / "big.npy"
    path.write_bytes(npy_header((16, 10**5, 10**5)) + bytes(64))
    result = _timed("golden.run", "--weights", files["weights"], "--layer", "conv1",
                    "--input", path, "--out", files["root"] / "y.npy")
    assert_refused(result, "golden.run", f"input {path}: declared shape [16, 100000, 100000]")


def test_zip_bomb(files):
    members = weight_members()
    del members["conv1/U.npy"]
    bomb = zip_bomb_member(files["root"] / "bomb.npz", members, "conv1/U.npy",
                           npy_header((2**14, 2**12, 4, 4)), 2**27)
    result = _timed("golden.run", "--weights", bomb, "--layer", "conv1", "--input", files["x"],
                    "--out", files["root"] / "y.npy")
    assert_refused(result, "golden.run", "key 'conv1/U'", "1024 MiB, above the limit")


@pytest.mark.parametrize("option", [["--max-channels", "4096"], ["--array", "64x64"],
                                    ["--weight-depth", "1000000000"]])
def test_generate_refuses_designs_it_cannot_build(tmp_path, option):
    out = tmp_path / "build"
    result = _timed("hw.generate", *option, "--out", out)
    assert_refused(result, "hw.generate", "that can be built", "estimated")
    assert not out.exists() or not any(out.iterdir())


def test_output_naming_an_input_is_refused(files):
    """The same file by its name, through a symbolic link or through a hard link."""
    root = files["root"]
    (root / "to_x.npy").symlink_to(files["x"])
    (root / "to_w.npy").symlink_to(files["weights"])
    os.link(files["x"], root / "hard.npy")
    before = files["x"].read_bytes(), files["weights"].read_bytes()
    for out, flag in [(files["x"], "--input"), (root / "to_x.npy", "--input"),
                      (root / "to_w.npy", "--weights"), (root / "hard.npy", "--input")]:
        result = _timed("golden.run", "--weights", files["weights"], "--layer", "conv1",
                        "--input", files["x"], "--out", out)
        assert_refused(result, "golden.run", f"--out {out}: names the input {flag}")
    assert (files["x"].read_bytes(), files["weights"].read_bytes()) == before


def test_symlinked_output_is_replaced_not_written_through(files):
    victim = files["root"] / "victim.txt"
    victim.write_text("keep me")
    out = files["root"] / "y.npy"
    out.symlink_to(victim)
    assert golden_run.main(["--weights", str(files["weights"]), "--layer", "conv1",
                            "--input", str(files["x"]), "--out", str(out)]) == 0
    assert victim.read_text() == "keep me"
    assert not out.is_symlink() and np.load(out).shape == (2, 6, 6)


def _small_disk():
    # Writes past 4 KiB fail with EFBIG, as on a full disk (SIGXFSZ ignored: an error, not death).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_full_disk_leaves_no_output(files):
    x = files["root"] / "x40.npy"
    np.save(x, np.ones((3, 40, 40), np.int8))
    out = files["root"] / "y.npy"
    out.write_bytes(b"an older result")
    before = sorted(p.name for p in files["root"].iterdir())
    result = subprocess.run([sys.executable, "-m", "golden.run", "--weights", files["weights"],
                             "--layer", "conv1", "--input", x, "--out", out], cwd=REPO,
                            capture_output=True, text=True, timeout=60, preexec_fn=_small_disk)
    assert_refused(result, "golden.run", f"--out {out}: cannot write (File too large)")
    assert sorted(p.name for p in files["root"].iterdir()) == sorted(set(before) - {"y.npy"})


def test_failed_run_removes_an_older_output(files, capsys):
    out = files["root"] / "y.npy"
    np.save(out, np.zeros(3))
    assert golden_run.main(["--weights", str(files["weights"]), "--layer", "nope",
                            "--input", str(files["x"]), "--out", str(out)]) == 2
    assert "no layer 'nope'" in capsys.readouterr().err
    assert not out.exists()


_SIGNALLED = textwrap.dedent("""
    import os, signal, sys, time
    from golden.cli import atomic_output, claim_output, run_main
    # Python's Ctrl-C handler, as in a terminal (a shell's background job inherits SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out = sys.argv[1]
    def body():
        claim_output(out)
        with atomic_output(out) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"partial")
            os.kill(os.getpid(), getattr(signal, sys.argv[2]))
            time.sleep(30)
    sys.exit(run_main("demo.tool", body))
""")


@pytest.mark.parametrize("name, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_signal_is_one_line_and_leaves_no_output(tmp_path, name, status):
    out = tmp_path / "y.npy"
    out.write_bytes(b"an older result")
    result = subprocess.run([sys.executable, "-c", _SIGNALLED, str(out), name], cwd=REPO,
                            capture_output=True, text=True, timeout=20)
    assert (result.returncode, result.stderr) == (status, "demo.tool: interrupted\n")
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_generate(tmp_path):
    out = tmp_path / "build"
    proc = subprocess.Popen([sys.executable, "-m", "hw.generate", "--out", str(out)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)                 # imports done, elaborating (about 7 s in all)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=20)
    assert (proc.returncode, stdout, stderr) == (143, "", "hw.generate: interrupted\n")
    assert not out.exists() or list(out.iterdir()) == []


def test_synth_refuses_designs_it_cannot_build(tmp_path):
    out = tmp_path / "synth"
    (out).mkdir()
    (out / "report.json").write_text("{}")          # an older run's report
    result = _timed("hw.synth", "run", "--array", "64x64", "--out", out)
    assert_refused(result, "hw.synth", "4096 PEs, more than the 256 that can be built")
    assert list(out.iterdir()) == []
