"""python -m golden.network: logits equal golden.network's, accuracy with labels, the digits test
split, and one-line errors with exit status 2."""

import subprocess
import sys

import numpy as np
import pytest

from golden.config import DEFAULT
from golden.network import evaluate, main, quantize_input, run_network
from golden.synthetic import synthetic_layer, synthetic_network
from golden.weights import save_weights


@pytest.fixture
def net(tmp_path):
    weights = synthetic_network(DEFAULT, (2, 7, 9), (4, 3), (0,), classes=3, seed=7)
    path = tmp_path / "net.npz"
    save_weights(path, weights)
    return weights, path


def _ok(capsys, *argv):
    assert main([str(a) for a in argv]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    return out.out.strip()


def test_float_images_are_quantised_and_scored(tmp_path, capsys, net):
    weights, path = net
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, (5, 2, 7, 9)).astype(np.float32)
    logits, _ = evaluate(weights, x)
    labels = np.argmax(logits, axis=1)
    labels[:2] = (labels[:2] + 1) % 3                    # two wrong: accuracy 3/5
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", labels)
    summary = _ok(capsys, "--weights", path, "--input", tmp_path / "x.npy", "--labels",
                  tmp_path / "y.npy", "--out", tmp_path / "l.npy")
    assert "5 images through conv:conv0 maxpool2 conv:conv1 flatten linear:fc" in summary
    assert "accuracy 0.6000 (3/5)" in summary
    out = np.load(tmp_path / "l.npy")
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, logits)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.npy", "net.npz", "x.npy", "y.npy"]


def test_int8_single_image_runs_as_is(tmp_path, capsys, net):
    weights, path = net
    x = np.random.default_rng(1).integers(-128, 128, (2, 7, 9)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    summary = _ok(capsys, "--weights", path, "--input", tmp_path / "x.npy", "--out",
                  tmp_path / "l.npy")
    assert "1 image through" in summary and "accuracy" not in summary
    np.testing.assert_array_equal(np.load(tmp_path / "l.npy"), run_network(weights, x)[0])


def test_digits_test_split(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from golden.datasets import digits_split
    weights = synthetic_network(DEFAULT, (1, 8, 8), (4, 4), (1,), classes=10, seed=2)
    save_weights(tmp_path / "d.npz", weights)
    summary = _ok(capsys, "--weights", tmp_path / "d.npz", "--dataset", "digits", "--images",
                  30, "--out", tmp_path / "l.npy")
    split = digits_split(0)
    assert split.x_test.shape == (450, 1, 8, 8)
    logits = np.load(tmp_path / "l.npy")
    expected, acc = evaluate(weights, split.x_test[:30], split.y_test[:30])
    np.testing.assert_array_equal(logits, expected)
    hits = round(acc * 30)
    assert "--dataset digits: 30 images through" in summary
    assert f"accuracy {hits / 30:.4f} ({hits}/30)" in summary
    other = digits_split(1)
    assert not np.array_equal(other.y_test, split.y_test)  # --seed selects another split
    _ok(capsys, "--weights", tmp_path / "d.npz", "--dataset", "digits", "--images", 30,
        "--seed", 1, "--out", tmp_path / "l1.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "l1.npy"),
                                  evaluate(weights, other.x_test[:30])[0])


def test_missing_scikit_learn_is_one_line(tmp_path, capsys, monkeypatch, net):
    for name in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, name, None)       # as if it were not installed
    _, path = net
    assert main(["--weights", str(path), "--dataset", "digits", "--out",
                 str(tmp_path / "l.npy")]) == 2
    assert capsys.readouterr().err == ("golden.network: error: --dataset digits: dataset "
                                       "'digits' needs scikit-learn (pip install scikit-learn)\n")


def test_module_entry_point(tmp_path, net):
    _, path = net
    np.save(tmp_path / "x.npy", np.zeros((2, 7, 9), np.float32))
    done = subprocess.run([sys.executable, "-m", "golden.network", "--weights", str(path),
                           "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o.npy")],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert np.load(tmp_path / "o.npy").shape == (3,)


@pytest.mark.parametrize("setup, argv, message", [
    (None, ["--input", "x.npy", "--dataset", "digits"],
     "argument --dataset: not allowed with argument --input"),
    (None, [], "one of the arguments --input --dataset is required"),
    (None, ["--dataset", "cifar10"], "argument --dataset: invalid choice: 'cifar10'"),
    ("x", ["--input", "x.npy", "--images", "3"], "--images goes with --dataset, not --input"),
    ("x", ["--input", "x.npy", "--seed", "1"], "--seed goes with --dataset, not --input"),
    (None, ["--dataset", "digits", "--images", "0"], "--images must be a positive integer, not 0"),
    (None, ["--dataset", "digits", "--labels", "y.npy"], "--labels goes with --input"),
    (None, ["--input", "absent.npy"], "--input absent.npy: no such file"),
    ("x", ["--input", "x.npy", "--out", "l.txt"], "--out l.txt: must end in .npy"),
    ("x", ["--input", "x.npy", "--out", "nodir/l.npy"],
     "--out nodir/l.npy: directory nodir does not exist"),
    ("v1", ["--input", "x.npy"], "weights net.npz, key 'version': is version 1 (layers only)"),
    ("shape", ["--input", "x.npy"], "--input x.npy: shape must be [2, 7, 9] or [N, 2, 7, 9] "
     "(network/input_shape), not [4, 2, 9, 7]"),
    ("uint8", ["--input", "x.npy"], "--input x.npy: dtype must be float (real images) or int8 "
     "(quantised), not uint8"),
    ("nan", ["--input", "x.npy"], "--input x.npy: contains NaN or Inf"),
    ("npz", ["--input", "x.npy"], "--input x.npy: is an .npz archive, not a single .npy array"),
    ("labels", ["--input", "x.npy", "--labels", "y.npy"],
     "--labels y.npy: must be integers of shape [4], not int64 [3]"),
])
def test_errors_are_one_line_with_status_2(tmp_path, capsys, monkeypatch, net, setup, argv,
                                           message):
    weights, path = net
    monkeypatch.chdir(tmp_path)
    x = np.zeros((4, 2, 7, 9), np.float32)
    if setup == "v1":
        save_weights(path, [synthetic_layer(DEFAULT, 2, 3, 0.5)])
    elif setup == "shape":
        x = np.zeros((4, 2, 9, 7), np.float32)
    elif setup == "uint8":
        x = x.astype(np.uint8)
    elif setup == "nan":
        x[1, 0, 3, 3] = np.nan
    elif setup == "labels":
        np.save("y.npy", np.zeros(3, np.int64))
    if setup == "npz":
        with open("x.npy", "wb") as f:
            np.savez(f, a=x)
    else:
        np.save("x.npy", x)
    if "--out" not in argv:
        argv = [*argv, "--out", "l.npy"]
    assert main(["--weights", "net.npz", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("golden.network: error: ") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "l.npy").exists()


def test_quantised_input_matches_the_cli_for_real_images(tmp_path, capsys, net):
    weights, path = net
    x = np.linspace(-1, 1, 2 * 7 * 9, dtype=np.float32).reshape(1, 2, 7, 9)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "q.npy", quantize_input(weights, x))
    _ok(capsys, "--weights", path, "--input", tmp_path / "x.npy", "--out", tmp_path / "a.npy")
    _ok(capsys, "--weights", path, "--input", tmp_path / "q.npy", "--out", tmp_path / "b.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
