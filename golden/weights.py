"""Weight file formats v1 and v2: reader, validator and writer.

A NumPy ``.npz`` archive (compressed or not), always read with ``allow_pickle=False``. The format
is specified in ``docs/weight-format.md``; in short (v1; :mod:`golden.netfile` adds v2):

* ``format`` 0-d str ``"sparse-winograd-weights"``, ``version`` 0-d integer ``1`` or ``2``,
  ``layers`` 1-d str array of unique names matching ``[A-Za-z0-9_.-]+``, in network order;
* per layer ``L``: ``L/m``, ``L/r``, ``L/AT`` int64 [m, a], ``L/BT`` int64 [a, a], ``L/G`` float64
  [a, r], ``L/U`` int8 [K, C, a, a] in [-127, 127], ``L/scale`` float32 [K] > 0, ``L/padding``
  in [0, r - 1]; optional ``L/bias`` int32 [K], ``L/U_float`` float32 [K, C, a, a] (zero where U
  is), ``L/input_scale`` float32 0-d > 0.

Every problem raises :class:`WeightFileError` naming the file, the layer and the key.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .conv import tap_left_shifts
from .netfile import (Network, check_keys, parse_ops, validate_network, validate_requant,
                      validate_tap_shift)
from .safeio import ArrayReadError, BoundedNpz, is_npy_file, printable
from .transforms import check_triple

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "FORMAT_VERSIONS",
    "LayerWeights",
    "WeightFile",
    "WeightFileError",
    "load_weights",
    "save_weights",
    "validate_arrays",
]

FORMAT_NAME = "sparse-winograd-weights"
#: The newest version (written when a file holds a network); the reader accepts all of
#: :data:`FORMAT_VERSIONS`.
FORMAT_VERSION = 2
FORMAT_VERSIONS = (1, 2)
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_REQUIRED = ("m", "r", "AT", "BT", "G", "U", "scale", "padding")
_OPTIONAL = ("bias", "U_float", "input_scale")


class WeightFileError(ValueError):
    """A weight file (or in-memory layer) violates format v1 or v2.

    Members
    -------
    source : str
        The file path (or ``"<memory>"``).
    layer, key : str or None
        Where the problem is.
    """

    def __init__(self, source: str, message: str, layer: str | None = None,
                 key: str | None = None):
        self.source, self.layer, self.key, self.reason = source, layer, key, message
        where = [source]
        if layer is not None:
            where.append(f"layer '{layer}'")
        if key is not None:
            where.append(f"key '{key}'")
        # Names come from the file: a newline in a member name must not split the line.
        super().__init__(printable(f"{', '.join(where)}: {message}"))


@dataclass
class LayerWeights:
    """One convolution layer of a weight file (all arrays as stored; requant_* and relu are
    the version 2 requantisation, all three or none; tap_shift the optional version 2 tap
    shifts int8 [alpha, alpha])."""

    name: str
    m: int
    r: int
    AT: np.ndarray
    BT: np.ndarray
    G: np.ndarray
    U: np.ndarray
    scale: np.ndarray
    padding: int
    bias: np.ndarray | None = None
    U_float: np.ndarray | None = None
    input_scale: float | None = None
    requant_mult: np.ndarray | None = None
    requant_shift: np.ndarray | None = None
    relu: bool | None = None
    tap_shift: np.ndarray | None = None

    @property
    def alpha(self) -> int:
        """Input tile side m + r - 1."""
        return self.m + self.r - 1

    @property
    def out_channels(self) -> int:
        """K."""
        return int(self.U.shape[0])

    @property
    def in_channels(self) -> int:
        """C."""
        return int(self.U.shape[1])

    @property
    def bias_or_zeros(self) -> np.ndarray:
        """Bias as int64 [K] (zeros when absent)."""
        if self.bias is None:
            return np.zeros(self.out_channels, dtype=np.int64)
        return self.bias.astype(np.int64)

    @property
    def tap_left_shifts(self) -> np.ndarray:
        """Left shift of every accumulated Winograd position, ``max(tap_shift) - tap_shift``,
        int64 [alpha, alpha] (zeros without tap shifts)."""
        return tap_left_shifts(self.tap_shift, self.alpha)

    @property
    def sparsity(self) -> float:
        """Fraction of zero entries of U."""
        return float(np.count_nonzero(self.U == 0)) / self.U.size

    def arrays(self) -> dict[str, np.ndarray]:
        """The archive entries of this layer, keyed ``name/key``, with the format's dtypes."""
        out = {
            "m": np.array(self.m, dtype=np.int64), "r": np.array(self.r, dtype=np.int64),
            "AT": np.asarray(self.AT), "BT": np.asarray(self.BT), "G": np.asarray(self.G),
            "U": np.asarray(self.U), "scale": np.asarray(self.scale),
            "padding": np.array(self.padding, dtype=np.int64),
        }
        if self.bias is not None:
            out["bias"] = np.asarray(self.bias)
        if self.U_float is not None:
            out["U_float"] = np.asarray(self.U_float)
        if self.input_scale is not None:
            out["input_scale"] = np.asarray(self.input_scale, dtype=np.float32)  # held as float
        for key in ("requant_mult", "requant_shift"):
            if getattr(self, key) is not None:
                out[key] = np.asarray(getattr(self, key))
        if self.relu is not None:
            out["relu"] = np.array(int(self.relu), dtype=np.int64)
        if self.tap_shift is not None:
            out["tap_shift"] = np.asarray(self.tap_shift)
        return {f"{self.name}/{k}": v for k, v in out.items()}


@dataclass
class WeightFile:
    """A whole weight file: layers in network order, and the network of a version 2 file."""

    layers: list[LayerWeights] = field(default_factory=list)
    source: str = "<memory>"
    network: Network | None = None

    @property
    def version(self) -> int:
        """2 when the file holds a network, else 1."""
        return 1 if self.network is None else 2

    def arrays(self) -> dict[str, np.ndarray]:
        """Every archive entry of the file (not validated; :func:`validate_arrays` does)."""
        out = {
            "format": np.array(FORMAT_NAME),
            "version": np.array(self.version, dtype=np.int64),
            "layers": np.array(self.names, dtype=str),
        }
        for layer in self.layers:
            out.update(layer.arrays())
        if self.network is not None:
            out.update(self.network.arrays())
        return out

    @property
    def names(self) -> list[str]:
        """Layer names in order."""
        return [layer.name for layer in self.layers]

    def __getitem__(self, name: str) -> LayerWeights:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"{self.source}: no layer '{name}'; layers are: {', '.join(self.names)}")

    def __contains__(self, name: str) -> bool:
        return name in self.names


def _is_int_scalar(a: np.ndarray) -> bool:
    return a.ndim == 0 and a.dtype.kind in "iu"


def validate_arrays(arrays: Mapping[str, np.ndarray], source: str = "<memory>") -> WeightFile:
    """Validate a mapping of archive entries against format v1 or v2 and build a
    :class:`WeightFile`.

    Raises
    ------
    WeightFileError
        On the first violation, naming the layer and key.
    """
    def err(message, layer=None, key=None):
        return WeightFileError(source, message, layer, key)

    def get(key, layer=None):
        if key not in arrays:
            raise err("missing", layer, key)
        try:
            value = arrays[key]
            return np.asarray(value)
        except ArrayReadError as exc:   # a bounded reader's refusal (size, header, data)
            raise err(exc.reason, layer, key) from None
        except ValueError as exc:      # object arrays refused by allow_pickle=False
            raise err(f"cannot be read without unpickling ({exc}); object arrays are not "
                      "allowed", layer, key) from None
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise err(f"corrupt entry ({exc})", layer, key) from None

    fmt = get("format")
    if fmt.ndim != 0 or fmt.dtype.kind != "U":
        raise err(f"must be a 0-d str array, not {fmt.dtype} of shape {list(fmt.shape)}",
                  key="format")
    if str(fmt) != FORMAT_NAME:
        raise err(f"must be '{FORMAT_NAME}', not '{fmt}'", key="format")
    version = get("version")
    if not _is_int_scalar(version):
        raise err(f"must be a 0-d integer array, not {version.dtype} of shape "
                  f"{list(version.shape)}", key="version")
    version = int(version)
    if version not in FORMAT_VERSIONS:
        raise err(f"unsupported version {version}; this reader supports versions "
                  f"{' and '.join(map(str, FORMAT_VERSIONS))}", key="version")
    names = get("layers")
    if names.ndim != 1 or names.dtype.kind != "U":
        raise err(f"must be a 1-d str array, not {names.dtype} of shape {list(names.shape)}",
                  key="layers")
    if names.size == 0:
        raise err("lists no layers", key="layers")
    names = [str(n) for n in names]
    for n in names:
        if not _NAME_RE.fullmatch(n):
            raise err(f"layer name {n!r} must match [A-Za-z0-9_.-]+", key="layers")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise err(f"layer names must be unique; repeated: {', '.join(dup)}", key="layers")
    ops = parse_ops(get, err, names, _NAME_RE) if version == 2 else []
    check_keys(arrays, names, ops, version, _REQUIRED, _OPTIONAL, err)

    def present(key, layer=None):
        try:
            get(key, layer)
            return True
        except WeightFileError as exc:
            if exc.reason == "missing":
                return False
            raise

    layers = [_validate_layer(name, get, present, err, version) for name in names]
    network = None
    if version == 2:
        network = validate_network(get, present, err, ops, {lw.name: lw for lw in layers})
    return WeightFile(layers=layers, source=source, network=network)


def _validate_layer(name, get, present, err, version) -> LayerWeights:
    def key(k):
        return f"{name}/{k}"

    def int_scalar(k):
        a = get(key(k), name)
        if not _is_int_scalar(a):
            raise err(f"must be a 0-d integer, not {a.dtype} of shape {list(a.shape)}",
                      name, key(k))
        return int(a)

    def array(k, dtype, shape):
        a = get(key(k), name)
        if a.dtype != np.dtype(dtype):
            raise err(f"dtype must be {np.dtype(dtype)}, not {a.dtype}", name, key(k))
        if list(a.shape) != list(shape):
            raise err(f"shape must be {list(shape)}, not {list(a.shape)}", name, key(k))
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise err("contains NaN or Inf", name, key(k))
        return a

    m, r = int_scalar("m"), int_scalar("r")
    if m < 1:
        raise err(f"must be >= 1, not {m}", name, key("m"))
    if r < 1:
        raise err(f"must be >= 1, not {r}", name, key("r"))
    if m > 16 or r > 16:
        raise err(f"tile too large (m = {m}, r = {r}; at most 16 each)", name,
                  key("m") if m > 16 else key("r"))
    a = m + r - 1
    AT = array("AT", np.int64, (m, a))
    BT = array("BT", np.int64, (a, a))
    G = array("G", np.float64, (a, r))
    problem = check_triple(m, r, AT, BT, G)
    if problem:
        raise err(problem, name, f"{name}/G")

    U = get(key("U"), name)
    if U.dtype != np.int8:
        raise err(f"dtype must be int8, not {U.dtype}", name, key("U"))
    if U.ndim != 4 or U.shape[2:] != (a, a) or U.shape[0] < 1 or U.shape[1] < 1:
        raise err(f"shape must be [K, C, {a}, {a}] with K, C >= 1, not {list(U.shape)}",
                  name, key("U"))
    if np.any(U == -128):
        idx = tuple(int(i) for i in np.argwhere(U == -128)[0])
        raise err(f"values must lie in [-127, 127]; -128 at index {list(idx)}", name, key("U"))
    k, c = U.shape[:2]

    scale = array("scale", np.float32, (k,))
    if np.any(scale <= 0):
        raise err(f"must be positive; entry {int(np.argmax(scale <= 0))} is "
                  f"{scale[np.argmax(scale <= 0)]}", name, key("scale"))
    padding = int_scalar("padding")
    if not 0 <= padding <= r - 1:
        raise err(f"must lie in [0, {r - 1}], not {padding}", name, key("padding"))

    bias = array("bias", np.int32, (k,)) if present(key("bias"), name) else None
    U_float = None
    if present(key("U_float"), name):
        U_float = array("U_float", np.float32, U.shape)
        bad = (U == 0) & (U_float != 0)
        if np.any(bad):
            idx = [int(i) for i in np.argwhere(bad)[0]]
            raise err(f"must be zero wherever U is zero (pruned); nonzero at index {idx}",
                      name, key("U_float"))
    input_scale = None
    if present(key("input_scale"), name):
        s = array("input_scale", np.float32, ())
        if not s > 0:
            raise err(f"must be positive, not {float(s)}", name, key("input_scale"))
        input_scale = float(s)
    requant, tap_shift = {}, None
    if version == 2:
        requant = validate_requant(name, k, get, present, err)
        tap_shift = validate_tap_shift(name, a, get, present, err)
    return LayerWeights(name=name, m=m, r=r, AT=AT, BT=BT, G=G, U=U, scale=scale,
                        padding=padding, bias=bias, U_float=U_float, input_scale=input_scale,
                        tap_shift=tap_shift, **requant)


def load_weights(path: str | os.PathLike) -> WeightFile:
    """Read and validate a weight file (never unpickles).

    Raises
    ------
    WeightFileError
        If the file is missing, unreadable, truncated or violates format v1 / v2.
    """
    source = os.fspath(path)
    if not os.path.exists(source):
        raise WeightFileError(source, "no such file")
    if os.path.isdir(source):
        raise WeightFileError(source, "is a directory, not a weight file")
    try:
        with BoundedNpz(source) as npz:
            return validate_arrays(npz, source)
    except ArrayReadError as exc:       # the file itself (a member's problem names its key)
        if exc.reason.startswith("not a readable .npz archive") and is_npy_file(source):
            raise WeightFileError(source, "is a single .npy array, not an .npz archive") \
                from None
        raise WeightFileError(source, exc.reason) from None
    except OSError as exc:
        raise WeightFileError(source, f"cannot be read ({exc.strerror or exc})") from None


def save_weights(path: str | os.PathLike, layers, compressed: bool = True) -> None:
    """Validate ``layers`` and write them atomically (a temporary file renamed over ``path``).

    ``layers`` is a :class:`WeightFile` (version 2 when it has a ``network``, else 1) or a list
    of :class:`LayerWeights` (version 1). As with ``np.savez``, ``.npz`` is appended to a path
    without it.

    Raises
    ------
    WeightFileError
        If the layers would not make a valid file; nothing is written then.
    """
    weights = layers if isinstance(layers, WeightFile) else WeightFile(list(layers))
    arrays = weights.arrays()
    path = os.fspath(path)
    path = path if path.endswith(".npz") else path + ".npz"
    validate_arrays(arrays, path)
    from .cli import atomic_output      # here: golden.cli reads weight files itself
    with atomic_output(path) as tmp:
        (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
