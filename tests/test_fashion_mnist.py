"""Fashion-MNIST: the split from IDX files written here, the network tools' and the trainer's
--dataset fashion-mnist / --data-dir, the 28x28 network with BatchNorm folded, and refusals."""

import json
import os

import numpy as np
import pytest

from fashion_files import N_TEST, write_fashion
from golden.datasets import (FASHION_MNIST_DIR, FASHION_MNIST_FILES, DatasetError,
                             fashion_mnist_split, load_test_split)
from golden.idx import write_idx
from golden.network import main as golden_network_main


def test_split_is_the_files_pixels_over_255(tmp_path):
    raw = write_fashion(tmp_path)
    split = fashion_mnist_split(tmp_path)
    for part, x, y in (("train", split.x_train, split.y_train),
                       ("test", split.x_test, split.y_test)):
        images, labels = raw[part]
        assert x.dtype == np.float32 and x.shape == (len(images), 1, 28, 28)
        np.testing.assert_array_equal(x[:, 0], images.astype(np.float32) / np.float32(255))
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, labels)
    x, y = load_test_split("fashion-mnist", seed=5, data_dir=tmp_path)   # seed: no effect
    np.testing.assert_array_equal(x, split.x_test)
    np.testing.assert_array_equal(y, split.y_test)


def test_missing_dataset_names_the_package_and_the_option(tmp_path):
    with pytest.raises(DatasetError) as info:
        fashion_mnist_split(tmp_path / "absent")
    text = str(info.value)
    assert "dataset-fashion-mnist" in text and "--data-dir" in text and "\n" not in text


@pytest.mark.parametrize("bad,match", [
    ("labels_count", r"labels must be uint8 \[12\]"),
    ("label_value", "labels must lie in 0..9, found 10"),
    ("image_size", r"images must be uint8 \[N, 28, 28\], not uint8 \[12, 28, 27\]"),
])
def test_malformed_files_are_refused(tmp_path, bad, match):
    write_fashion(tmp_path)
    images_name, labels_name = FASHION_MNIST_FILES["test"]
    if bad == "labels_count":
        write_idx(tmp_path / labels_name, np.zeros(11, np.uint8))
    elif bad == "label_value":
        write_idx(tmp_path / labels_name, np.full(12, 10, np.uint8))
    else:
        write_idx(tmp_path / images_name, np.zeros((12, 28, 27), np.uint8))
    with pytest.raises(DatasetError, match=match):
        fashion_mnist_split(tmp_path)


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DIR), reason="dataset-fashion-mnist is not "
                    "installed")
def test_installed_test_split():
    x, y = load_test_split("fashion-mnist")
    assert x.shape == (10000, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert np.bincount(y).tolist() == [1000] * 10


def _fake_weights(tmp_path):
    """A v2 file for 28x28 grey images (trained for one step by train.prune)."""
    pytest.importorskip("torch")
    from train.prune import main as prune_main
    data = tmp_path / "data"
    write_fashion(data)
    out, report = tmp_path / "w.npz", tmp_path / "r.json"
    assert prune_main(["--dataset", "fashion-mnist", "--data-dir", str(data), "--out", str(out),
                       "--report", str(report), "--dense-epochs", "1", "--prune-epochs", "2",
                       "--stages", "1", "--batch-size", "16", "--tile", "4x4",
                       "--target-sparsity", "0.6", "--quiet"]) == 0
    return data, out, json.loads(report.read_text())


def test_trained_file_and_golden_network_agree(tmp_path, capsys):
    data, out, report = _fake_weights(tmp_path)
    from golden.weights import load_weights
    wf = load_weights(out)
    assert wf.names == [f"conv{i}" for i in range(6)]
    assert [layer.out_channels for layer in wf.layers] == [32, 32, 64, 64, 128, 128]
    assert wf.network.input_shape == (1, 28, 28)
    assert [str(op) for op in wf.network.ops].count("maxpool2") == 3
    assert wf.network.classes[0] == "T-shirt/top"
    # First layer capped at 30 %, the others at the target, Winograd-domain.
    layers = report["winograd_sparsity"]["layers"]
    assert abs(layers["conv0"]["sparsity"] - 0.3) < 0.01
    assert all(abs(layers[f"conv{i}"]["sparsity"] - 0.6) < 0.01 for i in range(1, 6))
    assert report["test_images"] == N_TEST and report["device"] == "cpu"
    capsys.readouterr()
    assert golden_network_main(["--weights", str(out), "--dataset", "fashion-mnist",
                                "--data-dir", str(data), "--out",
                                str(tmp_path / "l.npy")]) == 0
    hits = round(report["accuracy"]["quantised"] * N_TEST)
    assert f"accuracy {hits / N_TEST:.4f} ({hits}/{N_TEST})" in capsys.readouterr().out


def test_network_tools_refuse_a_missing_dataset_in_one_line(tmp_path, capsys):
    data, out, _ = _fake_weights(tmp_path)
    from sim.network import main as sim_network_main
    for main, extra in ((golden_network_main, []), (sim_network_main, ["--report",
                                                                       str(tmp_path / "rep")])):
        capsys.readouterr()
        assert main(["--weights", str(out), "--dataset", "fashion-mnist", "--data-dir",
                     str(tmp_path / "nowhere"), "--out", str(tmp_path / "l.npy"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "error: --dataset fashion-mnist: " in err
        assert "dataset-fashion-mnist" in err and "--data-dir" in err
    capsys.readouterr()
    assert golden_network_main(["--weights", str(out), "--input", str(tmp_path / "x.npy"),
                                "--data-dir", str(data), "--out", str(tmp_path / "l.npy")]) == 2
    assert "--data-dir goes with --dataset, not --input" in capsys.readouterr().err
