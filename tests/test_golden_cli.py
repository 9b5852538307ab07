"""The golden CLI (python -m golden.run), run as a subprocess: results and every failure mode."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from golden import cli, options
from golden.conv import winograd_conv2d_int
from golden.quant import requantize
from golden.transforms import tile_transform
from golden.weights import LayerWeights, save_weights

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "golden.run", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def _layer(name, tile, k, c, padding, seed):
    tr = tile_transform(tile)
    rng = np.random.default_rng(seed)
    U = rng.integers(-127, 128, (k, c, tr.alpha, tr.alpha)).astype(np.int8)
    U[rng.random(U.shape) < 0.5] = 0
    return LayerWeights(name=name, m=tr.m, r=tr.r, AT=tr.AT_int, BT=tr.BT_int, G=tr.G_float,
                        U=U, scale=np.full(k, 0.01, np.float32), padding=padding,
                        bias=rng.integers(-5000, 5000, k).astype(np.int32))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    layers = [_layer("conv1", "4x4", 4, 3, 1, 1), _layer("conv2.b", "6x6", 2, 4, 0, 2)]
    save_weights(root / "w.npz", layers)
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (3, 7, 9)).astype(np.int8)
    np.save(root / "x.npy", x)
    xb = rng.integers(-128, 128, (2, 4, 11, 6)).astype(np.int8)
    np.save(root / "xb.npy", xb)
    return {"root": root, "weights": root / "w.npz", "layers": {ly.name: ly for ly in layers},
            "x": root / "x.npy", "xb": root / "xb.npy"}


def _expected(layer, x):
    return winograd_conv2d_int(x, layer.U, layer.AT, layer.BT, layer.padding,
                               layer.bias.astype(np.int64))


def _assert_ok(result):
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    return lines[0]


def test_single_image(files, tmp_path):
    out = tmp_path / "y.npy"
    line = _assert_ok(run_cli("--weights", files["weights"], "--layer", "conv1",
                              "--input", files["x"], "--out", out))
    layer = files["layers"]["conv1"]
    y = np.load(out, allow_pickle=False)
    assert y.dtype == np.int64 and y.shape == (4, 7, 9)
    np.testing.assert_array_equal(y, _expected(layer, np.load(files["x"])))
    assert line.startswith("conv1: x [3, 7, 9] int8 -> y [4, 7, 9] int64, tile 4x4 F(2x2,3x3), "
                           "padding 1, ")
    assert f"sparsity {layer.sparsity:.1%}" in line and " ms -> " in line


def test_batch_on_6x6_layer(files, tmp_path):
    out = tmp_path / "yb.npy"
    line = _assert_ok(run_cli("--weights", files["weights"], "--layer", "conv2.b",
                              "--input", files["xb"], "--out", out))
    y = np.load(out, allow_pickle=False)
    assert y.shape == (2, 2, 9, 4) and y.dtype == np.int64
    np.testing.assert_array_equal(y, _expected(files["layers"]["conv2.b"], np.load(files["xb"])))
    assert "tile 6x6 F(4x4,3x3)" in line and "y [2, 2, 9, 4] int64" in line


@pytest.mark.parametrize("relu", [False, True])
def test_requant(files, tmp_path, relu):
    out = tmp_path / "q.npy"
    args = ["--weights", files["weights"], "--layer", "conv1", "--input", files["x"],
            "--out", out, "--requant", 3000, 20] + (["--relu"] if relu else [])
    line = _assert_ok(run_cli(*args))
    q = np.load(out, allow_pickle=False)
    assert q.dtype == np.int8
    want = requantize(_expected(files["layers"]["conv1"], np.load(files["x"])), 3000, 20,
                      relu=relu)
    np.testing.assert_array_equal(q, want)
    assert "requant 3000>>20" in line and ("relu" in line) == relu


def test_help_lists_every_option():
    result = run_cli("--help")
    assert result.returncode == 0 and result.stderr == ""
    for option in ("--weights", "--layer", "--input", "--out", "--requant MULT SHIFT",
                   "--relu", "default: off"):
        assert option in result.stdout


def _bad_npy(kind):
    """Builders of bad input files, given a directory."""
    def build(root):
        path = root / f"{kind}.npy"
        if kind == "int16":
            np.save(path, np.zeros((3, 5, 5), np.int16))
        elif kind == "float":
            np.save(path, np.zeros((3, 5, 5), np.float32))
        elif kind == "channels":
            np.save(path, np.zeros((5, 5, 5), np.int8))
        elif kind == "batch-channels":
            np.save(path, np.zeros((2, 2, 5, 5), np.int8))
        elif kind == "rank2":
            np.save(path, np.zeros((5, 5), np.int8))
        elif kind == "rank5":
            np.save(path, np.zeros((1, 1, 3, 5, 5), np.int8))
        elif kind == "empty":
            np.save(path, np.zeros((0, 3, 5, 5), np.int8))
        elif kind == "zero-height":
            np.save(path, np.zeros((3, 0, 5), np.int8))
        elif kind == "pickled":
            np.save(path, np.array([{"x": 1}], dtype=object))
        elif kind == "text":
            path.write_text("1 2 3\n")
        elif kind == "npz":
            path = root / "x.npz"
            np.savez(path, x=np.zeros((3, 5, 5), np.int8))
        elif kind == "truncated":
            np.save(path, np.zeros((3, 8, 8), np.int8))
            path.write_bytes(path.read_bytes()[:100])
        return path
    return build


INPUT_CASES = [
    ("int16", "dtype must be int8, not int16"),
    ("float", "dtype must be int8, not float32"),
    ("channels", "has 5 channels (shape [5, 5, 5]), layer 'conv1' expects 3"),
    ("batch-channels", "has 2 channels (shape [2, 2, 5, 5]), layer 'conv1' expects 3"),
    ("rank2", "shape must be [C, H, W] or [N, C, H, W], not [5, 5]"),
    ("rank5", "shape must be [C, H, W] or [N, C, H, W], not [1, 1, 3, 5, 5]"),
    ("empty", "is empty (shape [0, 3, 5, 5])"),
    ("zero-height", "is empty (shape [3, 0, 5])"),
    ("pickled", "cannot be read without unpickling"),
    ("text", "not a readable .npy array"),
    ("npz", "is an .npz archive, not a single .npy array"),
    ("truncated", "not a readable .npy array (EOF: reading array header"),
]


def _assert_fails(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("golden.run: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.mark.parametrize("kind, message", INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_bad_input_file(files, tmp_path, kind, message):
    path = _bad_npy(kind)(tmp_path)
    out = tmp_path / "y.npy"
    _assert_fails(run_cli("--weights", files["weights"], "--layer", "conv1", "--input", path,
                          "--out", out), f"input {path}: ", message)
    assert not out.exists()


def test_input_smaller_than_kernel(files, tmp_path):
    path = tmp_path / "small.npy"
    np.save(path, np.zeros((4, 2, 9), np.int8))     # conv2.b has padding 0: 2 < 3
    _assert_fails(run_cli("--weights", files["weights"], "--layer", "conv2.b", "--input", path,
                          "--out", tmp_path / "y.npy"),
                  "2x9 with padding 0 is smaller than the 3x3 kernel of layer 'conv2.b'")


def test_missing_input(files, tmp_path):
    _assert_fails(run_cli("--weights", files["weights"], "--layer", "conv1",
                          "--input", tmp_path / "nope.npy", "--out", tmp_path / "y.npy"),
                  "nope.npy: no such file")


def test_input_directory(files, tmp_path):
    _assert_fails(run_cli("--weights", files["weights"], "--layer", "conv1",
                          "--input", tmp_path, "--out", tmp_path / "y.npy"),
                  "is a directory, not a .npy file")


def test_missing_weights(files, tmp_path):
    _assert_fails(run_cli("--weights", tmp_path / "none.npz", "--layer", "conv1",
                          "--input", files["x"], "--out", tmp_path / "y.npy"),
                  "none.npz: no such file")


def test_weights_directory(files, tmp_path):
    _assert_fails(run_cli("--weights", tmp_path, "--layer", "conv1", "--input", files["x"],
                          "--out", tmp_path / "y.npy"), "is a directory, not a weight file")


def test_truncated_weights(files, tmp_path):
    path = tmp_path / "cut.npz"
    path.write_bytes(files["weights"].read_bytes()[:300])
    _assert_fails(run_cli("--weights", path, "--layer", "conv1", "--input", files["x"],
                          "--out", tmp_path / "y.npy"), "not a readable .npz archive")


def test_malformed_weights_name_layer_and_key(files, tmp_path):
    with np.load(files["weights"], allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["conv2.b/U"] = arrays["conv2.b/U"].copy()
    arrays["conv2.b/U"][0, 0, 0, 0] = -128
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    _assert_fails(run_cli("--weights", path, "--layer", "conv1", "--input", files["x"],
                          "--out", tmp_path / "y.npy"),
                  "layer 'conv2.b'", "key 'conv2.b/U'", "-128 at index [0, 0, 0, 0]")


def test_pickled_weights(files, tmp_path):
    with np.load(files["weights"], allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["conv1/scale"] = np.array([0.1, 0.1, 0.1, 0.1], dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)
    _assert_fails(run_cli("--weights", path, "--layer", "conv1", "--input", files["x"],
                          "--out", tmp_path / "y.npy"),
                  "key 'conv1/scale'", "cannot be read without unpickling")


def test_weights_are_a_single_npy(files, tmp_path):
    _assert_fails(run_cli("--weights", files["x"], "--layer", "conv1", "--input", files["x"],
                          "--out", tmp_path / "y.npy"), "is a single .npy array")


def test_unknown_layer(files, tmp_path):
    _assert_fails(run_cli("--weights", files["weights"], "--layer", "conv3",
                          "--input", files["x"], "--out", tmp_path / "y.npy"),
                  "no layer 'conv3'; layers are: conv1, conv2.b")


@pytest.mark.parametrize("out, message", [
    ("missing-dir/y.npy", "missing-dir does not exist"),
    ("y.txt", "must end in .npy"),
    ("a-dir.npy", "is a directory"),
], ids=["missing-dir", "suffix", "directory"])
def test_bad_output_path(files, tmp_path, out, message):
    (tmp_path / "a-dir.npy").mkdir()
    _assert_fails(run_cli("--weights", files["weights"], "--layer", "conv1",
                          "--input", files["x"], "--out", tmp_path / out), message)


@pytest.mark.parametrize("extra, message", [
    ([], "the following arguments are required: --layer, --input, --out"),
    (["--layer", "conv1", "--input", "x.npy", "--out", "y.npy", "--bogus"],
     "unrecognized arguments: --bogus"),
    (["--layer", "conv1", "--input", "x.npy", "--out", "y.npy", "--requant", "a", "3"],
     "argument --requant: invalid int value: 'a'"),
    (["--layer", "conv1", "--input", "x.npy", "--out", "y.npy", "--requant", "3"],
     "argument --requant: expected 2 arguments"),
    (["--layer", "conv1", "--input", "x.npy", "--out", "y.npy", "--relu"],
     "--relu needs --requant MULT SHIFT"),
], ids=["required", "unknown-option", "requant-not-int", "requant-one-value", "relu-alone"])
def test_bad_command_line(files, extra, message):
    _assert_fails(run_cli("--weights", files["weights"], *extra), message)


@pytest.mark.parametrize("mult, shift, message", [
    (2**15, 3, "mult must lie in [0, 2**15)"), (-1, 3, "mult must lie in [0, 2**15)"),
    (5, 48, "shift must lie in [0, 47]"), (5, -2, "shift must lie in [0, 47]"),
])
def test_bad_requant_values(files, tmp_path, mult, shift, message):
    out = tmp_path / "y.npy"
    _assert_fails(run_cli("--weights", files["weights"], "--layer", "conv1",
                          "--input", files["x"], "--out", out, "--requant", mult, shift),
                  f"--requant {mult} {shift}: ", message)
    assert not out.exists()


# -- the shared command-line layer (golden.cli) ------------------------------------------------

def test_golden_cli_needs_no_simulator_hardware_or_torch():
    code = ("import sys, golden.cli, golden.run; "
            "print(sorted(m for m in ('amaranth', 'cocotb', 'torch', 'hw', 'sim') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _status(capsys, body, prog="tool.x"):
    status = cli.run_main(prog, body)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_run_main_statuses(capsys):
    def bad():
        raise cli.CliError("--out y.txt: must end\n in .npy")

    def interrupted():
        raise KeyboardInterrupt

    def parse(argv):
        parser = cli.OneLineParser("python -m tool.x")
        parser.add_argument("--n", type=int, required=True)
        return lambda: print(parser.parse_args(argv).n)

    assert _status(capsys, bad) == (2, "", "tool.x: error: --out y.txt: must end in .npy\n")
    assert _status(capsys, interrupted) == (130, "", "tool.x: interrupted\n")
    assert _status(capsys, parse(["--n", "3"])) == (0, "3\n", "")
    assert _status(capsys, parse(["--n", "x"])) == (
        2, "", "tool.x: error: argument --n: invalid int value: 'x'\n")
    status, out, err = _status(capsys, parse(["--help"]))
    assert status == 0 and out.startswith("usage: python -m tool.x [-h] --n N") and err == ""
    assert _status(capsys, lambda: 1) == (1, "", "")


def test_parser_error_exits_2_on_one_line(capsys):
    parser = cli.OneLineParser("sim.layer")
    options.add_config_arguments(parser, ("--array", "--max-channels"))
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--array", "0x2"])
    assert info.value.code == 2
    assert capsys.readouterr().err == ("sim.layer: error: argument --array: array must be RxC "
                                       "with R, C >= 1 (e.g. 4x4), not '0x2'\n")


def test_config_options_override_a_base_design():
    from golden.config import DEFAULT, SMALL
    parser = cli.OneLineParser("t")
    options.add_config_arguments(parser)
    args = parser.parse_args([])
    assert options.given_config_options(args) == [] and options.config_from_args(args, SMALL) == SMALL
    args = parser.parse_args(["--max-channels", "48", "--max-in-channels", "8", "--requant",
                              "--weight-depth", "100", "--tile", "6x6"])
    assert options.given_config_options(args) == ["--tile", "--max-channels", "--max-in-channels",
                                              "--weight-depth", "--requant"]
    assert options.config_from_args(args) == DEFAULT.replace(
        tile="6x6", max_in_channels=8, max_out_channels=48, weight_depth=100, requant=True)
    with pytest.raises(cli.CliError, match=r"^data_width must be an integer in \[2, 16\], "
                                           r"not 17$"):
        options.config_from_args(parser.parse_args(["--data-width", "17"]))


def test_output_checks(tmp_path):
    (tmp_path / "d.npy").mkdir()
    (tmp_path / "f").write_text("")
    cases = [(lambda: cli.check_output_path(str(tmp_path / "y.txt")), "must end in .npy"),
             (lambda: cli.check_output_path(str(tmp_path / "d.npy")), "is a directory"),
             (lambda: cli.check_output_path(str(tmp_path / "no" / "r.json"), "--report", ".json"),
              f"--report {tmp_path / 'no' / 'r.json'}: directory {tmp_path / 'no'} does not "
              "exist"),
             (lambda: cli.check_output_dir(str(tmp_path / "f" / "a" / "b")),
              f"--out {tmp_path / 'f' / 'a' / 'b'}: {tmp_path / 'f'} is a file, not a directory")]
    for check, message in cases:
        with pytest.raises(cli.CliError) as info:
            check()
        assert message in str(info.value)
    cli.check_output_path(str(tmp_path / "y.npy"))
    cli.check_output_dir(str(tmp_path / "new" / "deeper"))


def test_writes_are_atomic(tmp_path):
    target = tmp_path / "y.npy"
    cli.save_npy(target, np.arange(3, dtype=np.int8))
    with pytest.raises(RuntimeError):
        with cli.atomic_output(target) as tmp:
            np.save(tmp, np.zeros(5))
            raise RuntimeError("interrupted half-way")
    np.testing.assert_array_equal(np.load(target), np.arange(3))      # old file intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y.npy"]     # no temporary left
    cli.write_json(tmp_path / "r.json", {"a": [1, 2]})
    assert (tmp_path / "r.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ]\n}\n'
    with pytest.raises(cli.CliError, match=r"^--report .*nodir/r\.json: cannot write "):
        cli.write_json(tmp_path / "nodir" / "r.json", {})


def test_read_config(tmp_path):
    from golden.config import SMALL
    good = tmp_path / "d.json"
    good.write_text(json.dumps({"manifest_version": 1, "config": SMALL.to_dict()}))
    assert options.read_config(str(good)) == SMALL
    bad = tmp_path / "bad.json"
    cases = [("{", "not JSON (Expecting property name enclosed in double quotes at line 1)"),
             (json.dumps({**SMALL.to_dict(), "max_in_channels": 0}),
              "max_in_channels must be a positive integer, not 0"),
             (json.dumps({"manifest_version": 1, "config": {"tile": "4x4"}}),
              "config key 'array' is missing")]
    for text, message in cases:
        bad.write_text(text)
        with pytest.raises(cli.CliError) as info:
            options.read_config(str(bad))
        assert str(info.value) == f"--config {bad}: {message}"
    for path, message in ((tmp_path / "none.json", "no such file"),
                          (tmp_path, "is a directory, not a manifest (.json)")):
        with pytest.raises(cli.CliError, match=re.escape(f"--config {path}: {message}")):
            options.read_config(str(path))
