"""The accelerator design options every tool shares, and ``--config DESIGN.json``.

``--tile``, ``--array``, ``--max-channels`` ... mean the same in every tool
(:func:`add_config_arguments`, :func:`config_from_args`); ``--config`` reads a manifest written
by ``hw.generate`` (:func:`read_config`). Errors are :class:`golden.cli.CliError`.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable

from .cli import CliError, one_line
from .config import DEFAULT, AcceleratorConfig, parse_array
from .transforms import TILES, parse_tile

__all__ = ["add_config_arguments", "array_type", "config_from_args", "CONFIG_OPTIONS",
           "given_config_options", "non_negative_int_type", "positive_int_type", "read_config",
           "tile_type"]


def read_config(path: str, flag: str = "--config") -> AcceleratorConfig:
    """The design of a manifest written by ``hw.generate`` (or of a bare config object);
    :class:`CliError` naming ``flag``, the file and the key of any problem."""
    if not os.path.exists(path):
        raise CliError(f"{flag} {path}: no such file")
    if os.path.isdir(path):
        raise CliError(f"{flag} {path}: is a directory, not a manifest (.json)")
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{flag} {path}: cannot read ({one_line(exc)})") from None
    except json.JSONDecodeError as exc:
        raise CliError(f"{flag} {path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        return AcceleratorConfig.from_dict(d)
    except ValueError as exc:
        raise CliError(f"{flag} {path}: {one_line(exc)}") from None


# -- accelerator options ---------------------------------------------------------------------

def _type(parse: Callable):
    def convert(text):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(one_line(exc)) from None
    return convert


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"must be a positive integer, not {text!r}")
    return int(text)


def _non_negative_int(text: str) -> int:
    if not text.strip().isdigit():
        raise ValueError(f"must be a non-negative integer, not {text!r}")
    return int(text)


def _tile(text: str) -> str:
    parse_tile(text)
    return text


#: argparse types of the accelerator options, for tools that add one on its own.
tile_type = _type(_tile)
array_type = _type(parse_array)
positive_int_type = _type(_positive_int)
non_negative_int_type = _type(_non_negative_int)


# option -> (AcceleratorConfig field or None, metavar, parse, help, default shown)
_OPTIONS = {
    "--tile": ("tile", "|".join(TILES), tile_type,
               "input tile: 4x4 is F(2x2,3x3), 6x6 is F(4x4,3x3)", DEFAULT.tile),
    "--array": ("array", "RxC", array_type,
                "processing-element grid, rows x columns (one multiplier each)",
                "x".join(map(str, DEFAULT.array))),
    "--max-channels": (None, "N", positive_int_type,
                       "largest input and output channel count of a layer: sets both "
                       "--max-in-channels and --max-out-channels (which win over it)",
                       DEFAULT.max_in_channels),
    "--max-in-channels": ("max_in_channels", "N", positive_int_type,
                          "largest input channel count C of a layer", "--max-channels"),
    "--max-out-channels": ("max_out_channels", "N", positive_int_type,
                           "largest output channel count K of a layer", "--max-channels"),
    "--data-width": ("data_width", "BITS", positive_int_type, "activation width (signed)",
                     DEFAULT.data_width),
    "--weight-width": ("weight_width", "BITS", positive_int_type,
                       "weight width (signed, symmetric)",
                       DEFAULT.weight_width),
    "--bias-width": ("bias_width", "BITS", positive_int_type, "bias width (signed)",
                     DEFAULT.bias_width),
    "--weight-depth": ("weight_depth", "N", positive_int_type,
                       "compressed weight entries per PE",
                       "room for a dense layer of the maximum size"),
    "--weight-lanes": ("weight_lanes", "N", positive_int_type,
                       "weight entries per weights beat, for N consecutive PEs (divides the "
                       "PE count)", DEFAULT.weight_lanes),
    "--weight-banks": ("weight_banks", "N", positive_int_type,
                       "weight banks: 2 loads the next layer's program while this one "
                       "computes (twice the weight and table memory)", DEFAULT.weight_banks),
    "--split-channels": ("split_channels", None, None,
                         "split an output channel over two PEs when that balances the "
                         "layer better (the collector adds the partial sums)", "off"),
    "--requant": ("requant", None, None, "add the requantise-to-int8 + ReLU output stage",
                  "off"),
    "--max-tap-shift": ("max_tap_shift", "S", non_negative_int_type,
                        "largest tap shift span of a layer (weight file v2 tap_shift); 0 "
                        "builds no tap shift stage", DEFAULT.max_tap_shift),
    "--unpipelined": ("pipelined", None, None,
                      "leave out the registers after the V memories and at the collector "
                      "output: fewer flip-flops, a cycle less per tile in the PEs and per "
                      "drain, a lower clock (small devices)", "pipelined"),
    "--drain-positions": ("drain_positions", "P", positive_int_type,
                          "Winograd positions drained from a result bank per cycle (a divisor "
                          "of alpha**2): narrow, deep result banks (block RAM), alpha**2/P "
                          "drain beats per output channel", "alpha**2, the whole tile"),
    "--v-beats": ("v_beats", "B", positive_int_type,
                  "V chain beats per input channel (divides the tile's positions): V memories "
                  "B times narrower and deeper (full block RAM), B load cycles per channel",
                  DEFAULT.v_beats),
}
#: The accelerator options :func:`add_config_arguments` knows, in help order.
CONFIG_OPTIONS = tuple(_OPTIONS)


def _dest(option: str) -> str:
    return "design_" + option[2:].replace("-", "_")


def add_config_arguments(parser: argparse.ArgumentParser, options=CONFIG_OPTIONS,
                         chosen: str | None = None) -> None:
    """Add accelerator options to ``parser``; :func:`config_from_args` turns them into a
    design.

    Parameters
    ----------
    options : sequence of str
        Which of :data:`CONFIG_OPTIONS` to add.
    chosen : str or None
        None: an option left out takes the default design's value (shown in ``--help``).
        Else the tool chooses the rest itself and ``--help`` says ``chosen``.
    """
    group = parser.add_argument_group("accelerator design")
    for option in options:
        field, metavar, parse, text, default = _OPTIONS[option]
        shown = chosen if chosen is not None and parse is not None else default
        # Absent from the namespace unless given (config_from_args then keeps base's value);
        # a dest of their own keeps them apart from a tool's like-named options.
        if parse is None:       # a flag: sets the field to the opposite of the default
            group.add_argument(option, action="store_const",
                               const=not getattr(DEFAULT, field), dest=_dest(option),
                               default=argparse.SUPPRESS, help=f"{text} (default: {shown})")
        else:
            group.add_argument(option, type=parse, dest=_dest(option),
                               default=argparse.SUPPRESS, metavar=metavar,
                               help=f"{text} (default: {shown})")


def given_config_options(args: argparse.Namespace) -> list[str]:
    """The accelerator options given on the command line, as flags (e.g. ``["--array"]``)."""
    return [option for option in CONFIG_OPTIONS if hasattr(args, _dest(option))]


def config_from_args(args: argparse.Namespace,
                     base: AcceleratorConfig = DEFAULT) -> AcceleratorConfig:
    """``base`` with the accelerator options given in ``args`` (CliError for a bad design)."""
    changes = {}
    for option in given_config_options(args):
        field = _OPTIONS[option][0]
        value = getattr(args, _dest(option))
        if field is None:       # --max-channels: both limits, unless given one by one
            changes.setdefault("max_in_channels", value)
            changes.setdefault("max_out_channels", value)
        else:
            changes[field] = value
    try:
        return base.replace(**changes)
    except ValueError as exc:
        raise CliError(one_line(exc)) from None
