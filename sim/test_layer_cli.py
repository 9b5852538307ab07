"""``python -m sim.layer``: golden.run's contract through the RTL; exit 0 / 1 / 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from golden.run import main as golden_main
from golden.synthetic import synthetic_layer
from golden.weights import save_weights
from sim import layer as cli
from sim.runner import REPO_ROOT
from sim.test_accelerator import small_config

# The small 4x4-tile design of test_accelerator (same Verilog, so the same build is reused).
SMALL = ["--array", "2x2", "--max-channels", "8"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    config = small_config("4x4")
    save_weights(d / "w.npz", [synthetic_layer(config, 3, 8, 0.6, seed=1, name="conv1"),
                               synthetic_layer(config, 8, 6, 0.7, seed=2, padding=0,
                                               name="conv2")])
    rng = np.random.default_rng(0)
    np.save(d / "x.npy", rng.integers(-128, 128, size=(3, 7, 9)).astype(np.int8))
    np.save(d / "xb.npy", rng.integers(-128, 128, size=(2, 8, 5, 6)).astype(np.int8))
    np.save(d / "xf.npy", rng.random((3, 7, 9)).astype(np.float32))
    (d / "tiny.json").write_text(json.dumps({"manifest_version": 1, "config": config.replace(
        max_in_channels=4, max_out_channels=4).to_dict()}))
    (d / "broken.json").write_text(json.dumps({"manifest_version": 1, "config": {
        **config.to_dict(), "array": [2]}}))
    return d


def _args(d, layer="conv1", x="x.npy", *extra):
    return ["--weights", str(d / "w.npz"), "--layer", layer, "--input", str(d / x),
            "--out", str(d / "y.npy"), "--report", str(d / "r.json"), *SMALL, *extra]


@pytest.mark.simulators("verilator")
@pytest.mark.parametrize("layer, x", [("conv1", "x.npy"), ("conv2", "xb.npy")],
                         ids=["single", "batch"])
def test_output_equals_golden_run(simulator, files, capsys, layer, x):
    assert cli.main(_args(files, layer, x, "--simulator", simulator)) == 0
    assert golden_main(["--weights", str(files / "w.npz"), "--layer", layer, "--input",
                        str(files / x), "--out", str(files / "g.npy")]) == 0
    y, g = np.load(files / "y.npy"), np.load(files / "g.npy")
    assert y.dtype == np.int64 and g.dtype == np.int64
    np.testing.assert_array_equal(y, g)
    report = json.loads((files / "r.json").read_text())
    for key in ("cycles", "multipliers", "nonzero_macs", "utilisation", "simulator", "tile",
                "skipped_macs_per_position"):
        assert key in report
    assert report["simulator"] == simulator and report["tile"] == "4x4"
    assert report["cycles"] == report["model_cycles"]
    assert report["multipliers"] == 4 and report["passed"]
    assert 0 < report["utilisation"] <= 1
    assert report["utilisation"] == pytest.approx(report["nonzero_macs"] / (4 * report["cycles"]))
    n = 2 if x == "xb.npy" else 1
    assert report["images"] == n and len(report["per_image"]) == n
    assert report["nonzero_macs"] == sum(report["nonzero_macs_per_position"])
    assert (sum(report["skipped_macs_per_position"]) + report["nonzero_macs"]
            == report["dense_macs"])
    assert not (files / "y.fst").exists(), "waves written without --waves"
    assert report["design_name"] == "sparse_winograd_4x4_a2x2_c8"
    assert report["design_file"] is None
    out, err = capsys.readouterr()
    assert "RTL == golden on sparse_winograd_4x4_a2x2_c8" in out
    assert ("design sparse_winograd_4x4_a2x2_c8 (tile 4x4, 2x2 PEs, channels <= 8 in / 8 out), "
            "chosen for the layer, --array, --max-channels as given") in err


@pytest.mark.simulators("verilator")
def test_config_simulates_the_generated_design(simulator, files, capsys, tmp_path):
    """hw.generate's manifest in, exactly that design simulated (the same build as above)."""
    from hw.generate import generate
    _, manifest = generate(small_config("4x4"), tmp_path)
    args = [a for a in _args(files) if a not in SMALL]
    assert cli.main([*args, "--config", manifest, "--simulator", simulator]) == 0
    report = json.loads((files / "r.json").read_text())
    assert report["design_name"] == "sparse_winograd_4x4_a2x2_c8" and report["passed"]
    assert report["design"] == small_config("4x4").to_dict()
    assert report["design_file"] == manifest
    out, err = capsys.readouterr()
    assert f"design sparse_winograd_4x4_a2x2_c8 (tile 4x4, 2x2 PEs, channels <= 8 in / 8 out), " \
           f"from {manifest}" in err
    assert "RTL == golden on sparse_winograd_4x4_a2x2_c8" in out


@pytest.mark.simulators("verilator")
def test_mismatch_exits_1_naming_the_index(simulator, files, capsys, monkeypatch):
    import sim.accel
    real = sim.accel.run_layers

    def corrupted(*args, **kwargs):
        outcomes = real(*args, **kwargs)
        outcomes[0].y[2, 3, 4] += 1
        return outcomes

    monkeypatch.setattr(sim.accel, "run_layers", corrupted)
    assert cli.main(_args(files)) == 1
    err = capsys.readouterr().err
    assert "index [2, 3, 4]" in err
    assert not json.loads((files / "r.json").read_text())["passed"]


@pytest.mark.parametrize("change, message", [
    ({"--weights": "missing.npz"}, "no such file"),
    ({"--layer": "nope"}, "no layer 'nope'; layers are: conv1, conv2"),
    ({"--input": "xb.npy"}, "has 8 channels"),
    ({"--input": "xf.npy"}, "dtype must be int8"),
    ({"--input": "w.npz"}, "is an .npz archive"),
    ({"--out": "y.txt"}, "--out"),
    ({"--report": "nodir/r.json"}, "does not exist"),
    ({"--simulator": "xsim"}, "invalid choice"),
    ({"--array": "0x3"}, "array must be RxC"),
    ({"--max-channels": "0"}, "--max-channels"),
    ({"--relu": None}, "--relu needs --requant"),
    ({"--requant": ["5", "99"]}, "shift must lie in [0, 47]"),
    ({"--config": "none.json"}, "--config {d}/none.json: no such file"),
    ({"--config": "broken.json"},
     "--config {d}/broken.json: array must be a [rows, columns] list of positive integers, "
     "not [2]"),
    ({"--config": "tiny.json", "--array": "2x2"},
     "--array cannot be combined with --config (the design file fixes every design option)"),
    ({"--config": "tiny.json"}, "layer 'conv1' has 8 output channels; the accelerator's "
     "max_out_channels is 4 (design sparse_winograd_4x4_a2x2_c4, from {d}/tiny.json)"),
    ({"--max-channels": "4"}, "layer 'conv1' has 8 output channels; the accelerator's "
     "max_out_channels is 4 (design sparse_winograd_4x4_c4, chosen for the layer, "
     "--max-channels as given)"),
])
def test_bad_input_exits_2_with_one_line(files, change, message):
    args = {"--weights": "w.npz", "--layer": "conv1", "--input": "x.npy", "--out": "y.npy",
            "--report": "r.json"}
    argv = []
    for flag, value in {**args, **change}.items():
        if value is None:
            argv.append(flag)
        elif isinstance(value, list):
            argv += [flag, *value]
        else:
            argv += [flag, value if flag in ("--layer", "--simulator", "--array",
                                             "--max-channels") else str(files / value)]
    proc = subprocess.run([sys.executable, "-m", "sim.layer", *argv], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sim.layer: error: "), proc.stderr
    assert message.format(d=files) in lines[0]
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr


def _waves(files, simulator):
    from sim.tools import waves_problem
    if waves_problem(simulator):
        pytest.skip(waves_problem(simulator))
    fst = files / "y.fst"
    fst.unlink(missing_ok=True)
    assert cli.main(_args(files, "conv1", "x.npy", "--simulator", simulator, "--waves")) == 0
    assert fst.stat().st_size > 1000
    assert fst.read_bytes()[:1] == b"\x00", "not an FST file (header block type 0)"
    assert json.loads((files / "r.json").read_text())["waves"] == str(fst)


@pytest.mark.simulators("icarus")
def test_waves_on_request_icarus(simulator, files):
    _waves(files, simulator)


@pytest.mark.slow
@pytest.mark.simulators("verilator")
def test_waves_on_request_verilator(simulator, files):
    """A second Verilator build (with tracing), hence slow."""
    _waves(files, simulator)


@pytest.mark.slow
@pytest.mark.simulators("verilator")
def test_requant_output_equals_golden_run(simulator, files):
    """--requant MULT SHIFT --relu simulates the requant stage (a second build, hence slow)."""
    rq = ["--requant", "20000", "22", "--relu"]
    assert cli.main(_args(files, "conv1", "x.npy", *rq)) == 0
    assert golden_main(["--weights", str(files / "w.npz"), "--layer", "conv1", "--input",
                        str(files / "x.npy"), "--out", str(files / "g.npy"), *rq]) == 0
    y, g = np.load(files / "y.npy"), np.load(files / "g.npy")
    assert y.dtype == np.int8 and g.dtype == np.int8
    np.testing.assert_array_equal(y, g)
    assert (y > 0).any() and (y == 0).any()


def _spec_reading(x, U, AT, BT, tap_shift, padding):
    """docs/weight-format.md, "Tap shifts", read with plain loops: per tile and output
    channel, M = sum_c U * (BT d BT^T), each position times 2**(T - tap_shift), Y = AT M AT^T."""
    k, c, a, _ = U.shape
    m = AT.shape[0]
    xp = np.pad(x.astype(object), ((0, 0), (padding, padding), (padding, padding)))
    hout, wout = xp.shape[1] - 2, xp.shape[2] - 2
    xp = np.pad(xp, ((0, 0), (0, a), (0, a)))
    factor = np.vectorize(lambda s: 2 ** (int(tap_shift.max()) - int(s)))(tap_shift)
    y = np.zeros((k, hout, wout), dtype=object)
    for ti in range(0, hout, m):
        for tj in range(0, wout, m):
            for kk in range(k):
                M = sum(U[kk, ci].astype(object) * (BT.astype(object)
                        @ xp[ci, ti:ti + a, tj:tj + a] @ BT.T.astype(object)) for ci in range(c))
                Y = AT.astype(object) @ (M * factor) @ AT.T.astype(object)
                h, w = min(m, hout - ti), min(m, wout - tj)
                y[kk, ti:ti + h, tj:tj + w] = Y[:h, :w]
    return y.astype(np.int64)


@pytest.mark.simulators("verilator")
def test_hand_written_v2_file_with_tap_shifts(simulator, tmp_path):
    """A version 2 file written from the specification with np.savez (not save_weights), with
    nonzero tap shifts: sim.layer (the RTL), golden.run and a plain reading of the
    specification agree."""
    from golden.transforms import tile_transform
    tr = tile_transform("4x4")
    rng = np.random.default_rng(9)
    U = rng.integers(-127, 128, (5, 3, 4, 4)).astype(np.int8)
    U[rng.random(U.shape) < 0.4] = 0
    tap_shift = np.array([[3, 0, 7, 11], [5, 2, 2, 9], [1, 4, 6, 3], [8, 0, 10, 2]], np.int8)
    arrays = {
        "format": np.array("sparse-winograd-weights"), "version": np.array(2),
        "layers": np.array(["conv"]), "conv/m": np.array(2), "conv/r": np.array(3),
        "conv/AT": tr.AT_int.astype(np.int64), "conv/BT": tr.BT_int.astype(np.int64),
        "conv/G": tr.G_float.astype(np.float64), "conv/U": U,
        "conv/scale": np.full(5, 0.01, np.float32), "conv/padding": np.array(1),
        "conv/tap_shift": tap_shift,
        "conv/requant_mult": np.full(5, 1, np.int32),
        "conv/requant_shift": np.full(5, 20, np.int32),
        "conv/relu": np.array(1),
        "network/ops": np.array(["conv:conv", "flatten", "linear:fc"]),
        "network/input_shape": np.array([3, 5, 6], np.int64),
        "network/input_scale": np.array(0.05, np.float32),
        "fc/W": np.ones((2, 150), np.int8), "fc/b": np.zeros(2, np.int32)}
    np.savez(tmp_path / "w.npz", **arrays)
    x = rng.integers(-128, 128, (3, 5, 6)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    want = _spec_reading(x, U, tr.AT_int, tr.BT_int, tap_shift, 1)
    assert golden_main(["--weights", str(tmp_path / "w.npz"), "--layer", "conv", "--input",
                        str(tmp_path / "x.npy"), "--out", str(tmp_path / "g.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "g.npy"), want)
    assert cli.main(["--weights", str(tmp_path / "w.npz"), "--layer", "conv", "--input",
                     str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy"), *SMALL,
                     "--simulator", simulator]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)
