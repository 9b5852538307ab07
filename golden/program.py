"""The layer program: what the host sends the accelerator to run one convolution layer.

A layer is loaded once and then run over every tile of the input. The host sends, in order:

``cfg`` (one beat, ``cfg_spec``)
    ``in_channels`` C, ``out_channels`` K, ``n_tiles`` T and ``n_entries`` (weight beats); with
    a tap shift stage, ``tap_left``: ``max(tap_shift) - tap_shift`` per Winograd position.
``table`` (K beats, ``table_spec``, channel k = 0..K-1)
    The owner PE and result slot of channel k (:mod:`golden.schedule`), ``empty`` for an
    all-zero channel, its ``bias`` and, with the requant stage, ``mult``, ``shift``, ``relu``.
``weights`` (``n_entries`` beats, ``weight_spec``)
    ``pe`` and one compressed ``entry`` (``entry_spec``). Beats are grouped by PE
    (PE 0 first); each PE's entries are in its execution order: its channels in slot order,
    each channel's run ending with ``last`` set. With ``weight_lanes`` L > 1 a beat carries
    entry i of every PE of one group of L PEs (lane valid while the PE has an entry i); the
    groups follow one another (group 0 first), each taking as many beats as its largest PE
    has entries (:func:`weight_beats`), and ``n_entries`` counts these beats.
``patches`` (T * C beats, ``patch_spec``)
    Tile-major, channel-minor input patches (:func:`patch_words`).

and receives T * K ``results`` beats (``result_spec``), tile-major, channel-minor
(:func:`unpack_results`). The specs are in :mod:`golden.protocol`; this module compiles a layer
into the words of these streams and computes the outputs the accelerator must return.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import AcceleratorConfig
from .conv import TileGrid, assemble_tiles, extract_patches, tile_grid, winograd_conv2d_int
from .encoding import SparseWeights, encode
from .layout import pack_array, unpack_array
from .protocol import (COUNT_FIELD_BITS, cfg_spec, patch_spec, result_spec, table_spec,
                       weight_spec)
from .quant import MAX_SHIFT, MULTIPLIER_BITS, requantize
from .schedule import Schedule, schedule_layer
from .weights import LayerWeights
from .widths import signed_range

__all__ = [
    "LayerProgram",
    "compile_layer",
    "expected_output",
    "expected_output_q",
    "patch_words",
    "unpack_results",
    "unpack_results_q",
    "weight_beats",
]


@dataclass(frozen=True, eq=False)
class LayerProgram:
    """One layer compiled for one accelerator configuration.

    Members
    -------
    config : AcceleratorConfig
    layer : LayerWeights
    grid : TileGrid
        Tiling of the ``in_h`` x ``in_w`` input.
    schedule : Schedule
    sparse : SparseWeights
        ``encode(layer.U)``.
    cfg_words, table_words, weight_words : list of int
        The words of the ``cfg``, ``table`` and ``weights`` streams.
    requant : tuple or None
        ``(mult [K], shift [K], relu)`` of the requant stage.
    """

    config: AcceleratorConfig
    layer: LayerWeights
    grid: TileGrid
    schedule: Schedule
    sparse: SparseWeights
    cfg_words: list[int]
    table_words: list[int]
    weight_words: list[int]
    requant: tuple[np.ndarray, np.ndarray, bool] | None = None

    @property
    def in_channels(self) -> int:
        """C."""
        return self.sparse.in_channels

    @property
    def out_channels(self) -> int:
        """K."""
        return self.sparse.out_channels

    @property
    def n_tiles(self) -> int:
        """T, tiles of the input."""
        return self.grid.n_tiles


def _check_requant(config, requant, k, name):
    if not config.requant:
        if requant is not None:
            raise ValueError(f"layer '{name}': requant parameters given but the accelerator "
                             "has no requant stage (config.requant is False)")
        return None
    if requant is None:
        raise ValueError(f"layer '{name}': the accelerator has a requant stage; pass "
                         "requant=(mult, shift, relu)")
    try:
        mult, shift, relu = requant
    except (TypeError, ValueError):
        raise ValueError(f"layer '{name}': requant must be (mult, shift, relu), "
                         f"not {requant!r}") from None
    mult = np.broadcast_to(np.asarray(mult, dtype=np.int64), (k,)).copy()
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), (k,)).copy()
    if mult.min() < 0 or mult.max() >= 1 << MULTIPLIER_BITS:
        raise ValueError(f"layer '{name}': requant mult must lie in [0, 2**{MULTIPLIER_BITS})")
    if shift.min() < 0 or shift.max() > MAX_SHIFT:
        raise ValueError(f"layer '{name}': requant shift must lie in [0, {MAX_SHIFT}]")
    if not isinstance(relu, (bool, np.bool_)):
        raise ValueError(f"layer '{name}': requant relu must be a bool, not {relu!r}")
    return mult, shift, bool(relu)


def compile_layer(config: AcceleratorConfig, layer: LayerWeights, in_h: int, in_w: int,
                  requant=None) -> LayerProgram:
    """Compile ``layer`` for an ``in_h`` x ``in_w`` input on ``config``.

    Parameters
    ----------
    config : AcceleratorConfig
    layer : LayerWeights
        Typically from ``golden.weights.load_weights``.
    in_h, in_w : int
        Input height and width.
    requant : tuple, optional
        ``(mult [K], shift [K], relu)`` (scalars broadcast); required exactly when
        ``config.requant``.

    Raises
    ------
    ValueError
        Naming the layer and the limit, if the layer does not match the accelerator's tile,
        exceeds its channel limits, has weights or biases wider than its datapath, tap shifts
        spanning more than ``config.max_tap_shift``, or does not fit its PE memories.
    """
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {type(config).__name__}")
    if not isinstance(layer, LayerWeights):
        raise TypeError(f"layer must be a LayerWeights, not {type(layer).__name__}")
    name = layer.name
    for what, value in (("in_h", in_h), ("in_w", in_w)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"layer '{name}': {what} must be a positive integer, not {value!r}")
    if (layer.m, layer.r) != (config.m, config.r):
        raise ValueError(f"layer '{name}' is F({layer.m},{layer.r}); the accelerator's "
                         f"{config.tile} tile is F({config.m},{config.r})")
    for what, mine, theirs in (("AT", layer.AT, config.AT), ("BT", layer.BT, config.BT)):
        if not np.array_equal(np.asarray(mine), theirs):
            raise ValueError(f"layer '{name}': {what} differs from the accelerator's "
                             f"{config.tile} {what} {theirs.tolist()}")
    k, c = layer.out_channels, layer.in_channels
    if k < 1 or c < 1:
        raise ValueError(f"layer '{name}' has {c} input and {k} output channels; both must be "
                         "at least 1")
    if c > config.max_in_channels:
        raise ValueError(f"layer '{name}' has {c} input channels; the accelerator's "
                         f"max_in_channels is {config.max_in_channels}")
    if k > config.max_out_channels:
        raise ValueError(f"layer '{name}' has {k} output channels; the accelerator's "
                         f"max_out_channels is {config.max_out_channels}")
    w_max = signed_range(config.weight_width)[1]
    U = np.asarray(layer.U, dtype=np.int64)
    if U.size and np.abs(U).max() > w_max:
        raise ValueError(f"layer '{name}': weight {int(U.flat[np.abs(U).argmax()])} does not "
                         f"fit weight_width {config.weight_width} (|U| <= {w_max})")
    bias = layer.bias_or_zeros
    b_lo, b_hi = signed_range(config.bias_width)
    if bias.size and (bias.min() < b_lo or bias.max() > b_hi):
        raise ValueError(f"layer '{name}': bias does not fit bias_width {config.bias_width} "
                         f"[{b_lo}, {b_hi}]")
    tap_left = layer.tap_left_shifts
    if int(tap_left.max()) > config.max_tap_shift:
        ts = np.asarray(layer.tap_shift)
        raise ValueError(f"layer '{name}': tap shifts span {int(tap_left.max())} "
                         f"(tap_shift {int(ts.min())} .. {int(ts.max())}); the accelerator's "
                         f"max_tap_shift is {config.max_tap_shift} (hw.generate "
                         "--max-tap-shift)")
    rq = _check_requant(config, requant, k, name)
    grid = tile_grid(int(in_h), int(in_w), config.m, config.r, layer.padding)
    if grid.n_tiles >= 1 << COUNT_FIELD_BITS:
        raise ValueError(f"layer '{name}': {grid.n_tiles} tiles exceed the cfg field")
    sparse = encode(U)
    schedule = schedule_layer(sparse, config, name)

    weight_words = _weight_words(config, sparse, schedule)
    cfg = {"in_channels": c, "out_channels": k, "n_tiles": grid.n_tiles,
           "n_entries": len(weight_words)}
    if config.max_tap_shift:
        cfg["tap_left"] = tap_left.ravel()
    cfg_words = [cfg_spec(config).pack(cfg)]
    empty = schedule.owner < 0
    table = {"owner": np.where(empty, 0, schedule.owner),
             "slot": np.where(empty, 0, schedule.slot),
             "empty": empty.astype(np.int64), "bias": bias}
    if config.split_channels:
        table["split"] = (schedule.split > 0).astype(np.int64)
    if rq is not None:
        table.update(mult=rq[0], shift=rq[1], relu=np.full(k, int(rq[2])))
    table_words = pack_array(table_spec(config), table)

    return LayerProgram(config=config, layer=layer, grid=grid, schedule=schedule, sparse=sparse,
                        cfg_words=cfg_words, table_words=table_words,
                        weight_words=weight_words, requant=rq)


def weight_beats(config: AcceleratorConfig, pe_entries) -> int:
    """``weights`` beats of a layer whose PEs hold ``pe_entries`` [n_pe] entries: their sum
    with one lane, else the sum over PE groups of the group's largest count."""
    counts = np.asarray(pe_entries, dtype=np.int64).reshape(config.weight_groups,
                                                             config.weight_lanes)
    return int(counts.max(axis=1, initial=0).sum())


def _weight_words(config: AcceleratorConfig, sparse: SparseWeights,
                  schedule: Schedule) -> list[int]:
    """The ``weights`` stream (module docstring)."""
    # Entry indices of every PE, in execution order (channels, or parts, in slot order).
    starts = sparse.starts
    runs, lasts = [], []
    for pe in range(config.n_pe):
        parts = schedule.pe_runs(pe)
        idx = [np.arange(starts[ch] + first, starts[ch] + stop) for ch, first, stop in parts]
        idx = np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)
        last = np.zeros(idx.size, dtype=np.int64)
        last[np.cumsum([stop - first for _, first, stop in parts], dtype=np.int64) - 1] = 1
        runs.append(idx)
        lasts.append(last)

    def entries(idx, last):
        return {"value": sparse.value[idx], "position": sparse.position[idx],
                "channel": sparse.channel[idx], "last": last}

    spec = weight_spec(config)
    lanes = config.weight_lanes
    if lanes == 1:
        pe = np.concatenate([np.full(r.size, p) for p, r in enumerate(runs)])
        return pack_array(spec, {"pe": pe, "entry": entries(np.concatenate(runs),
                                                            np.concatenate(lasts))})
    words = []
    for group in range(config.weight_groups):
        members = range(group * lanes, (group + 1) * lanes)
        beats = max(runs[p].size for p in members)
        columns = {"group": np.full(beats, group)}
        for j, p in enumerate(members):
            # An idle lane (its PE has no entry left in this group) is all zeros.
            pad = np.zeros(beats - runs[p].size, dtype=np.int64)
            lane = {name: np.concatenate([column, pad])
                    for name, column in entries(runs[p], lasts[p]).items()}
            columns[f"lane{j}"] = {"valid": np.concatenate([np.ones(runs[p].size, np.int64),
                                                            pad]), "entry": lane}
        words += pack_array(spec, columns)
    return words


def _check_input(program: LayerProgram, x) -> np.ndarray:
    x = np.asarray(x)
    g = program.grid
    want = [program.in_channels, g.in_h, g.in_w]
    if x.ndim != 3 or list(x.shape) != want:
        raise ValueError(f"layer '{program.layer.name}': input must have shape {want}, "
                         f"not {list(x.shape)}")
    if x.dtype.kind not in "iu":
        raise ValueError(f"layer '{program.layer.name}': input must be integers, not {x.dtype}")
    lo, hi = signed_range(program.config.data_width)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"layer '{program.layer.name}': input values must lie in [{lo}, {hi}]")
    return x.astype(np.int64)


def patch_words(program: LayerProgram, x) -> list[int]:
    """The ``patches`` stream for input ``x`` [C, H, W]: tile-major, channel-minor."""
    x = _check_input(program, x)
    cfg = program.config
    patches = extract_patches(x, cfg.m, cfg.r, program.grid.padding)   # [T, C, a, a]
    return pack_array(patch_spec(cfg), patches.reshape(-1, cfg.positions))


def _result_field(program: LayerProgram, words, name: str) -> np.ndarray:
    cfg = program.config
    expected = program.n_tiles * program.out_channels
    words = list(words)
    if len(words) != expected:
        raise ValueError(f"layer '{program.layer.name}': expected {expected} result words "
                         f"({program.n_tiles} tiles x {program.out_channels} channels), "
                         f"got {len(words)}")
    tiles = unpack_array(result_spec(cfg), words)[name]
    tiles = tiles.reshape(program.n_tiles, program.out_channels, cfg.m, cfg.m)
    return assemble_tiles(tiles, program.grid)


def unpack_results(program: LayerProgram, words) -> np.ndarray:
    """The raw outputs ``y`` int64 [K, Hout, Wout] from T * K ``results`` words."""
    return _result_field(program, words, "y")


def unpack_results_q(program: LayerProgram, words) -> np.ndarray:
    """The requantised outputs ``q`` int64 [K, Hout, Wout] (requant stage only)."""
    if not program.config.requant:
        raise ValueError("the accelerator has no requant stage; results carry no 'q' field")
    return _result_field(program, words, "q")


def expected_output(program: LayerProgram, x) -> np.ndarray:
    """The golden raw output int64 [K, Hout, Wout] of the layer on ``x`` (bias included)."""
    x = _check_input(program, x)
    cfg = program.config
    return winograd_conv2d_int(x, program.layer.U, cfg.AT, cfg.BT, program.grid.padding,
                               bias=program.layer.bias_or_zeros, r=cfg.r,
                               tap_shift=program.layer.tap_shift)


def expected_output_q(program: LayerProgram, x) -> np.ndarray:
    """The golden requantised output int64 [K, Hout, Wout] (requant stage only)."""
    if program.requant is None:
        raise ValueError("the program has no requant parameters")
    mult, shift, relu = program.requant
    return requantize(expected_output(program, x), mult, shift, relu).astype(np.int64)
