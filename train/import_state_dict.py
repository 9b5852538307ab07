"""Import a PyTorch model into weight file v2: ``python -m train.import_state_dict``.

Examples::

    python -m train.import_state_dict model.pt --model mypkg.nets:make_vgg --tile 4x4 \\
        --calibration X.npy --out W.npz
    python -m train.import_state_dict model.pt --layout conv1,bn1,relu,maxpool2,flatten,fc \\
        --tile 4x4 --calibration X.npy --out W.npz

A state_dict records neither the order of the operations nor strides, so the command needs the
model's structure: ``--model MODULE:CALLABLE`` builds the model (``CALLABLE()`` returns the
``nn.Module``; the state_dict is loaded into it strictly) and its ``forward`` is traced, or
``--layout`` names the ops in order (state_dict prefixes of convs, BatchNorms and the Linear
head, and the words relu, maxpool2, flatten; naming a conv there states that its stride is 1).
For an ONNX file use ``python -m train.import_onnx``. ``X.npy`` holds float images [N, C, H, W]
that set the activation scales. The file is read with ``torch.load(weights_only=True)`` (no
arbitrary code); a checkpoint dict with a ``state_dict`` or ``model_state_dict`` entry is
accepted too, and ``torch.nn.utils.prune`` masks are applied. The summary gives each layer's
measured output error (stdout). Bad input prints ``train.import_state_dict: error: <one
line>`` on stderr and exits with status 2.
"""

from __future__ import annotations

import importlib
import os
import sys

from golden.cli import CliError, OneLineParser, check_output_path, run_main
from golden.options import tile_type
from golden.safeio import ArrayReadError, check_torch_file

__all__ = ["build_model", "main", "parse_layer_values"]

PROG = "train.import_state_dict"


def parse_layer_values(option: str, items: list[str] | None, convert, default):
    """Parse repeated ``VALUE`` / ``LAYER=VALUE`` options into a default and per-layer dict.

    Returns
    -------
    (default, dict)
        The last bare value (or ``default``) and the per-layer values.

    Raises
    ------
    ValueError
        Naming the option and the malformed item.
    """
    per_layer = {}
    for item in items or []:
        name, sep, text = item.rpartition("=")
        try:
            value = convert(text)
        except ValueError:
            raise ValueError(f"{option} {item!r}: {text!r} is not a valid value") from None
        if sep:
            if not name:
                raise ValueError(f"{option} {item!r}: empty layer name")
            per_layer[name] = value
        else:
            default = value
    return default, per_layer


class _LayerValues(dict):
    """Per-layer values with a fallback default (a Mapping for layout_ops)."""

    def __init__(self, default, values):
        super().__init__(values)
        self.default = default

    def get(self, key, fallback=None):
        """The layer's value, else the default."""
        return super().get(key, self.default)


def build_model(spec: str):
    """The ``nn.Module`` that ``MODULE:CALLABLE`` returns; ValueError naming the problem."""
    from torch import nn

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--model {spec!r}: must be MODULE:CALLABLE, e.g. mypkg.nets:make_vgg")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        raise ValueError(f"--model {spec}: cannot import {module_name} ({exc})") from None
    except AttributeError:
        raise ValueError(f"--model {spec}: {module_name} has no {attr!r}") from None
    try:
        model = factory()
    except Exception as exc:  # user code: report whatever it raises on one line
        raise ValueError(f"--model {spec}: {attr}() raised {type(exc).__name__}: "
                         f"{exc}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"--model {spec}: {attr}() returned {type(model).__name__}, not an "
                         "nn.Module")
    return model


def _load_state(torch, source: str) -> dict:
    if not os.path.isfile(source):
        raise CliError(f"{source}: no such file")
    try:
        check_torch_file(source)        # sizes from the zip directory, before torch.load
    except ArrayReadError as exc:
        where = f"record {exc.key}: " if exc.key else ""
        raise CliError(f"{source}: {where}{exc.reason}") from None
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files; report them all on one line
        raise CliError(f"{source}: not a torch.save file of tensors ({type(exc).__name__}; a "
                       "pickled nn.Module is not read): save torch.save(model.state_dict(), "
                       "PATH)") from None
    for wrapper in ("state_dict", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) or k.endswith(
            "_extra_state") for k, v in state.items()):
        raise CliError(f"{source}: holds {type(state).__name__}, not a state_dict of tensors; "
                   "save torch.save(model.state_dict(), PATH)")
    return state


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0, 2 on bad input, 130 when interrupted)."""
    return run_main(PROG, lambda: _main(argv))


def _main(argv) -> int:
    try:
        import torch
    except ImportError:
        raise CliError("needs PyTorch; install the [train] extra (pip install "
                       "torch==2.13.0)") from None
    from golden.transforms import TILES
    from golden.weights import WeightFileError, save_weights

    from .import_onnx import load_calibration, summary
    from .netimport import ModelImportError
    from .state_dict import import_layout, import_module
    from .torch_graph import layout_ops, module_ops

    p = OneLineParser(prog=PROG, description="Import a PyTorch model (3x3 stride-1 convs, "
                      "BatchNorm, ReLU, 2x2 max pooling, a Linear head) into weight file v2.")
    p.add_argument("state_dict", help="file saved with torch.save(model.state_dict(), ...)")
    structure = p.add_mutually_exclusive_group()
    structure.add_argument("--model", metavar="MODULE:CALLABLE",
                           help="builds the model the state_dict belongs to")
    structure.add_argument("--layout", metavar="OPS",
                           help="comma-separated ops in order: state_dict prefixes (conv, "
                           "BatchNorm, Linear) and relu, maxpool2, flatten")
    p.add_argument("--tile", type=tile_type, required=True, metavar="|".join(TILES),
                   help="the weights' tile: 4x4 = F(2x2,3x3), 6x6 = F(4x4,3x3)")
    p.add_argument("--calibration", required=True, metavar="X.npy",
                   help="float images [N, C, H, W] that set the activation scales")
    p.add_argument("--out", required=True, help="weight file to write (.npz)")
    p.add_argument("--padding", action="append", metavar="[LAYER=]P",
                   help="with --layout: zero padding, for all convs or one (default 1)")
    p.add_argument("--classes", help="comma-separated class names, one per logit")
    args = p.parse_args(argv)

    if args.model is None and args.layout is None:
        raise CliError("a state_dict records neither the order of ops nor strides: give the "
                   "model's structure with --model MODULE:CALLABLE or --layout OPS (or import "
                   "an ONNX file with python -m train.import_onnx)")
    if args.padding and args.layout is None:
        raise CliError("--padding goes with --layout (with --model the modules give it)")
    try:
        pad_default, pads = parse_layer_values("--padding", args.padding, int, 1)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    check_output_path(args.out, "--out", ".npz", [("state_dict", args.state_dict),
                                                  ("--calibration", args.calibration)])
    source = args.state_dict
    classes = None if args.classes is None else [c.strip() for c in args.classes.split(",")]
    try:
        images = load_calibration(args.calibration)
        state = _load_state(torch, source)
        if args.model is not None:
            model = build_model(args.model)
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise CliError(f"{source}: does not fit --model {args.model}: "
                           f"{' '.join(str(exc).split())}") from None
            weights = import_module(model, args.tile, images, classes, source=source)
            ops = module_ops(model, args.tile, source)
        else:
            layout = [item.strip() for item in args.layout.split(",") if item.strip()]
            unknown = sorted(set(pads) - set(layout))
            if unknown:
                raise CliError(f"--padding: no layer {unknown[0]!r} in --layout")
            padding = _LayerValues(pad_default, pads)
            weights = import_layout(state, layout, args.tile, images, padding, classes, source)
            ops = layout_ops(state, layout, args.tile, padding, source)
        save_weights(args.out, weights)
    except (ModelImportError, WeightFileError, ValueError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    print(summary(args.out, weights, ops, images))
    return 0


if __name__ == "__main__":
    sys.exit(main())
