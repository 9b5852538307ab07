"""Generate the accelerator's Verilog and its JSON manifest.

Usage::

    python -m hw.generate --tile 4x4 [--out DIR] [--array RxC] [--max-channels N] ...

writes ``DIR/<name>.v`` and ``DIR/<name>.json``, ``<name>`` being
:attr:`golden.config.AcceleratorConfig.name` (``sparse_winograd_4x4`` for the default design,
``sparse_winograd_4x4_a2x2_c48`` for ``--array 2x2 --max-channels 48``), so that different
designs never overwrite each other. The output is deterministic: the same arguments give the
same bytes (no source locations, no absolute paths, no timestamps). The manifest is the design
file that ``sim.layer --config`` and ``pytest sim/ --weights W.npz --config`` read back.
``--fusesoc`` also writes ``DIR/<name>.core``, a FuseSoC CAPI2 core (:mod:`hw.fusesoc`).
"""

from __future__ import annotations

import json
import os
import sys

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data, wiring

from golden.cli import CliError, OneLineParser, check_output_dir, claim_output, one_line, run_main
from golden.options import add_config_arguments, config_from_args
from golden.config import MANIFEST_VERSION, AcceleratorConfig
from golden.cost import MAX_BUILD_PES, MAX_BUILD_WORDS, check_buildable
from golden.cycles import collector_depth, pe_pipeline_depth
from golden.protocol import (memory_bits, pipeline_register_bits, result_bank_shape,
                             weight_memory_columns)

__all__ = ["build_manifest", "generate", "generate_verilog", "main", "make_parser", "port_list",
           "top_name"]

PROG = "hw.generate"


def top_name(config: AcceleratorConfig) -> str:
    """Verilog module name of the top level (also the file stem): ``config.name``."""
    return config.name


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
        "weight_lanes": config.weight_lanes,
        "weight_banks": config.weight_banks,
        "split_channels": config.split_channels,
        "v_beats": config.v_beats,
        "v_beat_positions": config.v_beat_positions,
        "weight_memory_columns": list(weight_memory_columns(config)),
        "memory_bits": memory_bits(config),
        "pipelined": config.pipelined,
        "pipeline_registers": {"bits": pipeline_register_bits(config),
                               "pe_pipeline_depth": pe_pipeline_depth(config),
                               "collector_depth": collector_depth(config)},
        # The drain's cost: beats per output channel (a drain step is K beats each plus
        # collector_depth) and the result bank's shape, words x bits per PE.
        "drain_positions": config.drain_width,
        "drain": {"beats_per_channel": config.drain_beats,
                  "result_bank_words": result_bank_shape(config)[0],
                  "result_bank_word_bits": result_bank_shape(config)[1]},
        "requant": config.requant,
        "data_width": config.data_width,
        "weight_width": config.weight_width,
        "bias_width": config.bias_width,
        "accumulator_width": config.widths.accumulator,
        "output_width": config.widths.output,
        "widths": config.widths.as_dict(),
        "config": config.to_dict(),
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
    """Write ``<name>.v`` and ``<name>.json`` into ``out_dir`` (each atomically); return both
    paths. Raises OSError when they cannot be written."""
    from golden.cli import atomic_output
    os.makedirs(out_dir, exist_ok=True)
    name = top_name(config)
    v_path = os.path.join(out_dir, f"{name}.v")
    j_path = os.path.join(out_dir, f"{name}.json")
    top = _new_top(config)
    text = verilog.convert(top, name=name, emit_src=False)
    manifest = json.dumps(build_manifest(config, top), indent=2) + "\n"
    for path, content in ((v_path, text), (j_path, manifest)):
        with atomic_output(path) as tmp:
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                f.write(content)
    return v_path, j_path


def make_parser(prog: str = PROG) -> OneLineParser:
    """The command-line interface."""
    p = OneLineParser(prog=prog, description="Generate the sparse-Winograd accelerator's "
                      "Verilog and JSON manifest, named after the design (see --out). Designs "
                      f"of more than {MAX_BUILD_PES} PEs or {MAX_BUILD_WORDS:,} memory words, "
                      "or whose estimated elaboration memory exceeds what this machine has "
                      "available, are refused before elaborating (golden.cost).")
    add_config_arguments(p)
    p.add_argument("--out", default="build", metavar="DIR",
                   help="output directory; gets <name>.v and <name>.json, <name> encoding the "
                        "tile and every option that differs from its default (default: build)")
    p.add_argument("--fusesoc", action="store_true",
                   help="also write <name>.core, a FuseSoC CAPI2 core with a Verilator lint "
                        "target")
    return p


def _main(argv) -> int:
    args = make_parser().parse_args(argv)
    config = config_from_args(args)
    check_output_dir(args.out)
    for ext in (".v", ".json") + ((".core",) if args.fusesoc else ()):
        claim_output(os.path.join(args.out, top_name(config) + ext))    # no stale set left
    try:
        check_buildable(config)
    except ValueError as exc:
        raise CliError(one_line(exc)) from None
    try:
        written = list(generate(config, args.out))
        if args.fusesoc:
            from hw.fusesoc import write_core
            written.append(write_core(config, args.out))
    except OSError as exc:
        raise CliError(f"--out {args.out}: cannot write to it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise CliError(one_line(exc)) from None
    print(f"wrote {', '.join(written[:-1])} and {written[-1]}: design {config.name}, tile "
          f"{config.tile}, array {config.array[0]}x{config.array[1]} ({config.multipliers} "
          f"multipliers), channels <= {config.max_in_channels} in / {config.max_out_channels} "
          f"out, accumulator {config.widths.accumulator} bits, output {config.widths.output} bits"
          + (f", tap shifts spanning <= {config.max_tap_shift}" if config.max_tap_shift else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m hw.generate``; returns the exit status (0, or 2)."""
    return run_main(PROG, lambda: _main(argv))


if __name__ == "__main__":
    sys.exit(main())
