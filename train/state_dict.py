"""Import a user's PyTorch convolution weights into weight file v1.

Spatial 3x3 kernels are transformed with golden's G (U = G g G^T) and quantised like the trainer's
own layers (:func:`train.quantize.quantize_layer`). Pruned weights from
``torch.nn.utils.prune`` (``<layer>.weight_orig`` and ``<layer>.weight_mask``) are applied
before the transform. Anything the accelerator cannot run (kernel not 3x3, stride, dilation or
groups not 1, padding beyond 0..2) is refused with :class:`StateDictError` naming layer and key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from golden.transforms import tile_transform
from golden.weights import LayerWeights

from .quantize import quantize_layer
from .winograd import spatial_to_winograd

__all__ = ["StateDictError", "conv_layer_names", "import_module", "import_state_dict"]


class StateDictError(ValueError):
    """The weights cannot become a weight file; the message names source, layer and key."""

    def __init__(self, source: str, message: str, layer: str | None = None,
                 key: str | None = None):
        where = [source]
        if layer is not None:
            where.append(f"layer '{layer}'")
        if key is not None:
            where.append(f"key '{key}'")
        self.source, self.layer, self.key, self.reason = source, layer, key, message
        super().__init__(f"{', '.join(where)}: {message}")


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


def _kernel(state_dict, name: str, source: str) -> torch.Tensor:
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
                      stride=1, source: str = "<state_dict>") -> list[LayerWeights]:
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

    Raises
    ------
    StateDictError
        Naming the layer and key of the first problem.
    """
    r = tile_transform(tile).r
    names = list(layers) if layers is not None else conv_layer_names(state_dict)
    if not names:
        raise StateDictError(source, "holds no 4-D convolution weights ('<layer>.weight' or "
                             "'<layer>.weight_orig')")
    out = []
    for name in names:
        g, key = _kernel(state_dict, name, source)
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
            bias = bias.detach().double().numpy()
        if scale is not None and not (isinstance(scale, (int, float)) and scale > 0):
            raise StateDictError(source, f"input scale must be a positive number, not "
                                 f"{scale!r}", name)
        U = spatial_to_winograd(g, tile).numpy()
        try:
            out.append(quantize_layer(name, U, tile, pad, bias,
                                      None if scale is None else float(scale)))
        except ValueError as exc:
            raise StateDictError(source, str(exc), name) from None
    return out


def import_module(module: nn.Module, tile: str, layers: Sequence[str] | None = None,
                  input_scale=None) -> list[LayerWeights]:
    """Convert the ``nn.Conv2d`` layers of ``module`` (checking stride, dilation, groups).

    Parameters
    ----------
    module : nn.Module
        The model; convolutions may carry ``torch.nn.utils.prune`` masks.
    tile : str
        "4x4" or "6x6".
    layers : sequence of str, optional
        Module names to export, in order; default every ``nn.Conv2d``.
    input_scale : float or mapping of layer -> float, optional
        See :func:`import_state_dict`.
    """
    source = f"<{type(module).__name__}>"
    convs = {n: mod for n, mod in module.named_modules() if isinstance(mod, nn.Conv2d)}
    names = list(layers) if layers is not None else list(convs)
    if not names:
        raise StateDictError(source, "has no nn.Conv2d layers")
    state, paddings = {}, {}
    for name in names:
        conv = convs.get(name)
        if conv is None:
            raise StateDictError(source, "no nn.Conv2d of this name", name)
        for attr, ok in (("stride", (1, 1)), ("dilation", (1, 1)), ("groups", 1),
                         ("padding_mode", "zeros")):
            value = getattr(conv, attr)
            if value != ok:
                raise StateDictError(source, f"{attr} must be {ok!r}, not {value!r}", name)
        pad = conv.padding
        if pad == "same":
            pad = (conv.kernel_size[0] // 2,) * 2
        if pad == "valid":
            pad = (0, 0)
        if pad[0] != pad[1]:
            raise StateDictError(source, f"padding must be equal on both axes, not {pad!r}",
                                 name)
        paddings[name] = int(pad[0])
        for key, value in conv.state_dict().items():
            state[f"{name}.{key}"] = value
    return import_state_dict(state, tile, names, paddings, input_scale, 1, source)
