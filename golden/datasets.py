"""Image datasets as NumPy arrays: the one definition of each split the trainer and the network
runners share.

``digits`` is scikit-learn's bundled 8x8 grey digits (1797 images, nothing downloaded), pixel
values divided by 16 into [0, 1], float32 [N, 1, 8, 8], split stratified by ``seed`` with a test
fraction of 0.25 (450 test images). scikit-learn is imported only when a split is loaded, so
golden stays importable with NumPy alone.

``fashion-mnist`` is Zalando's Fashion-MNIST (70,000 28x28 grey images of 10 kinds of clothing,
the fixed split of 60,000 training and 10,000 test images), read from the gzip IDX files of the
Debian package ``dataset-fashion-mnist`` (:data:`FASHION_MNIST_DIR`) or of a folder given as
``data_dir``; pixel values divided by 255 into [0, 1], float32 [N, 1, 28, 28]. The split does
not depend on the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import os

import numpy as np

from .idx import IdxError, read_idx

__all__ = ["DATASETS", "FASHION_MNIST_DIR", "FASHION_MNIST_FILES", "FASHION_MNIST_PACKAGE",
           "DatasetError", "Split", "digits_split", "fashion_mnist_split", "load_split",
           "load_test_split"]

#: Datasets the network runners load by name.
DATASETS = ("digits", "fashion-mnist")
#: The Debian package that installs Fashion-MNIST, and where it puts the files.
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: Part -> (images file, labels file), the names of the original release.
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class DatasetError(ValueError):
    """A dataset is missing, malformed or cannot be loaded (the message is one line)."""


@dataclass(frozen=True)
class Split:
    """Images float32 [N, C, H, W] in [0, 1] and labels int64 [N], train and test parts."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int


def digits_split(seed: int = 0, test_fraction: float = 0.25) -> Split:
    """scikit-learn's digits, split stratified by ``seed`` (``train.prune --seed``).

    Raises
    ------
    DatasetError
        If scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise DatasetError("dataset 'digits' needs scikit-learn (pip install scikit-learn)") \
            from None
    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None]      # pixel values are 0..16
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                              stratify=y)
    return Split(x_tr, y_tr, x_te, y_te, classes=10)


def _fashion_part(folder: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    names = FASHION_MNIST_FILES[part]
    paths = [os.path.join(folder, name) for name in names]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DatasetError(f"Fashion-MNIST not found: no {missing[0]} (install the Debian "
                           f"package {FASHION_MNIST_PACKAGE} or pass --data-dir DIR holding "
                           f"{', '.join(names)})")
    try:
        images, labels = (read_idx(p) for p in paths)
    except IdxError as exc:
        raise DatasetError(str(exc)) from None
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(f"{paths[0]}: images must be uint8 [N, 28, 28], not {images.dtype} "
                           f"{list(images.shape)}")
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise DatasetError(f"{paths[1]}: labels must be uint8 [{images.shape[0]}] (one per "
                           f"image of {names[0]}), not {labels.dtype} {list(labels.shape)}")
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{paths[1]}: labels must lie in 0..9, found {int(labels.max())}")
    return (images.astype(np.float32) / 255.0)[:, None], labels.astype(np.int64)


def fashion_mnist_split(data_dir: str | os.PathLike | None = None, *,
                        test_only: bool = False) -> Split:
    """Fashion-MNIST's fixed split from ``data_dir`` (default :data:`FASHION_MNIST_DIR`).

    ``test_only`` skips the training files (the split's training part is then empty).

    Raises
    ------
    DatasetError
        For a missing file (naming the package and ``--data-dir``) or a malformed one.
    """
    folder = os.fspath(FASHION_MNIST_DIR if data_dir is None else data_dir)
    x_te, y_te = _fashion_part(folder, "test")
    if test_only:
        x_tr, y_tr = x_te[:0], y_te[:0]
    else:
        x_tr, y_tr = _fashion_part(folder, "train")
    return Split(x_tr, y_tr, x_te, y_te, classes=10)


def load_split(name: str, seed: int = 0, data_dir: str | os.PathLike | None = None, *,
               test_only: bool = False) -> Split:
    """The split of dataset ``name`` (one of :data:`DATASETS`).

    ``seed`` chooses the digits split; ``data_dir`` is Fashion-MNIST's folder.

    Raises
    ------
    DatasetError
        For an unknown name or a dataset that cannot be loaded.
    """
    if name not in DATASETS:
        raise DatasetError(f"dataset must be one of {', '.join(DATASETS)}, not {name!r}")
    if name == "fashion-mnist":
        return fashion_mnist_split(data_dir, test_only=test_only)
    return digits_split(seed)


def load_test_split(name: str, seed: int = 0, data_dir: str | os.PathLike | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Test images and labels of dataset ``name`` (see :func:`load_split`).

    Raises
    ------
    DatasetError
        For an unknown name or a dataset that cannot be loaded.
    """
    split = load_split(name, seed, data_dir, test_only=True)
    return split.x_test, split.y_test
