"""Image datasets as NumPy arrays: the one definition of each split the trainer and the network
runners share.

``digits`` is scikit-learn's bundled 8x8 grey digits (1797 images, nothing downloaded), pixel
values divided by 16 into [0, 1], float32 [N, 1, 8, 8], split stratified by ``seed`` with a test
fraction of 0.25 (450 test images). scikit-learn is imported only when a split is loaded, so
golden stays importable with NumPy alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DATASETS", "DatasetError", "Split", "digits_split", "load_test_split"]

#: Datasets the network runners load by name.
DATASETS = ("digits",)


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


def load_test_split(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Test images and labels of dataset ``name`` (one of :data:`DATASETS`).

    Raises
    ------
    DatasetError
        For an unknown name or a dataset that cannot be loaded.
    """
    if name not in DATASETS:
        raise DatasetError(f"dataset must be one of {', '.join(DATASETS)}, not {name!r}")
    split = digits_split(seed)
    return split.x_test, split.y_test
