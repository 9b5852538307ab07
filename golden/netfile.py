"""Weight file format v2: the network keys (ops, input, classifier) and per-layer requantisation.

Version 2 adds to version 1 (``docs/weight-format.md``):

* per layer ``L``: ``L/requant_mult`` int32 [K] in [0, 2**15), ``L/requant_shift`` int32 [K] in
  [0, 47], ``L/relu`` 0-d integer 0 or 1 (the three together; ``golden.quant.requantize``);
* optional per layer ``L/tap_shift`` int8 [alpha, alpha] in [0, 15]: power-of-two scales of
  the Winograd positions (``golden.conv``), default all zero;
* ``network/ops`` 1-d str array: ``conv:L``, ``maxpool2``, ``flatten``, ``linear:N`` (last);
* ``network/input_shape`` int64 [3] (C, H, W), ``network/input_scale`` float32 0-d > 0, optional
  ``network/classes`` str [O];
* per linear op ``N``: ``N/W`` int8 [O, I] in [-127, 127], ``N/b`` int32 [O].

:mod:`golden.weights` reads the container and the v1 keys and calls the validators here for a
version 2 file; every problem raises :class:`~golden.weights.WeightFileError` naming the file,
layer or op and key. The integer semantics of each op live in :mod:`golden.network`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .quant import MAX_SHIFT, MULTIPLIER_BITS

__all__ = [
    "MAX_TAP_SHIFT",
    "OP_KINDS",
    "REQUANT_KEYS",
    "TAP_SHIFT_KEY",
    "LinearWeights",
    "Network",
    "NetworkOp",
    "chain_shapes",
    "check_keys",
    "parse_ops",
    "validate_network",
    "validate_requant",
    "validate_tap_shift",
]

#: Op kinds of ``network/ops``; ``conv`` and ``linear`` take a name after a colon.
OP_KINDS = ("conv", "maxpool2", "flatten", "linear")
#: The per-layer keys of version 2 (all three or none).
REQUANT_KEYS = ("requant_mult", "requant_shift", "relu")
#: The optional per-layer key of version 2 holding the tap shifts, and their largest value.
TAP_SHIFT_KEY = "tap_shift"
MAX_TAP_SHIFT = 15
_NETWORK_KEYS = ("ops", "input_shape", "input_scale", "classes")
_LINEAR_KEYS = ("W", "b")


@dataclass(frozen=True)
class NetworkOp:
    """One item of ``network/ops``: ``kind`` in :data:`OP_KINDS`, ``name`` for conv / linear."""

    kind: str
    name: str | None = None

    def __str__(self) -> str:
        return self.kind if self.name is None else f"{self.kind}:{self.name}"


@dataclass
class LinearWeights:
    """The classifier of a network: logits = ``W @ x + b`` in int64."""

    name: str
    W: np.ndarray
    b: np.ndarray

    @property
    def in_features(self) -> int:
        """I."""
        return int(self.W.shape[1])

    @property
    def out_features(self) -> int:
        """O."""
        return int(self.W.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """The archive entries, keyed ``name/W`` and ``name/b``."""
        return {f"{self.name}/W": np.asarray(self.W), f"{self.name}/b": np.asarray(self.b)}


@dataclass
class Network:
    """The network of a version 2 file (the conv layers themselves stay in the WeightFile).

    Members
    -------
    ops : list of NetworkOp
        In order; the last is ``linear``.
    input_shape : tuple of int
        (C, H, W) of one image.
    input_scale : float
        Real value of one int8 input step (stored as float32).
    linear : LinearWeights
        The classifier of the last op.
    classes : list of str or None
        Class names, one per logit.
    shapes : list of tuple of int
        Output shape of each op for one image (filled in by validation).
    """

    ops: list[NetworkOp]
    input_shape: tuple[int, int, int]
    input_scale: float
    linear: LinearWeights
    classes: list[str] | None = None
    shapes: list[tuple[int, ...]] | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The ``network/*`` entries and the classifier's."""
        out = {
            "network/ops": np.array([str(op) for op in self.ops], dtype=str),
            "network/input_shape": np.array(self.input_shape, dtype=np.int64),
            "network/input_scale": np.array(self.input_scale, dtype=np.float32),
        }
        if self.classes is not None:
            out["network/classes"] = np.array(self.classes, dtype=str)
        out.update(self.linear.arrays())
        return out


def parse_ops(get, err, layer_names: list[str], name_re) -> list[NetworkOp]:
    """Parse ``network/ops``: known kinds, conv ops naming every layer once in order, exactly
    one ``linear:N`` as the last op with a fresh valid name ``N``."""
    if "network" in layer_names:
        raise err("layer name 'network' is reserved for the network keys in version 2",
                  key="layers")
    key = "network/ops"
    items = get(key)
    if items.ndim != 1 or items.dtype.kind != "U":
        raise err(f"must be a 1-d str array, not {items.dtype} of shape {list(items.shape)}",
                  key=key)
    if items.size == 0:
        raise err("lists no ops", key=key)
    ops = []
    for i, text in enumerate(str(t) for t in items):
        kind, sep, name = text.partition(":")
        if kind not in OP_KINDS or (kind in ("conv", "linear")) != bool(sep):
            raise err(f"op {i} '{text}': unknown op; ops are conv:LAYER, maxpool2, flatten, "
                      "linear:NAME", key=key)
        if kind == "conv" and name not in layer_names:
            raise err(f"op {i} '{text}': no layer '{name}' in 'layers'", key=key)
        if kind == "linear":
            if not name_re.fullmatch(name) or name in layer_names or name == "network":
                raise err(f"op {i} '{text}': a linear op's name must match [A-Za-z0-9_.-]+ "
                          "and differ from 'network' and every layer name", key=key)
            if i != items.size - 1:
                raise err(f"op {i} '{text}': a linear op must be the last op", key=key)
        ops.append(NetworkOp(kind, name if sep else None))
    if ops[-1].kind != "linear":
        raise err(f"the last op must be linear:NAME, not '{ops[-1]}'", key=key)
    convs = [op.name for op in ops if op.kind == "conv"]
    if convs != layer_names:
        raise err(f"conv ops must use every layer of 'layers' once, in order (layers: "
                  f"{', '.join(layer_names)}; conv ops: {', '.join(convs) or 'none'})", key=key)
    return ops


def check_keys(arrays, names, ops, version, required, optional, err) -> None:
    """Refuse every key no part of the format owns (a misspelt optional key, conv1/baias,
    would silently drop data). ``required`` and ``optional`` are the version 1 layer keys."""
    optional = tuple(optional) + (REQUANT_KEYS + (TAP_SHIFT_KEY,) if version == 2 else ())
    owners = {"network": _NETWORK_KEYS}
    owners.update({op.name: _LINEAR_KEYS for op in ops if op.kind == "linear"})
    for key in arrays:
        if key in ("format", "version", "layers"):
            continue
        prefix, _, field_name = key.partition("/")
        if prefix in names:
            if version == 1 and field_name == TAP_SHIFT_KEY:
                raise err("tap shifts need version 2 (a network); this file is version 1",
                          prefix, key)
            if field_name not in tuple(required) + optional:
                raise err(f"unknown key; a v{version} layer has {', '.join(required)} and "
                          f"optionally {', '.join(optional)}", prefix, key)
        elif version == 2 and prefix in owners and field_name:
            if field_name not in owners[prefix]:
                what = "'network'" if prefix == "network" else f"linear op '{prefix}'"
                raise err(f"unknown key; {what} has {', '.join(owners[prefix])}",
                          None if prefix == "network" else prefix, key)
        elif version == 2:
            raise err("belongs to no layer listed in 'layers', no linear op of 'network/ops' "
                      "and is not a 'network/' key", key=key)
        else:
            raise err("belongs to no layer listed in 'layers'", key=key)


def validate_requant(name: str, k: int, get, present, err) -> dict:
    """The requantisation keys of layer ``name`` with ``k`` output channels (all or none)."""
    keys = [f"{name}/{key}" for key in REQUANT_KEYS]
    have = [present(key, name) for key in keys]
    if not any(have):
        return {}
    if not all(have):
        missing = keys[have.index(False)]
        raise err(f"missing; a layer with {keys[have.index(True)].split('/', 1)[1]} needs all "
                  f"of {', '.join(REQUANT_KEYS)}", name, missing)
    mult, shift = (_int32_vector(get, err, name, key, k) for key in keys[:2])
    _in_range(err, name, keys[0], mult, 0, (1 << MULTIPLIER_BITS) - 1)
    _in_range(err, name, keys[1], shift, 0, MAX_SHIFT)
    relu = get(keys[2], name)
    if not (relu.ndim == 0 and relu.dtype.kind in "iu"):
        raise err(f"must be a 0-d integer, not {relu.dtype} of shape {list(relu.shape)}",
                  name, keys[2])
    if int(relu) not in (0, 1):
        raise err(f"must be 0 or 1, not {int(relu)}", name, keys[2])
    return {"requant_mult": mult, "requant_shift": shift, "relu": bool(relu)}


def validate_tap_shift(name: str, alpha: int, get, present, err) -> np.ndarray | None:
    """The optional ``L/tap_shift`` of layer ``name``: int8 [alpha, alpha] in
    [0, :data:`MAX_TAP_SHIFT`] (None when absent)."""
    key = f"{name}/{TAP_SHIFT_KEY}"
    if not present(key, name):
        return None
    a = get(key, name)
    if a.dtype != np.int8:
        raise err(f"dtype must be int8, not {a.dtype}", name, key)
    if list(a.shape) != [alpha, alpha]:
        raise err(f"shape must be [{alpha}, {alpha}] (alpha x alpha), not {list(a.shape)}",
                  name, key)
    _in_range(err, name, key, a, 0, MAX_TAP_SHIFT)
    return a


def _int32_vector(get, err, layer, key, n):
    a = get(key, layer)
    if a.dtype != np.int32:
        raise err(f"dtype must be int32, not {a.dtype}", layer, key)
    if list(a.shape) != [n]:
        raise err(f"shape must be [{n}], not {list(a.shape)}", layer, key)
    return a


def _in_range(err, layer, key, a, lo, hi):
    bad = (a < lo) | (a > hi)
    if np.any(bad):
        i = [int(j) for j in np.argwhere(bad)[0]]
        raise err(f"values must lie in [{lo}, {hi}]; {a[tuple(i)]} at index {i}", layer, key)


def validate_network(get, present, err, ops: list[NetworkOp], layers: dict) -> Network:
    """The ``network/*`` keys and the classifier, with the shape chain checked.

    ``layers`` maps names to validated :class:`~golden.weights.LayerWeights`.
    """
    key = "network/input_shape"
    shape = get(key)
    if shape.dtype != np.int64 or shape.shape != (3,):
        raise err(f"must be int64 of shape [3] (C, H, W), not {shape.dtype} of shape "
                  f"{list(shape.shape)}", key=key)
    if np.any(shape < 1):
        raise err(f"entries must be >= 1, not {shape.tolist()}", key=key)
    key = "network/input_scale"
    scale = get(key)
    if scale.dtype != np.float32 or scale.ndim != 0:
        raise err(f"must be a 0-d float32, not {scale.dtype} of shape {list(scale.shape)}",
                  key=key)
    if not (math.isfinite(float(scale)) and float(scale) > 0):
        raise err(f"must be finite and > 0, not {float(scale)}", key=key)

    head = ops[-1].name
    W, b = get(f"{head}/W", head), get(f"{head}/b", head)
    if W.dtype != np.int8:
        raise err(f"dtype must be int8, not {W.dtype}", head, f"{head}/W")
    if W.ndim != 2 or 0 in W.shape:
        raise err(f"shape must be [O, I] with O, I >= 1, not {list(W.shape)}", head, f"{head}/W")
    if np.any(W == -128):
        i = [int(j) for j in np.argwhere(W == -128)[0]]
        raise err(f"values must lie in [-127, 127]; -128 at index {i}", head, f"{head}/W")
    _int32_vector(get, err, head, f"{head}/b", W.shape[0])
    linear = LinearWeights(head, W, b)

    classes = None
    if present("network/classes"):
        names = get("network/classes")
        if names.ndim != 1 or names.dtype.kind != "U" or names.size != W.shape[0]:
            raise err(f"must be a 1-d str array of {W.shape[0]} class names (one per row of "
                      f"{head}/W), not {names.dtype} of shape {list(names.shape)}",
                      key="network/classes")
        classes = [str(n) for n in names]
    for i, op in enumerate(ops):
        if op.kind == "conv" and layers[op.name].requant_mult is None:
            raise err(f"missing; layer '{op.name}' is used by op {i} '{op}' of 'network/ops', "
                      "which needs requant_mult, requant_shift and relu", op.name,
                      f"{op.name}/requant_mult")
    network = Network(ops=ops, input_shape=tuple(int(v) for v in shape),
                      input_scale=float(scale), linear=linear, classes=classes)
    network.shapes = chain_shapes(network, layers, err)
    return network


def chain_shapes(network: Network, layers: dict, err=None) -> list[tuple[int, ...]]:
    """Output shape of each op for one image; a broken chain raises ``err(...)`` naming the
    op (a :class:`~golden.weights.WeightFileError`; ``ValueError`` without ``err``)."""
    if err is None:
        def err(message, layer=None, key=None):
            return ValueError(message)
    shapes, shape = [], network.input_shape
    for i, op in enumerate(network.ops):
        prev = "the input (network/input_shape)" if i == 0 else f"op {i - 1} '{network.ops[i - 1]}'"
        where = f"op {i} '{op}'"
        if op.kind in ("conv", "maxpool2") and len(shape) != 3:
            raise err(f"{where}: needs a [C, H, W] input, but {prev} gives {list(shape)}",
                      key="network/ops")
        if op.kind == "conv":
            layer = layers[op.name]
            c, h, w = shape
            if c != layer.in_channels:
                raise err(f"{where}: layer '{op.name}' takes {layer.in_channels} input "
                          f"channels, but {prev} gives {c} (shape {list(shape)})",
                          key="network/ops")
            ho, wo = h + 2 * layer.padding - layer.r + 1, w + 2 * layer.padding - layer.r + 1
            if ho < 1 or wo < 1:
                raise err(f"{where}: input {h}x{w} with padding {layer.padding} is smaller "
                          f"than the {layer.r}x{layer.r} kernel", key="network/ops")
            shape = (layer.out_channels, ho, wo)
        elif op.kind == "maxpool2":
            if shape[1] < 2 or shape[2] < 2:
                raise err(f"{where}: input {shape[1]}x{shape[2]} is smaller than 2x2",
                          key="network/ops")
            shape = (shape[0], shape[1] // 2, shape[2] // 2)
        elif op.kind == "flatten":
            if len(shape) != 3:
                raise err(f"{where}: input is already flat ({list(shape)})", key="network/ops")
            shape = (shape[0] * shape[1] * shape[2],)
        else:
            if len(shape) != 1:
                raise err(f"{where}: needs a flat input; put flatten before it ({prev} gives "
                          f"{list(shape)})", key="network/ops")
            W = network.linear.W
            if W.shape[1] != shape[0]:
                raise err(f"shape must be [{W.shape[0]}, {shape[0]}] (the input of {where} "
                          f"has {shape[0]} features), not {list(W.shape)}",
                          op.name, f"{op.name}/W")
            shape = (W.shape[0],)
        shapes.append(shape)
    return shapes
