"""golden.report: the written report files hold the figures of their inputs."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from golden import report as report_module
from golden.cycles import layer_cycles, step_lengths
from golden.passes import compile_passes, plan_passes
from golden.report import (CSV_COLUMNS, NetworkFigures, overlap_loads, pass_record, report_dict,
                           write_report)
from golden.synthetic import synthetic_layer
from helpers import small_config

CFG = small_config(requant=True)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def programs():
    """Two network layers: conv1 fits (one pass), conv2 splits into 3 x 2 passes."""
    conv1 = synthetic_layer(CFG, 3, 8, 0.3, seed=1, name="conv1")
    conv2 = synthetic_layer(CFG, 20, 12, 0.7, seed=2, name="conv2")
    out = [("conv1", p) for p in compile_passes(plan_passes(CFG, conv1, (100, 10, True)), 8, 8)]
    out += [("conv2", p) for p in compile_passes(plan_passes(CFG, conv2, (100, 10, True)), 6, 6)]
    return out


@pytest.fixture(scope="module")
def records(programs):
    recs = [pass_record(p, layer=layer) for layer, p in programs]
    # One pass "measured" with 7 stall cycles on results and 2 on the program load.
    layer, p = programs[3]
    model = layer_cycles(p)
    recs[3] = pass_record(p, layer=layer, cycles=model.cycles + 7,
                          load_cycles=model.load_cycles + 2)
    return recs


FIGURES = NetworkFigures(images=9, bit_exact=True, multipliers=CFG.n_pe,
                         simulated_cycles=123_456, simulation_seconds=2.0,
                         accuracy_hardware=7 / 9, accuracy_golden=7 / 9, fmax_mhz=50.0,
                         design={"name": CFG.name, "config": CFG.to_dict()},
                         simulator="verilator", build_seconds=0.0)


def test_pass_record_counters_come_from_the_cycle_model(programs, records):
    for (layer, program), rec in zip(programs, records):
        model = layer_cycles(program)
        t = program.n_tiles
        steps = step_lengths(CFG, program.in_channels, program.out_channels, t,
                             program.schedule.makespan)
        assert rec.layer == layer and rec.name == program.layer.name
        # Stalls of a measured pass land in its compute part.
        assert rec.compute_cycles == int(steps[:t + 1].sum()) + rec.cycles - model.cycles
        assert rec.compute_cycles + rec.drain_cycles == rec.cycles
        assert rec.nonzero_macs == np.count_nonzero(program.layer.U) * t
        assert rec.dense_macs == model.dense_macs and rec.direct_macs == model.direct_macs
        zeros = (np.asarray(program.layer.U) == 0).sum(axis=(0, 1)) * t
        assert np.array_equal(np.array(rec.skipped_macs_per_position), zeros)
        assert rec.utilisation == pytest.approx(rec.nonzero_macs / (CFG.n_pe * rec.cycles))
    assert [r.stall_cycles for r in records] == [0, 0, 0, 9, 0, 0, 0]
    assert records[3].cycles == layer_cycles(programs[3][1]).cycles + 7


def test_report_json(tmp_path, records):
    paths = write_report(tmp_path / "r", records, FIGURES)
    with open(paths["json"]) as f:
        rep = json.load(f)
    assert set(rep) == {"images", "accuracy", "bit_exact", "multipliers", "total_cycles",
                        "compute_cycles", "load_cycles", "exposed_load_cycles",
                        "utilisation_end_to_end",
                        "images_per_s_at_fmax", "simulated_cycles_per_s", "layers",
                        "simulated_cycles", "simulation_seconds", "build_seconds", "simulator",
                        "design"}
    assert rep["images"] == 9 and rep["bit_exact"] is True
    assert rep["accuracy"] == {"hardware": 7 / 9, "golden": 7 / 9}
    assert rep["multipliers"] == CFG.n_pe == 4
    assert rep["design"] == {"name": CFG.name, "config": CFG.to_dict()}
    assert (rep["simulator"], rep["build_seconds"]) == ("verilator", 0.0)
    assert (rep["simulated_cycles"], rep["simulation_seconds"]) == (123_456, 2.0)
    compute = sum(r.cycles for r in records)
    load = sum(r.load_cycles for r in records)
    assert (rep["compute_cycles"], rep["load_cycles"]) == (compute, load)
    assert rep["total_cycles"] == compute + load == compute + rep["exposed_load_cycles"]
    nnz = sum(r.nonzero_macs for r in records)
    assert rep["utilisation_end_to_end"] == pytest.approx(nnz / (4 * (compute + load)))
    assert rep["images_per_s_at_fmax"] == pytest.approx(50e6 / (compute + load))
    assert rep["simulated_cycles_per_s"] == pytest.approx(61_728)
    assert len(rep["layers"]) == 7
    for entry, r in zip(rep["layers"], records):
        for key in ("name", "cycles", "load_cycles", "nonzero_macs", "dense_macs",
                    "direct_macs", "utilisation", "skipped_macs_per_position"):
            assert key in entry
        assert entry["name"] == r.name and entry["cycles"] == r.cycles
        assert entry["load_cycles"] == r.load_cycles
        assert entry["nonzero_macs"] == r.nonzero_macs
        assert entry["utilisation"] == pytest.approx(r.utilisation)
        assert np.array(entry["skipped_macs_per_position"]).shape == (4, 4)
        assert entry["skipped_macs_per_position"] == [list(x) for x in
                                                     r.skipped_macs_per_position]


def test_overlapped_loads_in_the_report(records):
    """Two weight banks: each pass's load hides behind the pass before, all but
    max(0, load - previous cycles - 2); one bank: every load is exposed."""
    one = overlap_loads(records, CFG)
    assert [r.exposed_load for r in one] == [r.load_cycles for r in records]
    two = overlap_loads(records, CFG.replace(weight_banks=2))
    want = [records[0].load_cycles] + [max(0, b.load_cycles - a.cycles - 2)
                                       for a, b in zip(records, records[1:])]
    assert [r.exposed_load for r in two] == want
    rep = report_dict(two, FIGURES)
    compute = sum(r.cycles for r in records)
    assert rep["total_cycles"] == compute + sum(want) < compute + rep["load_cycles"]
    assert rep["utilisation_end_to_end"] == pytest.approx(
        sum(r.nonzero_macs for r in records) / (4 * (compute + sum(want))))
    assert [e["exposed_load_cycles"] for e in rep["layers"]] == want


def test_report_json_optional_figures(records):
    rep = report_dict(records, NetworkFigures(images=1, bit_exact=False, multipliers=4,
                                              simulated_cycles=0, simulation_seconds=0.0,
                                              accuracy_float=0.5))
    assert rep["accuracy"] == {"hardware": None, "golden": None, "float": 0.5}
    assert rep["images_per_s_at_fmax"] is None and rep["simulated_cycles_per_s"] is None
    assert rep["bit_exact"] is False
    with pytest.raises(ValueError, match="at least one pass record"):
        report_dict([], FIGURES)


def test_layers_csv(tmp_path, records):
    paths = write_report(tmp_path, records, FIGURES)
    with open(paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert CSV_COLUMNS[:2] == ("LayerID", "Layer") and {"Total Cycles", "Stall Cycles",
                                                        "Compute Util %"} <= set(CSV_COLUMNS)
    assert [row["Layer"] for row in rows] == ["conv1"] + ["conv2"] * 6
    for i, (row, r) in enumerate(zip(rows, records)):
        assert int(row["LayerID"]) == i and row["Pass"] == r.name
        assert int(row["Total Cycles"]) == r.cycles + r.load_cycles
        assert int(row["Stall Cycles"]) == r.stall_cycles
        assert float(row["Compute Util %"]) == pytest.approx(
            100 * r.nonzero_macs / (CFG.n_pe * r.cycles), abs=1e-4)
        assert float(row["Overall Util %"]) == pytest.approx(
            100 * r.nonzero_macs / (CFG.n_pe * (r.cycles + r.load_cycles)), abs=1e-4)
        assert int(row["Load Cycles"]) + int(row["Compute Cycles"]) + int(
            row["Drain Cycles"]) == int(row["Total Cycles"])
        assert int(row["Nonzero MACs"]) == r.nonzero_macs
        assert int(row["Dense MACs"]) == r.dense_macs
        assert int(row["Direct MACs"]) == r.direct_macs
        assert int(row["Skipped MACs"]) == r.dense_macs - r.nonzero_macs


def test_report_md(tmp_path, records):
    paths = write_report(tmp_path, records, FIGURES)
    text = open(paths["md"]).read()
    total = sum(r.cycles + r.load_cycles for r in records)
    assert f"| cycles per image (loads included) | {total:,} |" in text
    assert "| accuracy on the hardware path | 77.78 % |" in text
    for i, r in enumerate(records):
        assert (f"| {i} | {r.name} | {r.total_cycles:,} | {r.load_cycles:,} | "
                f"{r.compute_cycles:,} | {r.drain_cycles:,} | {r.stall_cycles:,} |") in text
    assert "![cycles](cycles.png)" in text and "![skipped_macs](skipped_macs.png)" in text


def test_pngs_are_valid_images(tmp_path, records):
    from matplotlib.image import imread
    paths = write_report(tmp_path, records, FIGURES)
    for kind in ("cycles_png", "skipped_png"):
        with open(paths[kind], "rb") as f:
            assert f.read(8) == PNG_SIGNATURE
        image = imread(paths[kind])
        assert image.ndim == 3 and image.shape[0] >= 200 and image.shape[1] >= 300
        assert np.ptp(image[..., :3]) > 0.5          # drawn, not blank
    assert sorted(os.listdir(tmp_path)) == ["cycles.png", "layers.csv", "report.json",
                                            "report.md", "skipped_macs.png"]


def test_writes_are_atomic(tmp_path, records, monkeypatch):
    paths = write_report(tmp_path, records, FIGURES)
    before = {k: open(p, "rb").read() for k, p in paths.items()}

    def broken(records, handle):
        handle.write(b"partial")
        raise RuntimeError("plot failed")

    monkeypatch.setattr(report_module, "_plot_skipped", broken)
    with pytest.raises(RuntimeError, match="plot failed"):
        write_report(tmp_path, records[:1], FIGURES)
    # The failed file kept its old content, nothing half-written or temporary is left.
    assert open(paths["skipped_png"], "rb").read() == before["skipped_png"]
    assert open(paths["json"], "rb").read() == before["json"]
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths.values())
