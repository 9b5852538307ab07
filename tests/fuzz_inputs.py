"""Hypothesis fuzzing of every reader and tool input (run by tests/test_fuzz.py in a child
process under a memory ceiling, so that an unbounded allocation fails the test, not the machine).

Usage: ``python tests/fuzz_inputs.py WORKDIR EXAMPLES`` prints one JSON line of counts.
Each generated file is corrupt or hostile (or, by chance, valid): the weight-file reader must
return a WeightFile or raise a one-line WeightFileError naming the file; every tool must exit
0 or 2 with one ``<prog>: error:`` line, never a traceback, and leave no stray file behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from golden import network as golden_network  # noqa: E402
from golden import run as golden_run  # noqa: E402
from golden.cli import CliError  # noqa: E402
from golden.options import read_config  # noqa: E402
from golden.config import DEFAULT  # noqa: E402
from golden.cost import check_buildable  # noqa: E402
from golden.synthetic import synthetic_network  # noqa: E402
from golden.weights import WeightFileError, load_weights  # noqa: E402

COUNTS = {"weights": 0, "weights_valid": 0, "golden.run": 0, "golden.network": 0,
          "manifest": 0}


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def _valid_members() -> dict[str, bytes]:
    weights = synthetic_network(DEFAULT, (3, 9, 7), (6, 5), (0,), classes=4, seed=3)
    return {f"{k}.npy": _npy(v) for k, v in weights.arrays().items()}


VALID = _valid_members()
NAMES = sorted(VALID)
DTYPES = ["|i1", "<i2", "<i4", "<i8", "<u8", "<f4", "<f8", "|b1", "<U8", "|S4", "|O", "<c16",
          "<V4", ">i8"]
# Dimensions an attacker would pick: zero, small, at the limits, absurd.
DIMS = st.one_of(st.integers(0, 9), st.sampled_from([2**16, 2**31 - 1, 2**32, 10**6, 10**12]))


@st.composite
def hostile_npy(draw) -> bytes:
    """A ``.npy`` whose header may lie: any dtype, rank, dims; data of any length."""
    kind = draw(st.sampled_from(["header", "array", "garbage"]))
    if kind == "garbage":
        return draw(st.binary(max_size=300))
    if kind == "array":
        dtype = draw(st.sampled_from(["i1", "i8", "f4", "f8", "U3", "i4"]))
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=4)))
        values = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64) % 7 - 3
        data = _npy(values.reshape(shape).astype(dtype))
        if draw(st.booleans()):
            data = data[:draw(st.integers(0, len(data)))]
        return data
    shape = tuple(draw(st.lists(DIMS, max_size=5)))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {
        "descr": draw(st.sampled_from(DTYPES)), "fortran_order": draw(st.booleans()),
        "shape": shape})
    return header.getvalue() + draw(st.binary(max_size=200))


@st.composite
def hostile_archive(draw) -> bytes:
    """A valid v2 weight file with members replaced, dropped, added or bytes damaged."""
    members = dict(VALID)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "replace", "drop", "add", "ops"]))
        name = draw(st.sampled_from(NAMES))
        if action == "replace":
            members[name] = draw(hostile_npy())
        elif action == "drop":
            members.pop(name, None)
        elif action == "add":
            members[draw(st.sampled_from(["../evil.npy", "conv0/extra.npy", "x", "a/b/c.npy",
                                          "network/zzz.npy", "/abs.npy"]))] = draw(hostile_npy())
        else:       # the v2 network keys: ops and shapes that do not chain
            ops = draw(st.lists(st.sampled_from(["conv:conv0", "conv:conv1", "maxpool2",
                                                 "flatten", "linear:fc", "linear:", "conv:",
                                                 "relu", "conv:nope", "maxpool2:x"]),
                                max_size=7))
            members["network/ops.npy"] = _npy(np.array(ops, dtype=str))
            members["network/input_shape.npy"] = _npy(np.array(
                draw(st.lists(DIMS, min_size=0, max_size=4)), dtype=np.int64))
    buffer = io.BytesIO()
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    data = bytearray(buffer.getvalue())
    damage = draw(st.sampled_from(["none", "none", "flip", "truncate"]))
    if damage == "flip" and data:
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= draw(st.integers(1, 255))
    elif damage == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


def _tool(main, prog: str, argv: list[str], work: Path, expected: set) -> int:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(argv)
    lines = err.getvalue().splitlines()
    assert status in (0, 2), (status, err.getvalue())
    if status == 2:
        assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err.getvalue()
    leftover = {p.name for p in work.iterdir()} - expected
    assert not leftover, leftover
    return status


def run(work: Path, examples: int) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fuzz-", dir=work))      # nothing else in it
    weights_path, x_path, out = work / "w.npz", work / "x.npy", work / "y.npy"
    common = settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                      suppress_health_check=list(HealthCheck))
    good_weights = work / "good.npz"
    good_weights.write_bytes(_zip(VALID))
    np.save(work / "good_x.npy", np.ones((3, 9, 7), np.int8))

    @common
    @given(hostile_archive())
    def weights(data):
        weights_path.write_bytes(data)
        COUNTS["weights"] += 1
        try:
            load_weights(weights_path)
            COUNTS["weights_valid"] += 1
        except WeightFileError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(f"{weights_path}"), str(exc)
        status = _tool(golden_network.main, "golden.network",
                       ["--weights", str(weights_path), "--input", str(work / "good_x.npy"),
                        "--out", str(out)], work, {"w.npz", "good.npz", "good_x.npy", "y.npy"})
        assert (status == 0) == out.exists()
        out.unlink(missing_ok=True)

    @settings(common, max_examples=max(1, examples // 2))
    @given(hostile_npy(), st.sampled_from(["conv0", "conv1"]))
    def inputs(data, layer):
        x_path.write_bytes(data)
        COUNTS["golden.run"] += 1
        status = _tool(golden_run.main, "golden.run",
                       ["--weights", str(good_weights), "--layer", layer, "--input",
                        str(x_path), "--out", str(out)], work,
                       {"w.npz", "good.npz", "good_x.npy", "x.npy", "y.npy"})
        assert (status == 0) == out.exists()
        out.unlink(missing_ok=True)
        COUNTS["golden.network"] += 1
        _tool(golden_network.main, "golden.network",
              ["--weights", str(good_weights), "--input", str(x_path), "--out", str(out)],
              work, {"w.npz", "good.npz", "good_x.npy", "x.npy", "y.npy"})
        out.unlink(missing_ok=True)

    manifest = work / "design.json"
    base = {"manifest_version": 1, "config": DEFAULT.to_dict()}
    json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70)
                               | st.floats() | st.text(max_size=5),
                               lambda kids: st.lists(kids, max_size=3)
                               | st.dictionaries(st.text(max_size=5), kids, max_size=3),
                               max_leaves=6)

    @settings(common, max_examples=max(1, examples // 4))
    @given(st.sampled_from(sorted(base["config"]) + ["manifest_version", "config", "extra"]),
           json_values, st.booleans())
    def manifests(key, value, garble):
        d = json.loads(json.dumps(base))
        if key in d:
            d[key] = value
        else:
            d["config"][key] = value
        text = json.dumps(d)
        manifest.write_text(text[: len(text) // 2] if garble else text)
        COUNTS["manifest"] += 1
        try:
            config = read_config(str(manifest))
        except CliError as exc:
            assert "\n" not in str(exc)
            return
        try:
            check_buildable(config, available=2**33)
        except ValueError as exc:
            assert "\n" not in str(exc)

    weights()
    inputs()
    manifests()
    return COUNTS


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    print(json.dumps(run(Path(sys.argv[1]), int(sys.argv[2]))))
