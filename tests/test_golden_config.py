"""golden.config: parameter validation (pinned messages), presets and derived fields."""

import dataclasses
import json
import re
import math

import numpy as np
import pytest

from golden.config import DEFAULT, MANIFEST_VERSION, PRESETS, SMALL, AcceleratorConfig, parse_array
from golden.transforms import tile_transform
from golden.widths import datapath_widths


@pytest.mark.parametrize("kwargs, message", [
    ({"tile": "5x5"}, r"^tile must be one of 4x4, 6x6, not '5x5'$"),
    ({"tile": 4}, r"^tile must be one of 4x4, 6x6, not 4$"),
    ({"array": (0, 4)}, r"^array must be a \(rows, columns\) pair of positive integers, "
                        r"not \(0, 4\)$"),
    ({"array": [4, 4]}, r"^array must be a \(rows, columns\) pair"),
    ({"array": (4, 4, 1)}, r"^array must be a \(rows, columns\) pair"),
    ({"array": (True, 2)}, r"^array must be a \(rows, columns\) pair"),
    ({"max_in_channels": 0}, r"^max_in_channels must be a positive integer, not 0$"),
    ({"max_in_channels": 4097}, r"^max_in_channels must be at most 4096, not 4097$"),
    ({"max_out_channels": 2.0}, r"^max_out_channels must be a positive integer, not 2\.0$"),
    ({"data_width": 1}, r"^data_width must be an integer in \[2, 16\], not 1$"),
    ({"weight_width": 17}, r"^weight_width must be an integer in \[2, 16\], not 17$"),
    ({"bias_width": 33}, r"^bias_width must be an integer in \[1, 32\], not 33$"),
    ({"weight_depth": 0}, r"^weight_depth must be a positive integer, not 0$"),
    ({"requant": 1}, r"^requant must be a bool, not 1$"),
    ({"weight_lanes": 0}, r"^weight_lanes must be a positive integer, not 0$"),
    ({"weight_lanes": 3}, r"^weight_lanes must divide the 16 PEs of the 4x4 array, not 3$"),
    ({"weight_lanes": 32}, r"^weight_lanes must divide the 16 PEs of the 4x4 array, not 32$"),
    ({"weight_banks": 3}, r"^weight_banks must be 1 or 2, not 3$"),
    ({"weight_banks": True}, r"^weight_banks must be 1 or 2, not True$"),
    ({"split_channels": 1}, r"^split_channels must be a bool, not 1$"),
    ({"pipelined": 1}, r"^pipelined must be a bool, not 1$"),
    ({"pipelined": None}, r"^pipelined must be a bool, not None$"),
    ({"drain_positions": 3}, r"^drain_positions must be a divisor of the 4x4 tile's 16 "
                             r"positions \(1, 2, 4, 8, 16\) or None, not 3$"),
    ({"drain_positions": 0}, r"^drain_positions must be a divisor of the 4x4 tile's 16 "),
    ({"drain_positions": 32}, r"^drain_positions must be a divisor of the 4x4 tile's 16 "),
    ({"drain_positions": True}, r"^drain_positions must be a divisor .* or None, not True$"),
    ({"drain_positions": 2.0}, r"^drain_positions must be a divisor .* or None, not 2\.0$"),
    ({"tile": "6x6", "drain_positions": 8},
     r"^drain_positions must be a divisor of the 6x6 tile's 36 positions \(1, 2, 3, 4, 6, 9, "
     r"12, 18, 36\) or None, not 8$"),
    ({"max_tap_shift": 2, "drain_positions": 4},
     r"^drain_positions must be 16 \(the whole tile\) with a tap shift stage \(max_tap_shift "
     r"2\), not 4$"),
    ({"v_beats": 0}, r"^v_beats must be a positive integer, not 0$"),
    ({"v_beats": True}, r"^v_beats must be a positive integer, not True$"),
    ({"v_beats": 2.0}, r"^v_beats must be a positive integer, not 2\.0$"),
    ({"v_beats": 3}, r"^v_beats must divide the 16 positions of the 4x4 tile, not 3$"),
    ({"v_beats": 32}, r"^v_beats must divide the 16 positions of the 4x4 tile, not 32$"),
    ({"tile": "6x6", "v_beats": 8}, r"^v_beats must divide the 36 positions of the 6x6 tile, "
                                    r"not 8$"),
])
def test_invalid_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AcceleratorConfig(**kwargs)
    with pytest.raises(ValueError, match=message):
        DEFAULT.replace(**kwargs)


@pytest.mark.parametrize("text, expected", [("4x4", (4, 4)), ("2X8", (2, 8)), ("1x1", (1, 1)),
                                            (" 3 x 5 ", (3, 5))])
def test_parse_array(text, expected):
    assert parse_array(text) == expected


@pytest.mark.parametrize("text", ["4", "0x4", "4x", "axb", "4x4x4", "-1x2", ""])
def test_parse_array_errors(text):
    with pytest.raises(ValueError, match=r"^array must be RxC with R, C >= 1 \(e\.g\. 4x4\), "
                                         rf"not {text!r}$"):
        parse_array(text)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_derived_fields(name):
    cfg = PRESETS[name]
    tr = tile_transform(cfg.tile)
    assert (cfg.m, cfg.r, cfg.alpha, cfg.positions) == (tr.m, tr.r, tr.alpha, tr.alpha ** 2)
    np.testing.assert_array_equal(cfg.AT, tr.AT_int)
    np.testing.assert_array_equal(cfg.BT, tr.BT_int)
    assert cfg.widths == datapath_widths(tr.AT_int, tr.BT_int, input_width=cfg.data_width,
                                         weight_width=cfg.weight_width,
                                         max_in_channels=cfg.max_in_channels,
                                         bias_width=cfg.bias_width)
    assert cfg.n_pe == cfg.array[0] * cfg.array[1]
    assert cfg.multipliers == cfg.n_pe
    assert cfg.replace(requant=True).multipliers == cfg.n_pe + cfg.m ** 2
    # The default weight memory holds a dense layer of the largest size.
    dense_entries = cfg.max_out_channels * cfg.max_in_channels * cfg.positions
    assert cfg.pe_weight_depth == math.ceil(cfg.max_out_channels / cfg.n_pe) * \
        cfg.max_in_channels * cfg.positions
    assert cfg.pe_weight_depth * cfg.n_pe >= dense_entries
    assert cfg.replace(weight_depth=100).pe_weight_depth == 100


def test_presets_are_copies_of_default():
    assert PRESETS["default"] is DEFAULT and PRESETS["small"] is SMALL
    assert SMALL == dataclasses.replace(DEFAULT, array=(2, 2), max_in_channels=16,
                                        max_out_channels=16)
    assert PRESETS["default-6x6"] == DEFAULT.replace(tile="6x6", v_beats=4)


def test_frozen_and_json():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.tile = "6x6"
    d = DEFAULT.as_dict()
    assert d["array"] == [4, 4] and d["tile"] == "4x4"
    assert AcceleratorConfig(**{**d, "array": tuple(d["array"])}) == DEFAULT


# -- names and (de)serialisation ---------------------------------------------------------------

def test_default_designs_keep_short_names():
    assert DEFAULT.name == "sparse_winograd_4x4"
    assert DEFAULT.replace(tile="6x6").name == "sparse_winograd_6x6"


@pytest.mark.parametrize("changes, name", [
    ({"array": (2, 2), "max_in_channels": 48, "max_out_channels": 48},
     "sparse_winograd_4x4_a2x2_c48"),
    ({"max_in_channels": 16, "max_out_channels": 32}, "sparse_winograd_4x4_c16_k32"),
    ({"max_out_channels": 32}, "sparse_winograd_4x4_c64_k32"),
    ({"tile": "6x6", "data_width": 6, "weight_width": 4, "bias_width": 16},
     "sparse_winograd_6x6_d6_w4_b16"),
    ({"weight_depth": 1024, "requant": True}, "sparse_winograd_4x4_wd1024_rq"),
    ({"tile": "6x6", "requant": True, "max_tap_shift": 9}, "sparse_winograd_6x6_rq_ts9"),
    ({"weight_lanes": 16, "requant": True}, "sparse_winograd_4x4_rq_wl16"),
    ({"weight_lanes": 16, "weight_banks": 2}, "sparse_winograd_4x4_wl16_wb2"),
    ({"weight_lanes": 16, "weight_banks": 2, "split_channels": True},
     "sparse_winograd_4x4_wl16_wb2_sc"),
    ({"array": (1, 1), "pipelined": False}, "sparse_winograd_4x4_a1x1_np"),
    ({"weight_banks": 2, "pipelined": False}, "sparse_winograd_4x4_wb2_np"),
    ({"array": (1, 2), "pipelined": False, "drain_positions": 2},
     "sparse_winograd_4x4_a1x2_np_dp2"),
    ({"drain_positions": 16}, "sparse_winograd_4x4_dp16"),
    ({"tile": "6x6", "v_beats": 4}, "sparse_winograd_6x6_vb4"),
    ({"pipelined": False, "v_beats": 16}, "sparse_winograd_4x4_np_vb16"),
])
def test_name_encodes_every_non_default_option(changes, name):
    assert DEFAULT.replace(**changes).name == name


def test_one_name_per_configuration():
    """Changing any one parameter (or two) changes the name; names are Verilog identifiers."""
    variants = {"tile": ["6x6"], "array": [(1, 1), (2, 8), (8, 2), (16, 4)],
                "max_in_channels": [8, 48, 4096], "max_out_channels": [8, 48, 4096],
                "data_width": [2, 16], "weight_width": [2, 16], "bias_width": [1, 16],
                "weight_depth": [1, 64, 4096], "requant": [True], "max_tap_shift": [1, 15],
                "weight_lanes": [2, 4, 16], "weight_banks": [2], "split_channels": [True],
                "pipelined": [False], "drain_positions": [1, 4, 16], "v_beats": [2, 4]}
    assert set(variants) == {f.name for f in dataclasses.fields(AcceleratorConfig)}
    singles = [{k: v} for k, values in variants.items() for v in values]
    configs = {DEFAULT} | {DEFAULT.replace(**c) for c in singles}
    def lanes_fit(changes):     # weight_lanes must divide the PE count
        rows, cols = changes.get("array", DEFAULT.array)
        return rows * cols % changes.get("weight_lanes", 1) == 0

    def drain_fits(changes):    # a divisor of the tile's positions, the whole tile with ts
        drain, tile = changes.get("drain_positions"), changes.get("tile", DEFAULT.tile)
        positions = DEFAULT.replace(tile=tile).positions
        return drain is None or (positions % drain == 0 and (
            drain == positions or not changes.get("max_tap_shift")))

    configs |= {DEFAULT.replace(**a, **b) for a in singles for b in singles
                if set(a) != set(b) and lanes_fit({**a, **b}) and drain_fits({**a, **b})}
    names = {c.name for c in configs}
    assert len(names) == len(configs)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names)


ROUND_TRIP = [DEFAULT, SMALL, DEFAULT.replace(tile="6x6", array=(1, 3), max_in_channels=5,
                                              max_out_channels=7, data_width=6, weight_width=4,
                                              bias_width=20, weight_depth=33, requant=True,
                                              max_tap_shift=7, pipelined=False),
              DEFAULT.replace(tile="6x6", array=(1, 2), requant=True, drain_positions=9),
              PRESETS["default-6x6"], DEFAULT.replace(tile="6x6", v_beats=9)]


@pytest.mark.parametrize("config", ROUND_TRIP, ids=lambda c: c.name)
def test_to_dict_from_dict_round_trip(config):
    d = config.to_dict()
    assert json.loads(json.dumps(d)) == d and d["array"] == list(config.array)
    assert AcceleratorConfig.from_dict(json.loads(json.dumps(d))) == config
    assert AcceleratorConfig.from_dict(d).to_dict() == d
    manifest = {"manifest_version": MANIFEST_VERSION, "top": config.name, "config": d,
                "max_in_channels": 99}          # the rest of a manifest is not read
    assert AcceleratorConfig.from_dict(manifest) == config


def _without(key):
    d = DEFAULT.to_dict()
    del d[key]
    return d


def test_from_dict_reads_a_design_from_before_the_tap_shift_stage():
    assert AcceleratorConfig.from_dict(_without("max_tap_shift")) == DEFAULT


@pytest.mark.parametrize("key", ["weight_lanes", "weight_banks", "split_channels"])
def test_from_dict_reads_a_design_from_before_weight_lanes_and_banks(key):
    assert AcceleratorConfig.from_dict(_without(key)) == DEFAULT


def test_from_dict_reads_a_design_from_before_the_narrow_v_chain_with_one_beat():
    assert AcceleratorConfig.from_dict(_without("v_beats")) == DEFAULT
    six = PRESETS["default-6x6"].to_dict()
    del six["v_beats"]
    assert AcceleratorConfig.from_dict(six) == PRESETS["default-6x6"].replace(v_beats=1)


@pytest.mark.parametrize("tile, beats, positions", [("4x4", 1, 16), ("4x4", 4, 4),
                                                    ("6x6", 4, 9), ("6x6", 36, 1)])
def test_v_beat_positions(tile, beats, positions):
    assert DEFAULT.replace(tile=tile, v_beats=beats).v_beat_positions == positions


def test_from_dict_reads_a_design_from_before_the_timing_registers_as_unpipelined():
    assert AcceleratorConfig.from_dict(_without("pipelined")) == DEFAULT.replace(pipelined=False)


def test_from_dict_reads_a_design_from_before_the_drain_positions_as_whole_tiles():
    assert AcceleratorConfig.from_dict(_without("drain_positions")) == DEFAULT


@pytest.mark.parametrize("tile, drain, width, beats", [
    ("4x4", None, 16, 1), ("4x4", 16, 16, 1), ("4x4", 2, 2, 8), ("4x4", 1, 1, 16),
    ("6x6", None, 36, 1), ("6x6", 4, 4, 9), ("6x6", 12, 12, 3)])
def test_drain_width_and_beats(tile, drain, width, beats):
    config = DEFAULT.replace(tile=tile, drain_positions=drain)
    assert (config.drain_width, config.drain_beats) == (width, beats)
    assert width * beats == config.positions


@pytest.mark.parametrize("d, message", [
    ([1, 2], r"^config must be a JSON object, not list$"),
    ({**DEFAULT.to_dict(), "max_channels": 8},
     r"^config key 'max_channels' is unknown; keys are tile, array, max_in_channels, "),
    (_without("weight_depth"), r"^config key 'weight_depth' is missing$"),
    ({**DEFAULT.to_dict(), "array": "2x2"},
     r"^array must be a \[rows, columns\] list of positive integers, not '2x2'$"),
    ({**DEFAULT.to_dict(), "array": [2, 2, 2]}, r"^array must be a \[rows, columns\] list"),
    ({**DEFAULT.to_dict(), "array": [0, 2]}, r"^array must be a \(rows, columns\) pair"),
    ({**DEFAULT.to_dict(), "tile": "5x5"}, r"^tile must be one of 4x4, 6x6, not '5x5'$"),
    ({**DEFAULT.to_dict(), "max_in_channels": 64.0},
     r"^max_in_channels must be a positive integer, not 64\.0$"),
    ({**DEFAULT.to_dict(), "requant": 0}, r"^requant must be a bool, not 0$"),
    ({**DEFAULT.to_dict(), "max_tap_shift": 16},
     r"^max_tap_shift must be an integer in \[0, 15\], not 16$"),
    ({**DEFAULT.to_dict(), "weight_depth": "big"},
     r"^weight_depth must be a positive integer, not 'big'$"),
    ({"manifest_version": 2, "config": DEFAULT.to_dict()}, r"^manifest_version must be 1, not 2$"),
    ({"manifest_version": 1}, r"^manifest key 'config' must be a JSON object, not null$"),
])
def test_from_dict_refuses_naming_the_key(d, message):
    with pytest.raises(ValueError, match=message):
        AcceleratorConfig.from_dict(d)
