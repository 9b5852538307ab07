"""Bit-exact integer model of a whole network (weight file version 2), and its command line.

The ops and their integer semantics are specified in ``docs/weight-format.md``:

* input: ``clip(rint(x / input_scale), -128, 127)`` as int8 (:func:`quantize_input`);
* ``conv:L``: :func:`golden.conv.winograd_conv2d_int` (bias and tap shifts included, int64),
  then
  :func:`golden.quant.requantize` with the layer's ``requant_mult``, ``requant_shift``, ``relu``;
* ``maxpool2``: 2x2 max, stride 2, odd rows / columns at the end dropped;
* ``flatten``: C, H, W order; ``linear:N``: int64 logits ``W @ x + b``;
* class: argmax of the logits, ties to the lowest index.

Usage::

    python -m golden.network --weights W.npz (--input X.npy [--labels Y.npy]
                             | --dataset NAME [--images N] [--seed S] [--data-dir DIR])
                             --out LOGITS.npy

``X`` holds float images [N, C, H, W] or [C, H, W] (quantised with the file's input scale) or
int8 images (used as they are); the int64 logits [N, O] (or [O]) go to ``LOGITS``. A summary,
with the accuracy when labels are known, goes to stdout; bad input gives one line on stderr and
exit status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass

import numpy as np

from .conv import winograd_conv2d_int
from .datasets import (DATASETS, FASHION_MNIST_DIR, FASHION_MNIST_PACKAGE, DatasetError,
                       load_test_split)
from .netfile import LinearWeights, NetworkOp
from .quant import requantize
from .cli import (CliError, OneLineParser, check_output_path, one_line, read_array, run_main,
                  save_npy)
from .weights import LayerWeights, WeightFile, WeightFileError, load_weights

__all__ = ["OpOutput", "accuracy", "add_image_arguments", "classify", "conv_op", "evaluate",
           "flatten", "linear", "load_images", "load_network", "logits_in_chunks", "main",
           "maxpool2", "quantize_input", "run_network", "run_op"]

PROG = "golden.network"


@dataclass
class OpOutput:
    """What one op of the network produced (batched like the input).

    Members
    -------
    op : NetworkOp
        The op (``str(op)`` is its ``network/ops`` item, e.g. ``"conv:conv0"``).
    index : int
        Its position in ``network/ops``.
    output : ndarray
        int8 for conv, maxpool2 and flatten; int64 logits for linear.
    raw : ndarray or None
        For conv: the int64 output before requantisation (bias included); else None.
    """

    op: NetworkOp
    index: int
    output: np.ndarray
    raw: np.ndarray | None = None


def load_network(path: str | os.PathLike) -> WeightFile:
    """Read a weight file that holds a network (version 2).

    Raises
    ------
    WeightFileError
        If the file is invalid or is version 1 (layers without a network).
    """
    weights = load_weights(path)
    if weights.network is None:
        raise WeightFileError(weights.source, "is version 1 (layers only); a network needs "
                              "version 2 with network/ops", key="version")
    return weights


def _network(weights: WeightFile):
    if weights.network is None:
        raise ValueError(f"{weights.source}: holds no network (version 1); see load_network")
    return weights.network


def quantize_input(weights: WeightFile, images) -> np.ndarray:
    """Quantise real images to the network's int8 input, ``clip(rint(x / s), -128, 127)``.

    ``x`` is taken as float64 (exact for float16 / float32 images), divided in float64 by the
    file's float32 ``input_scale`` ``s``; ``rint`` rounds half to even.
    """
    s = np.float64(np.float32(_network(weights).input_scale))
    x = np.asarray(images, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("images contain NaN or Inf")
    return np.clip(np.rint(x / s), -128, 127).astype(np.int8)


def conv_op(layer: LayerWeights, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``conv:L`` on int8 ``x`` [.., C, H, W]: (int8 requantised output, int64 raw output)."""
    raw = winograd_conv2d_int(x, layer.U, layer.AT, layer.BT, layer.padding,
                              layer.bias_or_zeros, r=layer.r, tap_shift=layer.tap_shift)
    return requantize(raw, layer.requant_mult, layer.requant_shift, relu=bool(layer.relu)), raw


def maxpool2(x: np.ndarray) -> np.ndarray:
    """2x2 max pooling, stride 2, of [.., C, H, W]; an odd last row / column is dropped."""
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    # Elementwise maxima of the four strided quarters (a reduction over two strided axes is
    # several times slower).
    return np.maximum(np.maximum(x[..., 0:2 * h:2, 0:2 * w:2], x[..., 0:2 * h:2, 1:2 * w:2]),
                      np.maximum(x[..., 1:2 * h:2, 0:2 * w:2], x[..., 1:2 * h:2, 1:2 * w:2]))


def flatten(x: np.ndarray) -> np.ndarray:
    """[N, C, H, W] -> [N, C*H*W] (or [C, H, W] -> [C*H*W]), C slowest, W fastest."""
    return x.reshape(x.shape[0], -1) if x.ndim == 4 else x.reshape(-1)


def linear(head: LinearWeights, x: np.ndarray) -> np.ndarray:
    """int64 logits ``W @ x + b`` of int8 ``x`` [.., I]."""
    return x.astype(np.int64) @ head.W.astype(np.int64).T + head.b.astype(np.int64)


def run_op(weights: WeightFile, index: int, x: np.ndarray) -> OpOutput:
    """Run op ``index`` of the network on its input ``x``: the previous op's output (or the
    int8 images for op 0), batched [N, ...] or one image, as :func:`run_network` passes it."""
    network = _network(weights)
    op = network.ops[index]
    raw = None
    if op.kind == "conv":
        out, raw = conv_op(weights[op.name], x)
    elif op.kind == "maxpool2":
        out = maxpool2(x)
    elif op.kind == "flatten":
        out = flatten(x)
    else:
        out = linear(network.linear, x)
    return OpOutput(op, index, out, raw)


def run_network(weights: WeightFile, x: np.ndarray,
                trace: bool = True) -> tuple[np.ndarray, list[OpOutput]]:
    """Run int8 images ``x`` ([N, C, H, W] or one [C, H, W]) through the whole network.

    Returns
    -------
    logits : ndarray of int64
        [N, O] (or [O]).
    outputs : list of OpOutput
        One per op, in order (the last holds the logits); empty unless ``trace``.

    Raises
    ------
    ValueError
        If ``x`` is not int8 or its shape is not the network's input shape.
    """
    network = _network(weights)
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise ValueError(f"input must be int8, not {x.dtype}")
    if x.ndim not in (3, 4) or x.shape[-3:] != network.input_shape:
        c, h, w = network.input_shape
        raise ValueError(f"input shape must be [{c}, {h}, {w}] or [N, {c}, {h}, {w}], not "
                         f"{list(x.shape)}")
    outputs = []
    for index in range(len(network.ops)):
        result = run_op(weights, index, x)
        x = result.output
        if trace:
            outputs.append(result)
    return x, outputs


def classify(logits: np.ndarray) -> np.ndarray:
    """Class indices: argmax over the last axis, ties to the lowest index."""
    return np.argmax(logits, axis=-1)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of images whose class is their label."""
    return float(np.mean(classify(logits) == np.asarray(labels)))


def evaluate(weights: WeightFile, images, labels=None) -> tuple[np.ndarray, float | None]:
    """Quantise real ``images`` [N, C, H, W], run them, and score them against ``labels``.

    Returns the int64 logits [N, O] and the accuracy (None without labels). This is the
    trainer's quantised accuracy and the ``python -m golden.network`` figure. The images run
    in chunks (:func:`logits_in_chunks`).
    """
    logits = logits_in_chunks(weights, quantize_input(weights, images))
    return logits, None if labels is None else accuracy(logits, labels)


# -- command line ---------------------------------------------------------------------------

def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the image options every network tool shares: ``--input`` / ``--labels`` or
    ``--dataset`` / ``--images`` / ``--seed`` (read by :func:`load_images`)."""
    p = parser
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="X.npy",
                        help="images [N, C, H, W] or [C, H, W]: float (quantised with the "
                             "file's input scale) or int8 (used as they are)")
    source.add_argument("--dataset", choices=DATASETS,
                        help="the test split of a dataset (digits: the split train.prune "
                             "reports, needs scikit-learn; fashion-mnist: the 10,000 test "
                             f"images, Debian package {FASHION_MNIST_PACKAGE} or --data-dir)")
    p.add_argument("--images", type=int, metavar="N",
                   help="with --dataset: only the first N test images; default: all")
    p.add_argument("--seed", type=int, default=None,
                   help="with --dataset: the split seed (train.prune --seed); default: 0")
    p.add_argument("--data-dir", metavar="DIR",
                   help="with --dataset fashion-mnist: the folder of its IDX files; default: "
                        f"{FASHION_MNIST_DIR}")
    p.add_argument("--labels", metavar="Y.npy",
                   help="with --input: integer labels [N] to report the accuracy")


def build_parser() -> OneLineParser:
    """The command-line parser (``--help`` lists every option and its default)."""
    p = OneLineParser(
        PROG,
        description="Run images through a whole network (weight file version 2) with the "
                    "bit-exact integer golden model and save the int64 logits.")
    p.add_argument("--weights", required=True, metavar="W.npz",
                   help="weight file, version 2 (see docs/weight-format.md); required")
    add_image_arguments(p)
    p.add_argument("--out", required=True, metavar="LOGITS.npy",
                   help="output file: int64 logits [N, O] (or [O]); required")
    return p


def load_images(args, weights: WeightFile):
    """(int8 images, labels or None, where they come from) of the options of
    :func:`add_image_arguments`; :class:`CliError` for anything wrong."""
    if args.dataset is not None:
        if args.labels is not None:
            raise CliError("--labels goes with --input; --dataset brings its own labels")
        if args.images is not None and args.images < 1:
            raise CliError(f"--images must be a positive integer, not {args.images}")
        try:
            x, y = load_test_split(args.dataset, 0 if args.seed is None else args.seed,
                                   args.data_dir)
        except DatasetError as exc:
            raise CliError(f"--dataset {args.dataset}: {one_line(exc)}") from None
        x, y = x[:args.images], y[:args.images]
        where = f"--dataset {args.dataset}"
    else:
        for flag in ("images", "seed", "data_dir"):
            if getattr(args, flag) is not None:
                raise CliError(f"--{flag.replace('_', '-')} goes with --dataset, not --input")
        x, y, where = read_array(args.input, "--input"), None, f"--input {args.input}"
        if args.labels is not None:
            y = read_array(args.labels, "--labels")
            n = x.shape[0] if x.ndim == 4 else 1
            if y.dtype.kind not in "iu" or y.shape != ((n,) if x.ndim == 4 else ()):
                raise CliError(f"--labels {args.labels}: must be integers of shape "
                               f"{[n] if x.ndim == 4 else []}, not {y.dtype} {list(y.shape)}")
    network = weights.network
    c, h, w = network.input_shape
    if x.ndim not in (3, 4) or x.shape[-3:] != network.input_shape or x.size == 0:
        raise CliError(f"{where}: shape must be [{c}, {h}, {w}] or [N, {c}, {h}, {w}] "
                       f"(network/input_shape), not {list(x.shape)}")
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)):
            raise CliError(f"{where}: contains NaN or Inf")
        x = quantize_input(weights, x)
    elif x.dtype != np.int8:
        raise CliError(f"{where}: dtype must be float (real images) or int8 (quantised), "
                       f"not {x.dtype}")
    return x, y, where


#: Working memory of one chunk of images in :func:`logits_in_chunks` (the network runs chunk by
#: chunk, so that its memory grows with the images of a chunk, not with N, and a chunk's
#: intermediates stay in cache).
CHUNK_BUDGET = 64 * 2**20


def logits_in_chunks(weights: WeightFile, x: np.ndarray) -> np.ndarray:
    """The logits of :func:`run_network` for int8 ``x``, computed a chunk of images at a time
    (:data:`CHUNK_BUDGET`)."""
    if x.ndim != 4:
        return run_network(weights, x, trace=False)[0]
    shapes = [weights.network.input_shape, *(weights.network.shapes or [])]
    # int64 raw outputs and the Winograd intermediates: about 64 bytes per activation.
    per_image = 64 * max(math.prod(s) for s in shapes)
    chunk = max(1, CHUNK_BUDGET // per_image)
    return np.concatenate([run_network(weights, x[i:i + chunk], trace=False)[0]
                           for i in range(0, len(x), chunk)])


def _run(argv) -> str:
    args = build_parser().parse_args(argv)
    check_output_path(args.out, inputs=[("--weights", args.weights), ("--input", args.input),
                                        ("--labels", args.labels)])
    try:
        weights = load_network(args.weights)
    except WeightFileError as exc:
        raise CliError(f"weights {one_line(exc)}") from None
    x, y, where = load_images(args, weights)
    try:
        logits = logits_in_chunks(weights, x)
    except ValueError as exc:           # raw outputs beyond what requantisation allows
        raise CliError(f"{args.weights}: {one_line(exc)}") from None
    save_npy(args.out, logits)
    n = x.shape[0] if x.ndim == 4 else 1
    ops = " ".join(str(op) for op in weights.network.ops)
    score = ""
    if y is not None:
        hits = int(np.sum(classify(logits) == y))
        score = f", accuracy {hits / n:.4f} ({hits}/{n})"
    return f"{where}: {n} image{'s' * (n != 1)} through {ops}{score} -> {args.out}"


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status (0, 2 on bad input, 130 when
    interrupted)."""
    return run_main(PROG, lambda: print(_run(argv)))


if __name__ == "__main__":
    sys.exit(main())
