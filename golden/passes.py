"""Layers larger than the design: the host splits a layer into passes that fit.

A layer with C input and K output channels runs as passes, each an ordinary layer of the
design (``golden.program.compile_layer``):

* input channels in contiguous groups of at most ``config.max_in_channels``
  (``c0 .. c1 - 1``); each group's passes produce exact integer partial sums, which the host
  adds;
* within each input group, output channels in contiguous groups of at most
  ``config.max_out_channels``, cut further where a group's compressed entries do not fit the PE
  weight memories: a group is the largest (by bisection over its size) that
  ``golden.schedule.schedule_layer`` can place, so the LPT schedule decides what fits.

The bias rides on the first input group's passes only. The tap shifts (one [alpha, alpha] array
per layer) ride on every pass unchanged, so every partial sum is in the same units
(``scale[k] * 2**-max(tap_shift)``) and the host's sum of partial sums is exact. With one input
group a pass's output is final: the requant stage (``config.requant``) then requantises on
chip. With several, the host sums the raw partial sums (the first group's include the bias) and
requantises with :func:`golden.quant.requantize`; a design's requant stage still runs (it must
be programmed) but its ``q`` output is ignored. Every step is exact integer arithmetic, so the
combined output equals the unsplit layer ``golden.conv.winograd_conv2d_int`` bit for bit.

A layer is refused only when one output channel's entries within one input group exceed a PE's
weight memory (``config.pe_weight_depth``); the message gives the numbers. The cycle model of a
split layer (``golden.cycles.passes_cycles``) is the sum of ``golden.cycles.layer_cycles`` over
its passes, loads included; the host's partial-sum additions are not accelerator cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import DEFAULT, AcceleratorConfig
from .conv import winograd_conv2d_int
from .encoding import encode
from .program import LayerProgram, _check_requant, compile_layer
from .quant import requantize
from .schedule import schedule_layer
from .transforms import TILES
from .weights import LayerWeights, WeightFile

__all__ = [
    "FROM_LAYER",
    "LayerPass",
    "PassPlan",
    "combine_outputs",
    "compile_passes",
    "golden_pass_outputs",
    "layer_requant",
    "network_design",
    "pass_inputs",
    "plan_passes",
    "reference_output",
    "run_passes",
]

#: Default of :func:`plan_passes`'s ``requant``: the layer's own requantisation, if any.
FROM_LAYER = "from-layer"
#: Requant parameters that program a design's requant stage on a pass whose ``q`` is ignored.
_IGNORED_REQUANT = (1, 0, False)


@dataclass(frozen=True, eq=False)
class LayerPass:
    """One pass of a split layer.

    Members
    -------
    index : int
        Position in the plan (passes run in this order).
    in_range, out_range : tuple of int
        Half-open input channels ``(c0, c1)`` and output channels ``(k0, k1)`` of the layer.
    layer : LayerWeights
        ``U[k0:k1, c0:c1]`` (and ``scale``, ``U_float`` sliced); ``bias[k0:k1]`` on the first
        input group only. Named ``NAME.kK0-K1.cC0-C1`` unless the layer is a single pass.
    requant : tuple or None
        ``(mult, shift, relu)`` for ``compile_layer`` (None without a requant stage).
    requant_on_chip : bool
        The pass's requantised ``q`` output is the layer's (one input group only).
    """

    index: int
    in_range: tuple[int, int]
    out_range: tuple[int, int]
    layer: LayerWeights
    requant: tuple | None
    requant_on_chip: bool

    @property
    def name(self) -> str:
        """The pass's layer name."""
        return self.layer.name

    @property
    def first_input_group(self) -> bool:
        """The pass carries the bias."""
        return self.in_range[0] == 0


@dataclass(frozen=True, eq=False)
class PassPlan:
    """A layer split into passes for one design.

    Members
    -------
    config : AcceleratorConfig
    layer : LayerWeights
        The whole layer.
    requant : tuple or None
        ``(mult [K], shift [K], relu)`` of the layer (int64 arrays, bool), or None for raw output.
    in_groups : tuple of tuple of int
        Half-open input channel ranges.
    passes : tuple of LayerPass
        Input-group major, output-group minor.
    """

    config: AcceleratorConfig
    layer: LayerWeights
    requant: tuple | None
    in_groups: tuple[tuple[int, int], ...]
    passes: tuple[LayerPass, ...]

    @property
    def requant_on_chip(self) -> bool:
        """Requantisation happens in the design's requant stage (one input group)."""
        return self.requant is not None and self.config.requant and len(self.in_groups) == 1

    def __len__(self) -> int:
        return len(self.passes)


def _slice_layer(layer: LayerWeights, name: str, k0: int, k1: int, c0: int,
                 c1: int) -> LayerWeights:
    bias = None
    if layer.bias is not None and c0 == 0:
        bias = np.ascontiguousarray(layer.bias[k0:k1])
    u_float = None if layer.U_float is None else np.ascontiguousarray(
        layer.U_float[k0:k1, c0:c1])
    mult, shift = (None if a is None else np.ascontiguousarray(a[k0:k1])
                   for a in (layer.requant_mult, layer.requant_shift))
    return LayerWeights(name=name, m=layer.m, r=layer.r, AT=layer.AT, BT=layer.BT, G=layer.G,
                        U=np.ascontiguousarray(layer.U[k0:k1, c0:c1]),
                        scale=np.ascontiguousarray(layer.scale[k0:k1]), padding=layer.padding,
                        bias=bias, U_float=u_float, input_scale=layer.input_scale,
                        requant_mult=mult, requant_shift=shift, relu=layer.relu,
                        tap_shift=layer.tap_shift)


def _fits(U: np.ndarray, config: AcceleratorConfig) -> bool:
    """``schedule_layer`` can place these output channels (U [n, C, a, a])."""
    try:
        schedule_layer(encode(U), config)
    except ValueError:
        return False
    return True


def _output_groups(U: np.ndarray, config: AcceleratorConfig) -> list[tuple[int, int]]:
    """Contiguous output-channel groups of ``U`` [K, Cg, a, a], each the largest that fits."""
    k_total = U.shape[0]
    groups, k0 = [], 0
    while k0 < k_total:
        hi = min(config.max_out_channels, k_total - k0)
        if _fits(U[k0:k0 + hi], config):
            n = hi
        else:
            lo = 1                          # one channel always fits (checked by the caller)
            while hi - lo > 1:              # invariant: lo fits, hi does not
                mid = (lo + hi) // 2
                if _fits(U[k0:k0 + mid], config):
                    lo = mid
                else:
                    hi = mid
            n = lo
        groups.append((k0, k0 + n))
        k0 += n
    return groups


def layer_requant(layer: LayerWeights) -> tuple | None:
    """The layer's own requantisation (weight file v2 ``requant_mult``, ``requant_shift``,
    ``relu``) as ``(mult, shift, relu)``, or None when it has none."""
    if layer.requant_mult is None:
        return None
    return layer.requant_mult, layer.requant_shift, bool(layer.relu)


def plan_passes(config: AcceleratorConfig, layer: LayerWeights,
                requant=FROM_LAYER) -> PassPlan:
    """Split ``layer`` into passes that fit ``config`` (module docstring).

    Parameters
    ----------
    config : AcceleratorConfig
    layer : LayerWeights
    requant : tuple, None or FROM_LAYER
        ``(mult [K], shift [K], relu)`` (scalars broadcast) to requantise the layer's output to
        int8 as :func:`golden.quant.requantize`; None keeps the raw int64 output; the default,
        :data:`FROM_LAYER`, takes the layer's own (:func:`layer_requant`).

    Raises
    ------
    ValueError
        If one output channel's entries within one input group exceed ``pe_weight_depth``
        (naming the layer, channel, input group and numbers), or ``requant`` is malformed.
        Tile, weight and bias problems are reported by :func:`compile_passes`.
    """
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {type(config).__name__}")
    if not isinstance(layer, LayerWeights):
        raise TypeError(f"layer must be a LayerWeights, not {type(layer).__name__}")
    k, c, name = layer.out_channels, layer.in_channels, layer.name
    if isinstance(requant, str) and requant == FROM_LAYER:
        requant = layer_requant(layer)
    rq = None
    if requant is not None:
        rq = _check_requant(config.replace(requant=True), requant, k, name)
    step = config.max_in_channels
    in_groups = tuple((c0, min(c0 + step, c)) for c0 in range(0, c, step))
    depth = config.pe_weight_depth
    cuts = []
    for c0, c1 in in_groups:
        U = np.asarray(layer.U[:, c0:c1])
        counts = encode(U).counts
        too_big = np.flatnonzero(counts > depth)
        if too_big.size:
            kk = int(too_big[0])
            raise ValueError(
                f"layer '{name}': output channel {kk} has {int(counts[kk])} weight entries in "
                f"input channels {c0}..{c1 - 1} ({c1 - c0} of at most {step} per pass); a PE "
                f"holds at most pe_weight_depth = {depth}, so no split fits it")
        cuts.append(_output_groups(U, config))
    single = len(in_groups) == 1 and len(cuts[0]) == 1
    on_chip = rq is not None and config.requant and len(in_groups) == 1
    passes = []
    for (c0, c1), groups in zip(in_groups, cuts):
        for k0, k1 in groups:
            pass_name = name if single else f"{name}.k{k0}-{k1}.c{c0}-{c1}"
            pass_rq = None
            if config.requant:
                pass_rq = ((rq[0][k0:k1], rq[1][k0:k1], rq[2]) if on_chip
                           else _IGNORED_REQUANT)
            passes.append(LayerPass(index=len(passes), in_range=(c0, c1), out_range=(k0, k1),
                                    layer=_slice_layer(layer, pass_name, k0, k1, c0, c1),
                                    requant=pass_rq, requant_on_chip=on_chip))
    return PassPlan(config=config, layer=layer, requant=rq, in_groups=in_groups,
                    passes=tuple(passes))


def compile_passes(plan: PassPlan, in_h: int, in_w: int) -> list[LayerProgram]:
    """Every pass compiled for an ``in_h`` x ``in_w`` input (``golden.program.compile_layer``,
    whose checks name the pass)."""
    return [compile_layer(plan.config, p.layer, in_h, in_w, requant=p.requant)
            for p in plan.passes]


def _check_x(plan: PassPlan, x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[0] != plan.layer.in_channels:
        raise ValueError(f"layer '{plan.layer.name}': input must have shape "
                         f"[{plan.layer.in_channels}, H, W], not {list(x.shape)}")
    if x.dtype.kind not in "iu":
        raise ValueError(f"layer '{plan.layer.name}': input must be integers, not {x.dtype}")
    return x


def pass_inputs(plan: PassPlan, x) -> list[np.ndarray]:
    """The input of every pass: ``x[c0:c1]`` of x [C, H, W]."""
    x = _check_x(plan, x)
    return [np.ascontiguousarray(x[p.in_range[0]:p.in_range[1]]) for p in plan.passes]


def golden_pass_outputs(plan: PassPlan, x) -> list[np.ndarray]:
    """The raw int64 output [k1 - k0, Hout, Wout] of every pass (bias on the first input
    group), as the design computes it."""
    cfg = plan.config
    return [winograd_conv2d_int(xp, p.layer.U, cfg.AT, cfg.BT, plan.layer.padding,
                                bias=p.layer.bias_or_zeros, r=cfg.r,
                                tap_shift=p.layer.tap_shift)
            for p, xp in zip(plan.passes, pass_inputs(plan, x))]


def combine_outputs(plan: PassPlan, raw, q=None) -> tuple[np.ndarray, np.ndarray | None]:
    """The layer's output from its passes' outputs.

    Parameters
    ----------
    plan : PassPlan
    raw : list of ndarray [k1 - k0, Hout, Wout] of int
        Every pass's raw output (bias included on the first input group).
    q : list of ndarray, optional
        Every pass's requantised output; required when ``plan.requant_on_chip`` (and then used
        as the layer's), ignored otherwise.

    Returns
    -------
    y : ndarray [K, Hout, Wout] of int64
        Exact sum of the partial sums (bias included).
    y_q : ndarray [K, Hout, Wout] of int8 or None
        The requantised output when ``plan.requant`` is set: the chip's with one input group,
        else :func:`golden.quant.requantize` of ``y``.
    """
    raw = list(raw)
    if len(raw) != len(plan.passes):
        raise ValueError(f"layer '{plan.layer.name}': {len(raw)} pass outputs for "
                         f"{len(plan.passes)} passes")
    shape = None
    for p, out in zip(plan.passes, raw):
        want = p.out_range[1] - p.out_range[0]
        out_shape = np.shape(out)
        if len(out_shape) != 3 or out_shape[0] != want or (shape and out_shape[1:] != shape):
            raise ValueError(f"pass '{p.name}': output must have shape [{want}, H, W] like the "
                             f"other passes, not {list(out_shape)}")
        shape = out_shape[1:]
    y = np.zeros((plan.layer.out_channels, *shape), dtype=np.int64)
    for p, out in zip(plan.passes, raw):
        y[p.out_range[0]:p.out_range[1]] += np.asarray(out, dtype=np.int64)
    if plan.requant is None:
        return y, None
    if plan.requant_on_chip:
        if q is None or len(q) != len(plan.passes):
            raise ValueError(f"layer '{plan.layer.name}': requantised on chip; give every "
                             "pass's q output")
        y_q = np.zeros(y.shape, dtype=np.int8)
        for p, out in zip(plan.passes, q):
            y_q[p.out_range[0]:p.out_range[1]] = np.asarray(out)
        return y, y_q
    mult, shift, relu = plan.requant
    return y, requantize(y, mult, shift, relu)


def run_passes(plan: PassPlan, x) -> tuple[np.ndarray, np.ndarray | None]:
    """The golden model of the split layer: :func:`combine_outputs` of
    :func:`golden_pass_outputs` (the chip's ``q`` recomputed by ``requantize`` per pass)."""
    raw = golden_pass_outputs(plan, x)
    q = None
    if plan.requant_on_chip:
        q = [requantize(y, p.requant[0], p.requant[1], p.requant[2])
             for p, y in zip(plan.passes, raw)]
    return combine_outputs(plan, raw, q)


def reference_output(plan: PassPlan, x) -> tuple[np.ndarray, np.ndarray | None]:
    """The unsplit layer: ``winograd_conv2d_int`` on all channels, then ``requantize``."""
    x = _check_x(plan, x)
    layer = plan.layer
    y = winograd_conv2d_int(x, layer.U, layer.AT, layer.BT, layer.padding,
                            bias=layer.bias_or_zeros, r=layer.r, tap_shift=layer.tap_shift)
    if plan.requant is None:
        return y, None
    mult, shift, relu = plan.requant
    return y, requantize(y, mult, shift, relu)


def network_design(weights: WeightFile) -> AcceleratorConfig:
    """The design chosen for a network when none is given: the default design (its array
    and channel limits; larger layers run as passes) with the network's tile, the on-chip
    requantisation stage and a tap shift stage as wide as the layers' tap shifts span.

    Raises
    ------
    ValueError
        If the conv layers use different or unsupported tiles.
    """
    tiles = {TILES[t]: t for t in TILES}
    found = {}
    for op in weights.network.ops:
        if op.kind == "conv":
            layer = weights[op.name]
            found.setdefault(tiles.get((layer.m, layer.r)), layer.name)
    if None in found:
        raise ValueError(f"layer '{found[None]}' uses a tile the RTL does not support "
                         f"({', '.join(TILES)})")
    if len(found) != 1:
        raise ValueError("the conv layers use several tiles (" + ", ".join(
            f"{t} in '{n}'" for t, n in found.items()) + "); one design runs one tile")
    (tile,) = found
    span = max(int(weights[op.name].tap_left_shifts.max()) for op in weights.network.ops
               if op.kind == "conv")
    return DEFAULT.replace(tile=tile, requant=True, max_tap_shift=span)
