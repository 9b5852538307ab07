"""``python -m hw.generate``: arguments, determinism, manifest contents, Verilog ports."""

import json
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from golden.config import SMALL, AcceleratorConfig
from golden.protocol import table_spec, y_spec
from golden.transforms import tile_transform
from golden.options import config_from_args, read_config
from hw.generate import generate, make_parser, top_name


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "hw.generate", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def small_outputs(tmp_path_factory):
    """The SMALL design generated twice, into two directories (4x4 tile)."""
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    return generate(SMALL, a), generate(SMALL, b)


def verilog_ports(text: str, module: str) -> dict[str, tuple[str, int]]:
    """{name: (direction, width)} of the ports of ``module`` in Amaranth's Verilog output."""
    body = text[text.index(f"module {module}("):]
    body = body[:body.index("endmodule")]
    ports = {}
    for direction, msb, name in re.findall(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?"
                                           r"(?:\[(\d+):0\]\s+)?(\w+);", body, re.M):
        ports[name] = (direction, int(msb) + 1 if msb else 1)
    return ports


def test_same_arguments_same_bytes(small_outputs):
    (v1, j1), (v2, j2) = small_outputs
    assert open(v1, "rb").read() == open(v2, "rb").read()
    assert open(j1, "rb").read() == open(j2, "rb").read()


def test_no_paths_or_source_locations(small_outputs, tmp_path):
    (v1, j1), _ = small_outputs
    text = open(v1).read() + open(j1).read()
    assert "/tmp" not in text and str(tmp_path.parent) not in text
    assert "src = " not in text, "emit_src=False must drop source attributes"


def test_manifest_contents(small_outputs):
    (v1, j1), _ = small_outputs
    man = json.load(open(j1))
    tr = tile_transform("4x4")
    assert man["top"] == top_name(SMALL) == SMALL.name == "sparse_winograd_4x4_a2x2_c16"
    assert AcceleratorConfig.from_dict(man) == SMALL, "the manifest names its design exactly"
    assert (man["tile"], man["m"], man["r"], man["alpha"]) == ("4x4", 2, 3, 4)
    assert np.array_equal(man["AT"], tr.AT_int) and np.array_equal(man["BT"], tr.BT_int)
    assert [[Fraction(v) for v in row] for row in man["G"]] == [list(row) for row in tr.G]
    assert man["array"] == [2, 2] and man["multipliers"] == SMALL.multipliers == 4
    assert man["max_in_channels"] == 16 and man["max_out_channels"] == 16
    assert man["accumulator_width"] == SMALL.widths.accumulator
    assert man["output_width"] == SMALL.widths.output
    assert man["widths"]["v"] == SMALL.widths.v
    assert man["data_width"] == 8 and man["weight_width"] == 8


def test_manifest_ports_match_verilog(small_outputs):
    (v1, j1), _ = small_outputs
    man = json.load(open(j1))
    ports = verilog_ports(open(v1).read(), man["top"])
    listed = {p["name"]: (p["direction"], p["width"]) for p in man["ports"]}
    assert listed == ports
    for stream in ("cfg", "table", "weights", "patches"):
        assert listed[f"{stream}__payload"][0] == "input"
        assert listed[f"{stream}__ready"] == ("output", 1)
    assert listed["results__payload"] == ("output", y_spec(SMALL).size)


def test_manifest_payload_fields_tile_the_port(small_outputs):
    """Every payload's fields are LSB-first, non-overlapping and fill the port exactly."""
    (_, j1), _ = small_outputs
    for port in json.load(open(j1))["ports"]:
        if "fields" not in port:
            continue
        pos = 0
        for f in port["fields"]:
            assert f["offset"] == pos, (port["name"], f)
            pos += f["width"] * f["count"]
        assert pos == port["width"], port["name"]


def test_6x6_and_requant_generate(tmp_path):
    cfg = AcceleratorConfig(tile="6x6", array=(1, 2), max_in_channels=4, max_out_channels=4,
                            requant=True)
    v, j = generate(cfg, tmp_path)
    man = json.load(open(j))
    assert man["top"] == "sparse_winograd_6x6_a1x2_c4_rq" and man["alpha"] == 6
    assert v.endswith("sparse_winograd_6x6_a1x2_c4_rq.v")
    assert man["multipliers"] == 2 + 16 and man["array_multipliers"] == 2
    assert np.array_equal(man["BT"], tile_transform("6x6").BT_int)
    assert f"module {man['top']}(" in open(v).read()


def test_cli_writes_files_and_summary(tmp_path):
    res = run_cli("--tile", "4x4", "--array", "1x2", "--max-channels", "4", "--out",
                  str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    assert res.stderr == "" and res.stdout.count("\n") == 1
    assert "sparse_winograd_4x4_a1x2_c4.v" in res.stdout and "2 multipliers" in res.stdout
    assert (tmp_path / "out" / "sparse_winograd_4x4_a1x2_c4.v").stat().st_size > 0
    man = json.load(open(tmp_path / "out" / "sparse_winograd_4x4_a1x2_c4.json"))
    assert man["max_in_channels"] == man["max_out_channels"] == 4


def test_two_designs_in_one_folder_give_two_pairs(tmp_path):
    """Designs differing in one option never overwrite each other, and each manifest reads
    back as exactly the design its Verilog was made from."""
    runs = {"sparse_winograd_4x4_a1x1_c2": ["--array", "1x1"],
            "sparse_winograd_4x4_a1x1_c2_wd40": ["--array", "1x1", "--weight-depth", "40"]}
    for args in runs.values():
        res = run_cli("--max-channels", "2", *args, "--out", str(tmp_path))
        assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{name}{ext}" for name in runs for ext in (".json", ".v"))
    for name in runs:
        man = json.load(open(tmp_path / f"{name}.json"))
        config = AcceleratorConfig.from_dict(man)
        assert man["top"] == config.name == name
        assert f"module {name}(" in (tmp_path / f"{name}.v").read_text()
    assert AcceleratorConfig.from_dict(
        json.load(open(tmp_path / "sparse_winograd_4x4_a1x1_c2_wd40.json"))).weight_depth == 40


def test_help_lists_every_option_with_default():
    res = run_cli("--help")
    assert res.returncode == 0
    for option in ("--tile", "--array", "--max-channels", "--max-in-channels",
                   "--max-out-channels", "--data-width", "--weight-width", "--bias-width",
                   "--weight-depth", "--requant", "--out"):
        assert option in res.stdout
    assert res.stdout.count("(default:") >= 11
    assert "sets both --max-in-channels and --max-out-channels" in res.stdout


@pytest.mark.parametrize("args, message", [
    (["--tile", "5x5"], "argument --tile: tile must be one of 4x4, 6x6, not '5x5'"),
    (["--array", "0x4"], "argument --array: array must be RxC with R, C >= 1 (e.g. 4x4), "
                         "not '0x4'"),
    (["--array", "4"], "argument --array: array must be RxC"),
    (["--max-channels", "-3"], "argument --max-channels: must be a positive integer, not '-3'"),
    (["--max-in-channels", "x"], "argument --max-in-channels: must be a positive integer"),
    (["--data-width", "40"], "data_width must be an integer in [2, 16], not 40"),
    (["--bias-width", "33"], "bias_width must be an integer in [1, 32], not 33"),
    (["--weight-depth", "0"], "argument --weight-depth: must be a positive integer, not '0'"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["--v-beats", "0"], "argument --v-beats: must be a positive integer, not '0'"),
    (["--v-beats", "3"], "v_beats must divide the 16 positions of the 4x4 tile, not 3"),
])
def test_bad_arguments_one_line_exit_2(args, message):
    res = run_cli(*args)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith("hw.generate: error: ")
    assert message in res.stderr


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = run_cli("--array", "1x1", "--max-channels", "2", "--out", str(blocker / "sub"))
    assert res.returncode == 2
    assert res.stderr == f"hw.generate: error: --out {blocker / 'sub'}: {blocker} is a file, " \
                         "not a directory\n"


def test_config_from_args_max_channels_sets_both():
    args = make_parser().parse_args(["--max-channels", "8", "--array", "2x3", "--tile", "6x6"])
    cfg = config_from_args(args)
    assert (cfg.max_in_channels, cfg.max_out_channels, cfg.array, cfg.tile) == (8, 8, (2, 3),
                                                                                 "6x6")


def test_config_from_args_one_by_one_limits_win_over_max_channels():
    args = make_parser().parse_args(["--max-channels", "8", "--max-out-channels", "16"])
    cfg = config_from_args(args)
    assert (cfg.max_in_channels, cfg.max_out_channels) == (8, 16)
    assert cfg.name == "sparse_winograd_4x4_c8_k16"
    assert config_from_args(make_parser().parse_args([])) == AcceleratorConfig()


def test_manifest_memory_bits(tmp_path):
    """memory_bits: every memory's bits; two weight banks double the weight memories and the
    channel table only."""
    man = json.load(open(generate(SMALL, tmp_path)[1]))
    entry_bits = 8 + 4 + 4 + 1                         # value, position, channel, last
    bits = man["memory_bits"]
    assert man["weight_lanes"] == 1 and man["weight_banks"] == 1
    assert bits["weights"] == 4 * SMALL.pe_weight_depth * entry_bits == 4 * 1024 * 17
    assert bits["v"] == 4 * 2 * 16 * 16 * SMALL.widths.v
    assert bits["total"] == sum(v for k, v in bits.items() if k != "total")
    banked = SMALL.replace(weight_banks=2, weight_lanes=4)
    two = json.load(open(generate(banked, tmp_path)[1]))["memory_bits"]
    assert two["weights"] == 2 * bits["weights"] and two["table"] == 2 * bits["table"]
    assert (two["v"], two["results"]) == (bits["v"], bits["results"])


def test_manifest_pipeline_registers_and_the_unpipelined_option(tmp_path):
    """pipeline_registers: the timing registers' flip-flops by kind and the PE and collector
    depths they cost; --unpipelined builds without them (name token np)."""
    man = json.load(open(generate(SMALL, tmp_path)[1]))
    regs = man["pipeline_registers"]
    acc, v = SMALL.widths.accumulator, SMALL.widths.v
    assert man["pipelined"] is True
    assert regs["bits"]["v_hold"] == 4 * 16 * v
    assert regs["bits"]["collector_output"] == 16 * acc + SMALL.bias_width
    assert regs["bits"]["bank_read"] == 0           # whole-tile words: read in one cycle
    assert regs["bits"]["bank_write"] == 0          # ... and written unregistered
    assert regs["bits"]["total"] == sum(b for k, b in regs["bits"].items() if k != "total")
    assert (regs["pe_pipeline_depth"], regs["collector_depth"]) == (7, 4)
    plain = config_from_args(make_parser().parse_args(["--array", "2x2", "--max-channels",
                                                       "16", "--unpipelined"]))
    assert plain == SMALL.replace(pipelined=False) and plain.name.endswith("_np")
    man = json.load(open(generate(plain, tmp_path)[1]))
    assert man["pipelined"] is False and man["pipeline_registers"]["bits"]["total"] == 0
    assert (man["pipeline_registers"]["pe_pipeline_depth"],
            man["pipeline_registers"]["collector_depth"]) == (6, 3)


def test_manifest_drain_cost_and_the_drain_positions_option(tmp_path):
    """--drain-positions P: name token dp<P>, the manifest's drain cost (beats per channel,
    the result bank's words x bits) and a manifest that reads back as the same design
    (``--config``); the default drains whole tiles."""
    man = json.load(open(generate(SMALL, tmp_path)[1]))
    acc = SMALL.widths.accumulator
    assert man["drain_positions"] == 16 and man["config"]["drain_positions"] is None
    assert man["drain"] == {"beats_per_channel": 1, "result_bank_words": 2 * 4,
                            "result_bank_word_bits": 16 * acc}
    narrow = config_from_args(make_parser().parse_args(["--array", "2x2", "--max-channels",
                                                        "16", "--drain-positions", "2"]))
    assert narrow == SMALL.replace(drain_positions=2) and narrow.name.endswith("_dp2")
    path = generate(narrow, tmp_path)[1]
    man = json.load(open(path))
    assert man["drain_positions"] == 2
    assert man["drain"] == {"beats_per_channel": 8, "result_bank_words": 2 * 4 * 8,
                            "result_bank_word_bits": 2 * acc}
    assert man["memory_bits"]["results"] == 4 * 2 * 4 * 16 * acc
    assert man["pipeline_registers"]["bits"]["collector_output"] == (2 * acc + SMALL.bias_width
                                                                     + 3)
    # The narrow bank's read takes two cycles: one more collector stage, its registers counted.
    assert man["pipeline_registers"]["collector_depth"] == 5
    assert man["pipeline_registers"]["bits"]["bank_read"] == (4 * (1 + 2)
                                                              + table_spec(narrow).size + 3 + 1)
    # Its write is registered: per PE the sum, 2 element enables and the address of 64 words.
    assert man["pipeline_registers"]["bits"]["bank_write"] == 4 * (acc + 2 + 6)
    assert AcceleratorConfig.from_dict(man) == narrow
    bad = run_cli("--drain-positions", "5", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and bad.stderr == (
        "hw.generate: error: drain_positions must be a divisor of the 4x4 tile's 16 positions "
        "(1, 2, 4, 8, 16) or None, not 5\n")


def test_v_beats_option_manifest_and_config_round_trip(tmp_path):
    """--v-beats B (name token vb<B>): the manifest states B and the positions per beat, the V
    memories keep their bits in B times as many words and the V hold registers are B times
    narrower; --config reads the design back."""
    v = SMALL.widths.v
    plain = json.load(open(generate(SMALL, tmp_path)[1]))
    assert (plain["v_beats"], plain["v_beat_positions"]) == (1, 16)
    assert plain["weight_memory_columns"] == [17]
    config = config_from_args(make_parser().parse_args(["--array", "2x2", "--max-channels",
                                                        "16", "--v-beats", "4"]))
    assert config == SMALL.replace(v_beats=4) and config.name.endswith("_vb4")
    path = generate(config, tmp_path)[1]
    man = json.load(open(path))
    assert (man["v_beats"], man["v_beat_positions"]) == (4, 4)
    assert man["memory_bits"]["v"] == plain["memory_bits"]["v"] == 4 * 2 * 16 * 16 * v
    assert man["pipeline_registers"]["bits"]["v_hold"] == 4 * 4 * v
    assert read_config(str(path)) == config
