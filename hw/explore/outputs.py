"""What an exploration writes: ``points.csv``, ``pareto.md`` and one Pareto plot per target.

Figures of a design point (:func:`point_row`), with ``T`` the cycles per image (golden's cycle
model, exposed weight loads included) and ``F`` the Fmax of place and route in MHz:

* ``latency_us = T / F`` (one image, microseconds), ``images_per_s = F * 1e6 / T``;
* ``gops = 2 * direct_macs * F / T / 1e3``: dense-equivalent giga-operations per second, two per
  multiply-accumulate of the direct dense 3x3 convolutions (as ``golden.throughput``);
* ``gops_per_multiplier = gops / multipliers`` (``AcceleratorConfig.multipliers``, the requant
  stage's included, as ``golden.throughput``); ``gops_per_1k_luts = gops / (luts / 1000)``;
* ``utilisation_end_to_end``: nonzero MACs / (PEs x T), as ``sim.network`` reports it.

Without place and route F is unknown and the columns that need it are empty; ``fits`` is then
the synthesised cells against the board's device (``fits_from`` says which). A design is on a
Pareto front (``pareto.md``, the plots) when no other design of its target that fits is at
least as good in latency and in the resource (LUTs, block RAMs) and better in one; latency is
``latency_us`` when every such design has it, else ``cycles_per_image``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from golden.cli import atomic_output, write_text

from .points import DesignPoint

__all__ = ["CSV_COLUMNS", "FAILED", "OK", "PARETO_RESOURCES", "candidates", "csv_text",
           "latency_key", "pareto_front", "pareto_markdown", "plot_pareto", "point_row",
           "write_outputs"]

#: Status of a point whose every task succeeded.
OK = "ok"
#: Status of a point one of whose tasks failed (``reason`` holds the error).
FAILED = "failed"
#: Columns of ``points.csv``.
CSV_COLUMNS = ("point", "tile", "array", "max_channels", "target", "design", "status",
               "reason", "fits", "fits_from", "fmax_mhz", "luts", "ffs", "carry", "bram", "dsp",
               "multipliers", "n_pe", "passes", "cycles_per_image", "compute_cycles",
               "exposed_load_cycles", "latency_us", "images_per_s", "utilisation_end_to_end",
               "gops", "gops_per_multiplier", "gops_per_1k_luts")
#: The resources of the Pareto fronts: (column, heading).
PARETO_RESOURCES = (("luts", "LUTs"), ("bram", "block RAMs"))


def _fits(synth: dict) -> tuple[bool | None, str]:
    pnr = synth.get("pnr")
    if pnr:
        return pnr["fits"], "place and route"
    estimate = synth.get("fit_estimate")
    if estimate:
        return estimate["fits"], "synthesis estimate"
    return None, ""


def point_row(point: DesignPoint, *, status: str | None = None, reason: str = "",
              synth: dict | None = None, cycles: dict | None = None) -> dict:
    """The ``points.csv`` row of a point (module docstring for the figures).

    Parameters
    ----------
    point : DesignPoint
    status, reason : str
        For a point that needed no task (:func:`hw.explore.points.screen`).
    synth : dict, optional
        :func:`hw.explore.tasks.synthesise`'s result, or ``{"error": ...}``.
    cycles : dict, optional
        :func:`hw.explore.tasks.network_cycles`'s result, or ``{"error": ...}``; None when
        there is no network.
    """
    cfg = point.config
    row = dict.fromkeys(CSV_COLUMNS)
    row.update(point=point.name, tile=cfg.tile, array=point.array_text,
               max_channels=point.channels, target=point.target, design=cfg.name,
               multipliers=cfg.multipliers, n_pe=cfg.n_pe, status=status or OK, reason=reason)
    if status is not None:
        return row
    errors = [r["error"] for r in (synth, cycles) if r and "error" in r]
    if errors:
        row.update(status=FAILED, reason="; ".join(errors))
        return row
    fmax = None
    if synth is not None:
        res = synth["resources"]
        row.update({k: res[k] for k in ("luts", "ffs", "carry", "bram", "dsp")})
        row["fits"], row["fits_from"] = _fits(synth)
        pnr = synth.get("pnr") or {}
        fmax = pnr.get("fmax_mhz")
        row["fmax_mhz"] = fmax
    if cycles is None:
        return row
    if not cycles["usable"]:
        row.update(status="unusable", reason=cycles["reason"])
        return row
    total = cycles["total_cycles"]
    row.update(passes=cycles["passes"], cycles_per_image=total,
               compute_cycles=cycles["compute_cycles"],
               exposed_load_cycles=cycles["exposed_load_cycles"],
               utilisation_end_to_end=round(cycles["utilisation_end_to_end"], 4))
    if fmax:
        gops = 2 * cycles["direct_macs"] * fmax / total / 1e3
        row.update(latency_us=round(total / fmax, 3), images_per_s=round(fmax * 1e6 / total, 1),
                   gops=round(gops, 3), gops_per_multiplier=round(gops / cfg.multipliers, 4),
                   gops_per_1k_luts=round(gops / (row["luts"] / 1000), 4) if row["luts"]
                   else None)
    return row


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def csv_text(rows: list[dict]) -> str:
    """``points.csv``: :data:`CSV_COLUMNS`, one line per row (empty cells for absent figures,
    ``yes``/``no`` for ``fits``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def candidates(rows: list[dict], target: str) -> list[dict]:
    """The rows of ``target`` that ran (status ok, with cycles per image) and may fit."""
    return [r for r in rows if r["target"] == target and r["status"] == OK
            and r["cycles_per_image"] is not None and r["fits"] is not False]


def latency_key(rows: list[dict]) -> str:
    """``latency_us`` when every row has it, else ``cycles_per_image``."""
    return "latency_us" if rows and all(r["latency_us"] for r in rows) else "cycles_per_image"


def pareto_front(rows: list[dict], x: str, y: str) -> list[dict]:
    """The rows no other row dominates in (``x``, ``y``), both minimised; sorted by x, then y.
    Rows without ``x`` or ``y`` are left out."""
    pts = [r for r in rows if r[x] is not None and r[y] is not None]

    def dominated(a):
        return any(b[x] <= a[x] and b[y] <= a[y] and (b[x] < a[x] or b[y] < a[y]) for b in pts)

    return sorted((r for r in pts if not dominated(r)), key=lambda r: (r[x], r[y], r["point"]))


def _latency_heading(key: str) -> str:
    return ("latency per image at Fmax (us)" if key == "latency_us" else
            "cycles per image (no place and route: Fmax unknown, latency in cycles)")


def pareto_markdown(rows: list[dict], targets, title: str, plots: dict) -> str:
    """``pareto.md``: per target and resource, the Pareto-optimal designs as a table, and the
    plot of each target (``plots``: target -> file name)."""
    lines = [f"# Pareto-optimal designs: {title}", ""]
    for target in targets:
        pool = candidates(rows, target)
        key = latency_key(pool)
        lines += [f"## Target `{target}`", "",
                  f"{len(pool)} of {sum(r['target'] == target for r in rows)} points ran and "
                  f"may fit; latency: {_latency_heading(key)}.", ""]
        for column, heading in PARETO_RESOURCES:
            front = pareto_front(pool, column, key)
            lines += [f"### Latency vs {heading}", "",
                      "| design | tile | array | channels | LUTs | BRAM | DSP | fits | Fmax MHz "
                      "| cycles/image | latency us | images/s | utilisation | GOPS | "
                      "GOPS/mult | GOPS/1k LUTs |",
                      "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"
                      "---:|---:|"]
            for r in front:
                util = r["utilisation_end_to_end"]
                lines.append(
                    f"| `{r['design']}` | {r['tile']} | {r['array']} | {r['max_channels']} | "
                    f"{r['luts']} | {r['bram']} | {r['dsp']} | {_cell(r['fits'])} | "
                    f"{_cell(r['fmax_mhz'])} | {r['cycles_per_image']:,} | "
                    f"{_cell(r['latency_us'])} | {_cell(r['images_per_s'])} | "
                    f"{util:.1%} | {_cell(r['gops'])} | {_cell(r['gops_per_multiplier'])} | "
                    f"{_cell(r['gops_per_1k_luts'])} |")
            if not front:
                lines.append("| (no design ran) | | | | | | | | | | | | | | | |")
            lines.append("")
        if target in plots:
            lines += [f"![latency vs LUTs and block RAMs, {target}]({plots[target]})", ""]
    return "\n".join(lines)


def plot_pareto(rows: list[dict], target: str, path) -> bool:
    """Plot latency against LUTs and block RAMs for ``target``: every candidate, the front
    joined and labelled. Written atomically; False (nothing written) without candidates."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pool = candidates(rows, target)
    if not pool:
        return False
    key = latency_key(pool)
    fig, axes = plt.subplots(1, len(PARETO_RESOURCES), figsize=(11, 4.2))
    for ax, (column, heading) in zip(axes, PARETO_RESOURCES):
        pts = [r for r in pool if r[column] is not None]
        ax.scatter([r[column] for r in pts], [r[key] for r in pts], color="0.6", s=18,
                   label="design points")
        front = pareto_front(pool, column, key)
        ax.step([r[column] for r in front], [r[key] for r in front], "o-", where="post",
                color="C0", label="Pareto front")
        for r in front:
            ax.annotate(f"{r['tile']} {r['array']} c{r['max_channels']}",
                        (r[column], r[key]), textcoords="offset points", xytext=(4, 4),
                        fontsize=7)
        ax.set(xlabel=heading, ylabel="us per image" if key == "latency_us"
               else "cycles per image", title=f"latency vs {heading} ({target})")
        ax.set_yscale("log")
        if column == "luts":        # from one PE to hundreds: spread the small designs
            ax.set_xscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:         # same extension: matplotlib keeps the format
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return True


def write_outputs(rows: list[dict], targets, out_dir, title: str) -> list[Path]:
    """Write ``points.csv``, ``pareto-<target>.png`` (targets with candidates) and
    ``pareto.md`` into ``out_dir``; return the paths written.

    Raises
    ------
    golden.cli.CliError
        A file cannot be written (naming ``--out`` and the path).
    OSError
        A plot cannot be written.
    """
    out = Path(out_dir)
    written = [out / "points.csv"]
    write_text(written[0], csv_text(rows))
    plots = {}
    for target in targets:
        name = f"pareto-{target}.png"
        if plot_pareto(rows, target, out / name):
            plots[target] = name
            written.append(out / name)
    write_text(out / "pareto.md", pareto_markdown(rows, targets, title, plots) + "\n")
    written.append(out / "pareto.md")
    return written
