"""Builders of hostile and corrupt files for the reader and command-line tests.

Each writes a file the way an attacker (or a disk) would: ``.npy`` headers that lie about the
shape, zip bombs, archives whose members hold more than their header says. The tools must
refuse every one with one line and exit status 2, within seconds and a memory ceiling
(:func:`run_capped`).
"""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from golden.transforms import TILES, tile_transform
from golden.weights import FORMAT_NAME

REPO = Path(__file__).resolve().parent.parent
#: Address-space ceiling of a tool run by :func:`run_capped`: an allocation above it fails.
MEMORY_CEILING = 2**30


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as the bytes of a ``.npy`` file (never pickled)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_header(shape, dtype="|i1", fortran: bool = False) -> bytes:
    """A ``.npy`` header (version 1.0) declaring ``shape`` and ``dtype``, no data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": np.dtype(dtype).str, "fortran_order": fortran, "shape": tuple(shape)})
    return buffer.getvalue()


def layer_arrays(name: str = "conv1", tile: str = "4x4", k: int = 2, c: int = 3,
                 seed: int = 0) -> dict:
    """The required keys of one valid layer."""
    m, r = TILES[tile]
    tr = tile_transform(tile)
    rng = np.random.default_rng(seed)
    U = rng.integers(-127, 128, (k, c, tr.alpha, tr.alpha)).astype(np.int8)
    return {f"{name}/m": np.array(m), f"{name}/r": np.array(r), f"{name}/AT": tr.AT_int,
            f"{name}/BT": tr.BT_int, f"{name}/G": tr.G_float, f"{name}/U": U,
            f"{name}/scale": np.full(k, 0.01, np.float32), f"{name}/padding": np.array(1)}


def weight_members(name: str = "conv1", **layer) -> dict[str, bytes]:
    """Member name -> ``.npy`` bytes of a valid one-layer version 1 weight file."""
    arrays = {"format": np.array(FORMAT_NAME), "version": np.array(1),
              "layers": np.array([name]), **layer_arrays(name, **layer)}
    return {f"{key}.npy": npy_bytes(value) for key, value in arrays.items()}


def write_zip(path, members: dict[str, bytes], compress: bool = True) -> Path:
    """Write ``members`` (name -> bytes) as a zip archive."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return Path(path)


def zip_bomb_member(path, members: dict[str, bytes], name: str, header: bytes,
                    zero_bytes: int) -> Path:
    """``members`` plus ``name``: ``header`` then ``zero_bytes`` zeros, deflated (about 1 KiB
    per MiB), the zip headers declaring the true sizes."""
    write_zip(path, members)
    chunk = bytes(2**24)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open(name, "w", force_zip64=True) as f:
            f.write(header)
            left = zero_bytes
            while left:
                f.write(chunk[:min(left, len(chunk))])
                left -= min(left, len(chunk))
    return Path(path)


def _cap_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CEILING, MEMORY_CEILING))


def run_capped(module: str, *args, timeout: float = 60, cwd=None) -> subprocess.CompletedProcess:
    """``python -m module args`` under :data:`MEMORY_CEILING` of address space."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, env=env,
                          preexec_fn=_cap_memory)


def assert_refused(result: subprocess.CompletedProcess, prog: str, *fragments: str,
                   status: int = 2) -> str:
    """One line ``<prog>: error: ...`` holding every fragment, exit ``status``, no traceback."""
    assert result.returncode == status, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
