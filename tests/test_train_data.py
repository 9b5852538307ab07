"""Dataset loaders: bundled digits, and CIFAR-10 on a tiny synthetic folder of the real format."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from train.data import DatasetError, load_cifar10, load_dataset, load_digits  # noqa: E402


def _write_cifar(folder, n=6, seed=0, skip=(), bad=None):
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        if name in skip:
            continue
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        content = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                   b"filenames": [f"{i}.png".encode() for i in range(n)]}
        if bad == name:
            content[b"data"] = data[:, :100]
        with open(folder / name, "wb") as f:
            pickle.dump(content, f)
        batches[name] = (data, labels)
    return batches


def test_cifar_loader_reads_the_python_batch_format(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    batches = _write_cifar(folder)
    ds = load_cifar10(folder)
    assert ds.x_train.shape == (30, 3, 32, 32) and ds.x_test.shape == (6, 3, 32, 32)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    data, labels = batches["data_batch_2"]
    # Row layout: 1024 red, 1024 green, 1024 blue values, each row-major 32x32.
    np.testing.assert_allclose(ds.x_train[6].numpy(), data[0].reshape(3, 32, 32) / 255.0)
    assert ds.y_train[6:12].tolist() == labels
    assert float(ds.x_train.min()) >= 0 and float(ds.x_train.max()) <= 1
    small = load_dataset("cifar10", cifar_dir=str(folder), limit=4)
    assert len(small.x_train) == 4 and len(small.x_test) == 4


def test_cifar_loader_names_the_bad_file(tmp_path):
    folder = tmp_path / "c"
    _write_cifar(folder, skip=("data_batch_3",))
    with pytest.raises(DatasetError, match="data_batch_3: missing CIFAR-10 batch file"):
        load_cifar10(folder)
    folder2 = tmp_path / "d"
    _write_cifar(folder2, bad="test_batch")
    with pytest.raises(DatasetError, match=r"test_batch: 'data' must be uint8 \[N, 3072\]"):
        load_cifar10(folder2)
    (folder2 / "data_batch_1").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="data_batch_1: not a CIFAR-10 python batch"):
        load_cifar10(folder2)
    with pytest.raises(DatasetError, match="no such CIFAR-10 folder"):
        load_cifar10(tmp_path / "absent")


def test_digits_split_is_deterministic_and_stratified():
    a, b = load_digits(0), load_digits(0)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.x_train.shape[1:] == (1, 8, 8)
    assert len(a.x_train) + len(a.x_test) == 1797
    assert float(a.x_train.max()) == 1.0 and float(a.x_train.min()) == 0.0
    assert set(a.y_test.tolist()) == set(range(10))
    assert not torch.equal(load_digits(1).y_test, a.y_test)


def test_load_dataset_errors():
    with pytest.raises(DatasetError, match="cifar10 needs the path"):
        load_dataset("cifar10")
    with pytest.raises(DatasetError, match="dataset must be one of digits, fashion-mnist, cifar10, not 'mnist'"):
        load_dataset("mnist")
