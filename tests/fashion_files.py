"""A tiny Fashion-MNIST folder for tests: random images in the original IDX file names."""

import os

import numpy as np

from golden.datasets import FASHION_MNIST_FILES
from golden.idx import write_idx

__all__ = ["N_TEST", "N_TRAIN", "write_fashion"]

N_TRAIN, N_TEST = 48, 12


def write_fashion(folder, n_train=N_TRAIN, n_test=N_TEST, seed=0):
    """A tiny Fashion-MNIST folder with the original file names; returns the raw arrays."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    raw = {}
    for part, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        names = FASHION_MNIST_FILES[part]
        write_idx(os.path.join(folder, names[0]), images)
        write_idx(os.path.join(folder, names[1]), labels)
        raw[part] = images, labels
    return raw
