"""Weight file format v2: a network round-trips exactly; every malformed network key is refused in
one line naming the file, layer or op and key; version 1 files still read as before."""

import numpy as np
import pytest

from golden.config import DEFAULT
from golden.network import load_network
from golden.synthetic import synthetic_layer, synthetic_network
from golden.weights import WeightFileError, load_weights, save_weights, validate_arrays
from helpers import replace_keys as _with

OPS = ["conv:conv0", "maxpool2", "conv:conv1", "flatten", "linear:fc"]


def valid_v2() -> dict:
    """conv0 [6, 3] -> maxpool2 -> conv1 [5, 6] -> flatten (5 * 4 * 3 = 60) -> fc [4, 60]."""
    weights = synthetic_network(DEFAULT, (3, 9, 7), (6, 5), (0,), classes=4, seed=3)
    arrays = weights.arrays()
    arrays["network/classes"] = np.array(["a", "b", "c", "d"])
    return arrays


def _ops(*items):
    return _with(network__ops=np.array(items))


def _entry(key, index, value):
    def mutate(arrays):
        a = np.array(arrays[key])
        a[index] = value
        arrays[key] = a
        return arrays
    return mutate


# (id, mutation, layer, key, message regex)
CASES = [
    ("no-ops", _with(network__ops=None), None, "network/ops", r"missing$"),
    ("ops-2d", _with(network__ops=np.array([OPS])), None, "network/ops",
     r"must be a 1-d str array, not <U10 of shape \[1, 5\]"),
    ("ops-int", _with(network__ops=np.arange(5)), None, "network/ops",
     r"must be a 1-d str array, not int64"),
    ("ops-empty", _with(network__ops=np.array([], dtype=str)), None, "network/ops",
     r"lists no ops"),
    ("unknown-op", _ops("conv:conv0", "avgpool2", "conv:conv1", "flatten", "linear:fc"), None,
     "network/ops", r"op 1 'avgpool2': unknown op; ops are conv:LAYER, maxpool2, flatten, "
     r"linear:NAME"),
    ("conv-without-layer", _ops("conv", "maxpool2", "conv:conv1", "flatten", "linear:fc"),
     None, "network/ops", r"op 0 'conv': unknown op"),
    ("pool-with-name", _ops("conv:conv0", "maxpool2:p", "conv:conv1", "flatten", "linear:fc"),
     None, "network/ops", r"op 1 'maxpool2:p': unknown op"),
    ("conv-unknown-layer", _ops("conv:conv9", "maxpool2", "conv:conv1", "flatten", "linear:fc"),
     None, "network/ops", r"op 0 'conv:conv9': no layer 'conv9' in 'layers'"),
    ("linear-not-last", _ops(*OPS, "flatten"), None, "network/ops",
     r"op 4 'linear:fc': a linear op must be the last op"),
    ("no-linear", _ops(*OPS[:-1]), None, "network/ops",
     r"the last op must be linear:NAME, not 'flatten'"),
    ("linear-named-like-a-layer", _ops(*OPS[:-1], "linear:conv1"), None, "network/ops",
     r"op 4 'linear:conv1': a linear op's name must match \[A-Za-z0-9_.-\]\+ and differ"),
    ("linear-bad-name", _ops(*OPS[:-1], "linear:f c"), None, "network/ops",
     r"op 4 'linear:f c': a linear op's name must match"),
    ("convs-out-of-order", _ops("conv:conv1", "maxpool2", "conv:conv0", "flatten", "linear:fc"),
     None, "network/ops", r"conv ops must use every layer of 'layers' once, in order \(layers: "
     r"conv0, conv1; conv ops: conv1, conv0\)"),
    ("layer-unused", _ops("conv:conv0", "maxpool2", "flatten", "linear:fc"), None,
     "network/ops", r"conv ops must use every layer .*conv ops: conv0\)"),
    ("chain-input-channels", _with(network__input_shape=np.array([2, 9, 7])), None,
     "network/ops", r"op 0 'conv:conv0': layer 'conv0' takes 3 input channels, but the input "
     r"\(network/input_shape\) gives 2 \(shape \[2, 9, 7\]\)"),
    ("chain-channels", _with(conv1__U=np.ones((5, 4, 4, 4), np.int8)), None, "network/ops",
     r"op 2 'conv:conv1': layer 'conv1' takes 4 input channels, but op 1 'maxpool2' gives 6 "
     r"\(shape \[6, 4, 3\]\)"),
    ("chain-no-flatten", _ops("conv:conv0", "maxpool2", "conv:conv1", "linear:fc"), None,
     "network/ops", r"op 3 'linear:fc': needs a flat input; put flatten before it \(op 2 "
     r"'conv:conv1' gives \[5, 4, 3\]\)"),
    ("chain-conv-after-flatten", _ops("conv:conv0", "flatten", "conv:conv1", "linear:fc"), None,
     "network/ops", r"op 2 'conv:conv1': needs a \[C, H, W\] input, but op 1 'flatten' gives "
     r"\[378\]"),
    ("chain-flatten-twice", _ops(*OPS[:-1], "flatten", "linear:fc"), None, "network/ops",
     r"op 4 'flatten': input is already flat \(\[60\]\)"),
    ("chain-pool-too-small", _with(network__input_shape=np.array([3, 1, 7])), None,
     "network/ops", r"op 1 'maxpool2': input 1x7 is smaller than 2x2"),
    ("chain-kernel-too-big", _with(network__input_shape=np.array([3, 2, 2]), conv1__padding=
                                   np.array(0)), None, "network/ops",
     r"op 2 'conv:conv1': input 1x1 with padding 0 is smaller than the 3x3 kernel"),
    ("bad-linear-shape", _with(fc__W=np.ones((4, 59), np.int8)), "fc", "fc/W",
     r"shape must be \[4, 60\] \(the input of op 4 'linear:fc' has 60 features\), not \[4, 59\]"),
    ("linear-W-int16", _with(fc__W=np.ones((4, 60), np.int16)), "fc", "fc/W",
     r"dtype must be int8, not int16"),
    ("linear-W-1d", _with(fc__W=np.ones(60, np.int8)), "fc", "fc/W",
     r"shape must be \[O, I\] with O, I >= 1, not \[60\]"),
    ("linear-W-minus-128", _entry("fc/W", (2, 7), -128), "fc", "fc/W",
     r"values must lie in \[-127, 127\]; -128 at index \[2, 7\]"),
    ("no-linear-W", _with(fc__W=None), "fc", "fc/W", r"missing$"),
    ("no-linear-b", _with(fc__b=None), "fc", "fc/b", r"missing$"),
    ("linear-b-int64", _with(fc__b=np.zeros(4, np.int64)), "fc", "fc/b",
     r"dtype must be int32, not int64"),
    ("linear-b-shape", _with(fc__b=np.zeros(5, np.int32)), "fc", "fc/b",
     r"shape must be \[4\], not \[5\]"),
    ("no-requant", _with(conv1__requant_mult=None, conv1__requant_shift=None,
                         conv1__relu=None), "conv1", "conv1/requant_mult",
     r"missing; layer 'conv1' is used by op 2 'conv:conv1' of 'network/ops', which needs "
     r"requant_mult, requant_shift and relu"),
    ("requant-partial", _with(conv0__requant_shift=None), "conv0", "conv0/requant_shift",
     r"missing; a layer with requant_mult needs all of requant_mult, requant_shift, relu"),
    ("requant-only-relu", _with(conv0__requant_shift=None, conv0__requant_mult=None), "conv0",
     "conv0/requant_mult", r"missing; a layer with relu needs all of"),
    ("requant_mult-2^15", _entry("conv0/requant_mult", 2, 1 << 15), "conv0",
     "conv0/requant_mult", r"values must lie in \[0, 32767\]; 32768 at index \[2\]"),
    ("requant_mult-negative", _entry("conv1/requant_mult", 0, -1), "conv1",
     "conv1/requant_mult", r"values must lie in \[0, 32767\]; -1 at index \[0\]"),
    ("requant_mult-int64", _with(conv0__requant_mult=np.ones(6, np.int64)), "conv0",
     "conv0/requant_mult", r"dtype must be int32, not int64"),
    ("requant_mult-shape", _with(conv0__requant_mult=np.ones(5, np.int32)), "conv0",
     "conv0/requant_mult", r"shape must be \[6\], not \[5\]"),
    ("requant_shift-48", _entry("conv1/requant_shift", 4, 48), "conv1", "conv1/requant_shift",
     r"values must lie in \[0, 47\]; 48 at index \[4\]"),
    ("requant_shift-negative", _entry("conv0/requant_shift", 1, -1), "conv0",
     "conv0/requant_shift", r"values must lie in \[0, 47\]; -1 at index \[1\]"),
    ("requant_shift-uint8", _with(conv0__requant_shift=np.ones(6, np.uint8)), "conv0",
     "conv0/requant_shift", r"dtype must be int32, not uint8"),
    ("relu-2", _with(conv0__relu=np.array(2)), "conv0", "conv0/relu", r"must be 0 or 1, not 2"),
    ("relu-float", _with(conv0__relu=np.array(1.0)), "conv0", "conv0/relu",
     r"must be a 0-d integer, not float64 of shape \[\]"),
    ("relu-1d", _with(conv1__relu=np.array([1])), "conv1", "conv1/relu",
     r"must be a 0-d integer, not int64 of shape \[1\]"),
    ("no-input_scale", _with(network__input_scale=None), None, "network/input_scale",
     r"missing$"),
    ("input_scale-zero", _with(network__input_scale=np.array(0, np.float32)), None,
     "network/input_scale", r"must be finite and > 0, not 0\.0"),
    ("input_scale-negative", _with(network__input_scale=np.array(-0.5, np.float32)), None,
     "network/input_scale", r"must be finite and > 0, not -0\.5"),
    ("input_scale-nan", _with(network__input_scale=np.array(np.nan, np.float32)), None,
     "network/input_scale", r"must be finite and > 0, not nan"),
    ("input_scale-inf", _with(network__input_scale=np.array(np.inf, np.float32)), None,
     "network/input_scale", r"must be finite and > 0, not inf"),
    ("input_scale-float64", _with(network__input_scale=np.array(0.1)), None,
     "network/input_scale", r"must be a 0-d float32, not float64 of shape \[\]"),
    ("input_scale-1d", _with(network__input_scale=np.array([0.1], np.float32)), None,
     "network/input_scale", r"must be a 0-d float32, not float32 of shape \[1\]"),
    ("no-input_shape", _with(network__input_shape=None), None, "network/input_shape",
     r"missing$"),
    ("input_shape-int32", _with(network__input_shape=np.array([3, 9, 7], np.int32)), None,
     "network/input_shape", r"must be int64 of shape \[3\] \(C, H, W\), not int32"),
    ("input_shape-2", _with(network__input_shape=np.array([9, 7])), None,
     "network/input_shape", r"must be int64 of shape \[3\] \(C, H, W\), not int64 of shape "
     r"\[2\]"),
    ("input_shape-zero", _with(network__input_shape=np.array([3, 0, 7])), None,
     "network/input_shape", r"entries must be >= 1, not \[3, 0, 7\]"),
    ("classes-short", _with(network__classes=np.array(["a", "b", "c"])), None,
     "network/classes", r"must be a 1-d str array of 4 class names \(one per row of fc/W\), "
     r"not <U1 of shape \[3\]"),
    ("classes-int", _with(network__classes=np.arange(4)), None, "network/classes",
     r"must be a 1-d str array of 4 class names"),
    ("unknown-network-key", _with(network__inputscale=np.array(1.0, np.float32)), None,
     "network/inputscale", r"unknown key; 'network' has ops, input_shape, input_scale, classes"),
    ("unknown-linear-key", _with(fc__bias=np.zeros(4, np.int32)), "fc", "fc/bias",
     r"unknown key; linear op 'fc' has W, b"),
    ("unknown-layer-key", _with(conv0__requant=np.zeros(6, np.int32)), "conv0",
     "conv0/requant", r"unknown key; a v2 layer has m, r, .* and optionally bias, U_float, "
     r"input_scale, requant_mult, requant_shift, relu, tap_shift$"),
    ("orphan-key", _with(fc2__W=np.zeros((4, 60), np.int8)), None, "fc2/W",
     r"belongs to no layer listed in 'layers', no linear op of 'network/ops'"),
    ("orphan-top-key", _with(network=np.array(1)), None, "network",
     r"belongs to no layer listed in 'layers'"),
    ("layer-named-network", _with(layers=np.array(["conv0", "network"])), None, "layers",
     r"layer name 'network' is reserved for the network keys in version 2"),
    ("pickled-ops", _with(network__ops=np.array(OPS, dtype=object)), None, "network/ops",
     r"cannot be read without unpickling"),
    ("pickled-W", _with(fc__W=np.ones((4, 60), dtype=object)), "fc", "fc/W",
     r"cannot be read without unpickling"),
]


def test_cases_are_distinct():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)) >= 50


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "compressed"])
@pytest.mark.parametrize("case_id, mutate, layer, key, message", CASES,
                         ids=[case[0] for case in CASES])
def test_malformed_v2_file(tmp_path, case_id, mutate, layer, key, message, compressed):
    path = tmp_path / f"{case_id}.npz"
    (np.savez_compressed if compressed else np.savez)(path, **mutate(valid_v2()))
    with pytest.raises(WeightFileError, match=message) as info:
        load_weights(path)
    err = info.value
    assert (err.layer, err.key) == (layer, key)
    text = str(err)
    assert text.startswith(f"{path}, ") and "\n" not in text and f"key '{key}'" in text
    if layer is not None:
        assert f"layer '{layer}'" in text


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "compressed"])
def test_round_trip(tmp_path, compressed):
    arrays = valid_v2()
    weights = validate_arrays(arrays)
    assert weights.version == 2 and weights.network.classes == ["a", "b", "c", "d"]
    save_weights(tmp_path / "net.npz", weights, compressed=compressed)
    with np.load(tmp_path / "net.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(arrays)
        for key in arrays:
            assert npz[key].dtype == arrays[key].dtype, key
            np.testing.assert_array_equal(npz[key], arrays[key], err_msg=key)
        assert int(npz["version"]) == 2
    back = load_network(tmp_path / "net.npz")
    net = back.network
    assert [str(op) for op in net.ops] == OPS
    assert net.input_shape == (3, 9, 7) and net.input_scale == weights.network.input_scale
    assert net.shapes == [(6, 9, 7), (6, 4, 3), (5, 4, 3), (60,), (4,)]
    for a, b in zip(back.layers, weights.layers):
        np.testing.assert_array_equal(a.requant_mult, b.requant_mult)
        np.testing.assert_array_equal(a.requant_shift, b.requant_shift)
        assert a.relu is b.relu is True
    np.testing.assert_array_equal(net.linear.W, weights.network.linear.W)
    np.testing.assert_array_equal(net.linear.b, weights.network.linear.b)


def test_version_1_still_reads_and_is_written_as_1(tmp_path):
    layer = synthetic_layer(DEFAULT, 3, 4, 0.5, name="c")
    save_weights(tmp_path / "v1.npz", [layer])
    with np.load(tmp_path / "v1.npz", allow_pickle=False) as npz:
        assert int(npz["version"]) == 1 and "network/ops" not in npz.files
    back = load_weights(tmp_path / "v1.npz")
    assert back.version == 1 and back.network is None and back["c"].requant_mult is None
    with pytest.raises(WeightFileError, match=r"v1\.npz, key 'version': is version 1 \(layers "
                                              r"only\); a network needs version 2"):
        load_network(tmp_path / "v1.npz")


def test_requant_keys_need_version_2():
    arrays = valid_v2()
    arrays["version"] = np.array(1)
    for key in [k for k in arrays if k.startswith(("network/", "fc/"))]:
        del arrays[key]
    with pytest.raises(WeightFileError, match=r"key 'conv0/requant_mult': unknown key; a v1 layer"):
        validate_arrays(arrays)


def test_save_refuses_a_broken_network(tmp_path):
    weights = validate_arrays(valid_v2())
    weights.network.linear.W = np.ones((4, 61), np.int8)
    with pytest.raises(WeightFileError, match=r"key 'fc/W': shape must be \[4, 60\]"):
        save_weights(tmp_path / "bad.npz", weights)
    assert list(tmp_path.iterdir()) == []               # nothing written, no temporary left
