"""Synthesis reports: ``report.json``, ``report.md`` and the summary lines of the command line.

A report is the dict :func:`hw.synth.yosys.synthesize` returns, with ``breakdown``, ``pnr`` and
``throughput`` entries added by the flow (:func:`hw.synth.flow.run`) when asked for.
"""

from __future__ import annotations

import json
from pathlib import Path

from golden.cli import write_text

__all__ = ["render_markdown", "summary_lines", "write_reports"]


def render_markdown(report: dict) -> str:
    """``report.md``: the report as a few markdown tables."""
    d = report["design"]
    cfg = d["config"]
    lines = [f"# Synthesis report: {d['top']} ({d['unit']})", "",
             f"tile {cfg['tile']}, array {cfg['array'][0]}x{cfg['array'][1]}, channels <= "
             f"{cfg['max_in_channels']} in / {cfg['max_out_channels']} out, target "
             f"`{report['target']}` ({report['yosys']}: `{report['synth_command']}`)", "",
             "| resource | count |", "|---|---:|"]
    lines += [f"| {name} | {n} |" for name, n in report["resources"].items()]
    mul = report["multipliers"]
    lines += ["", f"`$mul` cells in the coarse netlist: {mul['mul_cells']} (expected "
              f"{mul['expected']}); memories: {report['memories']['count']} "
              f"({report['memories']['bits']} bits).", ""]
    modules = report.get("breakdown")
    if modules:
        lines += ["## Breakdown (hierarchical generic 4-LUT synthesis)", "",
                  "| module | LUT4 | FFs | memories |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | {m['luts']} | {m['ffs']} | {m['memories']} |"
                  for name, m in modules.items()]
        lines.append("")
    pnr = report.get("pnr")
    if pnr:
        lines += [f"## Place and route: {pnr['board_description']}", ""]
        if pnr["fits"]:
            met = "met" if pnr["timing_met"] else "**missed**"
            lines.append(f"Fmax **{pnr['fmax_mhz']} MHz** (constraint {pnr['target_mhz']:g} "
                         f"MHz, {met}); bitstream `{pnr['bitstream']}`; the serial board "
                         f"harness adds {pnr['harness_ffs']} flip-flops and a parity tree.")
        else:
            lines.append(f"**Does not fit**: {pnr.get('fit_error', '')}")
        lines += ["", "| bel | used | available | % |", "|---|---:|---:|---:|"]
        lines += [f"| {bel} | {u['used']} | {u['available']} | {u['percent']}"
                  f"{' (est.)' if u.get('estimated') else ''} |"
                  for bel, u in pnr["utilisation"].items()]
        lines.append("")
    tp = report.get("throughput")
    if tp:
        lines += ["## Throughput at Fmax", "",
                  f"{tp['layer']}, Winograd sparsity {tp['sparsity']:.0%}: {tp['cycles']} "
                  f"cycles, PE utilisation {tp['utilisation']:.1%}, **{tp['gops']} GOPS** "
                  f"dense-equivalent, **{tp['gops_per_multiplier']} GOPS per multiplier** "
                  f"({tp['multipliers']} multipliers).", ""]
    return "\n".join(lines)


def summary_lines(report: dict) -> list[str]:
    """The few lines the command line prints about ``report`` (resources, then place and
    route and throughput when present)."""
    res, mul = report["resources"], report["multipliers"]
    lines = [f"{report['design']['top']} on {report['target']}: {res['luts']} LUTs, "
             f"{res['ffs']} FFs, {res['carry']} carry, {res['dsp']} DSP, {res['bram']} BRAM, "
             f"{res['cells']} cells, {mul['mul_cells']} $mul (expected {mul['expected']})"]
    pnr = report.get("pnr")
    if not pnr:
        return lines
    if not pnr["fits"]:
        use = ", ".join(f"{bel} {u['used']}/{u['available']}"
                        for bel, u in pnr["utilisation"].items())
        return lines + [f"DOES NOT FIT {pnr['board_description']}: {use}; {pnr['fit_error']}"]
    lines.append(f"{pnr['board_description']}: Fmax {pnr['fmax_mhz']} MHz (constraint "
                 f"{pnr['target_mhz']:g} MHz {'met' if pnr['timing_met'] else 'MISSED'}), "
                 f"bitstream {pnr['bitstream']}")
    tp = report.get("throughput")
    if tp:
        lines.append(f"throughput: {tp['gops']} GOPS dense-equivalent, "
                     f"{tp['gops_per_multiplier']} GOPS/multiplier ({tp['layer']}, sparsity "
                     f"{tp['sparsity']:.0%})")
    return lines


def write_reports(report: dict, out_dir) -> tuple[Path, Path]:
    """Write ``out_dir/report.json`` and ``out_dir/report.md`` atomically; return the paths.

    Raises
    ------
    golden.cli.CliError
        A file cannot be written (the message names ``--out`` and the path).
    """
    out = Path(out_dir)
    json_path, md_path = out / "report.json", out / "report.md"
    write_text(json_path, json.dumps(report, indent=2) + "\n")
    write_text(md_path, render_markdown(report))
    return json_path, md_path
