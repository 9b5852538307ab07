"""Resource and timing estimates with open-source Yosys and nextpnr (YoWASP, from PyPI alone).

Usage::

    python -m hw.synth [run] --tile 4x4 [--array RxC] [--max-channels N] \\
        --target {generic,ice40,ecp5,xilinx} [--unit NAME] [--out DIR] [--pnr]
    python -m hw.synth sweep --tiles 4x4,6x6 --arrays 1x1,2x2 --target ice40 [--pnr] [--out DIR]

Synthesis writes ``DIR/report.json`` and ``DIR/report.md``: LUTs, flip-flops, carry cells,
DSP/MAC blocks, block RAMs, total cells (``stat -json`` after ``synth_<target>``) and the ``$mul``
cells of the coarse netlist, which must equal the unit's multipliers
(:attr:`hw.units.Unit.multipliers`). ``--pnr`` (ice40, ecp5) places and routes a
:class:`hw.boards.BoardTop` on the iCEBreaker or the ULX3S 85F, records Fmax and utilisation
against the board's :class:`hw.boards.Device`, writes the bitstream (never programs a board)
and the throughput at Fmax of a reference layer (:mod:`golden.throughput`).

Modules: :mod:`~hw.synth.tools` (YoWASP lookup and runs), :mod:`~hw.synth.yosys` (scripts,
synthesis, cell counts), :mod:`~hw.synth.pnr` (nextpnr and its logs), :mod:`~hw.synth.report`
(JSON, markdown, summaries), :mod:`~hw.synth.flow` (one design), :mod:`~hw.synth.sweep` (many
designs, plots), :mod:`~hw.synth.cli` (the command line).

The first YoWASP call compiles WebAssembly (a minute or two, cached in ``~/.cache/YoWASP``).
"""

from .cli import main, make_parser
from .flow import run
from .pnr import place_and_route
from .report import render_markdown, summary_lines, write_reports
from .sweep import run_sweep, sweep_table
from .tools import Progress, SynthError
from .yosys import TARGETS, breakdown, classify_cells, synthesize

__all__ = [
    "Progress", "SynthError", "TARGETS", "breakdown", "classify_cells", "main", "make_parser",
    "place_and_route", "render_markdown", "run", "run_sweep", "summary_lines", "sweep_table",
    "synthesize", "write_reports",
]
