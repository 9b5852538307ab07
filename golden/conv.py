"""Layer models: float Winograd convolution, the exact integer layer, and a direct reference.

Integer semantics of one layer (what the RTL reproduces bit for bit), for ``x`` int8 [C, H, W]:
pad with ``padding`` zeros on each side to [C, H', W']; ``Hout = H' - r + 1``, ``Wout = W' - r + 1``.
Output tiles start at (ti*m, tj*m) for ti < ceil(Hout/m), tj < ceil(Wout/m). The input patch
``d_c = x_pad[c, ti*m : ti*m + alpha, tj*m : tj*m + alpha]``, zero where it runs past x_pad::

    V_c = BT d_c BT^T,   M_k = sum_c U[k, c] * V_c,
    Y_k = AT (M_k * 2**(T - tap_shift)) AT^T + bias[k],   T = max(tap_shift)

and ``y[k, ti*m + i, tj*m + j] = Y_k[i, j]`` where that position lies inside Hout x Wout. The
tap shifts ``tap_shift`` [alpha, alpha] (weight file v2, default all zero) put each Winograd
position's weights on its own power-of-two scale: every accumulated position is shifted left by
``T - tap_shift`` before the output transform (:func:`tap_left_shifts`).

:func:`winograd_tiles_int64` computes this in int64 step by step: the reference.
:func:`winograd_tiles_int` and :func:`winograd_conv2d_int` compute the same integers with all
tiles of a chunk of images in three large products, each in float64 BLAS where a bound on its
partial sums proves it exact (:mod:`golden.fastwino`), and equal the reference bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fastwino import ExactWinograd

__all__ = [
    "TILE_BUDGET",
    "TileGrid",
    "assemble_tiles",
    "direct_conv2d",
    "extract_patches",
    "tap_left_shifts",
    "tile_grid",
    "winograd_conv2d_float",
    "winograd_conv2d_int",
    "winograd_tiles_int",
    "winograd_tiles_int64",
]

#: Working memory of one chunk of images in :func:`winograd_conv2d_int`: 16 MiB.
TILE_BUDGET = 16 * 2**20


@dataclass(frozen=True)
class TileGrid:
    """Geometry of a layer's tiling.

    Members
    -------
    out_h, out_w : int
        Output size (Hout, Wout).
    tiles_h, tiles_w : int
        Tiles per column and row; tiles are numbered row-major, t = ti * tiles_w + tj.
    """

    m: int
    r: int
    padding: int
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    tiles_h: int
    tiles_w: int

    @property
    def alpha(self) -> int:
        """Input tile side."""
        return self.m + self.r - 1

    @property
    def n_tiles(self) -> int:
        """Number of tiles."""
        return self.tiles_h * self.tiles_w


def tile_grid(in_h: int, in_w: int, m: int, r: int, padding: int) -> TileGrid:
    """Tiling of an ``in_h`` x ``in_w`` input for F(m x m, r x r) with ``padding``."""
    out_h, out_w = in_h + 2 * padding - r + 1, in_w + 2 * padding - r + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"input {in_h}x{in_w} with padding {padding} is smaller than the "
                         f"{r}x{r} kernel")
    return TileGrid(m=m, r=r, padding=padding, in_h=in_h, in_w=in_w, out_h=out_h, out_w=out_w,
                    tiles_h=-(-out_h // m), tiles_w=-(-out_w // m))


def _batched(x: np.ndarray, name: str = "x") -> tuple[np.ndarray, bool]:
    x = np.asarray(x)
    if x.ndim == 3:
        return x[None], False
    if x.ndim == 4:
        return x, True
    raise ValueError(f"{name} must have shape [C, H, W] or [N, C, H, W], not {list(x.shape)}")


def extract_patches(x: np.ndarray, m: int, r: int, padding: int) -> np.ndarray:
    """Input patches of every tile.

    Parameters
    ----------
    x : ndarray [C, H, W]
    Returns
    -------
    ndarray [T, C, alpha, alpha]
        Patches in tile order (row-major over tiles), same dtype as ``x``.
    """
    if x.ndim != 3:
        raise ValueError(f"x must have shape [C, H, W], not {list(x.shape)}")
    c, h, w = x.shape
    grid = tile_grid(h, w, m, r, padding)
    a = grid.alpha
    # Pad enough on the bottom/right that every tile's patch lies inside the array.
    full_h = (grid.tiles_h - 1) * m + a
    full_w = (grid.tiles_w - 1) * m + a
    xp = np.zeros((c, max(full_h, h + 2 * padding), max(full_w, w + 2 * padding)), dtype=x.dtype)
    xp[:, padding:padding + h, padding:padding + w] = x
    # Positions past x_pad are zero by construction (xp is zero there).
    view = np.lib.stride_tricks.sliding_window_view(xp, (a, a), axis=(1, 2))
    view = view[:, ::m, ::m][:, :grid.tiles_h, :grid.tiles_w]     # [C, th, tw, a, a]
    return np.ascontiguousarray(view.transpose(1, 2, 0, 3, 4).reshape(-1, c, a, a))


def assemble_tiles(tiles: np.ndarray, grid: TileGrid) -> np.ndarray:
    """Place per-tile outputs [T, K, m, m] into [K, Hout, Wout], cropping the ragged edge."""
    t, k, m, _ = tiles.shape
    if t != grid.n_tiles or m != grid.m:
        raise ValueError(f"expected [{grid.n_tiles}, K, {grid.m}, {grid.m}] tiles, "
                         f"got {list(tiles.shape)}")
    y = tiles.reshape(grid.tiles_h, grid.tiles_w, k, m, m).transpose(2, 0, 3, 1, 4)
    y = y.reshape(k, grid.tiles_h * m, grid.tiles_w * m)
    return np.ascontiguousarray(y[:, :grid.out_h, :grid.out_w])


def tap_left_shifts(tap_shift: np.ndarray | None, alpha: int) -> np.ndarray:
    """The left shift ``T - tap_shift`` of every Winograd position, ``T = max(tap_shift)``.

    Returns int64 [alpha, alpha]; all zero when ``tap_shift`` is None (no tap shifts).
    """
    if tap_shift is None:
        return np.zeros((alpha, alpha), dtype=np.int64)
    s = np.asarray(tap_shift, dtype=np.int64)
    if s.shape != (alpha, alpha) or s.min() < 0:
        raise ValueError(f"tap_shift must be non-negative integers of shape [{alpha}, "
                         f"{alpha}], not {s.dtype} of shape {list(s.shape)}")
    return s.max() - s


def _integers(x) -> np.ndarray:
    """``x`` as an integer array (other dtypes converted to int64, as the reference does)."""
    x = np.asarray(x)
    return x if x.dtype.kind in "iu" else x.astype(np.int64)


def _abs_max(x: np.ndarray) -> int:
    """Largest magnitude of an integer array, exactly (0 when empty)."""
    return max(abs(int(x.min())), abs(int(x.max()))) if x.size else 0


def _patches_position_major(xb: np.ndarray, grid: TileGrid, dtype) -> np.ndarray:
    """The patches of every tile of images [N, C, H, W] as [alpha**2, C, N * T] of ``dtype``,
    tiles image by image in tile order (what :func:`extract_patches` holds, transposed)."""
    n, c, h, w = xb.shape
    a, m, p = grid.alpha, grid.m, grid.padding
    full_h = max((grid.tiles_h - 1) * m + a, h + 2 * p)
    full_w = max((grid.tiles_w - 1) * m + a, w + 2 * p)
    xp = np.zeros((n, c, full_h, full_w), dtype=dtype)
    xp[:, :, p:p + h, p:p + w] = xb
    view = np.lib.stride_tricks.sliding_window_view(xp, (a, a), axis=(2, 3))
    view = view[:, :, ::m, ::m][:, :, :grid.tiles_h, :grid.tiles_w]    # [N, C, th, tw, a, a]
    return np.ascontiguousarray(view.transpose(4, 5, 1, 0, 2, 3)).reshape(a * a, c, -1)


def winograd_tiles_int64(patches: np.ndarray, U: np.ndarray, AT: np.ndarray, BT: np.ndarray,
                         bias: np.ndarray | None = None,
                         tap_shift: np.ndarray | None = None) -> np.ndarray:
    """Exact integer Winograd on patches, every step in int64: the reference that the fast
    :func:`winograd_tiles_int` equals bit for bit.

    Parameters
    ----------
    patches : ndarray [T, C, alpha, alpha] of int
    U : ndarray [K, C, alpha, alpha] of int
    AT, BT : ndarray of int
    bias : ndarray [K] of int, optional
    tap_shift : ndarray [alpha, alpha] of int, optional
        Per-position power-of-two weight scales (module docstring); None: all zero.

    Returns
    -------
    ndarray [T, K, m, m] of int64
    """
    d = np.asarray(patches, dtype=np.int64)
    U = np.asarray(U, dtype=np.int64)
    AT = np.asarray(AT, dtype=np.int64)
    BT = np.asarray(BT, dtype=np.int64)
    t, c, a, _ = d.shape
    k = U.shape[0]
    V = BT @ d @ BT.T                                             # [T, C, a, a]
    # One [K, C] x [C, T] product per Winograd position (int64 matmul is exact).
    Vp = V.reshape(t, c, a * a).transpose(2, 1, 0)                # [a*a, C, T]
    Up = U.reshape(k, c, a * a).transpose(2, 0, 1)                # [a*a, K, C]
    M = np.matmul(Up, Vp).transpose(2, 1, 0).reshape(t, k, a, a)  # [T, K, a, a]
    if tap_shift is not None:
        M = np.left_shift(M, tap_left_shifts(tap_shift, a))
    Y = AT @ M @ AT.T
    if bias is not None:
        Y = Y + np.asarray(bias, dtype=np.int64)[None, :, None, None]
    return Y


def winograd_tiles_int(patches: np.ndarray, U: np.ndarray, AT: np.ndarray, BT: np.ndarray,
                       bias: np.ndarray | None = None,
                       tap_shift: np.ndarray | None = None) -> np.ndarray:
    """Exact integer Winograd on patches, equal to :func:`winograd_tiles_int64` bit for bit,
    with each product in float64 BLAS where that is provably exact
    (:class:`golden.fastwino.ExactWinograd`).

    Parameters and result as :func:`winograd_tiles_int64`.
    """
    d = _integers(patches)
    t, c, a, _ = d.shape
    plan = ExactWinograd(U, AT, BT, tap_left_shifts(tap_shift, a))
    d_abs_max = _abs_max(d)
    d = d.transpose(2, 3, 1, 0).astype(plan.input_dtype(d_abs_max)).reshape(a * a, c, t)
    Y = plan.run(d, d_abs_max, bias).reshape(plan.m, plan.m, plan.k, t)
    return np.ascontiguousarray(Y.transpose(3, 2, 0, 1), dtype=np.int64)


def winograd_conv2d_int(x: np.ndarray, U: np.ndarray, AT: np.ndarray, BT: np.ndarray,
                        padding: int, bias: np.ndarray | None = None, r: int = 3,
                        tap_shift: np.ndarray | None = None,
                        budget: int = TILE_BUDGET) -> np.ndarray:
    """The exact integer layer (module docstring), for [C, H, W] or [N, C, H, W] input, with
    optional tap shifts [alpha, alpha].

    The images run in chunks whose tiles take about ``budget`` bytes of working memory, all
    tiles of a chunk in one product per Winograd position (:func:`winograd_tiles_int`).

    Returns int64 [K, Hout, Wout] (or [N, K, Hout, Wout]).
    """
    xb, batched = _batched(x)
    xb = _integers(xb)
    n, c, h, w = xb.shape
    m = np.asarray(AT).shape[0]
    grid = tile_grid(h, w, m, r, padding)
    plan = ExactWinograd(U, AT, BT, tap_left_shifts(tap_shift, grid.alpha))
    x_abs_max = _abs_max(xb)
    chunk = max(1, budget // (grid.n_tiles * plan.tile_bytes(c)))
    th, tw = grid.tiles_h, grid.tiles_w
    y = np.empty((n, plan.k, grid.out_h, grid.out_w), dtype=np.int64)
    ragged = (grid.out_h, grid.out_w) != (th * m, tw * m)
    tiled = None if ragged else y.reshape(n, plan.k, th, m, tw, m)      # a view of y
    for i in range(0, n, chunk):
        d = _patches_position_major(xb[i:i + chunk], grid, plan.input_dtype(x_abs_max))
        Y = plan.run(d, x_abs_max, bias)                            # [m*m, K, N*T]
        del d
        # [m, m, K, N, th, tw] -> [N, K, th, m, tw, m]: one pass converts and places the tiles.
        Y = Y.reshape(m, m, plan.k, -1, th, tw).transpose(3, 2, 4, 0, 5, 1)
        if ragged:
            whole = np.empty(Y.shape, dtype=np.int64)
            np.copyto(whole, Y, casting="unsafe")
            y[i:i + chunk] = whole.reshape(-1, plan.k, th * m, tw * m)[
                :, :, :grid.out_h, :grid.out_w]
        else:
            np.copyto(tiled[i:i + chunk], Y, casting="unsafe")     # exact integers to int64
    return y if batched else y[0]


def winograd_conv2d_float(x: np.ndarray, U: np.ndarray, AT: np.ndarray, BT: np.ndarray,
                          padding: int, bias: np.ndarray | None = None, r: int = 3) -> np.ndarray:
    """Float64 Winograd layer with Winograd-domain weights ``U`` (e.g. ``G g G^T``)."""
    xb, batched = _batched(x)
    AT = np.asarray(AT, dtype=np.float64)
    BT = np.asarray(BT, dtype=np.float64)
    U = np.asarray(U, dtype=np.float64)
    m = AT.shape[0]
    k, c, a, _ = U.shape
    outs = []
    for xi in xb:
        grid = tile_grid(xi.shape[1], xi.shape[2], m, r, padding)
        d = extract_patches(np.asarray(xi, dtype=np.float64), m, r, padding)
        V = BT @ d @ BT.T
        M = np.einsum("kcxy,tcxy->tkxy", U, V, optimize=True)
        Y = AT @ M @ AT.T
        if bias is not None:
            Y = Y + np.asarray(bias, dtype=np.float64)[None, :, None, None]
        outs.append(assemble_tiles(Y, grid))
    y = np.stack(outs)
    return y if batched else y[0]


def direct_conv2d(x: np.ndarray, g: np.ndarray, padding: int,
                  bias: np.ndarray | None = None) -> np.ndarray:
    """Direct 2-D correlation (stride 1) of [C, H, W] or [N, C, H, W] with g [K, C, r, r].

    Integer inputs give exact int64 results; float inputs give float64.
    """
    xb, batched = _batched(x)
    g = np.asarray(g)
    dtype = np.int64 if np.issubdtype(np.result_type(xb, g), np.integer) else np.float64
    k, c, r, _ = g.shape
    n, _, h, w = xb.shape
    xp = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=dtype)
    xp[:, :, padding:padding + h, padding:padding + w] = xb
    win = np.lib.stride_tricks.sliding_window_view(xp, (r, r), axis=(2, 3))  # [N,C,Ho,Wo,r,r]
    y = np.einsum("nchwij,kcij->nkhw", win, g.astype(dtype), optimize=True)
    if bias is not None:
        y = y + np.asarray(bias, dtype=dtype)[None, :, None, None]
    return y if batched else y[0]
