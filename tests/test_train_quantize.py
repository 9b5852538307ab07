"""Int8 quantisation and export of the whole network: round trip through golden.weights, and
golden.network's integer logits against the float model."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from golden.conv import direct_conv2d, winograd_conv2d_float, winograd_conv2d_int  # noqa: E402
from golden.network import evaluate  # noqa: E402
from golden.transforms import tile_transform  # noqa: E402
from golden.weights import load_weights, save_weights  # noqa: E402
from train.models import VGGLike  # noqa: E402
from train.quantize import (QMAX, calibrate_input_scales, export_model,  # noqa: E402
                            export_network, quantize_layer, quantize_linear)
from train.winograd import spatial_to_winograd  # noqa: E402

TILES = ["4x4", "6x6"]


def _pruned_U(tile, k=6, c=5, sparsity=0.6, seed=0):
    rng = np.random.default_rng(seed)
    g = torch.from_numpy(rng.normal(size=(k, c, 3, 3)))
    U = spatial_to_winograd(g, tile).numpy()
    U[rng.random(U.shape) < sparsity] = 0.0
    return U


@pytest.mark.parametrize("tile", TILES)
def test_quantisation_keeps_zeros_and_range(tile):
    U = _pruned_U(tile)
    U[2] = 0.0                                           # an all-zero output channel
    U[3, 0, 0, 0] = 50.0                                 # one outlier
    layer = quantize_layer("conv", U, tile, 1, bias=np.linspace(-1, 1, 6), input_scale=0.02)
    assert layer.U.dtype == np.int8
    assert np.all(np.abs(layer.U.astype(int)) <= QMAX)
    assert np.all(layer.U[U == 0] == 0)                  # pruned zeros stay exactly zero
    assert np.all(layer.U[2] == 0) and layer.scale[2] > 0
    assert np.all(layer.U_float[layer.U == 0] == 0)
    s = layer.scale.astype(np.float64)[:, None, None, None]
    inside = np.abs(U) <= QMAX * s
    err = np.abs(layer.U * s - U)
    assert np.all(err[inside] <= s.repeat(U.shape[1], 1).repeat(U.shape[2], 2)
                  .repeat(U.shape[3], 3)[inside] / 2 + 1e-12)
    assert np.all(np.abs(layer.U[~inside]) == QMAX)    # clipped, not wrapped
    tr = tile_transform(tile)
    np.testing.assert_array_equal(layer.AT, tr.AT_int)
    np.testing.assert_array_equal(layer.BT, tr.BT_int)
    np.testing.assert_array_equal(layer.G, tr.G_float)
    np.testing.assert_array_equal(
        layer.bias, np.rint(np.linspace(-1, 1, 6) / (np.float32(0.02) * s[:, 0, 0, 0])))


def test_quantisation_of_all_max_and_all_zero_layers():
    U = np.full((2, 3, 4, 4), 7.5)
    layer = quantize_layer("full", U, "4x4", 0)
    assert np.all(np.abs(layer.U) >= 100)               # the peak maps near 127, no overflow
    zero = quantize_layer("zero", np.zeros((2, 3, 4, 4)), "4x4", 0)
    assert np.all(zero.U == 0) and np.all(zero.scale > 0)


def test_quantisation_errors_name_the_layer():
    with pytest.raises(ValueError, match="layer 'c1': a bias needs the layer's input scale"):
        quantize_layer("c1", _pruned_U("4x4"), "4x4", 1, bias=np.ones(6))
    U = _pruned_U("4x4")
    U[0, 0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="layer 'c2': U contains NaN or Inf"):
        quantize_layer("c2", U, "4x4", 1)
    with pytest.raises(ValueError, match="layer 'c3': bias does not fit int32"):
        quantize_layer("c3", _pruned_U("4x4"), "4x4", 1, bias=np.full(6, 1e6),
                       input_scale=1e-9)
    with pytest.raises(ValueError, match=r"layer 'c4': U must have shape \[K, C, 6, 6\]"):
        quantize_layer("c4", _pruned_U("4x4"), "6x6", 1)


@pytest.mark.parametrize("tile", TILES)
def test_export_round_trip_through_golden(tmp_path, tile):
    U = _pruned_U(tile, k=4, c=3)
    bias = np.array([0.5, -0.25, 0.0, 1.0])
    layer = quantize_layer("layer0", U, tile, 1, bias=bias, input_scale=1 / 127)
    path = tmp_path / "w.npz"
    save_weights(path, [layer])
    back = load_weights(path)["layer0"]
    for key in ("U", "scale", "bias", "AT", "BT", "G", "U_float"):
        np.testing.assert_array_equal(getattr(back, key), getattr(layer, key))
    assert back.padding == 1 and back.input_scale == pytest.approx(1 / 127)
    # Golden's exact integer layer, rescaled, is the float layer with the dequantised weights.
    rng = np.random.default_rng(1)
    xq = rng.integers(-127, 128, size=(3, 7, 5))
    y_int = winograd_conv2d_int(xq, back.U, back.AT, back.BT, 1, back.bias_or_zeros)
    step = back.input_scale * back.scale.astype(np.float64)
    U_deq = back.U * back.scale.astype(np.float64)[:, None, None, None]
    y_deq = winograd_conv2d_float(xq * back.input_scale, U_deq, back.AT, back.BT, 1,
                                  back.bias_or_zeros * step)
    np.testing.assert_allclose(y_int * step[:, None, None], y_deq, rtol=1e-9, atol=1e-9)
    if tile == "4x4":   # F(2x2,3x3): int8 U stays close to the float layer
        y_float = winograd_conv2d_float(xq / 127, U, back.AT, back.BT, 1, bias)
        assert np.max(np.abs(y_int * step[:, None, None] - y_float)) < 0.05 * np.abs(
            y_float).max()


def test_exported_network_follows_the_float_model(tmp_path):
    torch.manual_seed(0)
    model = VGGLike(1, (4, 6), {1}, image_size=8, classes=3)
    model.to_winograd("4x4")
    x = torch.rand(64, 1, 8, 8)
    scales = calibrate_input_scales(model, x)
    assert len(scales) == 3                              # two convs, then the classifier
    weights = export_network(model, "4x4", scales, ["a", "b", "c"])
    net = weights.network
    assert [str(op) for op in net.ops] == ["conv:conv0", "conv:conv1", "maxpool2", "flatten",
                                           "linear:fc"]
    assert net.input_shape == (1, 8, 8) and net.classes == ["a", "b", "c"]
    assert net.input_scale == float(np.float32(scales[0]))
    save_weights(tmp_path / "w.npz", weights)            # a valid v2 file
    back = load_weights(tmp_path / "w.npz")
    # Requantisation is the scale ratio to the next op's input, as a 15-bit fixed-point number.
    for i, layer in enumerate(back.layers):
        ratio = layer.input_scale * layer.scale.astype(np.float64) / np.float32(scales[i + 1])
        np.testing.assert_allclose(layer.requant_mult / 2.0 ** layer.requant_shift, ratio,
                                   rtol=2 ** -14)
        assert layer.relu is True
    # The int64 logits times s_w * s_x approximate the float logits; the classes mostly agree.
    head = model.classifier.weight.detach().double().numpy()
    s_w = float(np.float32(np.abs(head).max() / QMAX))
    logits, _ = evaluate(back, x.numpy())
    ref = model(x).detach().double().numpy()
    out = logits * s_w * float(np.float32(scales[-1]))
    assert np.max(np.abs(out - ref)) < 0.05 * np.max(np.abs(ref)) + 1e-3
    assert np.mean(np.argmax(logits, 1) == np.argmax(ref, 1)) >= 0.9


def test_linear_quantisation():
    W = np.array([[0.5, -1.0, 0.25], [1e-4, 0.0, -0.75]])
    head = quantize_linear("fc", W, np.array([0.1, -0.2]), input_scale=0.01)
    np.testing.assert_array_equal(head.W, np.rint(W / np.float32(1 / QMAX)).astype(np.int8))
    assert head.W.dtype == np.int8 and head.b.dtype == np.int32
    s = float(np.float32(1 / QMAX)) * float(np.float32(0.01))
    np.testing.assert_array_equal(head.b, np.rint(np.array([0.1, -0.2]) / s))
    with pytest.raises(ValueError, match="linear 'fc': bias does not fit int32"):
        quantize_linear("fc", W, np.array([1e9, 0.0]), input_scale=1e-9)
    with pytest.raises(ValueError, match="linear 'fc': weights contain NaN or Inf"):
        quantize_linear("fc", W * np.nan, np.zeros(2), input_scale=0.01)


def test_spatial_layers_export_their_transform():
    torch.manual_seed(1)
    model = VGGLike(2, (3,), set(), image_size=5, classes=2)
    x = torch.rand(4, 2, 5, 5)
    (layer,) = export_model(model, "4x4", calibrate_input_scales(model, x))
    g = model.convs[0].effective_weight().detach().double().numpy()
    U = spatial_to_winograd(torch.from_numpy(g), "4x4").numpy()
    kept = layer.U != 0            # weights that round to zero are stored as pruned
    np.testing.assert_allclose(layer.U_float[kept], U[kept].astype(np.float32), rtol=1e-6)
    assert np.all(np.abs(U[~kept]) <= layer.scale[:, None, None, None].repeat(2, 1)
                  .repeat(4, 2).repeat(4, 3)[~kept] / 2)
    xq = np.rint(x.double().numpy() / layer.input_scale).astype(np.int64)
    y_int = winograd_conv2d_int(xq, layer.U, layer.AT, layer.BT, 1, layer.bias_or_zeros)
    y_ref = direct_conv2d(x.double().numpy(), g, 1, model.convs[0].bias.detach().double().numpy())
    step = (layer.input_scale * layer.scale.astype(np.float64))[None, :, None, None]
    assert np.max(np.abs(y_int * step - y_ref)) < 0.05 * np.max(np.abs(y_ref))
