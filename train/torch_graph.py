"""Read a PyTorch model's structure into the float network of :mod:`train.netimport`.

:func:`module_ops` traces ``forward`` with ``torch.fx`` (standard modules kept as leaves), so the
order of operations is the model's own, strides and padding come from the modules, and anything
the accelerator cannot run is refused naming the module. :func:`layout_ops` builds the same list
from a bare state_dict and a layout the user names (a state_dict records neither the order of
operations nor strides). Supported: ``Conv2d`` (3x3, stride, dilation and groups 1, zero
padding 0..2), ``BatchNorm2d`` right after a conv (folded), ``ReLU``, ``MaxPool2d(2)``,
``Flatten`` / ``torch.flatten(x, 1)`` / ``x.view(x.size(0), -1)``, ``Dropout`` and ``Identity``
(no-ops at inference) and one ``Linear`` head.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .netimport import FloatOp, ModelImportError, check_conv, check_real, fold_batchnorm

__all__ = ["LAYOUT_WORDS", "layout_ops", "module_ops"]

#: Layout items that are not state_dict prefixes.
LAYOUT_WORDS = ("relu", "maxpool2", "flatten")

_LEAVES = (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.Flatten,
           nn.Dropout, nn.Identity)
_SUPPORTED = ("Conv2d 3x3, BatchNorm2d, ReLU, MaxPool2d(2), Flatten, Dropout, Identity and one "
              "Linear head")


class _Tracer(torch.fx.Tracer):
    """Keeps every torch.nn module (and subclasses of the supported ones) as one node."""

    def is_leaf_module(self, module, qualified_name):
        return isinstance(module, _LEAVES) or super().is_leaf_module(module, qualified_name)


def _array(source, name, key, tensor) -> np.ndarray:
    check_real(source, name, key, tensor.dtype)
    a = tensor.detach().cpu().double().numpy()
    if not np.all(np.isfinite(a)):
        raise ModelImportError(source, "contains NaN or Inf", name, key)
    return a


def _conv_op(source, name, conv: nn.Conv2d, tile) -> FloatOp:
    if conv.padding_mode != "zeros":
        raise ModelImportError(source, f"padding_mode must be 'zeros', not "
                               f"{conv.padding_mode!r}", name)
    pad = conv.padding
    if pad == "valid":
        pad = (0, 0)
    elif pad == "same":
        pad = tuple(k // 2 for k in conv.kernel_size)
    padding = check_conv(source, name, tile, conv.kernel_size, conv.stride, conv.dilation,
                         conv.groups, pad)
    # train's MaskedConv2d and torch.nn.utils.prune keep the masked kernel apart.
    weight = conv.effective_weight() if hasattr(conv, "effective_weight") else conv.weight
    weight = _array(source, name, "weight", weight)
    bias = None if conv.bias is None else _array(source, name, "bias", conv.bias)
    return FloatOp("conv", name, weight, bias, padding)


def _fold(source, name, ops: list[FloatOp], gamma, beta, mean, var, eps) -> None:
    """Fold BatchNorm ``name`` into the conv just before it (refused anywhere else)."""
    if not ops or ops[-1].kind != "conv":
        after = str(ops[-1]) if ops else "the input"
        raise ModelImportError(source, f"BatchNorm must follow a convolution directly (to be "
                               f"folded into it), not {after}", name)
    conv = ops[-1]
    if len(mean) != conv.weight.shape[0]:
        raise ModelImportError(source, f"has {len(mean)} channels, but conv '{conv.name}' "
                               f"before it has {conv.weight.shape[0]}", name)
    conv.weight, conv.bias = fold_batchnorm(conv.weight, conv.bias, gamma, beta, mean, var, eps)


def _batchnorm(source, name, bn: nn.BatchNorm2d, ops) -> None:
    if bn.running_mean is None or bn.running_var is None:
        raise ModelImportError(source, "has no running statistics (track_running_stats="
                               "False): its inference output depends on the batch", name)
    k = bn.num_features
    gamma = _array(source, name, "weight", bn.weight) if bn.affine else np.ones(k)
    beta = _array(source, name, "bias", bn.bias) if bn.affine else np.zeros(k)
    _fold(source, name, ops, gamma, beta, _array(source, name, "running_mean", bn.running_mean),
          _array(source, name, "running_var", bn.running_var), bn.eps)


def _maxpool(source, name, kernel, stride, padding, dilation, ceil_mode) -> FloatOp:
    stride = kernel if stride is None or stride == [] else stride
    got = tuple(v if isinstance(v, int) else tuple(v) for v in
                (kernel, stride, padding, dilation, ceil_mode))
    ok = [(2, (2, 2)), (2, (2, 2)), (0, (0, 0)), (1, (1, 1)), (False,)]
    if any(v not in allowed for v, allowed in zip(got, ok)):
        raise ModelImportError(source, f"max pooling must be 2x2 with stride 2, no padding, "
                               f"dilation 1 and ceil_mode False, not kernel {got[0]}, stride "
                               f"{got[1]}, padding {got[2]}, dilation {got[3]}, ceil_mode "
                               f"{got[4]}", name)
    return FloatOp("maxpool2")


def _flatten_dims(source, name, start, end) -> FloatOp:
    if (start, end) != (1, -1):
        raise ModelImportError(source, f"flatten must keep the batch axis (start_dim 1, "
                               f"end_dim -1), not start_dim {start}, end_dim {end}", name)
    return FloatOp("flatten")


def _module_op(source, name, mod, ops, tile) -> FloatOp | None:
    if isinstance(mod, nn.Conv2d):
        return _conv_op(source, name, mod, tile)
    if isinstance(mod, nn.BatchNorm2d):
        _batchnorm(source, name, mod, ops)
        return None
    if isinstance(mod, nn.ReLU):
        return FloatOp("relu")
    if isinstance(mod, nn.MaxPool2d):
        return _maxpool(source, name, mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                        mod.ceil_mode)
    if isinstance(mod, nn.Flatten):
        return _flatten_dims(source, name, mod.start_dim, mod.end_dim)
    if isinstance(mod, nn.Linear):
        bias = None if mod.bias is None else _array(source, name, "bias", mod.bias)
        return FloatOp("linear", name, _array(source, name, "weight", mod.weight), bias)
    if isinstance(mod, (nn.Dropout, nn.Identity)):
        return None
    raise ModelImportError(source, f"{type(mod).__name__} is not supported; the accelerator "
                           f"runs {_SUPPORTED}", name)


def _arg(node, index, keyword, default):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(keyword, default)


def _function_op(source, node) -> FloatOp | None:
    target, name = node.target, node.name
    if target in (F.relu, torch.relu, torch.relu_) or (node.op == "call_method" and
                                                       target in ("relu", "relu_")):
        return FloatOp("relu")
    if target is torch.flatten or (node.op == "call_method" and target == "flatten"):
        return _flatten_dims(source, name, _arg(node, 1, "start_dim", 0),
                             _arg(node, 2, "end_dim", -1))
    if target in (F.max_pool2d, torch.max_pool2d):
        return _maxpool(source, name, _arg(node, 1, "kernel_size", None),
                        _arg(node, 2, "stride", None), _arg(node, 3, "padding", 0),
                        _arg(node, 4, "dilation", 1), _arg(node, 5, "ceil_mode", False))
    if node.op == "call_method" and target in ("view", "reshape"):
        shape = node.args[1:]
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if len(shape) == 2 and _is_batch_size(shape[0]) and shape[1] == -1:
            return FloatOp("flatten")
        raise ModelImportError(source, f"{target}{tuple(shape)} is not supported; only "
                               "x.view(x.size(0), -1) (a flatten) is", name)
    kind = getattr(target, "__name__", str(target))
    raise ModelImportError(source, f"operation {kind!r} is not supported; the accelerator "
                           f"runs {_SUPPORTED}", name)


def _is_size(node) -> bool:
    """``x.size(...)``, ``x.shape`` and items of them: helpers of a view, carrying no data."""
    if node.op == "call_method" and node.target == "size":
        return True
    if node.op == "call_function" and node.target is getattr:
        return tuple(node.args[1:]) == ("shape",)
    return (node.op == "call_function" and node.target is operator.getitem
            and isinstance(node.args[0], torch.fx.Node) and _is_size(node.args[0]))


def _is_batch_size(arg) -> bool:
    """``x.size(0)`` or ``x.shape[0]``."""
    if not isinstance(arg, torch.fx.Node):
        return False
    if arg.op == "call_method" and arg.target == "size":
        return tuple(arg.args[1:]) == (0,)
    return arg.target is operator.getitem and _is_size(arg) and arg.args[1] == 0


def module_ops(module: nn.Module, tile: str, source: str | None = None) -> list[FloatOp]:
    """The float network of ``module`` (a chain: one input, each op feeding the next).

    Raises
    ------
    ModelImportError
        Naming the module or operation the accelerator cannot run (or that breaks the chain).
    """
    source = source or f"<{type(module).__name__}>"
    try:
        graph = _Tracer().trace(module)
    except Exception as exc:  # tracing runs user code; report any failure on one line
        raise ModelImportError(source, f"cannot trace forward() with torch.fx "
                               f"({type(exc).__name__}: {' '.join(str(exc).split())}); "
                               "export the model to ONNX and use train.import_onnx") from None
    modules = dict(module.named_modules())
    ops, current = [], None
    for node in graph.nodes:
        if node.op == "placeholder":
            if current is not None:
                raise ModelImportError(source, "forward() takes more than one input", node.name)
            current = node
            continue
        if _is_size(node):
            continue
        data_inputs = [n for n in node.all_input_nodes if not _is_size(n)]
        if node.op == "output":
            if data_inputs != [current]:
                raise ModelImportError(source, "forward() must return the last op's output "
                                       "(one tensor)")
            break
        if data_inputs != [current]:
            raise ModelImportError(source, f"op '{node.name}' does not take the previous op's "
                                   "output alone; only a chain of ops is supported (no skip "
                                   "connections, no second input)",
                                   str(node.target) if node.op == "call_module" else node.name)
        if node.op == "call_module":
            op = _module_op(source, str(node.target), modules[node.target], ops, tile)
        elif node.op in ("call_function", "call_method"):
            op = _function_op(source, node)
        else:
            raise ModelImportError(source, f"op '{node.name}' ({node.op}) is not supported",
                                   node.name)
        if op is not None:
            ops.append(op)
        current = node
    if not any(op.kind == "conv" for op in ops):
        raise ModelImportError(source, "has no Conv2d layer")
    return ops


def layout_ops(state_dict: Mapping[str, torch.Tensor], layout: Sequence[str], tile: str,
               padding=1, source: str = "<state_dict>") -> list[FloatOp]:
    """The float network of a state_dict, in the order the user names.

    Parameters
    ----------
    state_dict : mapping of str to Tensor
        Conv weights may be ``torch.nn.utils.prune``'s ``weight_orig`` + ``weight_mask``.
    layout : sequence of str
        Prefixes of the state_dict (a 4-D ``weight``: a 3x3 stride-1 conv; ``running_mean``: a
        BatchNorm folded into the conv before it; a 2-D ``weight``: the Linear head) and the
        words ``relu``, ``maxpool2``, ``flatten``.
    padding : int or mapping of layer -> int
        Each conv's zero padding (a state_dict does not record it).

    Raises
    ------
    ModelImportError
        For an unknown item, a tensor the layout leaves unused, or a layer that cannot run.
    """
    from .state_dict import conv_kernel

    used, ops = set(), []
    for item in layout:
        if item in LAYOUT_WORDS:
            ops.append(FloatOp(item))
            continue
        keys = {k[len(item) + 1:]: k for k in state_dict if k.startswith(f"{item}.")}
        used.update(keys.values())
        tensors = {short: state_dict[key] for short, key in keys.items()}
        for short, tensor in tensors.items():
            if isinstance(tensor, torch.Tensor):
                check_real(source, item, keys[short], tensor.dtype)
        if "running_mean" in tensors:
            k = tensors["running_mean"].shape[0]
            get = {n: _array(source, item, keys[n], tensors[n]) if n in tensors else None
                   for n in ("weight", "bias", "running_mean", "running_var")}
            if get["running_var"] is None:
                raise ModelImportError(source, "missing", item, f"{item}.running_var")
            _fold(source, item, ops, np.ones(k) if get["weight"] is None else get["weight"],
                  np.zeros(k) if get["bias"] is None else get["bias"], get["running_mean"],
                  get["running_var"], 1e-5)
            continue
        weight = tensors.get("weight", tensors.get("weight_orig"))
        if weight is None:
            raise ModelImportError(source, f"layout item {item!r} is neither "
                                   f"{', '.join(LAYOUT_WORDS)} nor a layer of the state_dict "
                                   f"('{item}.weight')", item)
        bias = tensors.get("bias")
        bias = None if bias is None else _array(source, item, f"{item}.bias", bias)
        if weight.ndim == 2:
            ops.append(FloatOp("linear", item, _array(source, item, f"{item}.weight", weight),
                               bias))
            continue
        g, key = conv_kernel(state_dict, item, source)
        pad = padding.get(item) if isinstance(padding, Mapping) else padding
        pad = check_conv(source, item, tile, tuple(g.shape[2:]) if g.ndim == 4 else (0, 0),
                         (1, 1), (1, 1), 1, (pad, pad))
        ops.append(FloatOp("conv", item, _array(source, item, key, g), bias, pad))
    unused = [k for k in state_dict if k not in used and not k.endswith("num_batches_tracked")]
    if unused:
        raise ModelImportError(source, "not used by the layout; name its layer in the layout "
                               "(nothing is dropped silently)", key=unused[0])
    return ops
