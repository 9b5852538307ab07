"""Run one layer of a weight file through the bit-exact integer golden model.

Usage::

    python -m golden.run --weights W.npz --layer NAME --input X.npy --out Y.npy
                         [--requant MULT SHIFT [--relu]]

``X`` is an int8 array [C, H, W] or [N, C, H, W]; ``Y`` is the raw int64 output [K, Hout, Wout]
or [N, K, Hout, Wout] of :func:`golden.conv.winograd_conv2d_int` (bias included), or with
``--requant`` the int8 output of :func:`golden.quant.requantize`. A one-line summary goes to
stdout. Any bad input gives one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zipfile

import numpy as np

from .conv import winograd_conv2d_int
from .quant import requantize
from .weights import LayerWeights, WeightFileError, load_weights

__all__ = ["CliError", "build_parser", "check_input_fits", "check_output_path", "load_input",
           "load_layer", "main", "one_line", "run_layer"]

PROG = "golden.run"


class CliError(Exception):
    """A bad command line or input file; the message is one line for stderr."""


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports errors as a :class:`CliError` instead of usage + exit."""

    def error(self, message):
        raise CliError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (``--help`` lists every option and its default)."""
    parser = _OneLineParser(
        prog=f"python -m {PROG}",
        description="Compute one layer of a sparse-Winograd weight file with the bit-exact "
                    "integer golden model and save the raw output as an .npy array.")
    parser.add_argument("--weights", required=True, metavar="W.npz",
                        help="weight file, format v1 (see docs/weight-format.md); required")
    parser.add_argument("--layer", required=True, metavar="NAME", help="layer to run; required")
    parser.add_argument("--input", required=True, metavar="X.npy",
                        help="int8 input activations, [C, H, W] or [N, C, H, W]; required")
    parser.add_argument("--out", required=True, metavar="Y.npy",
                        help="output file: int64 raw outputs [[N,] K, Hout, Wout] "
                             "(int8 with --requant); required")
    parser.add_argument("--requant", nargs=2, type=int, metavar=("MULT", "SHIFT"), default=None,
                        help="requantise to int8: clamp((y * MULT + round) >> SHIFT) for every "
                             "channel (see golden.quant); default: off, raw int64 output")
    parser.add_argument("--relu", action="store_true", default=False,
                        help="apply ReLU after requantising (needs --requant); default: off")
    return parser


def load_input(path: str) -> np.ndarray:
    """Read an activation array from a ``.npy`` file without unpickling.

    Raises
    ------
    CliError
        If the file is missing, not a plain ``.npy`` array, or not int8 of rank 3 or 4.
    """
    if not os.path.exists(path):
        raise CliError(f"input {path}: no such file")
    if os.path.isdir(path):
        raise CliError(f"input {path}: is a directory, not a .npy file")
    try:
        with open(path, "rb") as handle:        # closed even when np.load fails half-way
            x = np.load(handle, allow_pickle=False)
            if isinstance(x, np.lib.npyio.NpzFile):
                x.close()
                raise CliError(f"input {path}: is an .npz archive, not a single .npy array")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CliError(f"input {path}: not a readable .npy array ({one_line(exc)})") from None
    if x.dtype != np.int8:
        raise CliError(f"input {path}: dtype must be int8, not {x.dtype}")
    if x.ndim not in (3, 4):
        raise CliError(f"input {path}: shape must be [C, H, W] or [N, C, H, W], "
                       f"not {list(x.shape)}")
    if x.size == 0:
        raise CliError(f"input {path}: is empty (shape {list(x.shape)})")
    return x


def load_layer(weights_path: str, name: str) -> LayerWeights:
    """Read ``weights_path`` (validated, never unpickled) and return its layer ``name``.

    Raises
    ------
    CliError
        Naming the file, layer and key of any problem, or the layers the file has.
    """
    try:
        weights = load_weights(weights_path)
    except WeightFileError as exc:
        raise CliError(f"weights {one_line(exc)}") from None
    if name not in weights:
        raise CliError(f"weights {weights_path}: no layer '{name}'; layers are: "
                       f"{', '.join(weights.names)}")
    return weights[name]


def check_input_fits(x: np.ndarray, layer: LayerWeights, path: str) -> None:
    """Refuse an input whose channel count or size does not suit ``layer`` (CliError)."""
    c, h, w = x.shape[-3:]
    if c != layer.in_channels:
        raise CliError(f"input {path}: has {c} channels (shape {list(x.shape)}), layer "
                       f"'{layer.name}' expects {layer.in_channels}")
    pad = layer.padding
    if h + 2 * pad < layer.r or w + 2 * pad < layer.r:
        raise CliError(f"input {path}: {h}x{w} with padding {pad} is smaller than the "
                       f"{layer.r}x{layer.r} kernel of layer '{layer.name}'")


def check_output_path(path: str, flag: str = "--out", ext: str = ".npy") -> None:
    """Refuse an output path without ``ext``, that is a directory, or whose directory is
    missing (CliError naming ``flag``), before any work is done."""
    if not path.endswith(ext):
        raise CliError(f"{flag} {path}: must end in {ext}")
    if os.path.isdir(path):
        raise CliError(f"{flag} {path}: is a directory")
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise CliError(f"{flag} {path}: directory {parent} does not exist")


def run_layer(layer: LayerWeights, x: np.ndarray, requant: tuple[int, int] | None = None,
              relu: bool = False) -> np.ndarray:
    """The layer's integer output for ``x`` (raw int64, or int8 with ``requant``)."""
    y = winograd_conv2d_int(x, layer.U, layer.AT, layer.BT, layer.padding,
                            layer.bias_or_zeros, r=layer.r)
    if requant is not None:
        y = requantize(y, requant[0], requant[1], relu=relu)
    return y


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _run(argv) -> str:
    args = build_parser().parse_args(argv)
    if args.relu and args.requant is None:
        raise CliError("--relu needs --requant MULT SHIFT")
    check_output_path(args.out)
    layer = load_layer(args.weights, args.layer)
    x = load_input(args.input)
    check_input_fits(x, layer, args.input)

    start = time.perf_counter()
    try:
        y = run_layer(layer, x, args.requant, args.relu)
    except ValueError as exc:         # requantisation parameters out of range
        raise CliError(f"--requant {' '.join(map(str, args.requant))}: {one_line(exc)}") \
            from None
    elapsed = time.perf_counter() - start
    try:
        np.save(args.out, y, allow_pickle=False)
    except OSError as exc:
        raise CliError(f"--out {args.out}: cannot write ({one_line(exc)})") from None

    a = layer.alpha
    post = ""
    if args.requant is not None:
        post = f", requant {args.requant[0]}>>{args.requant[1]}{' relu' if args.relu else ''}"
    return (f"{layer.name}: x {list(x.shape)} int8 -> y {list(y.shape)} {y.dtype}, tile {a}x{a} "
            f"F({layer.m}x{layer.m},{layer.r}x{layer.r}), padding {layer.padding}, "
            f"sparsity {layer.sparsity:.1%}{post}, {elapsed * 1e3:.1f} ms -> {args.out}")


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status (0, or 2 on bad input)."""
    try:
        summary = _run(argv)
    except CliError as exc:
        print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
