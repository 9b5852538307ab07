"""Weight file format v1: malformed files each give one clear WeightFileError naming the layer
and key; valid files (all optional keys, compressed or not) round-trip exactly."""

import os
import zipfile

import numpy as np
import pytest

from golden.transforms import TILES, tile_transform
from golden.weights import (FORMAT_NAME, LayerWeights, WeightFile, WeightFileError,
                            load_weights, save_weights, validate_arrays)
from helpers import replace_keys as _with


def layer_arrays(name: str, tile: str, k: int, c: int, seed: int) -> dict:
    """Every key of one valid layer, optional ones included."""
    m, r = TILES[tile]
    tr = tile_transform(tile)
    rng = np.random.default_rng(seed)
    a = tr.alpha
    U = rng.integers(-127, 128, (k, c, a, a)).astype(np.int8)
    U[rng.random(U.shape) < 0.6] = 0
    scale = rng.uniform(1e-3, 1e-1, k).astype(np.float32)
    return {
        f"{name}/m": np.array(m), f"{name}/r": np.array(r),
        f"{name}/AT": tr.AT_int, f"{name}/BT": tr.BT_int, f"{name}/G": tr.G_float,
        f"{name}/U": U, f"{name}/scale": scale, f"{name}/padding": np.array(1),
        f"{name}/bias": rng.integers(-1000, 1000, k).astype(np.int32),
        f"{name}/U_float": (U * scale[:, None, None, None]).astype(np.float32),
        f"{name}/input_scale": np.array(0.02, dtype=np.float32),
    }


def valid_arrays() -> dict:
    arrays = {"format": np.array(FORMAT_NAME), "version": np.array(1),
              "layers": np.array(["conv1", "conv2"])}
    arrays.update(layer_arrays("conv1", "4x4", 3, 2, seed=1))
    arrays.update(layer_arrays("conv2", "6x6", 2, 3, seed=2))
    return arrays


def _write(path, arrays, compressed=False):
    # np.savez pickles object arrays (allow_pickle defaults to True on write).
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def _edit(key, fn):
    """A mutation editing a copy of one array in place."""
    def mutate(arrays):
        a = np.array(arrays[key])
        fn(a)
        arrays[key] = a
        return arrays
    return mutate


def _set(index, value):
    def fn(a):
        a[index] = value
    return fn


def _rename_layer(old, new):
    def mutate(arrays):
        out = {}
        for key, value in arrays.items():
            out[key.replace(f"{old}/", f"{new}/", 1) if key.startswith(f"{old}/") else key] = value
        out["layers"] = np.array([new if n == old else n for n in arrays["layers"].tolist()])
        return out
    return mutate


class _Unpickled:
    """An object whose unpickling would create a file: proof that the reader never unpickles."""

    marker = None

    def __reduce__(self):
        return (open, (self.marker, "w"))


# (id, mutation, layer, key, message regex)
CASES = [
    ("no-format", _with(format=None), None, "format", r"missing"),
    ("wrong-format-name", _with(format=np.array("sparse-weights")), None, "format",
     r"must be 'sparse-winograd-weights', not 'sparse-weights'"),
    ("format-not-0d", _with(format=np.array([FORMAT_NAME])), None, "format",
     r"must be a 0-d str array"),
    ("format-bytes", _with(format=np.array(FORMAT_NAME.encode())), None, "format",
     r"must be a 0-d str array, not \|S23"),
    ("no-version", _with(version=None), None, "version", r"missing"),
    ("version-3", _with(version=np.array(3)), None, "version",
     r"unsupported version 3; this reader supports versions 1 and 2"),
    ("v1-with-requant", _with(conv1__relu=np.array(1)), "conv1", "conv1/relu",
     r"unknown key; a v1 layer has m, r, .* and optionally bias, U_float, input_scale$"),
    ("v1-with-network", _with(network__ops=np.array(["conv:conv1"])), None, "network/ops",
     r"belongs to no layer listed in 'layers'"),
    ("version-0", _with(version=np.array(0)), None, "version", r"unsupported version 0"),
    ("version-float", _with(version=np.array(1.0)), None, "version",
     r"must be a 0-d integer array, not float64"),
    ("version-str", _with(version=np.array("1")), None, "version",
     r"must be a 0-d integer array, not <U1"),
    ("no-layers", _with(layers=None), None, "layers", r"missing"),
    ("layers-2d", _with(layers=np.array([["conv1", "conv2"]])), None, "layers",
     r"must be a 1-d str array, not <U5 of shape \[1, 2\]"),
    ("layers-int", _with(layers=np.array([1, 2])), None, "layers", r"must be a 1-d str array"),
    ("layers-empty", _with(layers=np.array([], dtype=str)), None, "layers",
     r"lists no layers"),
    ("layer-name-space", _rename_layer("conv1", "conv 1"), None, "layers",
     r"layer name 'conv 1' must match \[A-Za-z0-9_.-\]\+"),
    ("layer-name-slash", _with(layers=np.array(["conv1", "a/b"])), None, "layers",
     r"layer name 'a/b' must match"),
    ("layer-name-empty", _with(layers=np.array(["conv1", ""])), None, "layers",
     r"layer name '' must match"),
    ("duplicate-names", _with(layers=np.array(["conv1", "conv2", "conv1"])), None, "layers",
     r"layer names must be unique; repeated: conv1"),
    ("orphan-layer-key", _with(**{"conv9__U": np.zeros((1, 1, 4, 4), np.int8)}), None,
     "conv9/U", r"belongs to no layer listed in 'layers'"),
    ("orphan-top-key", _with(extra=np.array(1)), None, "extra", r"belongs to no layer"),
    ("unknown-layer-key", _with(**{"conv1__baias": np.zeros(4, np.int32)}), "conv1",
     "conv1/baias", r"unknown key; a v1 layer has m, r, AT"),
    ("layer-not-listed", _with(layers=np.array(["conv1"])), None, "conv2/m",
     r"belongs to no layer"),
    ("no-U", _with(conv1__U=None), "conv1", "conv1/U", r"missing"),
    ("no-m", _with(conv2__m=None), "conv2", "conv2/m", r"missing"),
    ("no-r", _with(conv1__r=None), "conv1", "conv1/r", r"missing"),
    ("no-AT", _with(conv1__AT=None), "conv1", "conv1/AT", r"missing"),
    ("no-BT", _with(conv2__BT=None), "conv2", "conv2/BT", r"missing"),
    ("no-G", _with(conv1__G=None), "conv1", "conv1/G", r"missing"),
    ("no-scale", _with(conv1__scale=None), "conv1", "conv1/scale", r"missing"),
    ("no-padding", _with(conv2__padding=None), "conv2", "conv2/padding", r"missing"),
    ("m-float", _with(conv1__m=np.array(2.0)), "conv1", "conv1/m",
     r"must be a 0-d integer, not float64 of shape \[\]"),
    ("m-1d", _with(conv1__m=np.array([2])), "conv1", "conv1/m",
     r"must be a 0-d integer, not int64 of shape \[1\]"),
    ("m-bool", _with(conv1__m=np.array(True)), "conv1", "conv1/m", r"must be a 0-d integer"),
    ("m-zero", _with(conv1__m=np.array(0)), "conv1", "conv1/m", r"must be >= 1, not 0"),
    ("r-negative", _with(conv2__r=np.array(-3)), "conv2", "conv2/r", r"must be >= 1, not -3"),
    ("r-huge", _with(conv1__r=np.array(17)), "conv1", "conv1/r", r"tile too large"),
    ("m-disagrees-AT", _with(conv1__m=np.array(4)), "conv1", "conv1/AT",
     r"shape must be \[4, 6\], not \[2, 4\]"),
    ("AT-int32", _with(conv1__AT=tile_transform("4x4").AT_int.astype(np.int32)), "conv1",
     "conv1/AT", r"dtype must be int64, not int32"),
    ("BT-float", _with(conv2__BT=tile_transform("6x6").BT_int.astype(np.float64)), "conv2",
     "conv2/BT", r"dtype must be int64, not float64"),
    ("AT-entry-changed", _edit("conv1/AT", _set((1, 3), 2)), "conv1", "conv1/G",
     r"AT, BT and G do not form a Winograd F\(2,3\) triple"),
    ("BT-entry-changed", _edit("conv2/BT", _set((0, 0), 3)), "conv2", "conv2/G",
     r"do not form a Winograd F\(4,3\) triple"),
    ("G-of-other-tile", _with(conv1__G=tile_transform("4x4").G_float * 2), "conv1",
     "conv1/G", r"do not form a Winograd F\(2,3\) triple \(output \d, input \d, tap \d"),
    ("BT-sign-flipped-only", _edit("conv1/BT", lambda a: a.__setitem__(0, -a[0])), "conv1",
     "conv1/G", r"do not form a Winograd"),
    ("G-float32", _with(conv1__G=tile_transform("4x4").G_float.astype(np.float32)), "conv1",
     "conv1/G", r"dtype must be float64, not float32"),
    ("G-nan", _edit("conv1/G", _set((0, 0), np.nan)), "conv1", "conv1/G",
     r"contains NaN or Inf"),
    ("G-shape", _with(conv1__G=np.zeros((4, 4))), "conv1", "conv1/G",
     r"shape must be \[4, 3\], not \[4, 4\]"),
    ("U-int16", _with(conv1__U=np.zeros((3, 2, 4, 4), np.int16)), "conv1", "conv1/U",
     r"dtype must be int8, not int16"),
    ("U-uint8", _with(conv1__U=np.zeros((3, 2, 4, 4), np.uint8)), "conv1", "conv1/U",
     r"dtype must be int8, not uint8"),
    ("U-minus-128", _edit("conv2/U", _set((1, 2, 3, 4), -128)), "conv2", "conv2/U",
     r"values must lie in \[-127, 127\]; -128 at index \[1, 2, 3, 4\]"),
    ("U-3d", _with(conv1__U=np.zeros((3, 4, 4), np.int8)), "conv1", "conv1/U",
     r"shape must be \[K, C, 4, 4\] with K, C >= 1, not \[3, 4, 4\]"),
    ("U-no-channels", _with(conv1__U=np.zeros((0, 2, 4, 4), np.int8)), "conv1", "conv1/U",
     r"with K, C >= 1, not \[0, 2, 4, 4\]"),
    ("U-wrong-alpha", _with(conv2__U=np.zeros((2, 3, 4, 4), np.int8)), "conv2", "conv2/U",
     r"shape must be \[K, C, 6, 6\]"),
    ("scale-float64", _with(conv1__scale=np.ones(3)), "conv1", "conv1/scale",
     r"dtype must be float32, not float64"),
    ("scale-short", _with(conv1__scale=np.ones(2, np.float32)), "conv1", "conv1/scale",
     r"shape must be \[3\], not \[2\]"),
    ("scale-zero", _edit("conv1/scale", _set(1, 0.0)), "conv1", "conv1/scale",
     r"must be positive; entry 1 is 0\.0"),
    ("scale-negative", _edit("conv2/scale", _set(0, -0.5)), "conv2", "conv2/scale",
     r"must be positive; entry 0 is -0\.5"),
    ("scale-nan", _edit("conv1/scale", _set(2, np.nan)), "conv1", "conv1/scale",
     r"contains NaN or Inf"),
    ("scale-inf", _edit("conv1/scale", _set(0, np.inf)), "conv1", "conv1/scale",
     r"contains NaN or Inf"),
    ("padding-beyond-r", _with(conv1__padding=np.array(3)), "conv1", "conv1/padding",
     r"must lie in \[0, 2\], not 3"),
    ("padding-negative", _with(conv2__padding=np.array(-1)), "conv2", "conv2/padding",
     r"must lie in \[0, 2\], not -1"),
    ("padding-float", _with(conv1__padding=np.array(1.0)), "conv1", "conv1/padding",
     r"must be a 0-d integer, not float64"),
    ("bias-int64", _with(conv1__bias=np.zeros(3, np.int64)), "conv1", "conv1/bias",
     r"dtype must be int32, not int64"),
    ("bias-shape", _with(conv2__bias=np.zeros(3, np.int32)), "conv2", "conv2/bias",
     r"shape must be \[2\], not \[3\]"),
    ("U_float-where-pruned", _edit("conv1/U_float", lambda a: a.__setitem__(
        np.nonzero(valid_arrays()["conv1/U"] == 0), 1.0)), "conv1", "conv1/U_float",
     r"must be zero wherever U is zero \(pruned\); nonzero at index"),
    ("U_float-inf", _edit("conv2/U_float", _set((0, 0, 0, 0), -np.inf)), "conv2",
     "conv2/U_float", r"contains NaN or Inf"),
    ("U_float-float64", _with(conv1__U_float=np.zeros((3, 2, 4, 4))), "conv1",
     "conv1/U_float", r"dtype must be float32, not float64"),
    ("U_float-shape", _with(conv1__U_float=np.zeros((3, 2, 6, 6), np.float32)), "conv1",
     "conv1/U_float", r"shape must be \[3, 2, 4, 4\], not \[3, 2, 6, 6\]"),
    ("input_scale-negative", _with(conv1__input_scale=np.array(-1, np.float32)), "conv1",
     "conv1/input_scale", r"must be positive, not -1\.0"),
    ("input_scale-1d", _with(conv2__input_scale=np.array([0.1], np.float32)), "conv2",
     "conv2/input_scale", r"shape must be \[\], not \[1\]"),
    ("input_scale-nan", _with(conv1__input_scale=np.array(np.nan, np.float32)), "conv1",
     "conv1/input_scale", r"contains NaN or Inf"),
    ("pickled-U", _with(conv1__U=np.array([[1, 2]], dtype=object)), "conv1", "conv1/U",
     r"cannot be read without unpickling .*object arrays are not allowed"),
    ("pickled-layers", _with(layers=np.array(["conv1", "conv2"], dtype=object)), None,
     "layers", r"cannot be read without unpickling"),
    ("pickled-bias", _with(conv2__bias=np.array([1, 2], dtype=object)), "conv2", "conv2/bias",
     r"cannot be read without unpickling"),
]


def test_at_least_thirty_distinct_cases():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)) >= 30


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "compressed"])
@pytest.mark.parametrize("case_id, mutate, layer, key, message", CASES,
                         ids=[case[0] for case in CASES])
def test_malformed_file(tmp_path, case_id, mutate, layer, key, message, compressed):
    path = _write(tmp_path / f"{case_id}.npz", mutate(valid_arrays()), compressed)
    with pytest.raises(WeightFileError, match=message) as info:
        load_weights(path)
    err = info.value
    assert (err.layer, err.key) == (layer, key)
    text = str(err)
    assert text.startswith(f"{path}, ") and "\n" not in text
    if layer is not None:
        assert f"layer '{layer}'" in text
    assert f"key '{key}'" in text


@pytest.mark.parametrize("case_id, mutate, layer, key, message", CASES[:12],
                         ids=[case[0] for case in CASES[:12]])
def test_validate_arrays_in_memory(case_id, mutate, layer, key, message):
    """The in-memory validator gives the same errors (pickled cases excluded: no file)."""
    with pytest.raises(WeightFileError, match=message) as info:
        validate_arrays(mutate(valid_arrays()))
    assert (info.value.layer, info.value.key) == (layer, key)
    assert str(info.value).startswith("<memory>, ")


def test_never_unpickles(tmp_path):
    marker = tmp_path / "unpickled"
    _Unpickled.marker = str(marker)
    arrays = valid_arrays()
    arrays["conv2/U"] = np.array([_Unpickled()], dtype=object)
    path = _write(tmp_path / "evil.npz", arrays)
    with pytest.raises(WeightFileError, match="cannot be read without unpickling") as info:
        load_weights(path)
    assert info.value.key == "conv2/U"
    assert not marker.exists()


# -- file-level problems: the message names the file; there is no layer or key ------------------

def _file_error(path, message):
    with pytest.raises(WeightFileError, match=message) as info:
        load_weights(path)
    err = info.value
    assert (err.layer, err.key) == (None, None)
    assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
    return err


def test_missing_file(tmp_path):
    _file_error(tmp_path / "nope.npz", r"no such file")


def test_directory(tmp_path):
    _file_error(tmp_path, r"is a directory, not a weight file")


def test_single_npy(tmp_path):
    path = tmp_path / "u.npy"
    np.save(path, np.zeros((1, 1, 4, 4), np.int8))
    _file_error(path, r"is a single \.npy array, not an \.npz archive")


def test_single_pickled_npy(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object))
    _file_error(path, r"is a single \.npy array, not an \.npz archive")


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_truncated_archive(tmp_path, compressed, keep):
    full = _write(tmp_path / "full.npz", valid_arrays(), compressed)
    data = full.read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[:int(len(data) * keep)])
    _file_error(path, r"not a readable \.npz archive")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    _file_error(path, r"not a readable \.npz archive")


def test_text_file(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_text("format = sparse-winograd-weights\n")
    _file_error(path, r"not a readable \.npz archive")


def test_corrupt_member_names_its_key(tmp_path):
    """A damaged entry inside an intact archive is reported by its key (CRC mismatch)."""
    path = _write(tmp_path / "w.npz", valid_arrays(), compressed=False)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("conv2/U.npy")
    data = bytearray(path.read_bytes())
    # Local header: 30 bytes + name + extra; flip the last data byte of the member.
    name_len = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    end = info.header_offset + 30 + name_len + extra_len + info.compress_size - 1
    data[end] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightFileError, match=r"corrupt entry") as err:
        load_weights(path)
    assert (err.value.layer, err.value.key) == ("conv2", "conv2/U")


# -- valid files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "compressed"])
def test_round_trip_all_optional_keys(tmp_path, compressed):
    arrays = valid_arrays()
    wf = validate_arrays(arrays)
    path = tmp_path / "w.npz"
    save_weights(path, wf, compressed=compressed)
    with zipfile.ZipFile(path) as zf:
        methods = {i.compress_type for i in zf.infolist()}
    assert methods == {zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED}
    back = load_weights(path)
    assert back.names == ["conv1", "conv2"] and back.source == os.fspath(path)
    for key, value in arrays.items():
        if "/" not in key:
            continue
        name, field = key.split("/")
        got = getattr(back[name], field)
        if field in ("m", "r", "padding"):
            assert got == int(value) and isinstance(got, int)
        elif field == "input_scale":
            assert got == float(value)
        else:
            assert got.dtype == value.dtype
            np.testing.assert_array_equal(got, value)
    layer = back["conv2"]
    assert (layer.alpha, layer.out_channels, layer.in_channels) == (6, 2, 3)
    assert layer.sparsity == np.count_nonzero(layer.U == 0) / layer.U.size
    np.testing.assert_array_equal(layer.bias_or_zeros, arrays["conv2/bias"].astype(np.int64))


def test_round_trip_required_keys_only(tmp_path):
    tr = tile_transform("4x4")
    U = np.zeros((2, 1, 4, 4), np.int8)
    U[1, 0, 1, 2] = -127
    layer = LayerWeights(name="only.required-1", m=2, r=3, AT=tr.AT_int, BT=tr.BT_int,
                         G=tr.G_float, U=U, scale=np.ones(2, np.float32), padding=0)
    path = tmp_path / "w.npz"
    save_weights(path, [layer])
    back = load_weights(path)["only.required-1"]
    assert back.bias is None and back.U_float is None and back.input_scale is None
    np.testing.assert_array_equal(back.bias_or_zeros, np.zeros(2, np.int64))
    assert back.sparsity == 31 / 32
    np.testing.assert_array_equal(back.U, U)


def test_save_refuses_invalid_layers(tmp_path):
    wf = validate_arrays(valid_arrays())
    wf.layers[1].padding = 5
    path = tmp_path / "w.npz"
    with pytest.raises(WeightFileError, match=r"must lie in \[0, 2\], not 5") as info:
        save_weights(path, wf)
    assert info.value.key == "conv2/padding"
    assert not path.exists()


def test_weight_file_lookup():
    wf = validate_arrays(valid_arrays())
    assert isinstance(wf, WeightFile) and "conv1" in wf and "conv3" not in wf
    with pytest.raises(KeyError, match=r"no layer 'conv3'; layers are: conv1, conv2"):
        wf["conv3"]


def test_a_member_name_with_a_newline_is_named_on_one_line(tmp_path):
    """A byte of a member's name damaged into a newline (found by the fuzz test): the error
    escapes it instead of breaking its line."""
    path = _write(tmp_path / "w.npz", valid_arrays())
    with zipfile.ZipFile(path) as src:
        members = {info.filename: src.read(info) for info in src.infolist()}
    members["conv1/requant_shift.\npy"] = members["conv1/bias.npy"]
    with zipfile.ZipFile(path, "w") as dst:
        for name, data in members.items():
            dst.writestr(name, data)
    with pytest.raises(WeightFileError) as info:
        load_weights(path)
    text = str(info.value)
    assert "\n" not in text and "requant_shift.\\npy" in text, text
