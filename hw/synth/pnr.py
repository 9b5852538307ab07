"""Place and route of one design unit on a board with nextpnr, and what its logs say.

The unit is wrapped in a :class:`hw.boards.BoardTop` (serial harness), built by the board's
amaranth-boards platform (Yosys, nextpnr, icepack/ecppack), and the nextpnr ``--report`` gives
Fmax and utilisation. A design that does not fit is a result, not a failure: its utilisation
comes from nextpnr's packing log or, when nextpnr stops before that, is estimated from the
synthesised board top against the capacity of :attr:`hw.boards.Board.device`.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from golden.config import AcceleratorConfig
from hw.boards import BOARDS, Board, BoardTop
from hw.units import UNITS

from .tools import Progress, SynthError, run_tool
from .yosys import RENAME_BIT_NAMES, check_unit, classify_cells, design_stat

__all__ = ["does_not_fit", "estimated_use", "logged_use", "place_and_route"]

# nextpnr's messages when a design needs more cells of some type than the device has.
_NO_FIT = re.compile(r"Unable to place cell|no BELs remaining|Failed to expand region|"
                     r"Design uses \d+ .* but device|too many")
# A row of nextpnr's "Device utilisation" table: "Info:  ICESTORM_LC:  5337/ 5280  101%".
_USE_LINE = re.compile(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%")


def _percent(used: int, available: int) -> float:
    return round(100.0 * used / available, 1)


def place_and_route(config: AcceleratorConfig, target: str, out_dir, *,
                    unit: str = "accelerator", clock_mhz: float | None = None,
                    progress: Progress | None = None) -> dict:
    """Place and route ``unit`` of ``config`` in a board top on ``target``'s board.

    Parameters
    ----------
    config : AcceleratorConfig
        The design.
    target : str
        A key of :data:`hw.boards.BOARDS` (``"ice40"``, ``"ecp5"``).
    out_dir : path-like
        Build directory of the board top (created by the platform).
    unit : str
        One of :data:`hw.units.UNITS`.
    clock_mhz : float, optional
        Clock constraint; default the board's ``goal_mhz``.
    progress : Progress, optional
        Progress lines (four steps).

    Returns
    -------
    dict
        The ``pnr`` report: ``board``, ``board_description``, ``family``, ``target_mhz``,
        ``harness_ffs``, ``fmax_mhz``, ``timing_met``, ``fits``, ``utilisation`` (bel ->
        used, available, percent), ``bitstream`` (``None`` when the design does not fit;
        ``fit_error`` then says why) and ``seconds``.

    Raises
    ------
    ValueError
        ``target`` has no board or ``unit`` is unknown.
    SynthError
        A tool failed for another reason than the design not fitting.
    """
    if target not in BOARDS:
        raise ValueError(f"--pnr supports targets {', '.join(BOARDS)}, not {target!r}")
    check_unit(unit)
    board = BOARDS[target]
    clock_mhz = board.goal_mhz if clock_mhz is None else clock_mhz
    out = Path(out_dir)
    progress = progress or Progress(4)
    top = BoardTop(UNITS[unit](config))
    platform = board.platform(clock_mhz)
    plan = progress.run(
        f"elaborate board top for {board.description} at {clock_mhz:g} MHz",
        platform.prepare, top, name="top", emit_src=False,
        script_after_read=RENAME_BIT_NAMES, synth_opts="-dsp" if target == "ice40" else "",
        script_after_synth="tee -q -o board_stat.json stat -json")
    plan.extract(out)
    commands = json.loads(plan.files["build_top.json"])["commands"]
    report = {"board": board.name, "board_description": board.description,
              "family": board.family, "target_mhz": clock_mhz,
              "harness_ffs": top.harness.in_bits + 1,
              "fmax_mhz": None, "fits": None, "utilisation": {}, "bitstream": None,
              "seconds": {}}
    labels = ["synthesise board top", "place and route", "pack bitstream"]
    for label, command in zip(labels, commands):
        tool, args = command[0], list(command[1:])
        if tool.startswith("nextpnr"):
            # A missed clock target is a result (Fmax is reported), not a failed build.
            args = [a for a in args if a != "--quiet"] + ["--report", "pnr.json",
                                                           "--timing-allow-fail"]
        start = time.monotonic()
        try:
            progress.run(f"{label} ({tool})", run_tool, tool, args, out, f"{tool}.out")
        except SynthError as exc:
            report["seconds"][label] = round(time.monotonic() - start, 2)
            if tool.startswith("nextpnr") and does_not_fit(out / f"{tool}.out"):
                report["fits"] = False
                report["fit_error"] = str(exc)
                report["utilisation"] = (logged_use(out / f"{tool}.out")
                                         or estimated_use(out / "board_stat.json", board))
                return report
            raise
        report["seconds"][label] = round(time.monotonic() - start, 2)
        if tool.startswith("nextpnr"):
            pnr = json.loads((out / "pnr.json").read_text(encoding="utf-8"))
            report["fits"] = True
            report["fmax_mhz"] = round(min(c["achieved"] for c in pnr["fmax"].values()), 2)
            report["timing_met"] = report["fmax_mhz"] >= clock_mhz
            report["utilisation"] = {
                bel: {"used": u["used"], "available": u["available"],
                      "percent": _percent(u["used"], u["available"])}
                for bel, u in sorted(pnr["utilization"].items()) if u["used"]}
    report["bitstream"] = str(out / ("top.bin" if target == "ice40" else "top.bit"))
    return report


def does_not_fit(log_path: Path) -> bool:
    """True when a nextpnr log's errors say the design needs more cells than the device has."""
    log_path = Path(log_path)
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    return any(_NO_FIT.search(line) for line in text.splitlines() if "ERROR" in line)


def logged_use(log_path: Path) -> dict:
    """The "Device utilisation" table nextpnr logs after packing (also when placement then
    fails because the design does not fit): bel -> used, available, percent."""
    log_path = Path(log_path)
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    return {bel: {"used": int(used), "available": int(available),
                  "percent": _percent(int(used), int(available))}
            for bel, used, available in _USE_LINE.findall(text) if int(used)}


def estimated_use(stat_path: Path, board: Board) -> dict:
    """Device use of a synthesised board top (``stat -json``) against ``board.device``, for a
    design that nextpnr refused before logging its own table.

    Returns bel -> used, available, percent, ``estimated: True``.
    """
    stat_path = Path(stat_path)
    if not stat_path.exists():
        return {}
    res = classify_cells(design_stat(stat_path).get("num_cells_by_type", {}), board.family)
    if board.family == "ice40":
        # An iCE40 logic cell holds one LUT and one flip-flop; carries ride along.
        used = {"luts": max(res["luts"], res["ffs"]), "brams": res["bram"],
                "dsps": res["dsp"], "sprams": res["spram"]}
    else:
        # An ECP5 CCU2 carry cell occupies two LUT4 sites.
        used = {"luts": res["luts"] + 2 * res["carry"], "ffs": res["ffs"],
                "brams": res["bram"], "dsps": res["dsp"]}
    capacity = board.device
    return {bel: {"used": used[resource], "available": getattr(capacity, resource),
                  "percent": _percent(used[resource], getattr(capacity, resource)),
                  "estimated": True}
            for resource, bel in capacity.bels if used.get(resource)}
