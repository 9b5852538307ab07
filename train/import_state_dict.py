"""Convert a saved PyTorch state_dict into weight file v1: ``python -m train.import_state_dict``.

Example::

    python -m train.import_state_dict model.pt --tile 4x4 --out W.npz \\
        --layers features.0,features.2 --input-scale 0.0079 --input-scale features.2=0.02

The file is read with ``torch.load(weights_only=True)`` (no arbitrary code); a checkpoint dict
with a ``state_dict`` or ``model_state_dict`` entry is accepted too. Layers pruned with
``torch.nn.utils.prune`` (``weight_orig`` + ``weight_mask``) are supported. A state_dict does
not record strides or padding: give ``--stride`` / ``--padding`` where they are not 1.
The summary goes to stdout. Bad input prints ``train.import_state_dict: error: <one line>``
on stderr and exits with status 2.
"""

from __future__ import annotations

import os
import sys

from golden.cli import CliError, OneLineParser, check_output_path, run_main, tile_type

__all__ = ["main", "parse_layer_values"]

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
    """Per-layer values with a fallback default (a Mapping for import_state_dict)."""

    def __init__(self, default, values):
        super().__init__(values)
        self.default = default

    def get(self, key, fallback=None):
        """The layer's value, else the default."""
        return super().get(key, self.default)


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

    from .state_dict import StateDictError, conv_layer_names, import_state_dict

    p = OneLineParser(prog=PROG, description="Import PyTorch 3x3 convolution weights into "
                      "weight file v1 (transform with golden's G, int8 per channel).")
    p.add_argument("state_dict", help="file saved with torch.save(model.state_dict(), ...)")
    p.add_argument("--tile", type=tile_type, required=True, metavar="|".join(TILES),
                   help="the weights' tile: 4x4 = F(2x2,3x3), 6x6 = F(4x4,3x3)")
    p.add_argument("--out", required=True, help="weight file to write (.npz)")
    p.add_argument("--layers", help="comma-separated layer prefixes in network order "
                   "(default: every 4-D weight)")
    p.add_argument("--padding", action="append", metavar="[LAYER=]P",
                   help="zero padding, for all layers or one (default 1)")
    p.add_argument("--stride", action="append", metavar="[LAYER=]S",
                   help="stride of a layer if not 1 (refused: only stride 1 is supported)")
    p.add_argument("--input-scale", action="append", metavar="[LAYER=]S",
                   help="real value of one int8 input step; needed for layers with a bias")
    args = p.parse_args(argv)

    try:
        pad_default, pads = parse_layer_values("--padding", args.padding, int, 1)
        stride_default, strides = parse_layer_values("--stride", args.stride, int, 1)
        scale_default, scales = parse_layer_values("--input-scale", args.input_scale, float,
                                                   None)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    layers = None
    if args.layers is not None:
        layers = [name.strip() for name in args.layers.split(",") if name.strip()]
        if not layers:
            raise CliError("--layers lists no layer")
    check_output_path(args.out, "--out", ".npz")
    source = args.state_dict
    if not os.path.isfile(source):
        raise CliError(f"{source}: no such file")
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files; report them all on one line
        raise CliError(f"{source}: not a torch.save file of tensors ({type(exc).__name__}); "
                       "only weights_only=True loading is supported") from None
    for wrapper in ("state_dict", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) or k.endswith(
            "_extra_state") for k, v in state.items()):
        raise CliError(f"{source}: holds {type(state).__name__}, not a state_dict of tensors")
    for mapping in (pads, strides, scales):
        unknown = sorted(set(mapping) - set(layers or conv_layer_names(state)))
        if unknown:
            raise CliError(f"{source}: no layer named {unknown[0]!r} among the exported layers")
    try:
        out = import_state_dict(state, args.tile, layers, _LayerValues(pad_default, pads),
                                _LayerValues(scale_default, scales),
                                _LayerValues(stride_default, strides), source=source)
        save_weights(args.out, out)
    except (StateDictError, WeightFileError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"--out {args.out}: cannot write ({exc})") from None
    zeros = sum(int((layer.U == 0).sum()) for layer in out)
    total = sum(layer.U.size for layer in out)
    print(f"wrote {args.out}: {len(out)} layers, Winograd-domain sparsity {zeros / total:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
