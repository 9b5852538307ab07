"""Import an ONNX or QONNX model into weight file v2: ``python -m train.import_onnx``.

Example::

    python -m train.import_onnx model.onnx --tile 4x4 --calibration X.npy --out W.npz

``X.npy`` holds float images [N, C, H, W] as the model takes them (no pickles); they set the
activation scales (max |activation| / 127) and the network's input shape. The supported nodes
are listed in :mod:`train.onnx_graph`; anything else is refused in one line naming the node.
The summary (stdout) gives each layer's measured output error on the calibration images and
the top-1 agreement with the float model. Bad input prints ``train.import_onnx: error: <one
line>`` on stderr and exits with status 2.
"""

from __future__ import annotations

import os
import sys

from golden.safeio import MAX_ARCHIVE_BYTES, ArrayReadError, read_npy

__all__ = ["import_onnx", "load_calibration", "main", "summary"]

PROG = "train.import_onnx"


def import_onnx(model, tile: str, calibration, classes=None, source: str | None = None):
    """Import an ONNX model (a path or an ``onnx.ModelProto``) as a whole network.

    Parameters
    ----------
    model : str, os.PathLike or onnx.ModelProto
    tile : str
        "4x4" or "6x6".
    calibration : array [N, C, H, W]
        Float images that set the activation scales.
    classes : list of str, optional
        Class names, one per logit.
    source : str, optional
        For messages (default: the path, or ``<onnx>``).

    Returns
    -------
    (WeightFile, list of FloatOp)
        The validated version 2 weight file and the float network it was quantised from.

    Raises
    ------
    ModelImportError
        Naming the node or layer of the first problem.
    """
    import onnx

    from .netimport import ModelImportError, build_network
    from .onnx_graph import onnx_ops

    if isinstance(model, (str, os.PathLike)):
        source = source or os.fspath(model)
        if not os.path.isfile(model):
            raise ModelImportError(source, "no such file")
        if os.path.getsize(model) > MAX_ARCHIVE_BYTES:      # onnx.load reads it whole
            raise ModelImportError(source, f"is {os.path.getsize(model) / 2**20:.0f} MiB, above "
                                           f"the limit of {MAX_ARCHIVE_BYTES // 2**20} MiB")
        try:
            model = onnx.load(os.fspath(model))
        except Exception as exc:  # protobuf raises several types for a bad file
            raise ModelImportError(source, f"not an ONNX model ({type(exc).__name__})") from None
    source = source or "<onnx>"
    ops = onnx_ops(model, tile, source)
    return build_network(ops, tile, calibration, source, classes), ops


def load_calibration(path: str):
    """Float images [N, C, H, W] from a ``.npy`` file (no pickles); ValueError on bad input."""
    import numpy as np

    if not os.path.isfile(path):
        raise ValueError(f"--calibration {path}: no such file")
    try:
        x = read_npy(path)          # its header checked against the limit before reading
    except ArrayReadError as exc:
        raise ValueError(f"--calibration {path}: {exc.reason}") from None
    except OSError as exc:
        raise ValueError(f"--calibration {path}: not a .npy array ({exc})") from None
    if x.ndim != 4 or x.shape[0] < 1 or x.dtype.kind not in "fiu":
        raise ValueError(f"--calibration {path}: must be real images [N, C, H, W], not "
                         f"{x.dtype} of shape {list(x.shape)}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"--calibration {path}: contains NaN or Inf")
    return x.astype(np.float64)


def summary(path: str, weights, ops, images) -> str:
    """Lines for stdout: what was written and the measured error of each layer."""
    from .netimport import measure_errors

    errors, agree = measure_errors(weights, ops, images)
    zeros = sum(int((layer.U == 0).sum()) for layer in weights.layers)
    total = sum(layer.U.size for layer in weights.layers)
    lines = [f"wrote {path}: {len(weights.layers)} conv layers, ops "
             f"{' '.join(str(op) for op in weights.network.ops)}, Winograd-domain sparsity "
             f"{zeros / total:.4f}",
             f"measured on the {len(images)} calibration images: top-1 agreement with the float "
             f"model {agree:.1%}; relative RMS output error per layer:"]
    lines += [f"  {e.name}: {e.relative_rms:.4f}" for e in errors]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0, 2 on bad input, 130 when interrupted)."""
    from golden.cli import run_main

    return run_main(PROG, lambda: _main(argv))


def _main(argv) -> int:
    from golden.cli import CliError, OneLineParser, check_output_path
    from golden.options import tile_type
    from golden.transforms import TILES

    p = OneLineParser(prog=PROG, description="Import an ONNX / QONNX model (3x3 stride-1 "
                      "convs, BatchNorm, ReLU, 2x2 max pooling, a Linear head) into weight "
                      "file v2.")
    p.add_argument("model", help="the .onnx file")
    p.add_argument("--tile", type=tile_type, required=True, metavar="|".join(TILES),
                   help="the tile: 4x4 = F(2x2,3x3), 6x6 = F(4x4,3x3)")
    p.add_argument("--calibration", required=True, metavar="X.npy",
                   help="float images [N, C, H, W] that set the activation scales")
    p.add_argument("--out", required=True, help="weight file to write (.npz)")
    p.add_argument("--classes", help="comma-separated class names, one per logit")
    args = p.parse_args(argv)
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise CliError("needs the onnx package; install the [train] extra") from None
    from golden.weights import save_weights

    from .netimport import ModelImportError

    check_output_path(args.out, "--out", ".npz", [("model", args.model),
                                                  ("--calibration", args.calibration)])
    classes = None if args.classes is None else [c.strip() for c in args.classes.split(",")]
    try:
        images = load_calibration(args.calibration)
        weights, ops = import_onnx(args.model, args.tile, images, classes)
        save_weights(args.out, weights)
    except (ModelImportError, ValueError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    print(summary(args.out, weights, ops, images))
    return 0


if __name__ == "__main__":
    sys.exit(main())
