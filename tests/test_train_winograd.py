"""The Winograd-domain layer against direct convolution and golden; the importance matrix."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from golden.conv import winograd_conv2d_float  # noqa: E402
from golden.transforms import tile_transform  # noqa: E402
from train.models import MaskedConv2d, digits_model  # noqa: E402
from train.winograd import (WinogradConv2d, importance_matrix, importance_rows,  # noqa: E402
                            spatial_to_winograd, tap_sets, transform_tensors, winograd_conv2d)

TILES = ["4x4", "6x6"]


@pytest.mark.parametrize("tile, r_squared", [
    ("4x4", [2, 4, 4, 2]),
    ("6x6", [42, 136, 136, 850, 850, 42]),
])
def test_importance_rows_match_the_paper(tile, r_squared):
    # Golden's matrices may differ from the paper's by row signs only; norms are unaffected.
    np.testing.assert_allclose(importance_rows(tile) ** 2, r_squared, rtol=1e-12)


def test_importance_matrix_f23_values():
    imp = importance_matrix("4x4", normalise=False)
    s = np.sqrt(8.0)
    np.testing.assert_allclose(imp[0], [2, s, s, 2], rtol=1e-12)
    np.testing.assert_allclose(imp[1], [s, 4, 4, s], rtol=1e-12)
    np.testing.assert_allclose(importance_matrix("4x4"), imp / 2, rtol=1e-12)


def test_importance_matrix_f43_normalised():
    imp = importance_matrix("6x6")
    assert imp.min() == pytest.approx(1.0)
    assert imp.max() == pytest.approx(850 / 42)
    assert imp[3, 3] == pytest.approx(850 / 42) and imp[0, 5] == pytest.approx(1.0)
    np.testing.assert_allclose(imp, imp.T)


@pytest.mark.parametrize("tile", TILES)
def test_transform_tensors_are_goldens(tile):
    tr = tile_transform(tile)
    AT, BT, G = transform_tensors(tile, torch.float64)
    np.testing.assert_array_equal(AT.numpy(), tr.AT_int)
    np.testing.assert_array_equal(BT.numpy(), tr.BT_int)
    np.testing.assert_array_equal(G.numpy(), tr.G_float)


@pytest.mark.parametrize("tile", TILES)
def test_tap_sets_are_exactly_the_feeding_taps(tile):
    a = tile_transform(tile).alpha
    rng = np.random.default_rng(1)
    g = torch.from_numpy(rng.normal(size=(1, 1, 3, 3)))
    for p, taps in enumerate(tap_sets(tile)):
        i, j = divmod(p, a)
        assert taps, "every Winograd position is fed by some tap"
        kept = g.clone()
        for k, l in taps:
            kept[0, 0, k, l] = 0
        U = spatial_to_winograd(kept, tile)
        assert U[0, 0, i, j] == 0                       # exact zero, not merely small
        for k, l in taps:                               # each listed tap really feeds p
            one = torch.zeros_like(g)
            one[0, 0, k, l] = 1
            assert spatial_to_winograd(one, tile)[0, 0, i, j] != 0


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("h, w, padding", [(8, 8, 1), (5, 7, 1), (3, 3, 0), (1, 1, 2),
                                           (9, 4, 2), (6, 6, 0)])
def test_winograd_forward_equals_direct_conv(tile, h, w, padding):
    gen = torch.Generator().manual_seed(h * 31 + w + padding)
    x = torch.randn(2, 3, h, w, generator=gen, dtype=torch.float64)
    g = torch.randn(5, 3, 3, 3, generator=gen, dtype=torch.float64)
    bias = torch.randn(5, generator=gen, dtype=torch.float64)
    AT, BT, _ = transform_tensors(tile, torch.float64)
    U = spatial_to_winograd(g, tile)
    y = winograd_conv2d(x, U, AT, BT, padding, bias)
    torch.testing.assert_close(y, F.conv2d(x, g, bias, padding=padding), rtol=1e-9, atol=1e-9)
    ref = winograd_conv2d_float(x.numpy(), U.numpy(), AT.numpy(), BT.numpy(), padding,
                                bias.numpy())
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("tile", TILES)
def test_winograd_gradients_equal_the_direct_convolutions(tile):
    """Gradients of x, of U (taken through U = G g G^T, so that the direct convolution's
    gradient of g is the reference) and of the bias, on a ragged tiling with K != C."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 7, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    g = torch.randn(4, 3, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 4, 7, 5, generator=gen, dtype=torch.float64)
    AT, BT, _ = transform_tensors(tile, torch.float64)
    wino = torch.autograd.grad((winograd_conv2d(x, spatial_to_winograd(g, tile), AT, BT, 1,
                                                bias) * weight).sum(), (x, g, bias))
    direct = torch.autograd.grad((F.conv2d(x, g, bias, padding=1) * weight).sum(),
                                 (x, g, bias))
    for got, want in zip(wino, direct):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("tile", TILES)
def test_winograd_layer_from_spatial_keeps_the_function(tile):
    torch.manual_seed(0)
    conv = MaskedConv2d(4, 6)
    layer = WinogradConv2d.from_spatial(conv.weight, conv.bias, tile, padding=1)
    x = torch.randn(3, 4, 7, 5)
    torch.testing.assert_close(layer(x), conv(x), rtol=1e-4, atol=1e-4)
    assert layer.tile == tile and layer.padding == 1


def test_model_conversion_keeps_outputs():
    torch.manual_seed(0)
    model = digits_model()
    x = torch.rand(4, 1, 8, 8)
    before = model(x)
    model.to_winograd("6x6")
    assert all(isinstance(c, WinogradConv2d) for c in model.convs)
    torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    ({"tile": "5x5"}, "tile must be one of 4x4, 6x6, not '5x5'"),
    ({"padding": 3}, "padding must be an integer in [0, 2], not 3"),
    ({"in_channels": 0}, "in_channels must be a positive integer, not 0"),
])
def test_winograd_layer_rejects_bad_parameters(kwargs, message):
    args = {"in_channels": 2, "out_channels": 2, "tile": "4x4", "padding": 1, **kwargs}
    with pytest.raises(ValueError) as info:
        WinogradConv2d(**args)
    assert str(info.value) == message


def test_spatial_to_winograd_rejects_5x5():
    with pytest.raises(ValueError, match=r"kernels must have shape \[K, C, 3, 3\]"):
        spatial_to_winograd(torch.zeros(1, 1, 5, 5), "4x4")
