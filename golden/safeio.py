"""Bounded reading of ``.npy`` files and ``.npz`` archives: sizes checked before allocating.

Every reader of the project (weight files, activation inputs, labels) goes through here, so that
a hostile or unlucky file costs at most its documented limit, never what its header claims:

* the ``.npy`` header of a file or of each archive member is parsed first
  (:func:`numpy.lib.format.read_magic` and ``read_array_header_*``); a declared size above
  :data:`MAX_ARRAY_BYTES` (per array) or, summed over an archive, :data:`MAX_ARCHIVE_BYTES`,
  is refused before any allocation, naming the key, the declared shape and the limit;
* exactly the declared number of bytes is then read, so decompressing a member stops at its
  limit (a zip bomb is refused from its header, or read no further than its header says);
* object arrays are refused (nothing is ever unpickled), as are archives of more than
  :data:`MAX_MEMBERS` entries and members holding more data than their header declares.

Problems raise :class:`ArrayReadError` (a ``ValueError``) with the key, when there is one.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np
from numpy.lib import format as npy_format

__all__ = ["MAX_ARCHIVE_BYTES", "MAX_ARRAY_BYTES", "MAX_MEMBERS", "ArrayReadError",
           "BoundedNpz", "check_torch_file", "is_npy_file", "printable", "read_npy",
           "read_npy_header"]

#: Largest array any reader allocates: 256 MiB (a 1024 x 1024-channel F(4x4,3x3) layer's
#: ``U_float`` is 144 MiB; a 16 x 2048 x 2048 int8 input is 64 MiB).
MAX_ARRAY_BYTES = 256 * 2**20
#: Largest sum of the declared array sizes of one ``.npz`` archive: 1 GiB.
MAX_ARCHIVE_BYTES = 2**30
#: Most entries an ``.npz`` archive may hold (a layer has at most 14 keys).
MAX_MEMBERS = 65536
_CHUNK = 2**22
# What zipfile raises for a damaged member: bad CRC or headers, a broken deflate stream, an
# unknown compression method, encryption.
_CORRUPT = (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)


def printable(text: str) -> str:
    """``text`` with every unprintable character (newline, control, separator) escaped as in
    a Python string literal: a name taken from a file stays on the error's one line."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class ArrayReadError(ValueError):
    """A ``.npy`` file or ``.npz`` member that cannot be read safely; ``key`` names the member
    (None for a plain ``.npy`` file)."""

    def __init__(self, message: str, key: str | None = None):
        self.key, self.reason = key, message
        super().__init__(printable(message))


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n} bytes"


def read_npy_header(stream, key: str | None = None,
                    limit: int = MAX_ARRAY_BYTES) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Parse the ``.npy`` header at ``stream``'s position and check it against ``limit``.

    Returns
    -------
    shape, fortran_order, dtype
        As declared; ``stream`` is left at the first data byte.

    Raises
    ------
    ArrayReadError
        For a header that is not ``.npy``, an object dtype or a size above ``limit``.
    """
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npy_format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except _CORRUPT as exc:
        raise ArrayReadError(f"corrupt entry ({' '.join(str(exc).split())})", key) from None
    except (ValueError, EOFError, OSError) as exc:
        raise ArrayReadError(f"not a readable .npy array ({' '.join(str(exc).split())})",
                             key) from None
    if dtype.hasobject:
        raise ArrayReadError("cannot be read without unpickling (dtype holds Python "
                             "objects); object arrays are not allowed", key)
    if dtype.itemsize == 0:
        raise ArrayReadError(f"dtype {dtype} has no size", key)
    # Zero dimensions count as one: an empty array may not declare absurd other dimensions.
    nbytes = math.prod(max(d, 1) for d in shape) * dtype.itemsize
    if nbytes > limit:
        raise ArrayReadError(f"declared shape {list(shape)} {dtype} is {_mib(nbytes)}, above "
                             f"the limit of {_mib(limit)} per array", key)
    return shape, fortran, dtype


def _read_data(stream, shape, fortran: bool, dtype: np.dtype, key) -> np.ndarray:
    """Read exactly the declared bytes (in chunks: no more is ever decompressed)."""
    nbytes = math.prod(shape) * dtype.itemsize
    buffer = bytearray(nbytes)
    view, done = memoryview(buffer), 0
    try:
        while done < nbytes:
            got = stream.readinto(view[done:done + _CHUNK])
            if not got:
                raise ArrayReadError(f"truncated: {done} of the {nbytes} data bytes its "
                                     f"header declares", key)
            done += got
    except (OSError, EOFError, ValueError, *_CORRUPT) as exc:
        if isinstance(exc, ArrayReadError):
            raise
        raise ArrayReadError(f"corrupt entry ({' '.join(str(exc).split())})", key) from None
    try:
        array = np.frombuffer(buffer, dtype=dtype)
        return array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)
    except ValueError as exc:
        raise ArrayReadError(f"not a readable .npy array ({' '.join(str(exc).split())})",
                             key) from None


def read_npy(path: str | os.PathLike, limit: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """Read a ``.npy`` file, its declared size checked against ``limit`` before allocating.

    Raises
    ------
    ArrayReadError
        Unreadable, object dtype, too large, truncated, or an ``.npz`` archive.
    """
    with open(path, "rb") as stream:
        if stream.read(4) == b"PK\x03\x04":
            raise ArrayReadError("is an .npz archive, not a single .npy array")
        stream.seek(0)
        shape, fortran, dtype = read_npy_header(stream, None, limit)
        return _read_data(stream, shape, fortran, dtype, None)


def check_torch_file(path: str | os.PathLike, limit: int = MAX_ARCHIVE_BYTES) -> None:
    """Refuse, before ``torch.load``, a ``torch.save`` file that would unpack to more than
    ``limit`` bytes: in the zip format the records' declared sizes together, and any compressed
    record (torch stores them uncompressed: a compressed one could be a bomb); in the legacy
    format the file's size.

    Raises
    ------
    ArrayReadError
        Naming the record, its size and the limit.
    """
    size = os.path.getsize(path)
    if not zipfile.is_zipfile(path):
        if size > limit:
            raise ArrayReadError(f"is {_mib(size)}, above the limit of {_mib(limit)}")
        return
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (EOFError, OSError, ValueError, *_CORRUPT) as exc:
        raise ArrayReadError(f"not a readable torch.save archive "
                             f"({' '.join(str(exc).split())})") from None
    if len(infos) > MAX_MEMBERS:
        raise ArrayReadError(f"holds {len(infos)} records, more than the limit of {MAX_MEMBERS}")
    total = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise ArrayReadError("is compressed (torch.save stores records uncompressed)",
                                 info.filename)
        total += info.file_size
        if total > limit:
            raise ArrayReadError(f"brings the records above the limit of {_mib(limit)} in all",
                                 info.filename)


class BoundedNpz(Mapping):
    """The arrays of an ``.npz`` archive, each read on access within the limits.

    Keys are the member names without ``.npy``, as :class:`numpy.lib.npyio.NpzFile` gives
    them. A member is read (and counted against ``archive_limit``) once; later accesses return
    the same array. Use as a context manager (or call :meth:`close`).

    Parameters
    ----------
    path : str or path-like
        The archive.
    array_limit, archive_limit : int
        Bytes one array, and all arrays read so far together, may declare.

    Raises
    ------
    ArrayReadError
        From the constructor for a file that is not a zip archive or has too many members;
        from item access for a member that cannot be read (naming its key).
    """

    def __init__(self, path: str | os.PathLike, array_limit: int = MAX_ARRAY_BYTES,
                 archive_limit: int = MAX_ARCHIVE_BYTES):
        self._handle = open(path, "rb")
        try:
            self._zip = zipfile.ZipFile(self._handle)
        except (EOFError, OSError, ValueError, *_CORRUPT) as exc:
            self._handle.close()
            raise ArrayReadError(f"not a readable .npz archive "
                                 f"({' '.join(str(exc).split())})") from None
        infos = self._zip.infolist()
        if len(infos) > MAX_MEMBERS:
            self.close()
            raise ArrayReadError(f"holds {len(infos)} entries, more than the limit of "
                                 f"{MAX_MEMBERS}")
        self._members = {}
        for info in infos:
            name = info.filename
            self._members.setdefault(name[:-4] if name.endswith(".npy") else name, info)
        self._array_limit, self._archive_limit = array_limit, archive_limit
        self._declared = 0
        self._read = {}

    def __getitem__(self, key: str) -> np.ndarray:
        info = self._members[key]          # KeyError for an unknown key, as a Mapping does
        if key in self._read:
            return self._read[key]
        if not info.filename.endswith(".npy"):
            raise ArrayReadError("is not a .npy array (member name without .npy)", key)
        try:
            with self._zip.open(info) as stream:
                shape, fortran, dtype = read_npy_header(stream, key, self._array_limit)
                nbytes = math.prod(shape) * dtype.itemsize
                if self._declared + nbytes > self._archive_limit:
                    raise ArrayReadError(
                        f"declared shape {list(shape)} {dtype} ({_mib(nbytes)}) brings the "
                        f"archive above the limit of {_mib(self._archive_limit)} in all", key)
                self._declared += nbytes
                array = _read_data(stream, shape, fortran, dtype, key)
                if stream.read(1):      # also makes zipfile check the CRC at the end
                    raise ArrayReadError("holds more data than its header declares", key)
        except (EOFError, OSError, *_CORRUPT) as exc:
            raise ArrayReadError(f"corrupt entry ({' '.join(str(exc).split())})", key) \
                from None
        self._read[key] = array
        return array

    def __iter__(self):
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, key) -> bool:
        return key in self._members

    def close(self) -> None:
        """Close the archive and its file."""
        self._zip.close()
        self._handle.close()

    def __enter__(self) -> "BoundedNpz":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def is_npy_file(path) -> bool:
    """Whether the file at ``path`` starts with the ``.npy`` magic (a single array)."""
    with open(path, "rb") as f:
        return f.read(6) == b"\x93NUMPY"
