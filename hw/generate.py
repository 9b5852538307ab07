"""Generate the accelerator's Verilog and its JSON manifest.

Usage::

    python -m hw.generate --tile 4x4 [--out DIR] [--array RxC] [--max-channels N] ...

writes ``DIR/<top>.v`` and ``DIR/<top>.json``. The output is deterministic: the same arguments
give the same bytes (no source locations, no absolute paths, no timestamps).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data, wiring

from golden.config import DEFAULT, AcceleratorConfig, parse_array
from golden.transforms import TILES, parse_tile

__all__ = ["OneLineParser", "add_config_arguments", "build_manifest", "config_from_args", "generate",
           "generate_verilog", "main", "make_parser", "port_list", "top_name"]

MANIFEST_VERSION = 1


def top_name(config: AcceleratorConfig) -> str:
    """Verilog module name of the top level (also the file stem)."""
    return f"sparse_winograd_{config.tile}"


def _new_top(config: AcceleratorConfig):
    # Imported here so that `--help` and argument errors do not pay for elaborating the RTL.
    from hw.accelerator import Accelerator
    return Accelerator(config)


def generate_verilog(config: AcceleratorConfig) -> str:
    """Verilog text of the accelerator top for ``config`` (deterministic)."""
    return verilog.convert(_new_top(config), name=top_name(config), emit_src=False)


def _payload_fields(layout, offset: int = 0, prefix: str = "") -> list[dict]:
    """Fields of a payload layout, LSB first, as (name, offset, width, signed, count) rows; an
    array of plain integers is one row with ``count`` elements of ``width`` bits."""
    if isinstance(layout, data.ArrayLayout):
        elem = layout.elem_shape
        if not isinstance(elem, data.Layout):
            shape = Shape.cast(elem)
            return [{"name": prefix, "offset": offset, "width": shape.width,
                     "signed": shape.signed, "count": layout.length}]
        return [row for i in range(layout.length)
                for row in _payload_fields(elem, offset + i * elem.size, f"{prefix}[{i}]")]
    rows = []
    for name, field in layout:
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(field.shape, data.Layout):
            rows += _payload_fields(field.shape, offset + field.offset, path)
        else:
            shape = Shape.cast(field.shape)
            rows.append({"name": path, "offset": offset + field.offset,
                         "width": shape.width, "signed": shape.signed, "count": 1})
    return rows


def port_list(top: wiring.Component) -> list[dict]:
    """Verilog ports of ``top``: name, direction, width and, for payloads, their fields."""
    ports = [{"name": "clk", "direction": "input", "width": 1},
             {"name": "rst", "direction": "input", "width": 1}]
    for path, member, value in top.signature.flatten(top):
        name = "__".join(str(p) for p in path)
        direction = "input" if member.flow == wiring.In else "output"
        if isinstance(member.shape, data.Layout):
            entry = {"name": name, "direction": direction, "width": member.shape.size,
                     "fields": _payload_fields(member.shape)}
        else:
            shape = Shape.cast(member.shape)
            entry = {"name": name, "direction": direction, "width": shape.width,
                     "signed": shape.signed}
        ports.append(entry)
    return ports


def build_manifest(config: AcceleratorConfig, top: wiring.Component) -> dict:
    """The JSON manifest: transforms, widths, multipliers, array, limits and ports."""
    tr = config.transform
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "top": top_name(config),
        "tile": config.tile,
        "m": config.m,
        "r": config.r,
        "alpha": config.alpha,
        "AT": config.AT.tolist(),
        "BT": config.BT.tolist(),
        "G": tr.G_strings,
        "points": [str(p) for p in tr.points],
        "array": list(config.array),
        "processing_elements": config.n_pe,
        "multipliers": config.multipliers,
        "array_multipliers": config.n_pe,
        "max_in_channels": config.max_in_channels,
        "max_out_channels": config.max_out_channels,
        "pe_weight_depth": config.pe_weight_depth,
        "requant": config.requant,
        "data_width": config.data_width,
        "weight_width": config.weight_width,
        "bias_width": config.bias_width,
        "accumulator_width": config.widths.accumulator,
        "output_width": config.widths.output,
        "widths": config.widths.as_dict(),
        "config": config.as_dict(),
        "clock": "clk (rising edge)",
        "reset": "rst (synchronous, active high)",
        "ports": port_list(top),
    }
    for attr in ("input_latency", "output_latency"):
        value = getattr(top, attr, None)
        if isinstance(value, int):
            manifest[attr] = value
    return manifest


def generate(config: AcceleratorConfig, out_dir: str | os.PathLike) -> tuple[str, str]:
    """Write ``<top>.v`` and ``<top>.json`` into ``out_dir``; return both paths."""
    os.makedirs(out_dir, exist_ok=True)
    name = top_name(config)
    v_path = os.path.join(out_dir, f"{name}.v")
    j_path = os.path.join(out_dir, f"{name}.json")
    top = _new_top(config)
    text = verilog.convert(top, name=name, emit_src=False)
    manifest = build_manifest(config, top)
    with open(v_path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    with open(j_path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return v_path, j_path


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line on stderr, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def _tile(text: str) -> str:
    try:
        parse_tile(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _array(text: str) -> tuple[int, int]:
    try:
        return parse_array(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def make_parser(prog: str = "python -m hw.generate") -> argparse.ArgumentParser:
    """The command-line interface (shared with hw.synth)."""
    p = OneLineParser(prog=prog, description="Generate the sparse-Winograd accelerator's "
                       "Verilog and JSON manifest.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_arguments(p)
    p.add_argument("--out", default="build", help="output directory")
    return p


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options that build an :class:`AcceleratorConfig` to ``p``."""
    p.add_argument("--tile", type=_tile, default=DEFAULT.tile, metavar="|".join(TILES),
                   help="input tile: 4x4 is F(2x2,3x3), 6x6 is F(4x4,3x3)")
    p.add_argument("--array", type=_array, default="x".join(map(str, DEFAULT.array)),
                   metavar="RxC",
                   help="processing-element grid, rows x columns (one multiplier each)")
    p.add_argument("--max-channels", type=_positive, default=None, metavar="N",
                   help="set both --max-in-channels and --max-out-channels")
    p.add_argument("--max-in-channels", type=_positive, default=DEFAULT.max_in_channels,
                   metavar="N", help="largest input channel count of a layer")
    p.add_argument("--max-out-channels", type=_positive, default=DEFAULT.max_out_channels,
                   metavar="N", help="largest output channel count of a layer")
    p.add_argument("--data-width", type=_positive, default=DEFAULT.data_width, metavar="BITS",
                   help="activation width (signed)")
    p.add_argument("--weight-width", type=_positive, default=DEFAULT.weight_width,
                   metavar="BITS", help="weight width (signed, symmetric)")
    p.add_argument("--bias-width", type=_positive, default=DEFAULT.bias_width, metavar="BITS",
                   help="bias width (signed)")
    p.add_argument("--weight-depth", type=_positive, default=None, metavar="N",
                   help="compressed weight entries per PE; None sizes it so that a dense "
                        "layer of the maximum size fits")
    p.add_argument("--requant", action="store_true",
                   help="add the requantise-to-int8 + ReLU output stage")


def config_from_args(args: argparse.Namespace) -> AcceleratorConfig:
    """Build and validate the configuration (ValueError with a clear message)."""
    kwargs = {}
    for f in fields(AcceleratorConfig):
        if hasattr(args, f.name):
            kwargs[f.name] = getattr(args, f.name)
    if getattr(args, "max_channels", None) is not None:
        kwargs["max_in_channels"] = kwargs["max_out_channels"] = args.max_channels
    return AcceleratorConfig(**kwargs)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m hw.generate``."""
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        v_path, j_path = generate(config, args.out)
    except OSError as exc:
        parser.exit(2, f"{parser.prog}: error: cannot write to {args.out!r}: "
                       f"{exc.strerror or exc}\n")
    except ValueError as exc:
        parser.error(str(exc))
    print(f"wrote {v_path} and {j_path}: tile {config.tile}, array "
          f"{config.array[0]}x{config.array[1]} ({config.multipliers} multipliers), channels "
          f"<= {config.max_in_channels} in / {config.max_out_channels} out, accumulator "
          f"{config.widths.accumulator} bits, output {config.widths.output} bits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
