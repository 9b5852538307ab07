"""Read an ONNX or QONNX model into the float network of :mod:`train.netimport`.

The graph must be a chain from its one input to its one output. Supported nodes: ``Conv`` (3x3,
stride, dilation and group 1, equal padding 0..2), ``BatchNormalization`` right after a conv
(folded in float64), ``Relu``, ``MaxPool`` 2x2 stride 2, ``Flatten`` (axis 1), ``Reshape`` to
[N, -1], ``Gemm`` / ``MatMul`` (+ ``Add``) for the one Linear head, ``Dropout`` and
``Identity``. Weights come from initializers and ``Constant`` nodes; exact zeros stay zero
(pruned). Weight quantisers are applied as the model applies them: ONNX ``DequantizeLinear``
(and ``QuantizeLinear`` before it) and QONNX ``Quant`` with their per-channel or per-tensor
scales and zero points, so the imported float weights are the model's own fake-quantised
values. Activation quantisers (``QuantizeLinear`` + ``DequantizeLinear``, or ``Quant``, on the
chain) must be int8 per tensor with zero point 0; their scale becomes the int8 activation scale
of the next conv or linear input instead of a calibrated one. Shape
arithmetic (``Shape``, ``Gather``, ``Unsqueeze``, ``Concat`` ... feeding a ``Reshape``) is
followed only as far as it makes a flatten. Anything else is refused naming the node.
"""

from __future__ import annotations

import re

import numpy as np

from .netimport import FloatOp, ModelImportError, check_conv, check_real, fold_batchnorm

__all__ = ["onnx_ops"]

_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]")
_SHAPE_OPS = ("Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast")
_QUANT_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "finn")
_SUPPORTED = ("Conv 3x3, BatchNormalization, Relu, MaxPool 2x2, Flatten, Reshape, Gemm, MatMul, "
              "Add (a Linear bias), Dropout, Identity, QuantizeLinear / DequantizeLinear and "
              "QONNX Quant")


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _label(node) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


def _layer_name(node, weight_input: str, taken: set) -> str:
    """The weight file's name for a conv / linear: its weight initializer without
    ``.weight`` (PyTorch's exporters keep module names there), else the node's name."""
    base = weight_input[:-len(".weight")] if weight_input.endswith(".weight") else _label(node)
    name = _NAME_RE.sub("_", base.strip("/")) or node.op_type.lower()
    candidate, i = name, 1
    while candidate in taken or candidate == "network":
        candidate, i = f"{name}_{i}", i + 1
    taken.add(candidate)
    return candidate


def _per_axis(v: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """A scale or zero point shaped to broadcast along ``axis`` of an ``ndim`` tensor."""
    v = np.asarray(v)
    if v.ndim == 0 or ndim == 0:
        return v
    shape = [1] * ndim
    shape[axis % ndim] = v.size
    return v.reshape(shape)


def _round(x: np.ndarray, mode: str, source: str, label: str) -> np.ndarray:
    modes = {"ROUND": np.rint, "FLOOR": np.floor, "CEIL": np.ceil, "ROUND_TO_ZERO": np.trunc}
    if mode.upper() not in modes:
        raise ModelImportError(source, f"Quant rounding_mode must be one of {', '.join(modes)}, "
                               f"not {mode!r}", label, "rounding_mode")
    return modes[mode.upper()](x)


def _fold_constant(node, args, source) -> np.ndarray:
    """Evaluate a weight-side node whose inputs are all constants (float64)."""
    a, label, op = _attrs(node), _label(node), node.op_type
    if op in ("Identity", "Cast"):
        return args[0]
    if op == "DequantizeLinear":
        x, scale = args[0].astype(np.float64), args[1].astype(np.float64)
        zp = args[2].astype(np.float64) if len(args) > 2 else 0.0
        axis = a.get("axis", 1)
        return ((x.astype(np.float64) - _per_axis(zp, axis, x.ndim)) *
                _per_axis(scale, axis, x.ndim))
    if op == "QuantizeLinear":
        x, scale = args[0].astype(np.float64), args[1].astype(np.float64)
        zp = args[2] if len(args) > 2 else np.uint8(0)
        axis = a.get("axis", 1)
        info = np.iinfo(np.asarray(zp).dtype)
        q = np.rint(x / _per_axis(scale, axis, x.ndim)) + _per_axis(zp, axis, x.ndim)
        return np.clip(q, info.min, info.max).astype(np.asarray(zp).dtype)
    if op == "Quant":
        x, scale, zp, bits = (np.asarray(v, np.float64) for v in args[:4])
        if bits.size != 1:
            raise ModelImportError(source, "Quant bitwidth must be one number", label)
        b = float(bits)
        signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
        lo = -(2 ** (b - 1)) + narrow if signed else 0.0
        hi = 2 ** (b - 1) - 1 if signed else 2 ** b - 1 - narrow
        mode = a.get("rounding_mode", "ROUND")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        q = np.clip(_round(x / scale + zp, mode, source, label), lo, hi)
        return (q - zp) * scale
    raise ModelImportError(source, f"{op} on constants is not supported", label)


class _Reader:
    """Walks the graph once, keeping the one data tensor that flows along the chain."""

    def __init__(self, model, tile: str, source: str):
        from onnx import numpy_helper

        self.tile, self.source = tile, source
        graph = model.graph
        self.const = {}
        for init in graph.initializer:
            array = numpy_helper.to_array(init)
            check_real(source, init.name, init.name, array.dtype)
            self.const[init.name] = array
        inputs = [i.name for i in graph.input if i.name not in self.const]
        if len(inputs) != 1:
            raise ModelImportError(source, f"the graph must have one data input, not "
                                   f"{len(inputs)} ({', '.join(inputs) or 'none'})")
        self.current, self.shape_values = inputs[0], set()
        self.outputs = [o.name for o in graph.output]
        self.nodes, self.ops, self.taken = graph.node, [], set()
        self.pending = None     # an activation QuantizeLinear waiting for its DequantizeLinear

    def err(self, node, message, key=None):
        return ModelImportError(self.source, message, _label(node), key)

    def weight(self, node, index, what):
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.const:
            raise self.err(node, f"{what} '{name}' must be a constant (an initializer or a "
                           "weight quantiser of one)", what)
        a = np.asarray(self.const[name])
        if not np.all(np.isfinite(a.astype(np.float64))):
            raise self.err(node, f"{what} '{name}' contains NaN or Inf", what)
        return a.astype(np.float64)

    def run(self) -> list[FloatOp]:
        for node in self.nodes:
            self.node(node)
        self.check_no_pending(None)
        if self.outputs != [self.current]:
            raise ModelImportError(self.source, f"the graph output must be the chain's last "
                                   f"tensor '{self.current}', not {', '.join(self.outputs)}")
        if not any(op.kind == "conv" for op in self.ops):
            raise ModelImportError(self.source, "has no Conv node")
        return self.ops

    def node(self, node) -> None:
        ins = [i for i in node.input if i]
        op = node.op_type
        if op == "Constant":
            from onnx import numpy_helper
            value = _attrs(node).get("value")
            if value is None:
                raise self.err(node, "only Constant nodes with a 'value' tensor are supported")
            self.const[node.output[0]] = numpy_helper.to_array(value)
            return
        if ins and all(i in self.const for i in ins) and op in (
                "Identity", "Cast", "DequantizeLinear", "QuantizeLinear", "Quant"):
            if op == "Quant" and node.domain not in _QUANT_DOMAINS:
                raise self.err(node, f"Quant of domain {node.domain!r} is not QONNX's")
            args = [np.asarray(self.const[i]) for i in ins]
            self.const[node.output[0]] = _fold_constant(node, args, self.source)
            return
        if op in _SHAPE_OPS and all(i in self.const or i in self.shape_values or
                                    (op == "Shape" and i == self.current) for i in ins):
            self.shape_values.update(node.output)
            return
        if not ins or ins[0] != self.current:
            raise self.err(node, f"{op} does not take the chain's tensor '{self.current}'; only "
                           "a chain of ops is supported (no skip connections)")
        if any(i == self.current for i in ins[1:]):
            raise self.err(node, f"{op} uses the chain's tensor twice")
        self.check_no_pending(node)
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise self.err(node, f"{op} is not supported; the accelerator runs {_SUPPORTED}")
        result = handler(node)
        if result is not None:
            self.ops.append(result)
        self.current = node.output[0]

    def check_no_pending(self, node) -> None:
        if self.pending is not None and (node is None or node.op_type != "DequantizeLinear"):
            raise self.err(self.pending[0], "QuantizeLinear on the chain must be followed by its "
                           "DequantizeLinear (integer tensors between ops are not supported)")

    def op_Conv(self, node):
        a = _attrs(node)
        w = self.weight(node, 1, "W")
        if w is None or w.ndim != 4:
            raise self.err(node, "W must be a 4-D [K, C, kh, kw] constant", "W")
        kernel = tuple(a.get("kernel_shape", w.shape[2:]))
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = tuple(k // 2 for k in kernel) * 2 if all(k % 2 for k in kernel) else (-1,)
        elif auto == "VALID":
            pads = (0, 0, 0, 0)
        else:
            pads = tuple(a.get("pads", (0, 0, 0, 0)))
        name = _layer_name(node, node.input[1], self.taken)
        padding = check_conv(self.source, name, self.tile, kernel, a.get("strides", (1, 1)),
                             a.get("dilations", (1, 1)), a.get("group", 1), pads)
        return FloatOp("conv", name, w, self.weight(node, 2, "B"), padding)

    def op_BatchNormalization(self, node):
        a = _attrs(node)
        if a.get("training_mode", 0):
            raise self.err(node, "training_mode must be 0 (inference statistics)",
                           "training_mode")
        if len(node.output) > 1 and any(node.output[1:]):
            raise self.err(node, "must have one output (inference mode)")
        if not self.ops or self.ops[-1].kind != "conv":
            after = str(self.ops[-1]) if self.ops else "the input"
            raise self.err(node, f"BatchNorm must follow a convolution directly (to be folded "
                           f"into it), not {after}")
        conv = self.ops[-1]
        gamma, beta, mean, var = (self.weight(node, i, k) for i, k in
                                  ((1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")))
        conv.weight, conv.bias = fold_batchnorm(conv.weight, conv.bias, gamma, beta, mean, var,
                                                a.get("epsilon", 1e-5))
        return None

    def op_Relu(self, node):
        return FloatOp("relu")

    def op_MaxPool(self, node):
        a = _attrs(node)
        got = (tuple(a.get("kernel_shape", ())), tuple(a.get("strides", (1, 1))),
               tuple(a.get("pads", (0, 0, 0, 0))), tuple(a.get("dilations", (1, 1))),
               int(a.get("ceil_mode", 0)))
        if got != ((2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 0) or len(node.output) > 1 and any(
                node.output[1:]):
            raise self.err(node, f"max pooling must be 2x2 with stride 2, no padding, dilation "
                           f"1 and ceil_mode 0, not kernel {got[0]}, strides {got[1]}, pads "
                           f"{got[2]}, dilations {got[3]}, ceil_mode {got[4]}")
        return FloatOp("maxpool2")

    def op_Flatten(self, node):
        axis = _attrs(node).get("axis", 1)
        if axis != 1:
            raise self.err(node, f"Flatten axis must be 1 (keep the batch axis), not {axis}",
                           "axis")
        return FloatOp("flatten")

    def op_Reshape(self, node):
        target = node.input[1]
        if target in self.const:
            shape = [int(v) for v in np.asarray(self.const[target]).reshape(-1)]
            if len(shape) == 2 and shape[1] == -1 or len(shape) == 2 and shape[0] in (-1, 0, 1):
                return FloatOp("flatten")
            raise self.err(node, f"Reshape to {shape} is not supported; only a flatten to "
                           "[N, -1] is", "shape")
        if target in self.shape_values:
            return FloatOp("flatten")   # x.view(x.size(0), -1): the chain's shape check holds
        raise self.err(node, "Reshape's shape must be a constant or computed from the input's "
                       "shape", "shape")

    def op_Gemm(self, node):
        a = _attrs(node)
        if a.get("transA", 0):
            raise self.err(node, "transA must be 0", "transA")
        B = self.weight(node, 1, "B")
        if B is None or B.ndim != 2:
            raise self.err(node, "B must be a 2-D constant", "B")
        W = float(a.get("alpha", 1.0)) * (B if a.get("transB", 0) else B.T)
        C = self.weight(node, 2, "C")
        bias = None
        if C is not None:
            bias = float(a.get("beta", 1.0)) * np.broadcast_to(C.reshape(-1), (W.shape[0],))
        return FloatOp("linear", _layer_name(node, node.input[1], self.taken), W, bias)

    def op_MatMul(self, node):
        B = self.weight(node, 1, "B")
        if B is None or B.ndim != 2:
            raise self.err(node, "B must be a 2-D constant", "B")
        return FloatOp("linear", _layer_name(node, node.input[1], self.taken), B.T.copy())

    def op_Add(self, node):
        if not self.ops or self.ops[-1].kind != "linear" or self.ops[-1].bias is not None:
            raise self.err(node, "Add is supported only as the bias of a MatMul")
        head = self.ops[-1]
        C = self.weight(node, 1, "B")
        if C is None or C.size not in (1, head.weight.shape[0]):
            raise self.err(node, f"the bias must have {head.weight.shape[0]} values", "B")
        head.bias = np.broadcast_to(C.reshape(-1), (head.weight.shape[0],)).copy()
        return None

    def _activation_quant(self, node, scale, zero_point, low, high):
        """A model's own activation quantiser: only int8 on a per-tensor scale with zero point
        0 is the accelerator's activation format (its scale is then used as it is)."""
        scale, zero_point = np.asarray(scale, np.float64), np.asarray(zero_point, np.float64)
        if scale.size != 1 or not np.all(zero_point == 0) or (low, high) not in (
                (-128, 127), (-127, 127)):
            raise self.err(node, f"activation quantiser must be int8 per tensor with zero point "
                           f"0 (the accelerator's activations), not levels [{low}, {high}] "
                           f"with {scale.size} scale(s) and zero point(s) "
                           f"{np.unique(zero_point).tolist()}")
        if not float(scale) > 0:
            raise self.err(node, f"activation scale must be > 0, not {float(scale)}")
        return FloatOp("quant", scale=float(scale), low=int(low))

    def op_QuantizeLinear(self, node):
        zp = self.const.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        zp = np.uint8(0) if zp is None else np.asarray(zp)
        self.pending = (node, self.weight(node, 1, "y_scale"), zp)
        return None

    def op_DequantizeLinear(self, node):
        pending, self.pending = self.pending, None
        if pending is None or pending[0].output[0] != node.input[0]:
            raise self.err(node, "DequantizeLinear on the chain must follow its "
                           "QuantizeLinear (a float model with fake-quantised activations)")
        q_node, scale, zp = pending
        zp2 = self.const.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        same = np.array_equal(self.weight(node, 1, "x_scale"), scale) and (
            zp2 is None and not np.any(zp) or zp2 is not None and np.array_equal(zp2, zp))
        if not same:
            raise self.err(node, "DequantizeLinear must use its QuantizeLinear's scale and "
                           "zero point")
        info = np.iinfo(zp.dtype)
        return self._activation_quant(q_node, scale, zp, int(info.min), int(info.max))

    def op_Quant(self, node):
        if node.domain not in _QUANT_DOMAINS:
            raise self.err(node, f"Quant of domain {node.domain!r} is not QONNX's")
        a = _attrs(node)
        scale, zp, bits = (self.weight(node, i, k) for i, k in
                           ((1, "scale"), (2, "zeropt"), (3, "bitwidth")))
        mode = a.get("rounding_mode", "ROUND")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode.upper() != "ROUND":
            raise self.err(node, f"activation Quant rounding_mode must be ROUND, not {mode!r}")
        b, narrow = float(bits.reshape(-1)[0]), int(a.get("narrow", 0))
        signed = bool(a.get("signed", 1))
        low = int(-(2 ** (b - 1)) + narrow) if signed else 0
        high = int(2 ** (b - 1) - 1) if signed else int(2 ** b - 1 - narrow)
        return self._activation_quant(node, scale, zp, low, high)

    def op_Dropout(self, node):
        return None

    def op_Identity(self, node):
        return None


def onnx_ops(model, tile: str, source: str = "<onnx>") -> list[FloatOp]:
    """The float network of an ``onnx.ModelProto`` (a chain of supported nodes).

    Raises
    ------
    ModelImportError
        Naming the node (or layer) the accelerator cannot run.
    """
    return _Reader(model, tile, source).run()
