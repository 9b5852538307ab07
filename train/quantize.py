"""Int8 quantisation of Winograd-domain weights and export of the whole network (weight file v2).

Weights: per output channel k and, with tap shifts, per Winograd position (i, j), symmetric,
``U_q = clip(round(U * 2**tap_shift[i, j] / scale[k]), -127, 127)`` (``tap_shift`` all zero
without tap shifts). Without tap shifts the scale is chosen among ``f * max |U[k]| / 127`` to
minimise the importance-weighted rounding error; with them (:mod:`train.tapwise`) the tap shifts
follow each position's range relative to the channel scale (``"range"``) or minimise the
rounding error (``"error"``, the default: it measures better), and the weights are rounded for
the least output error rather than each to its nearest step. Pruned (zero) weights stay
exactly zero. Weights that round to zero count as pruned: ``U_float`` is stored zero there, as
the format requires.
Bias: ``bias_q = round(bias / (input_scale * scale[k] * 2**-T))`` as int32 with
``T = max(tap_shift)``, so that the integer layer's output times that step approximates the
float output. Requantisation: conv ``i`` maps its raw output to the next op's int8 input with
``golden.quant.quantize_multiplier(input_scale * scale[k] * 2**-T / next_input_scale)`` and
ReLU (max pooling commutes with this monotone map, so it runs on int8 after it). Classifier: one
scale for all of ``W`` (``s_w = max |W| / 127``), so that the int64 logits ``W_q x_q + b_q`` are
the float logits divided by one positive ``s_w * s_x`` and their argmax is the float model's.
"""

from __future__ import annotations

import numpy as np
import torch

from golden.netfile import MAX_TAP_SHIFT, LinearWeights, Network, NetworkOp
from golden.quant import quantize_multiplier
from golden.transforms import tile_transform
from golden.weights import LayerWeights, WeightFile, validate_arrays

from .tapwise import (QMAX, TAP_SHIFT_METHODS, choose_steps, output_hessian, round_for_output,
                      round_nearest)
from .winograd import WinogradConv2d, importance_matrix, spatial_to_winograd

__all__ = [
    "QMAX",
    "TAP_SHIFT_METHODS",
    "calibrate_input_scales",
    "choose_steps",
    "export_model",
    "export_network",
    "quantize_layer",
    "output_hessian",
    "output_step",
    "quantize_linear",
    "set_requantisation",
]



def _channel_scales(U: np.ndarray, tile: str) -> np.ndarray:
    """Per-channel scales minimising the output error the rounding causes.

    An error at Winograd position (i, j) reaches the output amplified about I_ij times
    (importance matrix), and for F(4x4, 3x3) the high-importance positions hold the smallest
    weights; so the scale minimises sum I_ij**2 (U - s * q)**2 over s = f * max|U| / 127,
    f in [0.25, 1] (clipping a few large low-importance weights can pay for finer steps).
    """
    k = U.shape[0]
    weight = importance_matrix(tile, normalise=True) ** 2
    peak = np.abs(U).reshape(k, -1).max(axis=1)
    best = np.where(peak > 0, peak / QMAX, 1.0 / QMAX)   # all-zero channel: any positive scale
    best_err = np.full(k, np.inf)
    for f in np.linspace(1.0, 0.25, 61):
        s = (np.where(peak > 0, peak * f / QMAX, 1.0 / QMAX)).astype(np.float32)
        s64 = s.astype(np.float64)[:, None, None, None]
        deq = np.clip(np.rint(U / s64), -QMAX, QMAX) * s64
        err = (weight * (U - deq) ** 2).reshape(k, -1).sum(axis=1)
        better = err < best_err * (1 - 1e-9)
        best = np.where(better, s, best)
        best_err = np.where(better, err, best_err)
    return best.astype(np.float32)


def output_step(layer: LayerWeights) -> np.ndarray:
    """The real value of one step of the layer's raw output per unit input step:
    ``scale[k] * 2**-max(tap_shift)`` (float64 [K])."""
    T = 0 if layer.tap_shift is None else int(np.max(layer.tap_shift))
    return layer.scale.astype(np.float64) * 2.0 ** -T


def quantize_layer(name: str, U: np.ndarray, tile: str, padding: int,
                   bias: np.ndarray | None = None, input_scale: float | None = None,
                   tap_shifts: bool = False, steps: tuple | None = None,
                   max_span: int = MAX_TAP_SHIFT) -> LayerWeights:
    """Quantise one layer's Winograd-domain weights and bias into a :class:`LayerWeights`.

    Parameters
    ----------
    name : str
        Layer name in the weight file.
    U : ndarray [K, C, alpha, alpha]
        Float Winograd-domain weights (zeros are pruned weights).
    tile : str
        Tile name; AT, BT and G come from golden.
    padding : int
        The layer's zero padding.
    bias : ndarray [K], optional
        Float bias; needs ``input_scale``.
    input_scale : float, optional
        Real value of one step of the layer's int8 input.
    tap_shifts : bool
        Give every Winograd position its power-of-two scale (:func:`choose_steps`) and round
        for the least output error (:func:`output_hessian`); a layer whose shifts are not all
        zero needs weight file version 2.
    steps : (scale [K], tap_shift [alpha, alpha]), optional
        Use these steps (e.g. those of quantisation-aware training) instead of choosing them.
    max_span : int
        With ``tap_shifts``: the largest span of the tap shifts.

    Raises
    ------
    ValueError
        For a bias without input scale, a non-finite weight, or a bias beyond int32.
    """
    U = np.asarray(U, dtype=np.float64)
    tr = tile_transform(tile)
    a = tr.alpha
    if U.ndim != 4 or U.shape[2:] != (a, a):
        raise ValueError(f"layer '{name}': U must have shape [K, C, {a}, {a}], "
                         f"not {list(U.shape)}")
    if not np.all(np.isfinite(U)):
        raise ValueError(f"layer '{name}': U contains NaN or Inf")
    if steps is not None:
        scale32, tap_shift = np.asarray(steps[0], np.float32), np.asarray(steps[1], np.int8)
    elif tap_shifts:
        scale32, tap_shift = choose_steps(U, tile, max_span=max_span)
    else:
        scale32, tap_shift = _channel_scales(U, tile), np.zeros((a, a), np.int8)
    if tap_shifts:
        U_q = round_for_output(U, scale32, tap_shift, tile).astype(np.int8)
    else:
        U_q = round_nearest(U, scale32, tap_shift).astype(np.int8)
    U_float = np.where(U_q != 0, U, 0.0).astype(np.float32)
    T = int(tap_shift.max())
    bias_q = None
    if bias is not None:
        if input_scale is None:
            raise ValueError(f"layer '{name}': a bias needs the layer's input scale")
        bias = np.asarray(bias, dtype=np.float64)
        step = float(np.float32(input_scale)) * scale32.astype(np.float64) * 2.0 ** -T
        b = np.rint(bias / step)
        if np.any(np.abs(b) > np.iinfo(np.int32).max):
            raise ValueError(f"layer '{name}': bias does not fit int32 at input scale "
                             f"{input_scale:g}; the input scale is too small")
        bias_q = b.astype(np.int32)
    return LayerWeights(
        name=name, m=tr.m, r=tr.r, AT=tr.AT_int, BT=tr.BT_int, G=tr.G_float, U=U_q,
        scale=scale32, padding=int(padding), bias=bias_q, U_float=U_float,
        input_scale=None if input_scale is None else float(np.float32(input_scale)),
        tap_shift=tap_shift if tap_shift.any() else None)


@torch.no_grad()
def calibrate_input_scales(model, x: torch.Tensor) -> list[float]:
    """Return each convolution's input scale and then the classifier's, max |input| / 127 over
    the batch ``x``."""
    peaks = []
    hooks = [module.register_forward_pre_hook(
        lambda mod, args: peaks.append(float(args[0].abs().max())))
        for module in [*model.convs, model.classifier]]
    try:
        model.eval()
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return [max(p, 1e-8) / QMAX for p in peaks]


def _winograd_weights(conv, tile: str) -> np.ndarray:
    """U of a Winograd layer, or G g G^T (float64) of a spatial one."""
    if isinstance(conv, WinogradConv2d):
        return conv.effective_weight().detach().double().numpy()
    g = conv.effective_weight().detach().double()
    return spatial_to_winograd(g, tile).numpy()


def export_model(model, tile: str, input_scales: list[float], tap_shifts: bool = False,
                 steps: dict | None = None, max_span: int = MAX_TAP_SHIFT) -> list[LayerWeights]:
    """Quantise every convolution of a :class:`~train.models.VGGLike` into weight-file layers
    (without requantisation; ``input_scales`` from :func:`calibrate_input_scales`; ``steps``
    maps layer names to the (scale, tap_shift) of quantisation-aware training)."""
    layers = []
    for name, conv, s in zip(model.conv_names, model.convs, input_scales):
        bias = None if conv.bias is None else conv.bias.detach().double().numpy()
        padding = conv.padding if isinstance(conv.padding, int) else conv.padding[0]
        layers.append(quantize_layer(name, _winograd_weights(conv, tile), tile, padding,
                                     bias, s, tap_shifts=tap_shifts and steps is None,
                                     steps=None if steps is None else steps.get(name),
                                     max_span=max_span))
    return layers


def quantize_linear(name: str, W: np.ndarray, b: np.ndarray, input_scale: float) -> LinearWeights:
    """Quantise a classifier ``W x + b`` with one weight scale (see the module docstring).

    Raises
    ------
    ValueError
        For a non-finite weight or a bias beyond int32.
    """
    W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
        raise ValueError(f"linear '{name}': weights contain NaN or Inf")
    peak = float(np.abs(W).max())
    s_w = float(np.float32(peak / QMAX if peak > 0 else 1.0 / QMAX))
    W_q = np.clip(np.rint(W / s_w), -QMAX, QMAX).astype(np.int8)
    b_q = np.rint(b / (s_w * float(np.float32(input_scale))))
    if np.any(np.abs(b_q) > np.iinfo(np.int32).max):
        raise ValueError(f"linear '{name}': bias does not fit int32 at input scale "
                         f"{input_scale:g}; the input scale is too small")
    return LinearWeights(name, W_q, b_q.astype(np.int32))


def set_requantisation(layer: LayerWeights, next_input_scale: float, relu: bool) -> None:
    """Give ``layer`` the requantisation onto the next op's int8 input (module docstring):
    ``quantize_multiplier(input_scale * scale[k] * 2**-T / next_input_scale)`` per channel
    (:func:`output_step`), and ReLU."""
    next_scale = float(np.float32(next_input_scale))
    ratios = layer.input_scale * output_step(layer) / next_scale
    mult, shift = zip(*(quantize_multiplier(float(v)) for v in ratios))
    layer.requant_mult = np.array(mult, dtype=np.int32)
    layer.requant_shift = np.array(shift, dtype=np.int32)
    layer.relu = bool(relu)


def export_network(model, tile: str, input_scales: list[float],
                   classes: list[str] | None = None, tap_shifts: bool = False,
                   steps: dict | None = None, max_span: int = MAX_TAP_SHIFT) -> WeightFile:
    """The whole :class:`~train.models.VGGLike` as a validated version 2 weight file.

    Parameters
    ----------
    model : VGGLike
        Trained network.
    tile : str
        Tile name.
    input_scales : list of float
        One per convolution, then the classifier's (:func:`calibrate_input_scales`).
    classes : list of str, optional
        Class names, one per logit.
    tap_shifts : bool
        Quantise with tap shifts (:func:`choose_steps`).
    steps : dict, optional
        Layer name -> (scale, tap_shift) to use (from quantisation-aware training); the
        weights are rounded to the nearest step then.
    max_span : int
        With ``tap_shifts``: the largest span of a layer's tap shifts.

    Raises
    ------
    ValueError
        If a scale ratio has no fixed-point multiplier, or a bias does not fit int32.
    """
    layers = export_model(model, tile, input_scales, tap_shifts, steps, max_span)
    ops = []
    for i, layer in enumerate(layers):
        set_requantisation(layer, input_scales[i + 1], relu=True)
        ops.append(NetworkOp("conv", layer.name))
        if i in model.pool_after:
            ops.append(NetworkOp("maxpool2"))
    ops += [NetworkOp("flatten"), NetworkOp("linear", "fc")]
    head = quantize_linear("fc", model.classifier.weight.detach().double().numpy(),
                           model.classifier.bias.detach().double().numpy(), input_scales[-1])
    network = Network(ops=ops, input_shape=tuple(model.input_shape),
                      input_scale=float(np.float32(input_scales[0])), linear=head,
                      classes=None if classes is None else list(classes))
    return validate_arrays(WeightFile(layers, network=network).arrays())
