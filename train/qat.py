"""Quantisation-aware fine-tuning in the Winograd domain with the tap-wise fake-quantiser.

Every convolution becomes a Winograd layer whose weights are fixed-point on the steps the
quantiser chooses once at the start (:func:`train.quantize.choose_steps`: a scale per output
channel times a power of two per Winograd position). During the fine-tuning the trained
parameter is ``w = U / step`` in units of one step; the forward pass uses
``round(clip(w, -127, 127)) * step * mask`` and the backward pass the straight-through estimator
(the rounding's gradient taken as 1). Pruned weights stay exactly zero (the mask multiplies
them; their gradient is zero). Working in step units gives every position the same learning
rate relative to its own grid, which plain SGD on ``U`` cannot (the positions of F(4x4, 3x3)
differ in magnitude by up to 2**9). Afterwards every weight lies on its grid, so the export with
the same steps (``export_network(..., steps=...)``) reproduces the fine-tuned weights exactly.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from tqdm import tqdm

from golden.netfile import MAX_TAP_SHIFT

from .quantize import QMAX, quantize_layer
from .winograd import WinogradConv2d

__all__ = ["TapwiseFakeQuant", "quantization_aware_finetune"]


class TapwiseFakeQuant(nn.Module):
    """Parametrisation ``U = round(clip(w)) * step`` of a Winograd weight, straight-through.

    Parameters
    ----------
    step : Tensor [K, 1, alpha, alpha]
        ``scale[k] * 2**-tap_shift[i, j]``.
    """

    def __init__(self, step: torch.Tensor):
        super().__init__()
        self.register_buffer("step", step)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        q = torch.clamp(torch.round(w), -QMAX, QMAX)
        return (w + (q - w).detach()) * self.step

    def right_inverse(self, U: torch.Tensor) -> torch.Tensor:
        return U / self.step


def _start(conv: WinogradConv2d, name: str, tile: str, tap_shifts: bool, max_span: int):
    """One layer's steps ``(scale, tap_shift)``, its weights rounded on them (output-aware with
    tap shifts: the fine-tuning's starting point) and the step of every weight, as tensors."""
    U = conv.effective_weight().detach().cpu().double().numpy()
    layer = quantize_layer(name, U, tile, conv.padding, tap_shifts=tap_shifts,
                           max_span=max_span)
    tap_shift = (layer.tap_shift if layer.tap_shift is not None
                 else np.zeros(U.shape[2:], np.int8))
    step = layer.scale.astype(np.float64)[:, None, None, None] * np.exp2(
        -tap_shift.astype(np.float64))[None, None]
    device = conv.U.device
    return (layer.scale, tap_shift), \
        torch.as_tensor(layer.U * step, dtype=conv.U.dtype, device=device), \
        torch.as_tensor(step, dtype=conv.U.dtype, device=device)


def quantization_aware_finetune(model, data, tile: str, epochs: int, lr: float,
                                generator: torch.Generator, batch_size: int,
                                tap_shifts: bool = True, max_span: int = MAX_TAP_SHIFT,
                                progress: bool = False) -> dict:
    """Fine-tune ``model`` (converted to Winograd layers in place) with fake-quantised
    weights for ``epochs`` epochs of Adam at ``lr`` (in steps per update, cosine-decayed; the
    biases and the classifier at ``lr / 100``).

    Returns
    -------
    dict
        Layer name -> ``(scale [K] float32, tap_shift [alpha, alpha] int8)``, the steps to
        export with; the model's weights are left on them (the parametrisation removed).
    """
    device = next(model.parameters()).device
    model.to_winograd(tile)
    model.to(device)
    steps, params = {}, []
    for name, conv in zip(model.conv_names, model.convs):
        steps[name], start, step = _start(conv, name, tile, tap_shifts, max_span)
        with torch.no_grad():
            conv.U.copy_(start)
        parametrize.register_parametrization(conv, "U", TapwiseFakeQuant(step))
        params.append(conv.parametrizations.U.original)
    others = [p for n, p in model.named_parameters() if "parametrizations" not in n]
    try:
        if epochs > 0:
            opt = torch.optim.Adam([{"params": params, "lr": lr},
                                    {"params": others, "lr": lr * 1e-2}])
            n = len(data.x_train)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * -(-n // batch_size))
            for _ in tqdm(range(epochs), desc="quantisation-aware", disable=not progress,
                          leave=False):
                model.train()
                order = torch.randperm(n, generator=generator).to(data.x_train.device)
                for i in range(0, n, batch_size):
                    idx = order[i:i + batch_size]
                    opt.zero_grad()
                    F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
                    opt.step()
                    sched.step()
    finally:
        for conv in model.convs:
            parametrize.remove_parametrizations(conv, "U", leave_parametrized=True)
    return steps
