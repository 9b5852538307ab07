"""IDX files (the MNIST family's array format), plain or gzip-compressed, read with bounds.

An IDX file is a 4-byte magic ``00 00 T D`` (``T`` the element type, ``D`` the number of
dimensions), ``D`` big-endian uint32 sizes, then the elements in C order, big-endian. The
declared sizes are checked against the data the file holds before anything is allocated: for a
plain file against its size, for a gzip file against the uncompressed size its trailer records
(ISIZE, modulo 2**32), and for both against :data:`MAX_BYTES`; the data must then be exactly as
long as declared.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

from .cli import atomic_output

__all__ = ["IDX_TYPES", "MAX_BYTES", "IdxError", "read_idx", "write_idx"]

#: Element type code -> NumPy dtype (big-endian where it matters).
IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
#: Largest data size read (bytes); Fashion-MNIST's largest file holds 47 MB.
MAX_BYTES = 1 << 30
_GZIP_MAGIC = b"\x1f\x8b"


class IdxError(ValueError):
    """A file is not a well-formed IDX file (the message names it and says why, one line)."""


def _open(path: str):
    """(binary stream, uncompressed size or None if unknown beyond the trailer's ISIZE)."""
    with open(path, "rb") as f:
        head = f.read(2)
        size = f.seek(0, os.SEEK_END)
        isize = None
        if head == _GZIP_MAGIC:
            if size < 18:
                raise IdxError(f"{path}: truncated gzip file ({size} bytes)")
            f.seek(-4, os.SEEK_END)
            isize = struct.unpack("<I", f.read(4))[0]
    if isize is None:
        return open(path, "rb"), size, False
    return gzip.open(path, "rb"), isize, True


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed when it starts with the gzip magic).

    Returns
    -------
    ndarray
        In the file's element type, native byte order, shape as declared.

    Raises
    ------
    IdxError
        For a missing or unreadable file, a bad magic or type, declared sizes the file cannot
        hold (checked before allocating), truncated or trailing data, or corrupt compression.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise IdxError(f"{path}: no such file")
    try:
        stream, available, compressed = _open(path)
        with stream:
            magic = stream.read(4)
            if len(magic) < 4 or magic[:2] != b"\0\0":
                raise IdxError(f"{path}: not an IDX file (magic {magic.hex() or 'missing'})")
            code, ndim = magic[2], magic[3]
            if code not in IDX_TYPES:
                raise IdxError(f"{path}: unknown IDX element type 0x{code:02x}")
            if ndim == 0:
                raise IdxError(f"{path}: IDX file declares 0 dimensions")
            raw = stream.read(4 * ndim)
            if len(raw) < 4 * ndim:
                raise IdxError(f"{path}: truncated IDX header ({ndim} dimensions declared)")
            shape = struct.unpack(f">{ndim}I", raw)
            dtype = IDX_TYPES[code]
            nbytes = math.prod(shape) * dtype.itemsize
            header = 4 + 4 * ndim
            if nbytes > MAX_BYTES:
                raise IdxError(f"{path}: declared shape {list(shape)} needs {nbytes} bytes, "
                               f"more than the {MAX_BYTES} read at most")
            expected = header + nbytes
            if (expected % (1 << 32) if compressed else expected) != available:
                what = "uncompressed size" if compressed else "file size"
                raise IdxError(f"{path}: declared shape {list(shape)} needs {expected} bytes "
                               f"but the {what} is {available}")
            data = stream.read(nbytes)
            if len(data) != nbytes:
                raise IdxError(f"{path}: truncated IDX data ({len(data)} of {nbytes} bytes)")
            if stream.read(1):
                raise IdxError(f"{path}: data beyond the declared shape {list(shape)}")
    except (OSError, EOFError, zlib.error) as exc:
        raise IdxError(f"{path}: cannot read ({exc})") from None
    return np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="), copy=True) \
        .reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file atomically (gzip-compressed if ``compress``, default: the
    name ends in ``.gz``).

    Raises
    ------
    ValueError
        For a dtype IDX cannot hold or a 0-dimensional array.
    """
    path = os.fspath(path)
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"array must have 1 to 255 dimensions, not {array.ndim}")
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"array dtype must be one of {', '.join(map(str, codes))}, "
                         f"not {array.dtype}")
    body = (bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes())
    if compress is None:
        compress = path.endswith(".gz")
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(gzip.compress(body, mtime=0) if compress else body)
