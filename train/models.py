"""Small VGG-like networks whose 3x3 convolutions can move between spatial and Winograd domains.

A :class:`VGGLike` network is a stack of 3x3, stride-1, padding-1 convolutions (each followed by
ReLU, some by 2x2 max pooling) and one linear classifier. Every convolution is either a
:class:`MaskedConv2d` (spatial weights with a fixed pruning mask) or a
:class:`~train.winograd.WinogradConv2d`; :meth:`VGGLike.to_winograd` converts in place.
Optionally each convolution is followed by BatchNorm; :func:`fold_batch_norm` folds it into the
convolutions (per output channel: weights and bias scaled, exactly zero weights stay zero), the
form the weight file holds.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .winograd import WinogradConv2d

__all__ = ["MaskedConv2d", "VGGLike", "cifar_model", "digits_model", "fashion_model",
           "fold_batch_norm"]


class MaskedConv2d(nn.Conv2d):
    """A 3x3, stride-1 convolution with a fixed binary mask on its spatial weights.

    Members
    -------
    mask : buffer, same shape as ``weight``
        1 where a tap is kept, 0 where it is pruned; the forward pass uses ``weight * mask``.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: int = 1):
        super().__init__(in_channels, out_channels, kernel_size=3, stride=1, padding=padding)
        self.register_buffer("mask", torch.ones_like(self.weight))

    def effective_weight(self) -> torch.Tensor:
        """Weights with pruned taps set to exactly zero."""
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Masked 2-D convolution."""
        return F.conv2d(x, self.effective_weight(), self.bias, padding=self.padding)


class VGGLike(nn.Module):
    """Conv-ReLU stacks with max pooling and a linear classifier.

    Parameters
    ----------
    in_channels : int
        Image channels.
    widths : sequence of int
        Output channels of each convolution.
    pool_after : set of int
        Indices of convolutions followed by 2x2 max pooling.
    image_size : int
        Input height and width.
    classes : int
        Number of classes.
    batch_norm : bool
        Follow every convolution by BatchNorm (before the ReLU).

    Members
    -------
    norms : nn.ModuleList of nn.BatchNorm2d, or None
        One per convolution when ``batch_norm``.
    """

    def __init__(self, in_channels: int, widths, pool_after, image_size: int, classes: int,
                 batch_norm: bool = False):
        super().__init__()
        self.pool_after = frozenset(pool_after)
        self.input_shape = (in_channels, image_size, image_size)
        convs, c, size = [], in_channels, image_size
        for i, k in enumerate(widths):
            convs.append(MaskedConv2d(c, k))
            c = k
            if i in self.pool_after:
                size //= 2
        if size < 1:
            raise ValueError(f"image size {image_size} is too small for {len(self.pool_after)} "
                             "poolings")
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(nn.BatchNorm2d(k) for k in widths) if batch_norm else None
        self.classifier = nn.Linear(c * size * size, classes)

    @property
    def conv_names(self) -> list[str]:
        """Layer names used in weight files and reports: conv0, conv1, ..."""
        return [f"conv{i}" for i in range(len(self.convs))]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Run the convolution stack."""
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if self.norms is not None:
                x = self.norms[i](x)
            x = F.relu(x)
            if i in self.pool_after:
                x = F.max_pool2d(x, 2)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of x [N, C, H, W]."""
        return self.classifier(torch.flatten(self.features(x), 1))

    def to_winograd(self, tile: str) -> None:
        """Replace every spatial convolution by a Winograd layer computing the same function."""
        for i, conv in enumerate(self.convs):
            if isinstance(conv, MaskedConv2d):
                self.convs[i] = WinogradConv2d.from_spatial(
                    conv.effective_weight(), conv.bias, tile, padding=conv.padding[0])


def digits_model() -> VGGLike:
    """VGG-like network for 8x8 grey digits: 16-16-pool-32-32-pool, linear 128 -> 10."""
    return VGGLike(1, (16, 16, 32, 32), {1, 3}, image_size=8, classes=10)


def cifar_model() -> VGGLike:
    """VGG-like network for 32x32 RGB images: 32-32-pool-64-64-pool-64-64-pool, linear -> 10.

    At most 64 channels per layer, so every layer fits the default accelerator configuration.
    """
    return VGGLike(3, (32, 32, 64, 64, 64, 64), {1, 3, 5}, image_size=32, classes=10)


def fashion_model() -> VGGLike:
    """VGG-nagadomi-style network for 28x28 grey images: 3x3 convolutions in pairs,
    32-32-pool-64-64-pool-128-128-pool (28 -> 14 -> 7 -> 3), each with BatchNorm, linear
    1152 -> 10. The 128-channel layers run on the default design as channel-split passes."""
    return VGGLike(1, (32, 32, 64, 64, 128, 128), {1, 3, 5}, image_size=28, classes=10,
                   batch_norm=True)


@torch.no_grad()
def fold_batch_norm(model: VGGLike) -> VGGLike:
    """A copy of ``model`` without BatchNorm computing the same function in eval mode.

    Each BatchNorm (running statistics) is folded by :func:`train.netimport.fold_batchnorm`
    (float64) into the convolution's weights, spatial or Winograd-domain (U = G (s g) G^T =
    s U per output channel), and bias; masks are kept, so pruned weights stay exactly zero. A
    model without BatchNorm is returned as a plain copy.
    """
    from .netimport import fold_batchnorm       # the importers' folding, one definition

    folded = copy.deepcopy(model)
    if folded.norms is None:
        return folded
    for conv, norm in zip(folded.convs, folded.norms):
        weight = conv.U if isinstance(conv, WinogradConv2d) else conv.weight
        def host(t):
            return t.detach().cpu().double().numpy()

        w, b = fold_batchnorm(host(weight), None if conv.bias is None else host(conv.bias),
                              host(norm.weight), host(norm.bias), host(norm.running_mean),
                              host(norm.running_var), norm.eps)
        weight.copy_(torch.from_numpy(w))
        if conv.bias is None:
            conv.bias = nn.Parameter(torch.from_numpy(b).to(weight.dtype).to(weight.device))
        else:
            conv.bias.copy_(torch.from_numpy(b))
    folded.norms = None
    return folded
