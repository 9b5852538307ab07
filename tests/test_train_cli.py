"""The prune CLI: a tiny deterministic run, its weight file and report, and one-line errors."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from golden.conv import winograd_conv2d_int  # noqa: E402
from golden.network import load_network  # noqa: E402
from golden.network import main as golden_network_main  # noqa: E402
from golden.weights import load_weights  # noqa: E402
from train.prune import main  # noqa: E402

TINY = ["--dense-epochs", "1", "--prune-epochs", "2", "--stages", "1", "--limit", "200", "--quiet"]


def _run(tmp_path, name, *extra):
    out, report = tmp_path / f"{name}.npz", tmp_path / f"{name}.json"
    assert main(["--out", str(out), "--report", str(report), *TINY, *extra]) == 0
    return out, json.loads(report.read_text())


def test_tiny_run_writes_valid_file_and_report_deterministically(tmp_path):
    args = ("--tile", "6x6", "--method", "spatial-winograd", "--target-sparsity", "0.5")
    out, report = _run(tmp_path, "a", *args)
    out2, report2 = _run(tmp_path, "b", *args)
    wf, wf2 = load_weights(out), load_weights(out2)
    assert wf.names == ["conv0", "conv1", "conv2", "conv3"]
    for a, b in zip(wf.layers, wf2.layers):                 # same seed, same file
        np.testing.assert_array_equal(a.U, b.U)
        np.testing.assert_array_equal(a.bias, b.bias)
    assert report["accuracy"] == report2["accuracy"]
    assert report["method"] == "spatial-winograd" and report["tile"] == "6x6"
    assert set(report["accuracy"]) == {"dense", "pruned", "quantised",
                                       "fine_tuned_int8_weights"}
    assert report["accuracy"]["fine_tuned_int8_weights"] is not None      # 6x6: on by default
    assert all(0 < np.ptp(lw.tap_shift) == np.ptp(report["tap_shifts"][lw.name])
               for lw in wf.layers)
    sp = report["winograd_sparsity"]
    assert sp["overall"] >= 0.5 - 1e-3
    layer = sp["layers"]["conv1"]
    assert np.array(layer["per_position"]).shape == (6, 6)
    # The report's per-layer sparsity is that of the float weights; the file can only add zeros.
    for lw in wf.layers:
        assert lw.sparsity >= sp["layers"][lw.name]["sparsity"] - 1e-12
    assert report["wall_time_s"] > 0
    # The file runs through golden's integer model.
    x = np.random.default_rng(0).integers(0, 128, size=(1, 8, 8))
    y = winograd_conv2d_int(x, wf["conv0"].U, wf["conv0"].AT, wf["conv0"].BT, 1,
                            wf["conv0"].bias_or_zeros, tap_shift=wf["conv0"].tap_shift)
    assert y.shape == (16, 8, 8)


def test_report_accuracy_is_golden_network_accuracy_on_the_file(tmp_path, capsys):
    """The trainer's quantised accuracy is what python -m golden.network gives on its file."""
    out, report = _run(tmp_path, "net", "--dense-epochs", "8", "--batch-size", "8", "--limit",
                       "300", "--target-sparsity", "0.5")
    weights = load_network(out)
    net = weights.network
    assert [str(op) for op in net.ops] == ["conv:conv0", "conv:conv1", "maxpool2", "conv:conv2",
                                           "conv:conv3", "maxpool2", "flatten", "linear:fc"]
    assert net.input_shape == (1, 8, 8) and net.classes == list("0123456789")
    assert net.shapes[-2:] == [(128,), (10,)]
    capsys.readouterr()
    assert golden_network_main(["--weights", str(out), "--dataset", "digits", "--images", "300",
                                "--out", str(tmp_path / "logits.npy")]) == 0
    summary = capsys.readouterr().out
    hits = round(report["accuracy"]["quantised"] * 300)
    assert report["accuracy"]["quantised"] == hits / 300 > 0.5     # it learnt something
    assert f"accuracy {hits / 300:.4f} ({hits}/300)" in summary
    logits = np.load(tmp_path / "logits.npy")
    assert logits.shape == (300, 10) and logits.dtype == np.int64


def test_other_seed_gives_other_weights(tmp_path):
    a, _ = _run(tmp_path, "s0", "--method", "winograd-magnitude", "--target-sparsity", "0.3")
    b, _ = _run(tmp_path, "s1", "--method", "winograd-magnitude", "--target-sparsity", "0.3",
                "--seed", "1")
    assert not np.array_equal(load_weights(a)["conv1"].U, load_weights(b)["conv1"].U)


def test_cifar_run_on_synthetic_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                         b"labels": list(rng.integers(0, 10, 4))}, f)
    out, report = _run(tmp_path, "c", "--dataset", "cifar10", "--cifar-dir", str(folder),
                       "--limit", "8", "--method", "spatial-magnitude")
    assert load_weights(out)["conv5"].U.shape == (64, 64, 4, 4)
    assert report["dataset"] == "cifar10"


@pytest.mark.parametrize("extra, message", [
    (["--tile", "5x5"], "argument --tile: tile must be one of 4x4, 6x6, not '5x5'"),
    (["--method", "random"], "argument --method: invalid choice: 'random'"),
    (["--target-sparsity", "1.2"], "target sparsity must lie in [0, 1), not 1.2"),
    (["--stages", "0"], "stages must be a positive integer, not 0"),
    (["--dataset", "cifar10"], "--dataset cifar10 needs --cifar-dir"),
    (["--threads", "0"], "--threads must be a positive integer, not 0"),
    (["--report", "r.txt"], "--report r.txt: must end in .json"),
])
def test_bad_arguments_give_one_line_and_status_2(tmp_path, capsys, extra, message):
    assert main(["--out", str(tmp_path / "w.npz"), *extra]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("train.prune: error: ")
    assert message in err and err.count("\n") == 1


def test_output_must_be_a_weight_file(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "w.npy")]) == 2
    assert capsys.readouterr().err == f"train.prune: error: --out {tmp_path / 'w.npy'}: must " \
                                      "end in .npz\n"


def test_missing_output_folder_fails_before_training(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "train.prune", "--out",
                           str(tmp_path / "absent" / "w.npz")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "does not exist" in proc.stderr
    assert proc.stderr.startswith("train.prune: error: --out ")


def test_diverging_training_is_one_line_not_a_traceback(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "w.npz"), "--limit", "64", "--dense-epochs", "1",
                 "--prune-epochs", "1", "--method", "winograd-magnitude", "--tile", "6x6",
                 "--lr", "1e6", "--winograd-lr", "1e6", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "training failed" in err and "NaN" in err
    assert not (tmp_path / "w.npz").exists()
