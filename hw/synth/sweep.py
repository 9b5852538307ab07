"""Sweeps: the flow over many configurations, a markdown table, JSON and a plot of resources and
Fmax against multipliers."""

from __future__ import annotations

import json
from pathlib import Path

from golden.cli import atomic_output, progress, write_text
from golden.config import AcceleratorConfig
from hw.boards import BOARDS

from .flow import run
from .tools import SynthError

__all__ = ["plot_sweep", "run_sweep", "sweep_table"]


def run_sweep(configs: list[AcceleratorConfig], target: str, out_dir, *, pnr: bool = False,
          sparsity: float = 0.74, plot: str | None = None) -> list[dict]:
    """Run the flow on every config; write ``sweep.json``, ``sweep.md`` and the plot.

    Parameters
    ----------
    configs : list of AcceleratorConfig
        The designs, each into ``out_dir/<config.name>``.
    target : str
        Synthesis target.
    out_dir : path-like
        Output directory (created).
    pnr : bool
        Also place and route each design.
    sparsity : float
        Sparsity of the throughput reference layer.
    plot : str, optional
        Plot path; default ``out_dir/synth-sweep.png``.

    Returns
    -------
    list of dict
        One row per design: ``name``, ``config`` and ``report``, or ``error`` when a tool
        failed (the sweep goes on).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, config in enumerate(configs, 1):
        name = config.name
        progress(f"== design {n}/{len(configs)}: {name}")
        try:
            report = run(config, target, out / name, pnr=pnr, sparsity=sparsity)
        except SynthError as exc:
            progress(f"   failed: {exc}")
            rows.append({"name": name, "config": config.as_dict(), "error": str(exc)})
            continue
        rows.append({"name": name, "config": config.as_dict(), "report": report})
    write_text(out / "sweep.json", json.dumps(rows, indent=2) + "\n")
    write_text(out / "sweep.md", sweep_table(rows, target) + "\n")
    plot_sweep(rows, target, Path(plot) if plot else out / "synth-sweep.png")
    return rows


def sweep_table(rows: list[dict], target: str) -> str:
    """Markdown table of a sweep's rows."""
    head = ("| tile | array | channels | multipliers | LUTs | FFs | carry | DSP | BRAM | "
            "`$mul` | Fmax MHz | fits | GOPS | GOPS/mult |")
    lines = [f"Target `{target}`.", "", head,
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for row in rows:
        cfg = row["config"]
        shape = f"{cfg['array'][0]}x{cfg['array'][1]}"
        if "error" in row:
            lines.append(f"| {cfg['tile']} | {shape} | {cfg['max_in_channels']} | | | | | | | "
                         f"| | error | | |")
            continue
        rep = row["report"]
        res, pnr, tp = rep["resources"], rep.get("pnr") or {}, rep.get("throughput") or {}
        fits = "" if not pnr else ("yes" if pnr["fits"] else "**no**")
        lines.append(
            f"| {cfg['tile']} | {shape} | {cfg['max_in_channels']} | "
            f"{rep['multipliers']['expected']} | {res['luts']} | {res['ffs']} | {res['carry']} | "
            f"{res['dsp']} | {res['bram']} | {rep['multipliers']['mul_cells']} | "
            f"{pnr.get('fmax_mhz') or ''} | {fits} | {tp.get('gops', '')} | "
            f"{tp.get('gops_per_multiplier', '')} |")
    return "\n".join(lines)


def plot_sweep(rows: list[dict], target: str, path: Path) -> None:
    """Plot LUTs and FFs (left) and Fmax (right) against multipliers, one line per tile; write
    nothing when no design synthesised."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [r for r in rows if "report" in r]
    if not good:
        return
    fig, (ax_res, ax_f) = plt.subplots(1, 2, figsize=(10, 4))
    for tile in sorted({r["config"]["tile"] for r in good}):
        pts = sorted(((r["report"]["multipliers"]["expected"], r) for r in good
                      if r["config"]["tile"] == tile), key=lambda p: p[0])
        mults = [p[0] for p in pts]
        for key, style in (("luts", "o-"), ("ffs", "s--")):
            ax_res.plot(mults, [p[1]["report"]["resources"][key] for p in pts], style,
                        label=f"{tile} {key}")
        fmax = [(p[0], p[1]["report"].get("pnr", {}).get("fmax_mhz")) for p in pts]
        fmax = [(x, f) for x, f in fmax if f]
        if fmax:
            ax_f.plot(*zip(*fmax), "o-", label=f"{tile}")
    ticks = sorted({r["report"]["multipliers"]["expected"] for r in good})
    for ax in (ax_res, ax_f):
        ax.set_xscale("log")
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("multipliers (PEs)")
    ax_res.set(ylabel="cells", title=f"Resources ({target})", yscale="log")
    ax_res.legend(fontsize=8)
    ax_f.set(ylabel="MHz", title="Fmax after place and route")
    if target in BOARDS:
        ax_f.axhline(BOARDS[target].goal_mhz, color="grey", linestyle=":",
                     label=f"goal {BOARDS[target].goal_mhz:g} MHz")
    ax_f.set_ylim(bottom=0)
    if ax_f.lines:
        ax_f.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:         # same extension: matplotlib keeps the format
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
