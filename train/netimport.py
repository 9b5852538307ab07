"""The float network both importers produce, and its quantisation into weight file v2.

:mod:`train.torch_graph` (PyTorch modules, named state_dict layouts) and
:mod:`train.onnx_graph` (ONNX / QONNX) turn a model into the same list of :class:`FloatOp`:
``conv`` (3x3, stride 1, BatchNorm already folded in float64), ``relu``, ``maxpool2``,
``flatten``, one ``linear`` head, and ``quant``: a model's own int8 activation quantiser, whose
scale then replaces the calibrated one of the next conv or linear input. :func:`build_network`
quantises it with the trainer's quantiser (:func:`train.quantize.quantize_layer`,
:func:`~train.quantize.quantize_linear`, :func:`~train.quantize.set_requantisation`) after
calibrating the activation scales on images (max |activation| / 127, as the trainer does), and
:func:`measure_errors` compares the integer network with the float one. The checks both
importers share (:func:`check_conv`, :func:`check_real`) live here, so that a layer is refused
with the same words either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from golden.netfile import Network, NetworkOp
from golden.network import quantize_input, run_network
from golden.transforms import tile_transform
from golden.weights import WeightFile, WeightFileError, validate_arrays

from .quantize import QMAX, output_step, quantize_layer, quantize_linear, set_requantisation
from .winograd import spatial_to_winograd

__all__ = ["FLOAT_OP_KINDS", "FloatOp", "LayerError", "ModelImportError", "build_network",
           "check_conv", "check_real", "fold_batchnorm", "measure_errors", "run_float"]

#: Kinds of :class:`FloatOp`, the operations the accelerator (and its host) can run.
FLOAT_OP_KINDS = ("conv", "relu", "maxpool2", "flatten", "linear", "quant")


class ModelImportError(ValueError):
    """A model cannot become a weight file; the message names source, layer and key.

    Members
    -------
    source : str
        The model file (or ``<ClassName>`` for an in-memory module).
    layer, key : str or None
        Where the problem is (a layer or op name, a state_dict key or ONNX attribute).
    reason : str
        The message without the location.
    """

    def __init__(self, source: str, message: str, layer: str | None = None,
                 key: str | None = None):
        where = [source]
        if layer is not None:
            where.append(f"layer '{layer}'")
        if key is not None:
            where.append(f"key '{key}'")
        self.source, self.layer, self.key, self.reason = source, layer, key, message
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass
class FloatOp:
    """One operation of the float network.

    Members
    -------
    kind : str
        One of :data:`FLOAT_OP_KINDS`.
    name : str or None
        Layer name (conv, linear): the weight file's layer or linear op name.
    weight : ndarray or None
        float64: conv [K, C, 3, 3] spatial kernels, linear [O, I].
    bias : ndarray or None
        float64 [K] or [O]; None for none.
    padding : int
        Zero padding of a conv on every side.
    scale : float or None
        Of a ``quant``: the activation becomes ``clip(rint(x / scale), low, 127) * scale``.
    low : int
        Of a ``quant``: -128, or -127 for a narrow-range quantiser.
    """

    kind: str
    name: str | None = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    padding: int = 0
    scale: float | None = None
    low: int = -128

    def __str__(self) -> str:
        return self.kind if self.name is None else f"{self.kind} '{self.name}'"


@dataclass(frozen=True)
class LayerError:
    """Measured error of one conv layer of the integer network against the float network.

    Members
    -------
    name : str
        The layer.
    relative_rms : float
        ``||y_int - y_float|| / ||y_float||`` over the images, where ``y_int`` is the raw integer
        output times ``input_scale * scale[k]`` and ``y_float`` the float model's conv output
        (before ReLU), both inside the whole network (errors of earlier layers included).
    """

    name: str
    relative_rms: float


def check_real(source: str, name: str, key: str, dtype) -> None:
    """Refuse a weight whose dtype is not a real floating-point (or integer) type."""
    text = str(dtype).removeprefix("torch.")
    if "complex" in text or text == "bool":
        raise ModelImportError(source, f"dtype must be real, not {text}; the accelerator's "
                               "weights are real numbers", name, key)


def check_conv(source: str, name: str, tile: str, kernel, stride, dilation, groups,
               padding) -> int:
    """Check a convolution's geometry against what the accelerator runs; return its padding.

    Parameters
    ----------
    kernel, stride, dilation : tuple of int
        Per spatial axis.
    groups : int
    padding : tuple of int
        (top, left, bottom, right) or (rows, columns).

    Raises
    ------
    ModelImportError
        For stride, dilation or groups other than 1, a kernel other than r x r, or padding that
        differs between sides or lies outside [0, r - 1], naming the layer.
    """
    r = tile_transform(tile).r
    kernel, stride, dilation = (tuple(int(v) for v in t) for t in (kernel, stride, dilation))
    if stride != (1, 1):
        raise ModelImportError(source, f"stride must be (1, 1), not {stride}; the accelerator "
                               "computes stride-1 convolutions only", name)
    if dilation != (1, 1):
        raise ModelImportError(source, f"dilation must be (1, 1), not {dilation}", name)
    if int(groups) != 1:
        raise ModelImportError(source, f"groups must be 1, not {int(groups)}; grouped and "
                               "depthwise convolutions are not supported", name)
    if kernel != (r, r):
        raise ModelImportError(source, f"kernel must be {r}x{r}, not "
                               f"{kernel[0]}x{kernel[1]}; F(mxm, 3x3) tiles run 3x3 kernels "
                               "only", name)
    pads = tuple(int(v) for v in padding)
    if len(set(pads)) != 1:
        raise ModelImportError(source, f"padding must be equal on every side, not {pads}", name)
    if not 0 <= pads[0] <= r - 1:
        raise ModelImportError(source, f"padding must be an integer in [0, {r - 1}], not "
                               f"{pads[0]}", name)
    return pads[0]


def fold_batchnorm(weight, bias, gamma, beta, mean, var, eps: float):
    """Fold an inference BatchNorm into the preceding conv, exactly in float64.

    ``y = gamma (conv(x) + bias - mean) / sqrt(var + eps) + beta`` is the conv with
    ``weight * s`` and ``(bias - mean) * s + beta``, ``s = gamma / sqrt(var + eps)`` per output
    channel. Returns (weight, bias) as float64.
    """
    s = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + float(eps))
    b = np.zeros_like(s) if bias is None else np.asarray(bias, np.float64)
    w = np.asarray(weight, np.float64) * s.reshape(-1, *([1] * (np.ndim(weight) - 1)))
    return w, (b - np.asarray(mean, np.float64)) * s + np.asarray(beta, np.float64)


def _check_shape(source: str, op: FloatOp, index: int, shape: tuple) -> None:
    where = f"op {index} ({op})"
    if op.kind in ("conv", "maxpool2") and len(shape) != 3:
        raise ModelImportError(source, f"{where} needs a [C, H, W] input, not {list(shape)}",
                               op.name)
    if op.kind == "conv" and shape[0] != op.weight.shape[1]:
        raise ModelImportError(source, f"{where} takes {op.weight.shape[1]} input channels, "
                               f"but gets {shape[0]} (shape {list(shape)})", op.name)
    if op.kind == "linear" and shape != (op.weight.shape[1],):
        raise ModelImportError(source, f"{where} takes {op.weight.shape[1]} features, but "
                               f"gets shape {list(shape)} (a flatten before it?)", op.name)


@torch.no_grad()
def run_float(ops: list[FloatOp], images, source: str = "<model>") -> list[np.ndarray]:
    """Run the float network in float64; return every op's output (the last: the logits).

    ``images`` is [N, C, H, W]. Raises :class:`ModelImportError` when shapes do not chain.
    """
    x = torch.as_tensor(np.asarray(images, np.float64))
    outputs = []
    for i, op in enumerate(ops):
        _check_shape(source, op, i, tuple(x.shape[1:]))
        if op.kind == "conv":
            b = None if op.bias is None else torch.as_tensor(op.bias)
            x = F.conv2d(x, torch.as_tensor(op.weight), b, padding=op.padding)
        elif op.kind == "relu":
            x = torch.relu(x)
        elif op.kind == "maxpool2":
            if x.shape[2] < 2 or x.shape[3] < 2:
                raise ModelImportError(source, f"op {i} ({op}): input {x.shape[2]}x"
                                       f"{x.shape[3]} is smaller than 2x2")
            x = F.max_pool2d(x, 2)
        elif op.kind == "flatten":
            x = torch.flatten(x, 1)
        elif op.kind == "quant":
            x = torch.clamp(torch.round(x / op.scale), op.low, QMAX) * op.scale
        else:
            b = None if op.bias is None else torch.as_tensor(op.bias)
            x = F.linear(x, torch.as_tensor(op.weight), b)
        outputs.append(x.numpy())
    return outputs


def _network_ops(ops: list[FloatOp], source: str) -> tuple[list[NetworkOp], dict[str, bool]]:
    """The v2 op list and each conv's ReLU flag. ReLU joins the requantisation of the conv
    before it (max pooling in between commutes with it); anything else is refused."""
    if not ops or ops[-1].kind != "linear":
        last = str(ops[-1]) if ops else "nothing"
        raise ModelImportError(source, f"must end in a Linear head (weight file v2 ends in "
                               f"linear:NAME), not in {last}")
    out, relu, last_conv = [], {}, None
    for i, op in enumerate(ops):
        if op.kind not in FLOAT_OP_KINDS:
            raise ModelImportError(source, f"op {i}: unknown kind {op.kind!r}", op.name)
        if op.kind == "linear" and i != len(ops) - 1:
            raise ModelImportError(source, f"op {i} ({op}): only one Linear, the last op, is "
                                   "supported (the classifier)", op.name)
        if op.kind == "quant":
            continue            # commutes with ReLU and max pooling; sets a scale (below)
        if op.kind == "relu":
            if last_conv is None:
                raise ModelImportError(source, f"op {i} (relu) follows no convolution; the "
                                       "accelerator applies ReLU in a conv's requantisation")
            relu[last_conv] = True
            continue
        if op.kind == "conv":
            last_conv = op.name
            relu[op.name] = False
            out.append(NetworkOp("conv", op.name))
        elif op.kind == "maxpool2":
            out.append(NetworkOp("maxpool2"))
        else:
            last_conv = None    # ReLU after flatten / linear is not representable
            out.append(NetworkOp(op.kind, op.name if op.kind == "linear" else None))
    return out, relu


def _scale(a: np.ndarray) -> float:
    """Activation scale max |a| / 127 (as :func:`train.quantize.calibrate_input_scales`)."""
    return float(np.float32(max(float(np.abs(a).max()), 1e-8) / QMAX))


def _input_scale(ops: list[FloatOp], index: int, x: np.ndarray, source: str) -> float:
    """The input scale of conv / linear ``index``: that of the model's own activation
    quantiser since the previous conv / linear, else calibrated."""
    found = []
    for op in reversed(ops[:index]):
        if op.kind in ("conv", "linear"):
            break
        if op.kind == "quant":
            found.append(float(np.float32(op.scale)))
    if len(set(found)) > 1:
        raise ModelImportError(source, f"the input of op {index} ({ops[index]}) passes "
                               f"activation quantisers of different scales {sorted(set(found))}",
                               ops[index].name)
    return found[0] if found else _scale(x)


def build_network(ops: list[FloatOp], tile: str, calibration, source: str = "<model>",
                  classes: list[str] | None = None,
                  tap_shifts: bool | None = None) -> WeightFile:
    """Quantise a float network into a validated version 2 weight file.

    Parameters
    ----------
    ops : list of FloatOp
        The network; the last op is the ``linear`` head.
    tile : str
        "4x4" or "6x6".
    calibration : array [N, C, H, W]
        Float images; each conv's and the head's input scale is max |input| / 127 over them
        (unless a ``quant`` op of the model sets it), and the network's input shape is theirs.
    source : str
        Where the model came from, for messages.
    classes : list of str, optional
        Class names, one per logit.
    tap_shifts : bool or None
        Quantise the convolutions with tap shifts (``train.quantize.quantize_layer``); None:
        for 6x6 only, as the trainer does.

    Raises
    ------
    ModelImportError
        Naming the op or layer of the first problem.
    """
    x = np.asarray(calibration, np.float64)
    if x.ndim != 4 or x.shape[0] < 1:
        raise ModelImportError(source, f"calibration images must be [N, C, H, W], not "
                               f"{list(x.shape)}")
    if not np.all(np.isfinite(x)):
        raise ModelImportError(source, "calibration images contain NaN or Inf")
    net_ops, relu = _network_ops(ops, source)
    outputs = run_float(ops, x, source)
    inputs = [x] + outputs[:-1]
    quantised = [i for i, op in enumerate(ops) if op.kind in ("conv", "linear")]
    scales = {i: _input_scale(ops, i, inputs[i], source) for i in quantised}
    layers = []
    try:
        for n, i in enumerate(quantised[:-1]):
            op = ops[i]
            U = spatial_to_winograd(torch.as_tensor(op.weight), tile).numpy()
            layer = quantize_layer(op.name, U, tile, op.padding, op.bias, scales[i],
                                   tap_shifts=tile == "6x6" if tap_shifts is None
                                   else tap_shifts)
            set_requantisation(layer, scales[quantised[n + 1]], relu[op.name])
            layers.append(layer)
        head = ops[-1]
        b = np.zeros(head.weight.shape[0]) if head.bias is None else head.bias
        linear = quantize_linear(head.name, head.weight, b, scales[quantised[-1]])
    except ValueError as exc:
        raise ModelImportError(source, str(exc)) from None
    network = Network(ops=net_ops, input_shape=tuple(int(v) for v in x.shape[1:]),
                      input_scale=scales[quantised[0]], linear=linear,
                      classes=None if classes is None else [str(c) for c in classes])
    try:
        return validate_arrays(WeightFile(layers, network=network).arrays(), source)
    except WeightFileError as exc:
        raise ModelImportError(source, exc.reason, exc.layer, exc.key) from None


def measure_errors(weights: WeightFile, ops: list[FloatOp], images
                   ) -> tuple[list[LayerError], float]:
    """Per-layer relative RMS error of the integer network against the float one, and the
    fraction of ``images`` whose top-1 class agrees (ties to the lowest index in both)."""
    images = np.asarray(images, np.float64)
    reference = run_float(ops, images)
    logits, trace = run_network(weights, quantize_input(weights, images))
    float_convs = [out for op, out in zip(ops, reference) if op.kind == "conv"]
    errors = []
    for step, ref in zip((s for s in trace if s.op.kind == "conv"), float_convs):
        layer = weights[step.op.name]
        step_size = layer.input_scale * output_step(layer)
        y = step.raw.astype(np.float64) * step_size[None, :, None, None]
        norm = float(np.linalg.norm(ref))
        errors.append(LayerError(layer.name, float(np.linalg.norm(y - ref)) / max(norm, 1e-300)))
    agree = float(np.mean(np.argmax(logits, axis=-1) == np.argmax(reference[-1], axis=-1)))
    return errors, agree
