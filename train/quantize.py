"""Int8 quantisation of Winograd-domain weights and export of the whole network (weight file v2).

Weights: per output channel k and, with tap shifts, per Winograd position (i, j), symmetric,
``U_q = clip(round(U * 2**tap_shift[i, j] / scale[k]), -127, 127)`` (``tap_shift`` all zero
without tap shifts). Without tap shifts the scale is chosen among ``f * max |U[k]| / 127`` to
minimise the importance-weighted rounding error; with them (:func:`choose_steps`) the tap shifts
follow each position's range relative to the channel scale (``"range"``) or minimise the
rounding error (``"error"``, the default: it measures better). Pruned (zero) weights stay
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

from .winograd import WinogradConv2d, importance_matrix, spatial_to_winograd

__all__ = [
    "QMAX",
    "TAP_SHIFT_METHODS",
    "calibrate_input_scales",
    "choose_steps",
    "fake_quantize",
    "export_model",
    "export_network",
    "quantize_layer",
    "quantize_linear",
    "output_step",
    "set_requantisation",
]

#: Largest int8 weight magnitude of the weight file (symmetric range, -128 unused).
QMAX = 127
#: How :func:`choose_steps` picks tap shifts.
TAP_SHIFT_METHODS = ("range", "error")


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


def _round(U: np.ndarray, scale: np.ndarray, tap_shift: np.ndarray) -> np.ndarray:
    """``clip(rint(U * 2**tap_shift / scale[k]), -127, 127)`` as float64."""
    step = _steps(scale, tap_shift)
    return np.clip(np.rint(U / step), -QMAX, QMAX)


def _steps(scale: np.ndarray, tap_shift: np.ndarray) -> np.ndarray:
    """The real value of one integer step at [k, 1, i, j]: ``scale[k] * 2**-tap_shift[i, j]``."""
    return (np.asarray(scale, dtype=np.float64)[:, None, None, None]
            * np.exp2(-np.asarray(tap_shift, dtype=np.float64))[None, None])


def _range_shifts(U: np.ndarray, scale: np.ndarray, max_span: int) -> np.ndarray:
    """Per position the largest shift that keeps its largest weight within 127 steps."""
    rel = np.abs(U) / np.asarray(scale, dtype=np.float64)[:, None, None, None]
    peak = rel.max(axis=(0, 1))                                  # [a, a], in channel steps
    with np.errstate(divide="ignore"):
        s = np.floor(np.log2(QMAX / np.where(peak > 0, peak, np.inf)) + 1e-12)
    return np.clip(np.where(peak > 0, s, 0), 0, max_span).astype(np.int64)


def _error_shifts(U: np.ndarray, scale: np.ndarray, max_span: int) -> np.ndarray:
    """Per position the shift in [0, max_span] with the least squared rounding error (the
    importance factor is one number per position, so it does not change the choice)."""
    a = U.shape[-1]
    best, best_err = np.zeros((a, a), np.int64), np.full((a, a), np.inf)
    for s in range(max_span + 1):
        shift = np.full((a, a), s)
        err = ((U - _round(U, scale, shift) * _steps(scale, shift)) ** 2).sum(axis=(0, 1))
        better = err < best_err * (1 - 1e-12)
        best, best_err = np.where(better, s, best), np.where(better, err, best_err)
    return best


def _scales_for(U: np.ndarray, tile: str, tap_shift: np.ndarray) -> np.ndarray:
    """Channel scales ``f * max_ij |U[k] * 2**tap_shift| / 127`` minimising the importance-
    weighted rounding error given the tap shifts (f in [0.25, 1])."""
    k = U.shape[0]
    weight = importance_matrix(tile, normalise=True) ** 2
    peak = (np.abs(U) * np.exp2(tap_shift)).reshape(k, -1).max(axis=1)
    best = np.where(peak > 0, peak / QMAX, 1.0 / QMAX).astype(np.float32)
    best_err = np.full(k, np.inf)
    for f in np.linspace(1.0, 0.25, 61):
        s = np.where(peak > 0, peak * f / QMAX, 1.0 / QMAX).astype(np.float32)
        err = (weight * (U - _round(U, s, tap_shift) * _steps(s, tap_shift)) ** 2)
        err = err.reshape(k, -1).sum(axis=1)
        better = err < best_err * (1 - 1e-9)
        best, best_err = np.where(better, s, best), np.where(better, err, best_err)
    return best.astype(np.float32)


def choose_steps(U: np.ndarray, tile: str, method: str = "error",
                 max_span: int = MAX_TAP_SHIFT) -> tuple[np.ndarray, np.ndarray]:
    """Channel scales and tap shifts of one layer's float Winograd weights.

    Parameters
    ----------
    U : ndarray [K, C, alpha, alpha]
        Float Winograd-domain weights (zeros are pruned).
    tile : str
        The tile (its importance matrix weights the channel scale's error).
    method : str
        ``"range"``: scale = max |U[k]| / 127, each position shifted as far as its largest
        weight allows. ``"error"``: starting there, alternately the channel scales
        (importance-weighted error) and each position's shift (rounding error) minimise the
        rounding error.
    max_span : int
        Largest ``max(tap_shift) - min(tap_shift)`` (the design's ``max_tap_shift``).

    Returns
    -------
    scale : ndarray [K] of float32
    tap_shift : ndarray [alpha, alpha] of int8
        In [0, max_span], with min 0 (a common shift is folded into ``scale``).
    """
    if method not in TAP_SHIFT_METHODS:
        raise ValueError(f"method must be one of {', '.join(TAP_SHIFT_METHODS)}, "
                         f"not {method!r}")
    if not isinstance(max_span, int) or not 0 <= max_span <= MAX_TAP_SHIFT:
        raise ValueError(f"max_span must be an integer in [0, {MAX_TAP_SHIFT}], not "
                         f"{max_span!r}")
    U = np.asarray(U, dtype=np.float64)
    k = U.shape[0]
    peak = np.abs(U).reshape(k, -1).max(axis=1)
    scale = np.where(peak > 0, peak / QMAX, 1.0 / QMAX).astype(np.float32)
    shift = _range_shifts(U, scale, max_span)
    if method == "error":
        for _ in range(2):
            shift = _error_shifts(U, scale, max_span)
            shift -= shift.min()                   # the common part belongs to the scale
            scale = _scales_for(U, tile, shift)
    return scale, shift.astype(np.int8)


def output_hessian(tile: str) -> np.ndarray:
    """``H`` [alpha**2, alpha**2]: the expected squared output error of one filter's weight
    errors ``e`` (one input channel, one tile, i.i.d. unit inputs) is ``e^T H e``.

    ``H = R kron R`` with ``R = (AT^T AT) * (BT BT^T)`` (elementwise): the output transform's
    Gram matrix times the covariance of the transformed input. Its diagonal is the squared
    importance matrix ``I**2``.
    """
    tr = tile_transform(tile)
    AT, BT = tr.AT_int.astype(np.float64), tr.BT_int.astype(np.float64)
    R = (AT.T @ AT) * (BT @ BT.T)
    return np.kron(R, R)


def _round_for_output(U: np.ndarray, scale: np.ndarray, tap_shift: np.ndarray,
                      tile: str) -> np.ndarray:
    """Integer weights on the given steps that minimise the expected output error
    (:func:`output_hessian`) rather than each weight's own: every filter's positions are
    rounded one at a time, most important first, and the rounding error of each is
    compensated on the filter's positions not yet rounded (optimal brain quantisation, as in
    GPTQ). Pruned weights take no part and stay zero."""
    k, c, a, _ = U.shape
    n = a * a
    H = output_hessian(tile)
    W = U.reshape(k * c, n).copy()
    step = np.broadcast_to(_steps(scale, tap_shift), U.shape).reshape(k * c, n)
    keep = W != 0
    both = keep[:, :, None] & keep[:, None, :]
    Hinv = np.linalg.inv(np.where(both, H, 0.0) + np.eye(n) * ~keep[:, :, None])
    Q = np.zeros_like(W)
    for j in np.argsort(-np.diag(H), kind="stable"):
        Q[:, j] = np.clip(np.rint(W[:, j] / step[:, j]), -QMAX, QMAX)
        d = Hinv[:, j, j]
        err = (W[:, j] - Q[:, j] * step[:, j]) / d
        W -= err[:, None] * Hinv[:, j, :]
        Hinv -= Hinv[:, :, j, None] * Hinv[:, None, j, :] / d[:, None, None]
    return np.where(keep, Q, 0.0).reshape(U.shape)


def output_step(layer: LayerWeights) -> np.ndarray:
    """The real value of one step of the layer's raw output per unit input step:
    ``scale[k] * 2**-max(tap_shift)`` (float64 [K])."""
    T = 0 if layer.tap_shift is None else int(np.max(layer.tap_shift))
    return layer.scale.astype(np.float64) * 2.0 ** -T


def fake_quantize(U: torch.Tensor, scale: np.ndarray, tap_shift: np.ndarray) -> torch.Tensor:
    """Quantise and dequantise ``U`` [K, C, alpha, alpha] on the given steps, with the
    straight-through estimator (the gradient passes unchanged; zeros stay zero)."""
    step = torch.as_tensor(_steps(scale, tap_shift), dtype=U.dtype)
    q = torch.clamp(torch.round(U / step), -QMAX, QMAX) * step
    return U + (q - U).detach()


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
        U_q = _round_for_output(U, scale32, tap_shift, tile).astype(np.int8)
    else:
        U_q = _round(U, scale32, tap_shift).astype(np.int8)
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
