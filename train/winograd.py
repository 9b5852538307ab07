"""Winograd-domain convolution in PyTorch, built on golden's transform matrices.

Every matrix comes from :func:`golden.transforms.tile_transform`; this module only converts them
to tensors. The layer computes, per output tile (same tiling as ``golden.conv``)::

    V_c = BT d_c BT^T,   M_k = sum_c U[k, c] * V_c,   Y_k = AT M_k AT^T + bias[k]
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from golden.transforms import parse_tile, tile_transform

__all__ = [
    "WinogradConv2d",
    "importance_matrix",
    "importance_rows",
    "spatial_to_winograd",
    "tap_sets",
    "transform_tensors",
    "winograd_conv2d",
]


def transform_tensors(tile: str, dtype: torch.dtype = torch.float32
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return golden's (AT, BT, G) of ``tile`` as tensors of ``dtype``.

    Parameters
    ----------
    tile : str
        "4x4" (F(2x2, 3x3)) or "6x6" (F(4x4, 3x3)).
    dtype : torch.dtype
        Floating dtype of the result.
    """
    tr = tile_transform(tile)
    return (torch.as_tensor(tr.AT_int, dtype=dtype), torch.as_tensor(tr.BT_int, dtype=dtype),
            torch.as_tensor(tr.G_float, dtype=dtype))


def spatial_to_winograd(g: torch.Tensor, tile: str) -> torch.Tensor:
    """Transform spatial kernels g [K, C, 3, 3] to U = G g G^T [K, C, alpha, alpha] (on
    g's device)."""
    _, _, G = transform_tensors(tile, dtype=g.dtype)
    G = G.to(g.device)
    r = G.shape[1]
    if g.ndim != 4 or tuple(g.shape[2:]) != (r, r):
        raise ValueError(f"kernels must have shape [K, C, {r}, {r}], not {list(g.shape)}")
    return G @ g @ G.T


@functools.cache
def importance_rows(tile: str) -> np.ndarray:
    """Return r with r_i = ||AT[:, i]||_2 * ||BT[i, :]||_2 (float64 [alpha])."""
    tr = tile_transform(tile)
    AT, BT = tr.AT_int.astype(np.float64), tr.BT_int.astype(np.float64)
    return np.linalg.norm(AT, axis=0) * np.linalg.norm(BT, axis=1)


def importance_matrix(tile: str, normalise: bool = True) -> np.ndarray:
    """Return the importance factor matrix I = r r^T, or I_hat = I / min I if ``normalise``.

    Position (i, j) of a Winograd tile scales its weight's effect on the output by about I_ij
    (the norms of the output-transform column and input-transform row it meets).
    """
    r = importance_rows(tile)
    imp = np.outer(r, r)
    return imp / imp.min() if normalise else imp


@functools.cache
def tap_sets(tile: str) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Return the spatial taps that feed each Winograd position (rows of S = G (x) G).

    Entry ``i * alpha + j`` lists the taps (k, l) with G[i, k] * G[j, l] != 0; U[i, j] is exactly
    zero whenever all of them are.
    """
    tr = tile_transform(tile)
    nonzero = tr.G_float != 0
    a, r = nonzero.shape
    return tuple(
        tuple((k, l) for k in range(r) for l in range(r) if nonzero[i, k] and nonzero[j, l])
        for i in range(a) for j in range(a))


def winograd_conv2d(x: torch.Tensor, U: torch.Tensor, AT: torch.Tensor, BT: torch.Tensor,
                    padding: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Convolve x [N, C, H, W] with Winograd-domain weights U [K, C, alpha, alpha].

    The tiling matches ``golden.conv``: output tiles start at multiples of m and the input is
    zero-padded past its edge; the ragged last tile is cropped. Stride 1, correlation.
    """
    n, c, h, w = x.shape
    m, a = AT.shape
    k = U.shape[0]
    r = a - m + 1
    out_h, out_w = h + 2 * padding - r + 1, w + 2 * padding - r + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"input {h}x{w} with padding {padding} is smaller than the kernel")
    tiles_h, tiles_w = -(-out_h // m), -(-out_w // m)
    full_h, full_w = (tiles_h - 1) * m + a, (tiles_w - 1) * m + a
    xp = F.pad(x, (padding, full_w - w - padding, padding, full_h - h - padding))
    # Three large products over all tiles (t = n, ti, tj) instead of many tiny ones:
    # V = kron(BT, BT) d per flattened patch, M[p] = V[p] U[p]^T per position p, and
    # Y = kron(AT, AT) M (the same sums as BT d BT^T, U * V summed over c, AT M AT^T).
    d = xp.unfold(2, a, m).unfold(3, a, m)                      # [N, C, th, tw, a, a]
    d = d.permute(4, 5, 0, 2, 3, 1).reshape(a * a, -1)          # [a*a, T*C]
    V = (torch.kron(BT, BT) @ d).reshape(a * a, -1, c)          # [a*a, T, C]
    M = torch.bmm(V, U.reshape(k, c, a * a).permute(2, 1, 0))   # [a*a, T, K]
    Y = torch.kron(AT, AT) @ M.reshape(a * a, -1)               # [m*m, T*K]
    y = Y.reshape(m, m, n, tiles_h, tiles_w, k).permute(2, 5, 3, 0, 4, 1)
    y = y.reshape(n, k, tiles_h * m, tiles_w * m)[:, :, :out_h, :out_w]
    if bias is not None:
        y = y + bias[None, :, None, None]
    return y


class WinogradConv2d(nn.Module):
    """A 3x3, stride-1 convolution whose parameters live in the Winograd domain.

    Parameters
    ----------
    in_channels, out_channels : int
        C and K.
    tile : str
        "4x4" or "6x6" (golden's tile names).
    padding : int
        Zero padding on each side, in [0, 2].
    bias : bool
        Learn a bias per output channel.

    Members
    -------
    U : nn.Parameter [K, C, alpha, alpha]
        Winograd-domain weights; the forward pass uses ``U * mask``.
    mask : buffer [K, C, alpha, alpha]
        1 where a weight is kept, 0 where it is pruned.
    """

    def __init__(self, in_channels: int, out_channels: int, tile: str = "4x4",
                 padding: int = 1, bias: bool = True):
        super().__init__()
        m, r = parse_tile(tile)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(padding, int) or not 0 <= padding <= r - 1:
            raise ValueError(f"padding must be an integer in [0, {r - 1}], not {padding!r}")
        self._tile, self._padding = tile, padding
        a = m + r - 1
        AT, BT, _ = transform_tensors(tile)
        self.register_buffer("AT", AT, persistent=False)
        self.register_buffer("BT", BT, persistent=False)
        g = torch.empty(out_channels, in_channels, r, r)
        nn.init.kaiming_uniform_(g, a=5 ** 0.5)
        self.U = nn.Parameter(spatial_to_winograd(g, tile))
        self.register_buffer("mask", torch.ones(out_channels, in_channels, a, a))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    @property
    def tile(self) -> str:
        """Tile name."""
        return self._tile

    @property
    def padding(self) -> int:
        """Zero padding on each side."""
        return self._padding

    @classmethod
    def from_spatial(cls, weight: torch.Tensor, bias: torch.Tensor | None, tile: str,
                     padding: int = 1) -> "WinogradConv2d":
        """Build a layer with U = G g G^T from spatial weights [K, C, 3, 3].

        Positions where U is exactly zero (e.g. after Winograd-structured pruning) start masked.
        """
        k, c = weight.shape[:2]
        layer = cls(c, k, tile=tile, padding=padding, bias=bias is not None)
        with torch.no_grad():
            U = spatial_to_winograd(weight.detach().to(torch.float32), tile)
            layer.U.copy_(U)
            layer.mask.copy_((U != 0).to(layer.mask.dtype))
            if bias is not None:
                layer.bias.copy_(bias.detach())
        return layer

    def effective_weight(self) -> torch.Tensor:
        """U with pruned entries set to exactly zero."""
        return self.U * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Winograd convolution of x [N, C, H, W]."""
        return winograd_conv2d(x, self.effective_weight(), self.AT, self.BT, self._padding,
                               self.bias)
