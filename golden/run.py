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

import sys
import time

import numpy as np

from .banded import layer_output, save_layer_output
from .cli import (CliError, OneLineParser, atomic_output, check_input_fits, check_output_path,
                  load_input, load_layer, one_line, run_main)
from .quant import requantize
from .weights import LayerWeights

__all__ = ["build_parser", "main", "run_layer", "save_layer"]

PROG = "golden.run"


def build_parser() -> OneLineParser:
    """The command-line parser (``--help`` lists every option and its default)."""
    parser = OneLineParser(
        prog=PROG,
        description="Compute one layer of a sparse-Winograd weight file with the bit-exact "
                    "integer golden model and save the raw output as an .npy array.")
    parser.add_argument("--weights", required=True, metavar="W.npz",
                        help="weight file, version 1 or 2 (see docs/weight-format.md); required")
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


def _requant(requant, relu):
    if requant is None:
        return None
    requantize(np.zeros(1, np.int64), requant[0], requant[1])   # ValueError: out of range
    return (requant[0], requant[1], relu)


def run_layer(layer: LayerWeights, x: np.ndarray, requant: tuple[int, int] | None = None,
              relu: bool = False) -> np.ndarray:
    """The layer's integer output for ``x`` (raw int64, or int8 with ``requant``): equal to
    :func:`golden.conv.winograd_conv2d_int` then :func:`golden.quant.requantize`, computed in
    bands of bounded memory (:mod:`golden.banded`)."""
    return layer_output(x, layer.U, layer.AT, layer.BT, layer.padding, layer.bias_or_zeros,
                        r=layer.r, requant=_requant(requant, relu), tap_shift=layer.tap_shift)


def save_layer(path: str, layer: LayerWeights, x: np.ndarray,
               requant: tuple[int, int] | None = None, relu: bool = False,
               flag: str = "--out") -> tuple[tuple[int, ...], np.dtype]:
    """Write :func:`run_layer`'s output to the ``.npy`` file ``path`` atomically, band by band
    (never holding it whole); returns its shape and dtype. CliError naming ``flag``."""
    requant = _requant(requant, relu)
    try:
        with atomic_output(path) as tmp:
            return save_layer_output(tmp, x, layer.U, layer.AT, layer.BT, layer.padding,
                                     layer.bias_or_zeros, r=layer.r, requant=requant,
                                     tap_shift=layer.tap_shift)
    except OSError as exc:
        raise CliError(f"{flag} {path}: cannot write ({exc.strerror or exc})") from None


def _run(argv) -> str:
    args = build_parser().parse_args(argv)
    if args.relu and args.requant is None:
        raise CliError("--relu needs --requant MULT SHIFT")
    check_output_path(args.out, inputs=[("--weights", args.weights),
                                        ("--input", args.input)])
    layer = load_layer(args.weights, args.layer)
    x = load_input(args.input)
    check_input_fits(x, layer, args.input)

    try:
        _requant(args.requant, args.relu)
    except ValueError as exc:         # requantisation parameters out of range
        raise CliError(f"--requant {' '.join(map(str, args.requant))}: {one_line(exc)}") \
            from None
    start = time.perf_counter()
    shape, dtype = save_layer(args.out, layer, x, args.requant, args.relu)
    elapsed = time.perf_counter() - start

    a = layer.alpha
    post = ""
    if args.requant is not None:
        post = f", requant {args.requant[0]}>>{args.requant[1]}{' relu' if args.relu else ''}"
    return (f"{layer.name}: x {list(x.shape)} int8 -> y {list(shape)} {dtype}, tile {a}x{a} "
            f"F({layer.m}x{layer.m},{layer.r}x{layer.r}), padding {layer.padding}, "
            f"sparsity {layer.sparsity:.1%}{post}, {elapsed * 1e3:.1f} ms -> {args.out}")


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status (0, or 2 on bad input)."""
    def body():
        print(_run(argv))
    return run_main(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
