"""The accelerator configuration: one frozen dataclass drives RTL, manifest, cycle model and
synthesis. Presets are :func:`dataclasses.replace` copies of :data:`DEFAULT`. The bit layouts of
its ports and memories are derived from it in :mod:`golden.protocol`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .netfile import MAX_TAP_SHIFT
from .transforms import TILES, WinogradTransform, parse_tile, tile_transform
from .widths import DatapathWidths, datapath_widths

__all__ = ["AcceleratorConfig", "DEFAULT", "MANIFEST_VERSION", "PRESETS", "SMALL", "parse_array"]

#: Version of the JSON manifest that ``hw.generate`` writes next to the Verilog.
MANIFEST_VERSION = 1


def parse_array(text: str) -> tuple[int, int]:
    """Parse an array shape "RxC" (rows x columns of PEs)."""
    parts = str(text).lower().split("x")
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        rows, cols = (int(p) for p in parts)
        if rows >= 1 and cols >= 1:
            return rows, cols
    raise ValueError(f"array must be RxC with R, C >= 1 (e.g. 4x4), not {text!r}")


def _json_kind(value) -> str:
    return "null" if value is None else type(value).__name__


def _positive_int(name, value, upper=None):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    if upper is not None and value > upper:
        raise ValueError(f"{name} must be at most {upper}, not {value!r}")


@dataclass(frozen=True)
class AcceleratorConfig:
    """Parameters of one generated accelerator.

    Parameters
    ----------
    tile : str
        Input tile: "4x4" is F(2x2, 3x3), "6x6" is F(4x4, 3x3).
    array : tuple of int
        (rows, columns) of processing elements; one multiplier each.
    max_in_channels, max_out_channels : int
        Largest C and K a layer may have; larger layers are refused.
    data_width : int
        Activation width (signed).
    weight_width : int
        Weight width (signed, symmetric range).
    bias_width : int
        Bias width (signed).
    weight_depth : int or None
        Compressed weight entries each PE can hold; None derives
        ``ceil(max_out_channels / n_pe) * max_in_channels * alpha**2`` (a dense layer fits).
    requant : bool
        Add the requantise-to-int8 (+ ReLU) output stage.
    max_tap_shift : int
        Largest tap shift span ``max(tap_shift) - min(tap_shift)`` a layer may have (weight
        file v2 ``L/tap_shift``); 0 builds no tap shift stage.
    weight_lanes : int
        Weight entries one ``weights`` beat carries, for as many consecutive PEs (a divisor of
        the PE count): loading costs the largest PE's entry count per lane group instead of
        the sum of all entries (``golden.protocol.weight_spec``). 1 is one entry per beat.
    weight_banks : int
        1 or 2. With 2 every PE's weight memory and the channel table have a second bank: the
        next layer's program loads while this layer computes, at twice their memory
        (``golden.cycles.exposed_load_cycles``).
    split_channels : bool
        Let the schedule split an output channel's entries over two consecutive PEs (the
        second part first in the next PE); the collector adds the two partial sums. A layer
        with few output channels per PE then balances like a large one
        (``golden.schedule.schedule_layer``).
    pipelined : bool
        Registers for the clock: the V word straight out of each PE's V memory and the
        collector's output (one cycle more per tile in each PE and per drain,
        ``golden.cycles``; ``positions * widths.v`` flip-flops per PE and one collector output
        beat, ``golden.protocol.pipeline_register_bits``). False builds without them, for
        small devices.
    v_beats : int
        Chain beats per V channel (a divisor of ``positions``): the V chain and every PE's V
        memory word carry ``positions / v_beats`` positions (``v_beat_positions``), so the V
        memories are that much narrower and deeper (block RAM filled instead of a quarter
        used) and the chain's hop registers and the PE's position mux that much smaller; a
        tile's load takes ``v_beats`` cycles per input channel instead of one
        (``golden.cycles``). 1 sends a whole channel per beat.
    """

    tile: str = "4x4"
    array: tuple[int, int] = (4, 4)
    max_in_channels: int = 64
    max_out_channels: int = 64
    data_width: int = 8
    weight_width: int = 8
    bias_width: int = 32
    weight_depth: int | None = None
    requant: bool = False
    max_tap_shift: int = 0
    weight_lanes: int = 1
    weight_banks: int = 1
    split_channels: bool = False
    pipelined: bool = True
    drain_positions: int | None = None
    v_beats: int = 1

    def __post_init__(self):
        parse_tile(self.tile)
        if (not isinstance(self.array, tuple) or len(self.array) != 2
                or any(not isinstance(v, int) or isinstance(v, bool) or v < 1
                       for v in self.array)):
            raise ValueError(f"array must be a (rows, columns) pair of positive integers, "
                             f"not {self.array!r}")
        _positive_int("max_in_channels", self.max_in_channels, 4096)
        _positive_int("max_out_channels", self.max_out_channels, 4096)
        for name in ("data_width", "weight_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= 16:
                raise ValueError(f"{name} must be an integer in [2, 16], not {value!r}")
        if (not isinstance(self.bias_width, int) or isinstance(self.bias_width, bool)
                or not 1 <= self.bias_width <= 32):
            raise ValueError(f"bias_width must be an integer in [1, 32], not {self.bias_width!r}")
        if self.weight_depth is not None:
            _positive_int("weight_depth", self.weight_depth)
        if not isinstance(self.requant, bool):
            raise ValueError(f"requant must be a bool, not {self.requant!r}")
        if (not isinstance(self.max_tap_shift, int) or isinstance(self.max_tap_shift, bool)
                or not 0 <= self.max_tap_shift <= MAX_TAP_SHIFT):
            raise ValueError(f"max_tap_shift must be an integer in [0, {MAX_TAP_SHIFT}], "
                             f"not {self.max_tap_shift!r}")
        _positive_int("weight_lanes", self.weight_lanes)
        if self.n_pe % self.weight_lanes:
            raise ValueError(f"weight_lanes must divide the {self.n_pe} PEs of the "
                             f"{self.array[0]}x{self.array[1]} array, not {self.weight_lanes!r}")
        if self.weight_banks not in (1, 2) or isinstance(self.weight_banks, bool):
            raise ValueError(f"weight_banks must be 1 or 2, not {self.weight_banks!r}")
        if not isinstance(self.split_channels, bool):
            raise ValueError(f"split_channels must be a bool, not {self.split_channels!r}")
        if not isinstance(self.pipelined, bool):
            raise ValueError(f"pipelined must be a bool, not {self.pipelined!r}")
        if self.drain_positions is not None:
            positions = self.positions
            if (not isinstance(self.drain_positions, int) or isinstance(self.drain_positions, bool)
                    or self.drain_positions < 1 or positions % self.drain_positions):
                divisors = [d for d in range(1, positions + 1) if positions % d == 0]
                raise ValueError(f"drain_positions must be a divisor of the {self.tile} tile's "
                                 f"{positions} positions ({', '.join(map(str, divisors))}) or "
                                 f"None, not {self.drain_positions!r}")
            if self.drain_positions < positions and self.max_tap_shift:
                raise ValueError(f"drain_positions must be {positions} (the whole tile) with a "
                                 f"tap shift stage (max_tap_shift {self.max_tap_shift}), not "
                                 f"{self.drain_positions!r}")
        _positive_int("v_beats", self.v_beats)
        if self.positions % self.v_beats:
            raise ValueError(f"v_beats must divide the {self.positions} positions of the "
                             f"{self.tile} tile, not {self.v_beats!r}")

    # -- derived ---------------------------------------------------------------------------------

    @property
    def transform(self) -> WinogradTransform:
        """The exact transform of :attr:`tile`."""
        return tile_transform(self.tile)

    @property
    def m(self) -> int:
        """Output tile side."""
        return TILES[self.tile][0]

    @property
    def r(self) -> int:
        """Kernel side."""
        return TILES[self.tile][1]

    @property
    def alpha(self) -> int:
        """Input tile side."""
        return self.m + self.r - 1

    @property
    def positions(self) -> int:
        """Winograd positions per tile, alpha**2."""
        return self.alpha * self.alpha

    @property
    def drain_width(self) -> int:
        """Winograd positions per result bank word and drain beat (``drain_positions``)."""
        return self.positions if self.drain_positions is None else self.drain_positions

    @property
    def drain_beats(self) -> int:
        """Drain beats per output channel, ``alpha**2 / drain_width`` (1: a whole tile)."""
        return self.positions // self.drain_width

    @property
    def AT(self) -> np.ndarray:
        """Integer output transform [m, alpha]."""
        return self.transform.AT_int

    @property
    def BT(self) -> np.ndarray:
        """Integer input transform [alpha, alpha]."""
        return self.transform.BT_int

    @property
    def v_beat_positions(self) -> int:
        """Winograd positions per V chain beat and V memory word, ``positions / v_beats``."""
        return self.positions // self.v_beats

    @property
    def n_pe(self) -> int:
        """Processing elements (= array multipliers)."""
        return self.array[0] * self.array[1]

    @property
    def multipliers(self) -> int:
        """Physical multipliers in the design: one per PE, plus m**2 in the requant stage."""
        return self.n_pe + (self.m * self.m if self.requant else 0)

    @property
    def pe_weight_depth(self) -> int:
        """Entries each PE's weight memory holds."""
        if self.weight_depth is not None:
            return self.weight_depth
        return (math.ceil(self.max_out_channels / self.n_pe) * self.max_in_channels
                * self.positions)

    @property
    def weight_groups(self) -> int:
        """Groups of ``weight_lanes`` consecutive PEs that one ``weights`` beat addresses."""
        return self.n_pe // self.weight_lanes

    @cached_property
    def widths(self) -> DatapathWidths:
        """Exact worst-case widths of every stage (the single source for the RTL)."""
        return datapath_widths(self.AT, self.BT, input_width=self.data_width,
                               weight_width=self.weight_width,
                               max_in_channels=self.max_in_channels,
                               bias_width=self.bias_width,
                               max_tap_shift=self.max_tap_shift)

    def replace(self, **changes) -> "AcceleratorConfig":
        """A copy with ``changes`` (validated)."""
        return dataclasses.replace(self, **changes)

    # -- naming and (de)serialisation ------------------------------------------------------------

    @property
    def name(self) -> str:
        """The design's name: Verilog top module, generated file stem and build-cache key.

        ``sparse_winograd_<tile>`` followed by one token per parameter that differs from its
        default: ``a<R>x<C>`` array, ``c<N>`` channels (``c<C>_k<K>`` when the input and output
        limits differ), ``d<bits>`` data, ``w<bits>`` weight and ``b<bits>`` bias widths,
        ``wd<N>`` weight depth, ``rq`` requant stage, ``ts<S>`` tap shift stage, ``wl<N>`` weight
        lanes, ``wb2`` two weight banks, ``sc`` split channels, ``np`` not pipelined, ``dp<P>``
        drain positions, ``vb<N>`` V chain beats per channel. The default
        design of each tile keeps the short name (``sparse_winograd_4x4``); different
        configurations never share a name.
        """
        default = AcceleratorConfig(tile=self.tile)
        tokens = [f"sparse_winograd_{self.tile}"]
        if self.array != default.array:
            tokens.append(f"a{self.array[0]}x{self.array[1]}")
        channels = (self.max_in_channels, self.max_out_channels)
        if channels != (default.max_in_channels, default.max_out_channels):
            tokens.append(f"c{channels[0]}" if channels[0] == channels[1]
                          else f"c{channels[0]}_k{channels[1]}")
        for field, prefix in (("data_width", "d"), ("weight_width", "w"), ("bias_width", "b"),
                              ("weight_depth", "wd")):
            value = getattr(self, field)
            if value != getattr(default, field):
                tokens.append(f"{prefix}{value}")
        if self.requant:
            tokens.append("rq")
        if self.max_tap_shift:
            tokens.append(f"ts{self.max_tap_shift}")
        if self.weight_lanes != default.weight_lanes:
            tokens.append(f"wl{self.weight_lanes}")
        if self.weight_banks != default.weight_banks:
            tokens.append(f"wb{self.weight_banks}")
        if self.split_channels:
            tokens.append("sc")
        if not self.pipelined:
            tokens.append("np")
        if self.drain_positions is not None:
            tokens.append(f"dp{self.drain_positions}")
        if self.v_beats != default.v_beats:
            tokens.append(f"vb{self.v_beats}")
        return "_".join(tokens)

    def to_dict(self) -> dict:
        """Every parameter as a plain JSON value; :meth:`from_dict` reads it back."""
        d = dataclasses.asdict(self)
        d["array"] = list(self.array)
        return d

    as_dict = to_dict

    @classmethod
    def from_dict(cls, d) -> "AcceleratorConfig":
        """The configuration described by ``d``: the output of :meth:`to_dict`, or a whole
        manifest written by ``hw.generate`` (whose ``config`` section is read).

        Raises
        ------
        ValueError
            Naming the key, for a key that is unknown or missing and for a bad value.
        """
        if not isinstance(d, dict):
            raise ValueError(f"config must be a JSON object, not {_json_kind(d)}")
        if "manifest_version" in d:
            version = d["manifest_version"]
            if version != MANIFEST_VERSION or isinstance(version, bool):
                raise ValueError(f"manifest_version must be {MANIFEST_VERSION}, not {version!r}")
            if not isinstance(d.get("config"), dict):
                raise ValueError(f"manifest key 'config' must be a JSON object, not "
                                 f"{_json_kind(d.get('config'))}")
            d = d["config"]
        names = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in names:
                raise ValueError(f"config key {key!r} is unknown; keys are {', '.join(names)}")
        values = dict(d)
        # Designs from before the tap shift stage, the weight lanes and banks, the split, the
        # timing registers, the drain positions and the narrow V chain.
        values.setdefault("max_tap_shift", 0)
        values.setdefault("weight_lanes", 1)
        values.setdefault("weight_banks", 1)
        values.setdefault("split_channels", False)
        values.setdefault("pipelined", False)
        values.setdefault("drain_positions", None)
        values.setdefault("v_beats", 1)
        for key in names:
            if key not in values:
                raise ValueError(f"config key {key!r} is missing")
        array = values["array"]
        if not isinstance(array, list) or len(array) != 2:
            raise ValueError(f"array must be a [rows, columns] list of positive integers, "
                             f"not {array!r}")
        values["array"] = tuple(array)
        return cls(**values)


#: The default design: 4x4 tile, 4x4 PEs, up to 64 input and output channels.
DEFAULT = AcceleratorConfig()
#: A small design for quick simulation and small FPGAs.
SMALL = dataclasses.replace(DEFAULT, array=(2, 2), max_in_channels=16, max_out_channels=16)
#: Named designs; ``default-6x6`` sends V in 4 beats of 9 positions per channel, so that its V
#: memories fill their block RAMs (4 DP16KD per PE on the ECP5 instead of 15).
PRESETS = {"default": DEFAULT, "small": SMALL,
           "default-6x6": dataclasses.replace(DEFAULT, tile="6x6", v_beats=4)}
