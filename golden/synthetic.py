"""Synthetic layers and networks for tests and benchmarks: dense, uniformly sparse and
position-skewed layers; whole version 2 networks with calibrated requantisation.

Position-skewed weights imitate spatial-Winograd pruning (Yu et al. 2019, step 2): a Winograd
weight ``U = G g G^T`` of random spatial filters ``g`` is pruned where its importance-scaled
magnitude ``|U_ij| * I_ij`` is small, with ``I_ij = r_i r_j / min(r)^2`` and
``r_i = ||AT[:, i]||_2 * ||BT[i, :]||_2``. Central Winograd positions survive and edge
positions are pruned, the skew a one-multiplier-per-position design cannot balance.
"""

from __future__ import annotations

import numpy as np

from .config import AcceleratorConfig
from .conv import winograd_conv2d_int
from .netfile import MAX_TAP_SHIFT, LinearWeights, Network, NetworkOp
from .quant import MAX_SHIFT, quantize_multiplier, requantize
from .weights import LayerWeights, WeightFile, validate_arrays
from .widths import signed_range

__all__ = ["importance_factors", "layer_from_u", "random_tap_shift", "synthetic_layer",
           "synthetic_network"]


def importance_factors(config: AcceleratorConfig) -> np.ndarray:
    """Normalised importance ``I / min(I)`` of each Winograd position, [alpha, alpha]."""
    at = config.AT.astype(np.float64)
    bt = config.BT.astype(np.float64)
    r = np.linalg.norm(at, axis=0) * np.linalg.norm(bt, axis=1)
    imp = np.outer(r, r)
    return imp / imp.min()


def layer_from_u(config: AcceleratorConfig, U, *, bias=None, padding: int = 1,
                 name: str = "synthetic") -> LayerWeights:
    """Wrap integer Winograd weights ``U`` [K, C, alpha, alpha] as a layer of ``config``'s
    tile (unit scales, int32 bias or none)."""
    U = np.asarray(U)
    k = U.shape[0]
    return LayerWeights(
        name=name, m=config.m, r=config.r, AT=config.AT.copy(), BT=config.BT.copy(),
        G=config.transform.G_float, U=U.astype(np.int8), scale=np.ones(k, dtype=np.float32),
        padding=int(padding), bias=None if bias is None else np.asarray(bias, dtype=np.int32))


def synthetic_layer(config: AcceleratorConfig, in_channels: int, out_channels: int,
                    sparsity: float, *, skewed: bool = True, seed: int = 0, padding: int = 1,
                    bias_bits: int = 12, name: str = "synthetic") -> LayerWeights:
    """A random layer whose Winograd-domain weights have exactly ``round(sparsity * size)``
    zeros.

    Parameters
    ----------
    config : AcceleratorConfig
        Tile and weight width.
    in_channels, out_channels : int
        C and K.
    sparsity : float
        Fraction of zero weights in [0, 1].
    skewed : bool
        Prune by importance-scaled magnitude (position-skewed); otherwise uniformly at random
        (the same expected sparsity at every position).
    seed : int
        Random seed (deterministic output).
    padding : int
        Layer padding.
    bias_bits : int
        Biases are uniform in ``[-2**(bias_bits-1), 2**(bias_bits-1))``; 0 gives no bias.
    """
    if not 0.0 <= float(sparsity) <= 1.0:
        raise ValueError(f"sparsity must lie in [0, 1], not {sparsity!r}")
    rng = np.random.default_rng(seed)
    G = config.transform.G_float
    g = rng.standard_normal((out_channels, in_channels, config.r, config.r))
    u_float = np.einsum("ia,kcab,jb->kcij", G, g, G)
    if skewed:
        score = np.abs(u_float) * importance_factors(config)
    else:
        score = rng.random(u_float.shape)
    n_zero = int(round(float(sparsity) * u_float.size))
    keep = np.ones(u_float.size, dtype=bool)
    keep[np.argsort(score, axis=None, kind="stable")[:n_zero]] = False
    keep = keep.reshape(u_float.shape)

    w_max = signed_range(config.weight_width)[1]
    peak = np.abs(np.where(keep, u_float, 0)).reshape(out_channels, -1).max(axis=1)
    peak = np.where(peak > 0, peak, 1.0)[:, None, None, None]
    U = np.clip(np.rint(u_float / peak * w_max), -w_max, w_max)
    U = np.where(U == 0, np.sign(u_float), U)          # a kept weight stays nonzero
    U = np.where(keep, U, 0).astype(np.int64)
    bias = None
    if bias_bits:
        b_lo, b_hi = signed_range(bias_bits)
        bias = rng.integers(b_lo, b_hi + 1, out_channels)
    return layer_from_u(config, U, bias=bias, padding=padding, name=name)


def random_tap_shift(rng: np.random.Generator, alpha: int, span: int) -> np.ndarray:
    """Random tap shifts int8 [alpha, alpha] in [0, 15] spanning exactly ``span`` (> 0)."""
    base = int(rng.integers(0, MAX_TAP_SHIFT - span + 1))
    s = rng.integers(0, span + 1, (alpha, alpha))
    s.flat[rng.permutation(alpha * alpha)[:2]] = (0, span)
    return (base + s).astype(np.int8)


def synthetic_network(config: AcceleratorConfig, input_shape=(3, 9, 7), widths=(6, 5),
                      pool_after=(0,), classes: int = 4, sparsity: float = 0.6, *,
                      paddings=None, relu=True, seed: int = 0,
                      calibration_images: int = 4, tap_shift_span: int = 0) -> WeightFile:
    """A random, validated version 2 network: convs of ``config``'s tile, 2x2 max pooling after
    the convs listed in ``pool_after``, flatten and a linear head.

    Each conv's requantisation maps its largest raw output on ``calibration_images`` random int8
    images to about 100 (so that activations neither vanish nor all saturate); a channel whose
    raw outputs are all zero gets ``mult`` 0.

    Parameters
    ----------
    input_shape : (C, H, W)
        One image.
    widths : sequence of int
        Output channels of each conv (named conv0, conv1, ...).
    pool_after : collection of int
        Convs followed by ``maxpool2``.
    classes : int
        Outputs of the linear head ``fc``.
    paddings : sequence of int, optional
        Per conv; default ``r // 2`` each.
    relu : bool or sequence of bool
        ReLU after each conv's requantisation.
    tap_shift_span : int
        With ``n`` > 0, every conv gets random tap shifts spanning exactly ``n``
        (``max(tap_shift) - min(tap_shift) == n``); 0 gives none.
    """
    rng = np.random.default_rng(seed)
    paddings = [config.r // 2] * len(widths) if paddings is None else list(paddings)
    relus = [relu] * len(widths) if isinstance(relu, bool) else list(relu)
    x = rng.integers(-128, 128, (calibration_images, *input_shape)).astype(np.int8)
    layers, ops = [], []
    for i, k in enumerate(widths):
        layer = synthetic_layer(config, x.shape[1], k, sparsity, skewed=False,
                                seed=seed * 1000 + i, padding=paddings[i], name=f"conv{i}")
        if tap_shift_span:
            layer.tap_shift = random_tap_shift(rng, config.alpha, tap_shift_span)
        raw = winograd_conv2d_int(x, layer.U, layer.AT, layer.BT, layer.padding,
                                  layer.bias_or_zeros, r=layer.r, tap_shift=layer.tap_shift)
        peak = np.abs(raw).max(axis=(0, 2, 3))
        mult, shift = zip(*(quantize_multiplier(min(100.0 / p, 2.0 ** 14)) if p
                            else (0, MAX_SHIFT) for p in peak))
        layer.requant_mult = np.array(mult, dtype=np.int32)
        layer.requant_shift = np.array(shift, dtype=np.int32)
        layer.relu = bool(relus[i])
        x = requantize(raw, layer.requant_mult, layer.requant_shift, layer.relu)
        layers.append(layer)
        ops.append(NetworkOp("conv", layer.name))
        if i in pool_after:
            x = x[..., :x.shape[-2] // 2 * 2, :x.shape[-1] // 2 * 2]
            x = x.reshape(*x.shape[:-2], x.shape[-2] // 2, 2, x.shape[-1] // 2, 2).max((-3, -1))
            ops.append(NetworkOp("maxpool2"))
    features = int(np.prod(x.shape[1:]))
    W = rng.integers(-127, 128, (classes, features)).astype(np.int8)
    b = rng.integers(-1000, 1000, classes).astype(np.int32)
    network = Network(ops=[*ops, NetworkOp("flatten"), NetworkOp("linear", "fc")],
                      input_shape=tuple(int(v) for v in input_shape), input_scale=1 / 64,
                      linear=LinearWeights("fc", W, b), classes=None)
    return validate_arrays(WeightFile(layers, network=network).arrays())
