"""Datasets: scikit-learn's bundled digits (default, nothing downloaded), Fashion-MNIST (the
Debian package ``dataset-fashion-mnist`` or a folder of its IDX files, read by
:mod:`golden.datasets`) and a local CIFAR-10.

Both loaders return a :class:`Dataset` of float32 tensors scaled to [0, 1] and int64 labels,
split into training and test parts.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass

import numpy as np
import torch

from golden.datasets import DatasetError, digits_split, fashion_mnist_split

__all__ = ["CLASS_NAMES", "DATASETS", "Dataset", "DatasetError", "load_cifar10", "load_dataset",
           "load_digits", "load_fashion_mnist"]

#: Dataset names the CLIs accept.
DATASETS = ("digits", "fashion-mnist", "cifar10")
#: Class names, one per label, written to the weight file's network/classes.
CLASS_NAMES = {
    "digits": tuple("0123456789"),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"),
}

_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"


@dataclass(frozen=True)
class Dataset:
    """Images [N, C, H, W] float32 in [0, 1] and labels [N] int64, split train / test."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int


def load_digits(seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """scikit-learn's 8x8 digits (1797 images), the split of :func:`golden.datasets.digits_split`
    (the one ``python -m golden.network --dataset digits`` evaluates)."""
    split = digits_split(seed, test_fraction)
    return Dataset("digits", torch.from_numpy(split.x_train), torch.from_numpy(split.y_train),
                   torch.from_numpy(split.x_test), torch.from_numpy(split.y_test),
                   classes=split.classes)


def load_fashion_mnist(data_dir: str | os.PathLike | None = None) -> Dataset:
    """Fashion-MNIST's fixed 60,000 / 10,000 split (:func:`golden.datasets.fashion_mnist_split`,
    the test images ``python -m golden.network --dataset fashion-mnist`` evaluates)."""
    split = fashion_mnist_split(data_dir)
    return Dataset("fashion-mnist", torch.from_numpy(split.x_train),
                   torch.from_numpy(split.y_train), torch.from_numpy(split.x_test),
                   torch.from_numpy(split.y_test), classes=split.classes)


def _read_cifar_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: missing CIFAR-10 batch file")
    try:
        with open(path, "rb") as f:
            # The official python batches are pickles; only ever pass a folder you trust.
            batch = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError,
            AttributeError, ImportError, IndexError) as exc:
        raise DatasetError(f"{path}: not a CIFAR-10 python batch ({exc})") from None
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: not a CIFAR-10 python batch (holds {type(batch).__name__})")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise DatasetError(f"{path}: CIFAR-10 batch lacks 'data' or 'labels'")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
        raise DatasetError(f"{path}: 'data' must be uint8 [N, 3072], not {data.dtype} "
                           f"{list(data.shape)}")
    if labels.shape != (data.shape[0],) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise DatasetError(f"{path}: 'labels' must be N integers in 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(folder: str | os.PathLike, limit: int | None = None) -> Dataset:
    """Read a local ``cifar-10-batches-py`` folder (data_batch_1..5 and test_batch).

    Parameters
    ----------
    folder : path
        The extracted folder of the official python version.
    limit : int, optional
        Keep at most this many training and test images (for quick runs).

    Raises
    ------
    DatasetError
        Naming the missing or malformed file.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DatasetError(f"{folder}: no such CIFAR-10 folder (expected cifar-10-batches-py)")
    parts = [_read_cifar_batch(os.path.join(folder, name)) for name in _CIFAR_TRAIN]
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    x_te, y_te = _read_cifar_batch(os.path.join(folder, _CIFAR_TEST))
    if limit is not None:
        x_tr, y_tr, x_te, y_te = x_tr[:limit], y_tr[:limit], x_te[:limit], y_te[:limit]

    def tensor(x):
        return torch.from_numpy(x.astype(np.float32) / 255.0)

    return Dataset("cifar10", tensor(x_tr), torch.from_numpy(y_tr), tensor(x_te),
                   torch.from_numpy(y_te), classes=10)


def load_dataset(name: str, seed: int = 0, cifar_dir: str | None = None,
                 limit: int | None = None, data_dir: str | None = None) -> Dataset:
    """Load ``name`` (one of :data:`DATASETS`; cifar10 needs ``cifar_dir``).

    ``limit`` keeps at most that many training and test images (the first ones); ``data_dir``
    is Fashion-MNIST's folder (default: the Debian package's).
    """
    if name in ("digits", "fashion-mnist"):
        data = load_digits(seed) if name == "digits" else load_fashion_mnist(data_dir)
        if limit is None:
            return data
        return Dataset(data.name, data.x_train[:limit], data.y_train[:limit],
                       data.x_test[:limit], data.y_test[:limit], data.classes)
    if name == "cifar10":
        if cifar_dir is None:
            raise DatasetError("cifar10 needs the path of a local cifar-10-batches-py folder")
        return load_cifar10(cifar_dir, limit)
    raise DatasetError(f"dataset must be one of {', '.join(DATASETS)}, not {name!r}")
