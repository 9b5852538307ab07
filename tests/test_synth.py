"""Synthesis flow (hw.synth, hw.boards, hw.units, golden.throughput): resource baselines,
multiplier counts, board harness and capacities, throughput figures and command-line errors.

Baselines live in ``tests/baselines/synth_<target>_<name>.json`` with a relative tolerance per
resource (hls4ml style): an area regression beyond it fails. Refresh them after an intended
change with ``SYNTH_UPDATE_BASELINES=1 python -m pytest tests/test_synth.py [-m slow]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.lib import wiring
from amaranth.sim import Simulator

from golden.options import config_from_args
from golden.config import AcceleratorConfig
from golden.protocol import patch_spec, v_spec
from golden.throughput import reference_throughput
from hw import synth
from hw.boards import BOARDS, SerialHarness
from hw.generate import generate
from hw.synth import cli as synth_cli
from hw.synth import pnr as synth_pnr
from hw.synth import sweep as synth_sweep
from hw.transform import InputTransform
from hw.units import UNITS

BASELINES = Path(__file__).parent / "baselines"
TOLERANCE = 0.10          # relative, per resource
ABSOLUTE_SLACK = 8        # cells: small counts may move by a few without meaning anything

#: The default-run smoke design: one PE, 4 channels (seconds to synthesise).
TINY = AcceleratorConfig(array=(1, 1), max_in_channels=4, max_out_channels=4)


def _baseline_check(name: str, report: dict) -> None:
    path = BASELINES / f"synth_{report['target']}_{name}.json"
    current = {"config": report["design"]["config"], "target": report["target"],
               "unit": report["design"]["unit"], "yosys": report["yosys"],
               "tolerance": TOLERANCE, "resources": report["resources"]}
    if os.environ.get("SYNTH_UPDATE_BASELINES"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
    assert path.exists(), f"no baseline {path}; create it with SYNTH_UPDATE_BASELINES=1"
    base = json.loads(path.read_text(encoding="utf-8"))
    # The same design (a baseline from before a config field existed reads with its default).
    same = (AcceleratorConfig.from_dict(base["config"])
            == AcceleratorConfig.from_dict(current["config"]))
    assert same, f"{path} was made for another config"
    tol = base["tolerance"]
    drift = {key: (n, current["resources"].get(key)) for key, n in base["resources"].items()
             if abs(current["resources"].get(key, 0) - n) > max(tol * n, ABSOLUTE_SLACK)}
    assert not drift, f"resources moved beyond {tol:.0%} of {path.name}: (baseline, now) {drift}"


def _synth(config, target, tmp_path, unit="accelerator"):
    return synth.synthesize(config, target, tmp_path, unit=unit,
                            progress=synth.Progress(2, quiet=True))


# -- default run: small designs ----------------------------------------------------------------

@pytest.mark.parametrize("target", ["generic", "ice40"])
def test_tiny_accelerator_synthesises_within_baseline(target, tmp_path):
    report = _synth(TINY, target, tmp_path)
    assert report["multipliers"]["mul_cells"] == TINY.multipliers == 1
    res = report["resources"]
    assert res["luts"] > 0 and res["ffs"] > 0
    assert res["cells"] >= res["luts"] + res["ffs"] + res["carry"] + res["bram"]
    if target == "ice40":
        # The PE's memories map to block RAM, its multiplier to an UltraPlus SB_MAC16.
        assert res["bram"] > 0
        assert res["dsp"] == TINY.multipliers
        assert sum(report["cells_by_type"].values()) == res["cells"]
    _baseline_check("tiny", report)


def test_narrow_result_bank_maps_to_block_ram_on_ice40(tmp_path):
    """drain_positions 2: the tiny design's result bank, 64 x 2 accumulators instead of
    8 x 16, takes a few block RAMs, and the whole design half of the 30 the whole-tile bank
    fills (spilling into flip-flops); the output transform's accumulators replace its row and
    column registers."""
    config = TINY.replace(drain_positions=2)
    report = _synth(config, "ice40", tmp_path)
    res = report["resources"]
    wide = json.loads((BASELINES / "synth_ice40_tiny.json").read_text())["resources"]
    assert res["bram"] <= 16 < wide["bram"] and res["ffs"] < wide["ffs"]
    _baseline_check("tiny_dp2", report)


def test_input_transform_has_no_multiplier(tmp_path):
    config = AcceleratorConfig(tile="6x6")
    report = _synth(config, "generic", tmp_path, unit="input-transform")
    assert report["multipliers"] == {"mul_cells": 0, "expected": 0}
    # 36 registered outputs of widths.v bits plus the row stage: every output bit is kept.
    assert report["resources"]["ffs"] >= config.positions * config.widths.v


@pytest.mark.parametrize("target, cells, expected", [
    ("ice40", {"SB_LUT4": 10, "SB_DFFESR": 3, "SB_DFF": 2, "SB_CARRY": 4, "SB_RAM40_4K": 1,
               "SB_MAC16": 2, "$scopeinfo": 5},
     {"luts": 10, "ffs": 5, "carry": 4, "bram": 1, "dsp": 2, "spram": 0, "cells": 22}),
    ("ecp5", {"LUT4": 7, "TRELLIS_FF": 9, "CCU2C": 3, "DP16KD": 2, "MULT18X18D": 1,
              "PFUMX": 4, "TRELLIS_DPR16X4": 2},
     {"luts": 7, "ffs": 9, "carry": 3, "bram": 2, "dsp": 1, "lutram": 2, "muxes": 4,
      "cells": 28}),
    ("xilinx", {"LUT6": 4, "LUT2": 1, "FDRE": 6, "FDSE": 1, "CARRY4": 2, "RAMB18E1": 1,
                "DSP48E1": 3, "MUXF7": 1, "RAM32M": 2, "SRL16E": 1},
     {"luts": 5, "ffs": 7, "carry": 2, "bram": 1, "dsp": 3, "lutram": 3, "muxes": 1,
      "cells": 22}),
    ("generic", {"$lut": 12, "$_SDFFE_PP0P_": 3, "$_DFF_P_": 2, "$mem_v2": 1},
     {"luts": 12, "ffs": 5, "carry": 0, "bram": 0, "dsp": 0, "memories": 1, "cells": 18}),
])
def test_classify_cells(target, cells, expected):
    assert synth.classify_cells(cells, target) == expected


def test_classify_cells_rejects_unknown_target():
    with pytest.raises(ValueError, match="target must be one of generic, ice40, ecp5, xilinx, "
                                         "not 'gowin'"):
        synth.classify_cells({}, "gowin")


def test_synthesize_rejects_unknown_unit(tmp_path):
    with pytest.raises(ValueError, match=f"unit must be one of {', '.join(UNITS)}, not 'gpu'"):
        synth.synthesize(TINY, "generic", tmp_path, unit="gpu")
    assert not any(tmp_path.iterdir()), "refused before writing anything"


def test_units_build_from_the_config_alone():
    config = AcceleratorConfig(requant=True, max_tap_shift=2)
    for name, build in UNITS.items():
        assert isinstance(build(config), wiring.Component), name
    assert UNITS["accelerator"].multipliers(config) == config.multipliers == 16 + 4
    assert UNITS["input-transform"].multipliers(config) == UNITS["tap-shift"].multipliers(
        config) == 0
    assert UNITS["output-transform"].multipliers(config) == 4
    assert UNITS["output-transform"].multipliers(TINY) == 0


@pytest.mark.parametrize("unit", ["program-loader", "step-sequencer", "v-feeder", "pe",
                                  "collector"])
def test_every_block_synthesises_on_its_own(unit, tmp_path):
    report = _synth(TINY, "generic", tmp_path, unit=unit)
    assert report["design"]["top"].endswith(f"_{unit.replace('-', '_')}")
    assert report["multipliers"]["mul_cells"] == (1 if unit == "pe" else 0)
    assert report["multipliers"]["expected"] == report["multipliers"]["mul_cells"]
    assert report["resources"]["ffs"] > 0


# -- board harness -------------------------------------------------------------------------------

def test_serial_harness_wires_every_port_bit():
    """Random serial input: every cycle the design's inputs equal the last ``in_bits`` bits
    shifted in, and ``sout`` is the parity of all of its outputs one cycle earlier."""
    config = AcceleratorConfig()
    dut = InputTransform(config)
    harness = SerialHarness(dut)
    p_bits, v_bits = patch_spec(config).size, v_spec(config).size
    # Inputs in signature order: i.payload, i.valid, o.ready; outputs: i.ready, o.payload,
    # o.valid.
    assert harness.in_bits == p_bits + 2
    assert harness.out_bits == v_bits + 2
    n_cycles = 3 * harness.in_bits
    serial_in = np.random.default_rng(5).integers(0, 2, n_cycles)
    inputs, outputs, serial_out = [], [], []

    async def bench(ctx):
        for bit in serial_in:
            inputs.append(ctx.get(dut.i.payload.as_value()) | ctx.get(dut.i.valid) << p_bits
                          | ctx.get(dut.o.ready) << p_bits + 1)
            outputs.append(ctx.get(dut.i.ready) | ctx.get(dut.o.payload.as_value()) << 1
                           | ctx.get(dut.o.valid) << v_bits + 1)
            serial_out.append(ctx.get(harness.sout))
            ctx.set(harness.sin, int(bit))
            await ctx.tick()

    sim = Simulator(harness)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()

    for t in range(harness.in_bits, n_cycles):
        shifted = sum(int(serial_in[t - 1 - j]) << j for j in range(harness.in_bits))
        assert inputs[t] == shifted, f"cycle {t}: design inputs are not the shift register"
    for t in range(n_cycles - 1):
        assert serial_out[t + 1] == bin(outputs[t]).count("1") % 2, f"cycle {t}: parity"
    # The transform really ran: V (not just zeros) and both parities appeared.
    assert sum(1 for t in range(n_cycles) if outputs[t] >> 1 & ((1 << v_bits) - 1)) > 10
    assert set(serial_out) == {0, 1}


def test_serial_harness_rejects_non_component():
    with pytest.raises(TypeError, match="design must be an amaranth.lib.wiring.Component"):
        SerialHarness(object())


def test_board_platform_rejects_bad_clock():
    with pytest.raises(ValueError, match="clock_mhz must be a positive number, not 0"):
        BOARDS["ice40"].platform(0)


# -- device capacities ---------------------------------------------------------------------------

def test_board_devices_match_their_platforms_and_datasheets():
    """Capacities from the Lattice data sheets: UP5K 5280 logic cells, 120 kbit of EBR in 30
    blocks, 8 DSPs, 4 SPRAMs; ECP5-85 83640 LUTs, 3744 kbit of EBR in 208 blocks, 156 18x18
    multipliers."""
    ice40, ecp5 = BOARDS["ice40"], BOARDS["ecp5"]
    for board in (ice40, ecp5):
        platform = board.platform()
        assert board.device.part == f"{platform.device}-{platform.package}"
    assert (ice40.device.luts, ice40.device.ffs, ice40.device.dsps, ice40.device.sprams) == \
        (5280, 5280, 8, 4)
    assert ice40.device.brams * ice40.device.bram_bits == 120 * 1024
    assert (ecp5.device.luts, ecp5.device.ffs, ecp5.device.dsps, ecp5.device.sprams) == \
        (83640, 83640, 156, 0)
    assert ecp5.device.brams * ecp5.device.bram_bits == 3744 * 1024
    assert ice40.device.capacity() == {"ICESTORM_LC": 5280, "ICESTORM_RAM": 30,
                                       "ICESTORM_DSP": 8, "ICESTORM_SPRAM": 4}
    assert ecp5.device.capacity() == {"TRELLIS_COMB": 83640, "TRELLIS_FF": 83640,
                                      "DP16KD": 208, "MULT18X18D": 156}


@pytest.mark.parametrize("target, cells, expected", [
    # An iCE40 logic cell is one LUT and one flip-flop: the larger count is the cells used.
    ("ice40", {"SB_LUT4": 5000, "SB_DFF": 5300, "SB_DFFE": 100, "SB_CARRY": 700,
               "SB_RAM40_4K": 31, "SB_MAC16": 1},
     {"ICESTORM_LC": (5400, 5280, 102.3), "ICESTORM_RAM": (31, 30, 103.3),
      "ICESTORM_DSP": (1, 8, 12.5)}),
    # An ECP5 CCU2 carry takes two LUT4 sites.
    ("ecp5", {"LUT4": 1000, "CCU2C": 50, "TRELLIS_FF": 836, "DP16KD": 52, "MULT18X18D": 39},
     {"TRELLIS_COMB": (1100, 83640, 1.3), "TRELLIS_FF": (836, 83640, 1.0),
      "DP16KD": (52, 208, 25.0), "MULT18X18D": (39, 156, 25.0)}),
])
def test_estimated_use_reads_the_board_device(target, cells, expected, tmp_path):
    stat = tmp_path / "board_stat.json"
    stat.write_text(json.dumps({"design": {"num_cells_by_type": cells}}))
    use = synth_pnr.estimated_use(stat, BOARDS[target])
    assert {bel: (u["used"], u["available"], u["percent"]) for bel, u in use.items()} == expected
    assert all(u["estimated"] for u in use.values())


def test_logged_use_parses_the_nextpnr_table(tmp_path):
    log = tmp_path / "nextpnr-ice40.out"
    log.write_text("Info: Device utilisation:\n"
                   "Info: \t         ICESTORM_LC:  5337/ 5280   101%\n"
                   "Info: \t        ICESTORM_RAM:    30/   30   100%\n"
                   "Info: \t               SB_IO:     3/   96     3%\n"
                   "Info: \t      ICESTORM_SPRAM:     0/    4     0%\n"
                   "ERROR: Unable to place cell 'x', no BELs remaining to implement cell type "
                   "'ICESTORM_LC'\n")
    assert synth_pnr.logged_use(log) == {
        "ICESTORM_LC": {"used": 5337, "available": 5280, "percent": 101.1},
        "ICESTORM_RAM": {"used": 30, "available": 30, "percent": 100.0},
        "SB_IO": {"used": 3, "available": 96, "percent": 3.1}}
    assert synth_pnr.does_not_fit(log)


# -- throughput ----------------------------------------------------------------------------------

def test_reference_throughput_matches_hand_count():
    config = AcceleratorConfig(tile="6x6")
    tp = reference_throughput(config, 100.0, 0.74)
    # Direct 3x3 convolution of a 64->64 32x32 layer with padding 1: K C 9 H W MACs.
    assert tp["direct_macs"] == 64 * 64 * 9 * 32 * 32
    seconds = tp["cycles"] / 100e6
    assert tp["gops"] == pytest.approx(2 * tp["direct_macs"] / seconds / 1e9, rel=1e-3)
    assert tp["gops_per_multiplier"] == pytest.approx(tp["gops"] / config.multipliers,
                                                      rel=1e-3)
    # 74 % of the 36 positions pruned: about 26 % of 64*64*36 MACs per tile remain.
    assert tp["nonzero_macs"] == pytest.approx(0.26 * 64 * 64 * 36 * 64, rel=0.01)
    # A PE performs at most one MAC per cycle.
    assert tp["nonzero_macs"] <= config.n_pe * tp["cycles"]


def test_reference_throughput_rejects_bad_fmax():
    with pytest.raises(ValueError, match="fmax_mhz must be a positive number, not -1"):
        reference_throughput(TINY, -1, 0.5)


# -- command line ----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--target", "gowin"], "argument --target: invalid choice: 'gowin'"),
    (["--target", "generic", "--pnr"], "--pnr needs --target ice40 or ecp5, not 'generic'"),
    (["--tile", "5x5"], "tile must be one of"),
    (["--array", "0x2"], "array must be RxC"),
    (["--sparsity", "1.5"], "must be a number in [0, 1), not '1.5'"),
    (["--clock-mhz", "fast"], "must be a positive number, not 'fast'"),
    (["--unit", "gpu"], "argument --unit: invalid choice: 'gpu'"),
    (["sweep", "--arrays", "2y2"], "array must be RxC"),
    (["sweep", "--tiles", "4x4,5x5"], "tile must be one of"),
    (["sweep", "--max-channels", "0"], "channels must be positive integers, not '0'"),
    (["sweep", "--target", "xilinx", "--pnr"], "--pnr needs --target ice40 or ecp5"),
    # Subcommands: `run` spelled out, an unknown one, an option of the other one.
    (["run", "--target", "gowin"], "argument --target: invalid choice: 'gowin'"),
    (["run", "--data-width", "40"], "data_width must be an integer in [2, 16], not 40"),
    (["synthesise", "--tile", "4x4"], "argument {run,sweep}: invalid choice: 'synthesise'"),
    (["sweep", "--unit", "accelerator"], "unrecognized arguments: --unit accelerator"),
    (["run", "--tiles", "4x4"], "unrecognized arguments: --tiles 4x4"),
    (["sweep", "--tiles", ""], "argument --tiles: must be a comma-separated list, not ''"),
])
def test_cli_errors_are_one_line_exit_2(argv, message, capsys):
    assert synth.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hw.synth: error: ")
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_flat_command_line_means_run():
    """The documented flat command line parses exactly as its `run` spelling."""
    flat = ["--tile", "4x4", "--array", "2x2", "--max-channels", "16", "--target", "ecp5",
            "--pnr", "--out", "build/s"]
    args = synth_cli.parse_args(flat)
    assert args == synth_cli.parse_args(["run", *flat])
    assert (args.command, args.target, args.pnr, args.out, args.unit) == \
        ("run", "ecp5", True, "build/s", "accelerator")
    assert config_from_args(args) == AcceleratorConfig(array=(2, 2), max_in_channels=16,
                                                       max_out_channels=16)
    assert synth_cli.parse_args([]).command == "run"
    sweep = synth_cli.parse_args(["sweep", "--tiles", "4x4,6x6", "--arrays", "1x1, 2x2",
                                  "--max-channels", "8,16"])
    assert (sweep.command, sweep.tiles, sweep.arrays, sweep.max_channels) == \
        ("sweep", ["4x4", "6x6"], [(1, 1), (2, 2)], [8, 16])


@pytest.mark.parametrize("argv, expected", [
    (["-h"], ["usage: python -m hw.synth", "run", "sweep"]),
    (["sweep", "--help"], ["usage: python -m hw.synth sweep", "--tiles", "--plot"]),
    (["run", "-h"], ["usage: python -m hw.synth run", "--unit", *UNITS]),
])
def test_cli_help_exits_0(argv, expected, capsys):
    assert synth.main(argv) == 0
    out = capsys.readouterr().out
    assert all(text in out for text in expected)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """A manifest written by hw.generate for a non-default design, and that design."""
    config = AcceleratorConfig(array=(1, 2), max_in_channels=8, max_out_channels=8,
                               requant=True)
    _, path = generate(config, tmp_path_factory.mktemp("design"))
    return path, config


def test_cli_config_synthesises_exactly_that_design(manifest, tmp_path, capsys):
    path, config = manifest
    out = tmp_path / "it"
    assert synth.main(["--config", path, "--unit", "input-transform", "--out", str(out),
                       "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["design"]["config"] == config.to_dict()
    assert report["design"]["design_file"] == path
    assert report["design"]["top"] == f"{config.name}_input_transform"
    assert f"{config.name}_input_transform on generic: " in capsys.readouterr().out


def test_cli_config_errors_are_one_line_exit_2(manifest, tmp_path, capsys):
    path, _ = manifest
    bad = tmp_path / "bad.json"
    bad.write_text('{"manifest_version": 1, "config": {"tile": "4x4"}}')
    not_dir = tmp_path / "file"
    not_dir.write_text("")
    cases = [
        (["--config", path, "--array", "2x2"], "--array cannot be combined with --config"),
        (["--config", str(tmp_path / "none.json")], "--config " + str(tmp_path / "none.json")
         + ": no such file"),
        (["--config", str(bad)], f"--config {bad}: config key 'array' is missing"),
        (["--config", path, "--out", str(not_dir / "x")], "is a file, not a directory"),
    ]
    for argv, message in cases:
        assert synth.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("hw.synth: error: ") and message in err, (argv, err)
        assert err.count("\n") == 1
    assert not any(not_dir.parent.glob("file/*"))


def test_python_m_hw_synth_error_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "hw.synth", "--tile", "5x5"],
                          capture_output=True, text=True, cwd=Path(__file__).parents[1],
                          check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "hw.synth: error: argument --tile: tile must be one of 4x4, 6x6, " \
                          "not '5x5'\n"


@pytest.mark.parametrize("options, multipliers", [([], 0), (["--requant"], 4)])
def test_cli_writes_reports(options, multipliers, tmp_path, capsys):
    """The output transform has multipliers only in its requant stage: m**2 = 4 of them."""
    out = tmp_path / "it"
    assert synth.main(["--unit", "output-transform", "--target", "generic", "--out", str(out),
                       "--quiet", *options]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["design"]["unit"] == "output-transform"
    assert report["multipliers"] == {"mul_cells": multipliers, "expected": multipliers}
    assert "| luts |" in (out / "report.md").read_text()
    assert not list(out.glob(".report.*")), "no temporary file of the atomic write is left"
    top = report["design"]["top"]
    assert top.startswith("sparse_winograd_4x4") and top.endswith("_output_transform")
    assert f"{top} on generic: " in capsys.readouterr().out


# -- slow: bigger designs, other targets, place and route -----------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("target", ["ecp5", "xilinx"])
def test_tiny_accelerator_other_targets(target, tmp_path):
    report = _synth(TINY, target, tmp_path)
    assert report["multipliers"]["mul_cells"] == TINY.multipliers
    _baseline_check("tiny", report)


@pytest.mark.slow
@pytest.mark.parametrize("config, name", [
    (AcceleratorConfig(array=(2, 2), max_in_channels=16, max_out_channels=16), "small"),
    (AcceleratorConfig(array=(1, 2), max_in_channels=8, max_out_channels=8, requant=True),
     "requant"),
    (AcceleratorConfig(tile="6x6", array=(1, 1), max_in_channels=4, max_out_channels=4),
     "tiny6x6"),
    # benchmarks/synth_goals.py's up5k-2pe: two PEs, narrow result banks (block RAM).
    (AcceleratorConfig(array=(1, 2), max_in_channels=4, max_out_channels=4, bias_width=16,
                       drain_positions=2), "up5k2pe"),
])
def test_multiplier_count_and_baseline(config, name, tmp_path):
    report = _synth(config, "ice40", tmp_path)
    assert report["multipliers"]["mul_cells"] == config.multipliers
    _baseline_check(name, report)


@pytest.mark.slow
def test_place_and_route_ecp5_tiny(tmp_path):
    report = synth.run(TINY, "ecp5", tmp_path, pnr=True, quiet=True)
    pnr = report["pnr"]
    assert pnr["fits"] is True
    assert pnr["fmax_mhz"] > 10 and pnr["timing_met"] == (pnr["fmax_mhz"] >= 150)
    assert Path(pnr["bitstream"]).stat().st_size > 0
    assert 0 < pnr["utilisation"]["TRELLIS_COMB"]["used"] <= 83640
    assert pnr["utilisation"]["MULT18X18D"]["used"] == TINY.multipliers
    tp = report["throughput"]
    assert tp["gops"] == pytest.approx(
        2 * tp["direct_macs"] * pnr["fmax_mhz"] * 1e6 / tp["cycles"] / 1e9, rel=1e-3)


@pytest.mark.slow
def test_place_and_route_ice40_two_pes_fit_with_narrow_result_banks(tmp_path):
    """The UP5K goal design (benchmarks/synth_goals.py up5k-2pe): with its result banks
    drained two positions per cycle two PEs fit, their banks in block RAM."""
    config = AcceleratorConfig(array=(1, 2), max_in_channels=4, max_out_channels=4,
                               bias_width=16, drain_positions=2)
    report = synth.run(config, "ice40", tmp_path, pnr=True, quiet=True)
    pnr = report["pnr"]
    assert pnr["fits"] is True and pnr["fmax_mhz"] > 10
    assert pnr["utilisation"]["ICESTORM_RAM"]["used"] <= 30
    assert pnr["utilisation"]["ICESTORM_DSP"]["used"] == config.multipliers == 2


@pytest.mark.slow
def test_place_and_route_ice40_reports_a_design_that_does_not_fit(tmp_path, capsys):
    """The 2x2, 16-channel design needs about three UP5Ks: the flow must say so, with the
    numbers, and exit 1."""
    code = synth.main(["--array", "2x2", "--max-channels", "16", "--target", "ice40", "--pnr",
                       "--out", str(tmp_path), "--quiet"])
    assert code == 1
    report = json.loads((tmp_path / "report.json").read_text())
    pnr = report["pnr"]
    assert pnr["fits"] is False and pnr["bitstream"] is None
    lc = pnr["utilisation"]["ICESTORM_LC"]
    assert lc["available"] == 5280 and lc["used"] > lc["available"]
    out = capsys.readouterr().out
    assert "DOES NOT FIT iCEBreaker (iCE40 UP5K-SG48)" in out
    assert f"ICESTORM_LC {lc['used']}/5280" in out


def test_sweep_table_and_plot_from_rows(tmp_path):
    """Rows of a sweep (one synthesised and placed, one failed) give one table line each and a
    PNG plot written atomically."""
    report = {"multipliers": {"expected": 4, "mul_cells": 4},
              "resources": {"luts": 900, "ffs": 700, "carry": 30, "dsp": 4, "bram": 2},
              "pnr": {"fits": True, "fmax_mhz": 71.5},
              "throughput": {"gops": 3.2, "gops_per_multiplier": 0.8}}
    small = AcceleratorConfig(array=(2, 2), max_in_channels=8, max_out_channels=8)
    rows = [{"name": small.name, "config": small.to_dict(), "report": report},
            {"name": TINY.name, "config": TINY.to_dict(), "error": "yosys failed"}]
    table = synth.sweep_table(rows, "ecp5").splitlines()
    assert table[0] == "Target `ecp5`."
    assert table[4] == "| 4x4 | 2x2 | 8 | 4 | 900 | 700 | 30 | 4 | 2 | 4 | 71.5 | yes | 3.2 | 0.8 |"
    assert table[5] == "| 4x4 | 1x1 | 4 | | | | | | | | | error | | |"
    plot = tmp_path / "sweep.png"
    synth_sweep.plot_sweep(rows, "ecp5", plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.png"]
