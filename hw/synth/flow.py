"""The flow of one design: synthesis, optional breakdown, place and route and throughput, then
the reports."""

from __future__ import annotations

from pathlib import Path

from golden.config import AcceleratorConfig
from golden.throughput import reference_throughput
from hw.boards import BOARDS

from .pnr import place_and_route
from .report import write_reports
from .tools import Progress
from .yosys import breakdown, synthesize

__all__ = ["run"]


def run(config: AcceleratorConfig, target: str, out_dir, *, unit: str = "accelerator",
        pnr: bool = False, clock_mhz: float | None = None, sparsity: float = 0.74,
        with_breakdown: bool = False, quiet: bool = False,
        design_file: str | None = None) -> dict:
    """Synthesise ``unit`` of ``config`` for ``target`` [+ per-module breakdown] [+ place and
    route and throughput]; write ``out_dir/report.json`` and ``report.md``.

    Parameters
    ----------
    config : AcceleratorConfig
        The design.
    target : str
        Synthesis target (:data:`hw.synth.yosys.TARGETS`); ``pnr`` needs a key of
        :data:`hw.boards.BOARDS`.
    out_dir : path-like
        Output directory; place and route works in ``out_dir/pnr``.
    unit : str
        One of :data:`hw.units.UNITS`.
    pnr : bool
        Also place and route on the target's board.
    clock_mhz : float, optional
        Place-and-route clock constraint (default: the board's goal).
    sparsity : float
        Winograd-domain sparsity of the reference layer of the throughput figures
        (:func:`golden.throughput.reference_throughput`), computed for the whole accelerator
        when it fits.
    with_breakdown : bool
        Also synthesise hierarchically and report resources per submodule.
    quiet : bool
        No progress lines.
    design_file : str, optional
        The manifest ``config`` was read from, recorded as ``design.design_file``.

    Returns
    -------
    dict
        The report (:mod:`hw.synth.report`).

    Raises
    ------
    ValueError
        Unknown target or unit, or ``pnr`` on a target without a board.
    SynthError
        A tool failed.
    """
    if pnr and target not in BOARDS:
        raise ValueError(f"--pnr needs --target {' or '.join(BOARDS)}, not {target!r}")
    out = Path(out_dir)
    progress = Progress(2 + (4 if pnr else 0) + (1 if with_breakdown else 0), quiet=quiet)
    report = synthesize(config, target, out, unit=unit, progress=progress)
    report["design"]["design_file"] = design_file
    if with_breakdown:
        report["breakdown"] = breakdown(config, out, unit=unit, progress=progress)
    if pnr:
        report["pnr"] = place_and_route(config, target, out / "pnr", unit=unit,
                                        clock_mhz=clock_mhz, progress=progress)
        if report["pnr"]["fits"] and unit == "accelerator":
            report["throughput"] = reference_throughput(config, report["pnr"]["fmax_mhz"],
                                                        sparsity)
    write_reports(report, out)
    return report
