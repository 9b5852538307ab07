"""Sweeps: the flow over many configurations on one target, a markdown table, JSON and a plot
of resources and Fmax against multipliers.

A sweep is a synthesis-only exploration (:mod:`hw.explore`): the designs run as Dask tasks on a
local cluster (or the scheduler given), their reports are cached in ``out_dir/cache``, and the
rows keep the sweep's own format.
"""

from __future__ import annotations

import json
from pathlib import Path

from golden.cli import atomic_output, progress, write_text
from golden.config import AcceleratorConfig
from hw.boards import BOARDS

__all__ = ["plot_sweep", "run_sweep", "sweep_table"]


def run_sweep(configs: list[AcceleratorConfig], target: str, out_dir, *, pnr: bool = False,
              sparsity: float = 0.74, plot: str | None = None, workers: int | None = None,
              scheduler: str | None = None, force: bool = False, cache=None,
              quiet: bool = False) -> list[dict]:
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
    workers, scheduler : optional
        Where the designs run (:func:`hw.explore.runner.dask_client`): a local cluster of
        ``workers`` processes (default the CPU count) or the scheduler at this address.
    force : bool
        Synthesise again designs whose report is cached.
    cache : path-like, optional
        The report cache (default ``out_dir/cache``).
    quiet : bool
        No progress lines or bar.

    Returns
    -------
    list of dict
        One row per design: ``name``, ``config`` and ``report``, or ``error`` when a tool
        failed or the design cannot be built (the sweep goes on).

    Raises
    ------
    ConnectionError
        The scheduler cannot be reached.
    """
    from hw.explore.cache import Cache
    from hw.explore.points import DesignPoint
    from hw.explore.study import run_study

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    points = [DesignPoint(config, target) for config in configs]
    study = run_study(points, cache=Cache(out / "cache" if cache is None else cache),
                      work_dir=lambda point: out.resolve() / point.config.name, pnr=pnr,
                      sparsity=sparsity, force=force, workers=workers, scheduler=scheduler,
                      quiet=quiet)
    rows = []
    for point, row in zip(points, study.rows):
        name, config = point.config.name, point.config.as_dict()
        report = study.synth.get(point.name) or {"error": row["reason"]}
        if "error" in report:
            if not quiet:
                progress(f"{name}: failed: {report['error']}")
            rows.append({"name": name, "config": config, "error": report["error"]})
        else:
            rows.append({"name": name, "config": config, "report": report})
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
