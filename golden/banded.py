"""The exact integer layer in bounded memory: computed in bands of tile rows.

:func:`golden.conv.winograd_conv2d_int` holds every tile of an image at once (patches, V, M
and Y in int64: about 2 KB per tile and channel), so its memory grows with the input. Here an
image is cut into bands of whole tile rows, each computed by the same
:func:`golden.conv.winograd_tiles_int` and placed at its rows of the output: the result is
bit-identical, and the working memory stays under ``budget`` bytes whatever the image height.
:func:`save_layer_output` writes the bands straight into an ``.npy`` file, so that the output
need not fit in memory either.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .conv import tile_grid, winograd_tiles_int
from .quant import requantize

__all__ = ["BAND_BUDGET", "layer_bands", "layer_output", "save_layer_output"]

#: Default working memory of one band: 64 MiB.
BAND_BUDGET = 64 * 2**20


def _tile_bytes(c: int, k: int, a: int, m: int) -> int:
    # int64 patches, V (and its transposed copy), M (two copies), Y, bias sum.
    return 8 * (3 * c * a * a + 3 * k * a * a + 2 * k * m * m)


def layer_bands(x: np.ndarray, U, AT, BT, padding: int, bias=None, r: int = 3,
                requant: tuple | None = None, budget: int = BAND_BUDGET, tap_shift=None
                ) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """Yield ``(image, row0, row1, y)``: output rows [row0, row1) of image ``image`` (0 for
    an unbatched ``x``), ``y`` [K, row1 - row0, Wout] as :func:`layer_output` computes them.

    ``requant`` is None (raw int64) or ``(mult, shift, relu)`` (int8, golden.quant);
    ``tap_shift`` [alpha, alpha] or None as in :func:`golden.conv.winograd_conv2d_int`.
    """
    xb = x if x.ndim == 4 else x[None]
    n, c, h, w = xb.shape
    U, AT = np.asarray(U), np.asarray(AT)
    m, a, k = AT.shape[0], AT.shape[1], U.shape[0]
    grid = tile_grid(h, w, m, r, padding)
    rows_per_band = max(1, budget // (_tile_bytes(c, k, a, m) * grid.tiles_w))
    width = max((grid.tiles_w - 1) * m + a, w + 2 * padding)
    for image in range(n):
        for t0 in range(0, grid.tiles_h, rows_per_band):
            t1 = min(t0 + rows_per_band, grid.tiles_h)
            rows = (t1 - t0 - 1) * m + a
            top = t0 * m - padding               # input row of the band's first padded row
            band = np.zeros((c, rows, width), dtype=np.int64)
            lo, hi = max(top, 0), min(top + rows, h)
            if hi > lo:
                band[:, lo - top:hi - top, padding:padding + w] = xb[image, :, lo:hi]
            view = np.lib.stride_tricks.sliding_window_view(band, (a, a), axis=(1, 2))
            view = view[:, ::m, ::m][:, :t1 - t0, :grid.tiles_w]
            patches = np.ascontiguousarray(view.transpose(1, 2, 0, 3, 4).reshape(-1, c, a, a))
            del band, view
            tiles = winograd_tiles_int(patches, U, AT, BT, bias, tap_shift)
            del patches
            y = tiles.reshape(t1 - t0, grid.tiles_w, k, m, m).transpose(2, 0, 3, 1, 4)
            y = y.reshape(k, (t1 - t0) * m, grid.tiles_w * m)
            row0, row1 = t0 * m, min(t1 * m, grid.out_h)
            y = y[:, :row1 - row0, :grid.out_w]
            if requant is not None:
                y = requantize(y, requant[0], requant[1], relu=requant[2])
            yield image, row0, row1, np.ascontiguousarray(y)


def _out_shape(x: np.ndarray, U, AT, padding: int, r: int) -> tuple[int, ...]:
    h, w = x.shape[-2:]
    grid = tile_grid(h, w, np.asarray(AT).shape[0], r, padding)
    shape = (np.asarray(U).shape[0], grid.out_h, grid.out_w)
    return (x.shape[0], *shape) if x.ndim == 4 else shape


def layer_output(x: np.ndarray, U, AT, BT, padding: int, bias=None, r: int = 3,
                 requant: tuple | None = None, budget: int = BAND_BUDGET,
                 tap_shift=None) -> np.ndarray:
    """The layer's output for [C, H, W] or [N, C, H, W] ``x``, equal to
    ``winograd_conv2d_int`` (then ``requantize`` with ``requant``), in bands of ``budget``."""
    y = np.empty(_out_shape(x, U, AT, padding, r), np.int64 if requant is None else np.int8)
    yb = y if x.ndim == 4 else y[None]
    for image, row0, row1, band in layer_bands(x, U, AT, BT, padding, bias, r, requant, budget,
                                               tap_shift):
        yb[image, :, row0:row1] = band
    return y


def save_layer_output(path, x: np.ndarray, U, AT, BT, padding: int, bias=None, r: int = 3,
                      requant: tuple | None = None, budget: int = BAND_BUDGET, tap_shift=None
                      ) -> tuple[tuple[int, ...], np.dtype]:
    """Write :func:`layer_output` to the ``.npy`` file ``path`` band by band (the output is
    never held whole); returns its shape and dtype. Raises OSError."""
    shape = _out_shape(x, U, AT, padding, r)
    dtype = np.dtype(np.int64 if requant is None else np.int8)
    k, out_h, out_w = shape[-3:]
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                "shape": shape})
        start = f.tell()
        f.truncate(start + math.prod(shape) * dtype.itemsize)
        plane = out_h * out_w * dtype.itemsize
        for image, row0, row1, band in layer_bands(x, U, AT, BT, padding, bias, r, requant,
                                                   budget, tap_shift):
            for channel in range(k):
                f.seek(start + (image * k + channel) * plane + row0 * out_w * dtype.itemsize)
                f.write(band[channel].tobytes())
    return shape, dtype
