"""Import a user's PyTorch model: the whole network (weight file v2) or its convolutions (v1).

:func:`import_module` reads the model's structure (:func:`train.torch_graph.module_ops`) and
:func:`import_layout` a state_dict in an order the user names; both fold BatchNorm, carry ReLU,
max pooling and the Linear head into the network and quantise it with the trainer's quantiser
(:func:`train.netimport.build_network`). :func:`import_state_dict` converts the convolutions of
a bare state_dict alone (v1) and refuses a state_dict that holds more (BatchNorm statistics, a
Linear layer), since it cannot tell where they belong.

Spatial 3x3 kernels are transformed with golden's G (U = G g G^T) and quantised like the
trainer's own layers (:func:`train.quantize.quantize_layer`). Pruned weights from
``torch.nn.utils.prune`` (``<layer>.weight_orig`` and ``<layer>.weight_mask``) are applied
before the transform. Anything the accelerator cannot run (kernel not 3x3, stride, dilation or
groups not 1, padding beyond 0..2, complex weights) is refused with :class:`StateDictError`
naming layer and key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from golden.transforms import tile_transform
from golden.weights import LayerWeights, WeightFile

from .netimport import ModelImportError, build_network, check_real
from .quantize import quantize_layer
from .winograd import spatial_to_winograd

__all__ = ["StateDictError", "conv_kernel", "conv_layer_names", "import_layout",
           "import_module", "import_state_dict"]


class StateDictError(ModelImportError):
    """The weights cannot become a weight file; the message names source, layer and key."""


def conv_layer_names(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Prefixes of every 4-D ``<prefix>.weight`` or ``<prefix>.weight_orig``, in key order."""
    names = []
    for key, value in state_dict.items():
        for suffix in (".weight", ".weight_orig"):
            if key.endswith(suffix) and getattr(value, "ndim", 0) == 4:
                name = key[:-len(suffix)]
                if name not in names:
                    names.append(name)
    return names


def _per_layer(value, name: str):
    """``value[name]`` for a mapping (None when absent), else ``value`` itself."""
    if isinstance(value, Mapping):
        return value.get(name)
    return value


def conv_kernel(state_dict, name: str, source: str) -> tuple[torch.Tensor, str]:
    """Layer ``name``'s kernel as float64 (prune mask applied) and the key it came from."""
    for key in (f"{name}.weight_orig", f"{name}.weight_mask", f"{name}.weight"):
        if key in state_dict:
            check_real(source, name, key, state_dict[key].dtype)
    orig, mask, plain = f"{name}.weight_orig", f"{name}.weight_mask", f"{name}.weight"
    if orig in state_dict:
        if mask not in state_dict:
            raise StateDictError(source, f"missing (needed with '{orig}' from "
                                 "torch.nn.utils.prune)", name, mask)
        w, m = state_dict[orig], state_dict[mask]
        if tuple(m.shape) != tuple(w.shape):
            raise StateDictError(source, f"shape {list(m.shape)} differs from '{orig}' "
                                 f"{list(w.shape)}", name, mask)
        return (w.detach().double() * m.detach().double()), orig
    if plain in state_dict:
        return state_dict[plain].detach().double(), plain
    raise StateDictError(source, f"missing (neither '{plain}' nor '{orig}' with '{mask}')",
                         name, plain)


def import_state_dict(state_dict: Mapping[str, torch.Tensor], tile: str,
                      layers: Sequence[str] | None = None, padding=1, input_scale=None,
                      stride=1, source: str = "<state_dict>",
                      tap_shifts: bool = False) -> list[LayerWeights]:
    """Convert convolution weights of a state_dict into quantised weight-file layers.

    Parameters
    ----------
    state_dict : mapping of str to Tensor
        E.g. ``model.state_dict()``; pruned layers may hold ``weight_orig`` + ``weight_mask``.
    tile : str
        "4x4" or "6x6".
    layers : sequence of str, optional
        Layer prefixes to export, in network order; default every 4-D weight (all must be 3x3).
    padding, input_scale, stride : value or mapping of layer -> value
        Zero padding (0..2), the real value of one int8 input step (needed when a layer has a
        bias), and the stride (which a state_dict does not record; only 1 is supported).
    source : str
        Where the weights came from, for messages.
    tap_shifts : bool
        Quantise with tap shifts (``train.quantize.quantize_layer``); layers with nonzero tap
        shifts need weight file version 2.

    Raises
    ------
    StateDictError
        Naming the layer and key of the first problem.
    """
    r = tile_transform(tile).r
    if layers is None:
        _refuse_unplaced(state_dict, source)
    names = list(layers) if layers is not None else conv_layer_names(state_dict)
    if not names:
        raise StateDictError(source, "holds no 4-D convolution weights ('<layer>.weight' or "
                             "'<layer>.weight_orig')")
    out = []
    for name in names:
        g, key = conv_kernel(state_dict, name, source)
        if g.ndim != 4:
            raise StateDictError(source, f"must be a 4-D convolution weight, not shape "
                                 f"{list(g.shape)}", name, key)
        if tuple(g.shape[2:]) != (r, r):
            raise StateDictError(source, f"kernel must be {r}x{r}, not "
                                 f"{g.shape[2]}x{g.shape[3]}", name, key)
        if not torch.isfinite(g).all():
            raise StateDictError(source, "contains NaN or Inf", name, key)
        s = _per_layer(stride, name)
        if s not in (None, 1, (1, 1)):
            raise StateDictError(source, f"stride must be 1, not {s!r}", name)
        pad = _per_layer(padding, name)
        if pad is None:
            raise StateDictError(source, "no padding given for this layer", name)
        if not isinstance(pad, int) or isinstance(pad, bool) or not 0 <= pad <= r - 1:
            raise StateDictError(source, f"padding must be an integer in [0, {r - 1}], "
                                 f"not {pad!r}", name)
        bias_key = f"{name}.bias"
        bias = state_dict.get(bias_key)
        scale = _per_layer(input_scale, name)
        if bias is not None:
            if bias.ndim != 1 or bias.shape[0] != g.shape[0]:
                raise StateDictError(source, f"shape must be [{g.shape[0]}], not "
                                     f"{list(bias.shape)}", name, bias_key)
            if scale is None:
                raise StateDictError(source, "a bias needs the layer's input scale (the real "
                                     "value of one int8 input step)", name, bias_key)
            check_real(source, name, bias_key, bias.dtype)
            bias = bias.detach().double().numpy()
        if scale is not None and not (isinstance(scale, (int, float)) and scale > 0):
            raise StateDictError(source, f"input scale must be a positive number, not "
                                 f"{scale!r}", name)
        U = spatial_to_winograd(g, tile).numpy()
        try:
            out.append(quantize_layer(name, U, tile, pad, bias,
                                      None if scale is None else float(scale),
                                      tap_shifts=tap_shifts))
        except ValueError as exc:
            raise StateDictError(source, str(exc), name) from None
    return out


def _refuse_unplaced(state_dict, source: str) -> None:
    """A bare state_dict with BatchNorm statistics or a Linear layer cannot be imported
    conv by conv without dropping them: refuse, pointing at the structure-aware imports."""
    for key, value in state_dict.items():
        if key.endswith(".running_mean") or (key.endswith(".weight")
                                             and getattr(value, "ndim", 0) == 2):
            what = "BatchNorm statistics" if key.endswith("running_mean") else "a Linear layer"
            raise StateDictError(source, f"holds {what}, which a conv-by-conv import would "
                                 "drop; import the model (import_module) or name the layout "
                                 "(import_layout)", key.rsplit(".", 1)[0], key)


def import_module(module: nn.Module, tile: str, calibration, classes=None,
                  source: str | None = None) -> WeightFile:
    """Import a PyTorch model as a whole network (weight file v2).

    Parameters
    ----------
    module : nn.Module
        The model: a chain of the ops :mod:`train.torch_graph` supports, ending in a Linear
        head; convolutions may carry ``torch.nn.utils.prune`` masks.
    tile : str
        "4x4" or "6x6".
    calibration : array [N, C, H, W]
        Float images that set the activation scales (and the network's input shape).
    classes : list of str, optional
        Class names, one per logit.
    source : str, optional
        Where the model came from, for messages (default ``<ClassName>``).

    Raises
    ------
    StateDictError
        Naming the layer of the first problem (stride, groups, dilation, kernel, dtype, an
        unsupported op, ...).
    """
    from .torch_graph import module_ops

    source = source or f"<{type(module).__name__}>"
    try:
        ops = module_ops(module, tile, source)
        return build_network(ops, tile, calibration, source, classes)
    except StateDictError:
        raise
    except ModelImportError as exc:
        raise StateDictError(exc.source, exc.reason, exc.layer, exc.key) from None


def import_layout(state_dict: Mapping[str, torch.Tensor], layout: Sequence[str], tile: str,
                  calibration, padding=1, classes=None,
                  source: str = "<state_dict>") -> WeightFile:
    """Import a state_dict as a whole network in the order ``layout`` names (weight file v2).

    ``layout`` and ``padding`` are those of :func:`train.torch_graph.layout_ops` (naming the
    layout states that every conv has stride 1); the rest as for :func:`import_module`.
    """
    from .torch_graph import layout_ops

    try:
        ops = layout_ops(state_dict, layout, tile, padding, source)
        return build_network(ops, tile, calibration, source, classes)
    except StateDictError:
        raise
    except ModelImportError as exc:
        raise StateDictError(exc.source, exc.reason, exc.layer, exc.key) from None
