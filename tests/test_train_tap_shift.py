"""The tap-wise quantiser (channel scale times a power of two per Winograd position, output-aware
rounding), the quantisation-aware fine-tuning with the straight-through fake-quantiser, and the
state_dict import with tap shifts."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from golden.conv import winograd_conv2d_float, winograd_conv2d_int  # noqa: E402
from golden.network import evaluate, load_network  # noqa: E402
from golden.transforms import tile_transform  # noqa: E402
from golden.weights import save_weights  # noqa: E402
from train.data import load_digits  # noqa: E402
from train.models import VGGLike  # noqa: E402
from train.settings import PruneSettings  # noqa: E402
from train.qat import TapwiseFakeQuant, quantization_aware_finetune  # noqa: E402
from train.quantize import (calibrate_input_scales, export_network, output_step,  # noqa: E402
                            quantize_layer)
from train.state_dict import import_state_dict  # noqa: E402
from train.tapwise import (choose_steps, output_hessian, round_for_output,  # noqa: E402
                           round_nearest)
from train.winograd import importance_matrix, spatial_to_winograd  # noqa: E402

TILES = ["4x4", "6x6"]


def _dense_U(tile, k=16, c=8, seed=0):
    g = torch.randn(k, c, 3, 3, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    return g, spatial_to_winograd(g, tile).numpy()


def _rms_vs_torch(layer, g, seed):
    """RMS error of the int8 layer (int8 input) against torch's float convolution, relative to
    the signal."""
    x = torch.randn(g.shape[1], 12, 12, generator=torch.Generator().manual_seed(100 + seed),
                    dtype=torch.float64)
    ref = torch.nn.functional.conv2d(x[None], g, padding=1)[0].numpy()
    s_in = float(np.float32(float(x.abs().max()) / 127))
    xq = np.clip(np.rint(x.numpy() / s_in), -128, 127)
    y = winograd_conv2d_int(xq, layer.U, layer.AT, layer.BT, 1, tap_shift=layer.tap_shift)
    y = y * (s_in * output_step(layer))[:, None, None]
    return np.sqrt(np.mean((y - ref) ** 2) / np.mean(ref ** 2))


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("method", ["range", "error"])
def test_choose_steps(tile, method):
    _, U = _dense_U(tile)
    U[3] *= 1e-3                                         # a quiet channel keeps its own scale
    scale, shift = choose_steps(U, tile, method)
    assert scale.dtype == np.float32 and scale.shape == (16,) and np.all(scale > 0)
    assert shift.dtype == np.int8 and shift.shape == (tile_transform(tile).alpha,) * 2
    assert shift.min() == 0 and shift.max() <= 15
    assert 1e-4 < scale[3] / np.median(scale) < 1e-2
    q = round_nearest(U, scale, shift)
    assert np.abs(q).max() == 127
    if method == "range":            # no position clips, and each is as fine as that allows
        step = scale[:, None, None, None] * np.exp2(-shift.astype(np.float64))
        assert np.all(np.abs(U) <= 127.5 * step)
        assert np.all((np.abs(U) / step).max(axis=(0, 1)) * 2 > 127)
    _, narrow = choose_steps(U, tile, method, max_span=2)
    assert narrow.max() <= 2


def test_choose_steps_refuses_bad_arguments():
    _, U = _dense_U("4x4")
    with pytest.raises(ValueError, match=r"^method must be one of range, error, not 'exact'$"):
        choose_steps(U, "4x4", "exact")
    with pytest.raises(ValueError, match=r"^max_span must be an integer in \[0, 15\], not 16$"):
        choose_steps(U, "4x4", max_span=16)


@pytest.mark.parametrize("tile", TILES)
def test_output_hessian_is_the_expected_output_error(tile):
    """Summed over unit inputs at every patch position (the expectation for i.i.d. unit
    inputs), the squared output error of weight errors e is e^T H e."""
    tr = tile_transform(tile)
    a = tr.alpha
    H = output_hessian(tile)
    np.testing.assert_allclose(np.diag(H).reshape(a, a), importance_matrix(tile, False) ** 2)
    e = np.random.default_rng(0).normal(size=(a, a))
    total = 0.0
    for p in range(a * a):
        d = np.zeros((a, a))
        d.flat[p] = 1.0
        V = tr.BT_int @ d @ tr.BT_int.T
        total += np.sum((tr.AT_int @ (e * V) @ tr.AT_int.T) ** 2)
    assert total == pytest.approx(e.ravel() @ H @ e.ravel(), rel=1e-12)


@pytest.mark.parametrize("tile", TILES)
def test_output_aware_rounding_beats_nearest_and_keeps_zeros(tile):
    _, U = _dense_U(tile, seed=3)
    U[np.random.default_rng(3).random(U.shape) < 0.5] = 0.0
    scale, shift = choose_steps(U, tile)
    H = output_hessian(tile)
    step = scale[:, None, None, None] * np.exp2(-shift.astype(np.float64))

    def cost(q):
        e = (U - q * step).reshape(U.shape[0], U.shape[1], -1)
        return np.einsum("kci,ij,kcj->", e, H, e)

    q = round_for_output(U, scale, shift, tile)
    assert np.all(q[U == 0] == 0) and np.abs(q).max() <= 127 and np.all(q == np.rint(q))
    assert cost(q) < 0.9 * cost(round_nearest(U, scale, shift))


@pytest.mark.parametrize("tile", TILES)
def test_output_aware_rounding_is_a_local_optimum_whatever_the_chunk(tile):
    """Filters are rounded independently: any chunk size gives the same weights, and no
    single or paired one-step move lowers a filter's expected output error."""
    _, U = _dense_U(tile, seed=5)
    U = U[:6, :5]
    U[np.random.default_rng(5).random(U.shape) < 0.4] = 0.0
    scale, shift = choose_steps(U, tile)
    q = round_for_output(U, scale, shift, tile)
    for chunk in (1, 7, 1000):
        assert np.array_equal(round_for_output(U, scale, shift, tile, chunk=chunk), q)
    H = output_hessian(tile)
    step = (scale[:, None, None, None] * np.exp2(-shift.astype(np.float64))
            * np.ones_like(U)).reshape(-1, H.shape[0])
    Q, W = q.reshape(step.shape), U.reshape(step.shape)
    for f in range(len(Q)):
        def cost(qf, f=f):
            e = W[f] - qf * step[f]
            return e @ H @ e
        base, live = cost(Q[f]), np.flatnonzero(W[f])
        for j in live:
            for l in live:
                for dj in (1, -1):
                    for dl in (0, 1, -1):
                        moved = Q[f].copy()
                        moved[j] += dj
                        if l != j:
                            moved[l] += dl
                        if np.abs(moved).max() <= 127:
                            assert cost(moved) >= base - 1e-9 * abs(base)
    with pytest.raises(ValueError, match="chunk must be a positive integer, not 0"):
        round_for_output(U, scale, shift, tile, chunk=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_6x6_layer_error_against_torch(seed):
    """Per channel only: 60-90 % of the signal; with tap shifts and output-aware rounding
    4.5-5.5 %. (4x4 stays at about 1.2 %.)"""
    g, U = _dense_U("6x6", seed=seed)
    plain = quantize_layer("c", U, "6x6", 1)
    tapwise = quantize_layer("c", U, "6x6", 1, tap_shifts=True)
    assert plain.tap_shift is None and tapwise.tap_shift is not None
    assert _rms_vs_torch(plain, g, seed) > 0.5
    assert _rms_vs_torch(tapwise, g, seed) < 0.056
    g4, U4 = _dense_U("4x4", seed=seed)
    assert _rms_vs_torch(quantize_layer("c", U4, "4x4", 1, tap_shifts=True), g4, seed) < 0.015


@pytest.mark.parametrize("tile", TILES)
def test_tap_shift_layer_is_the_float_layer_of_its_dequantised_weights(tile):
    """The exact integer layer times scale[k] * 2**-T * input_scale is the float Winograd layer
    of U * scale * 2**-tap_shift, bias included."""
    _, U = _dense_U(tile, k=4, c=3, seed=5)
    bias = np.array([0.5, -0.25, 0.0, 1.0])
    layer = quantize_layer("l", U, tile, 1, bias=bias, input_scale=1 / 127, tap_shifts=True)
    assert layer.tap_shift.any()
    xq = np.random.default_rng(1).integers(-127, 128, size=(3, 7, 5))
    y_int = winograd_conv2d_int(xq, layer.U, layer.AT, layer.BT, 1, layer.bias_or_zeros,
                                tap_shift=layer.tap_shift)
    step = layer.input_scale * output_step(layer)
    U_deq = layer.U * layer.scale.astype(np.float64)[:, None, None, None] * np.exp2(
        -layer.tap_shift.astype(np.float64))
    y_deq = winograd_conv2d_float(xq * layer.input_scale, U_deq, layer.AT, layer.BT, 1,
                                  layer.bias_or_zeros * step)
    np.testing.assert_allclose(y_int * step[:, None, None], y_deq, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(layer.bias_or_zeros * step, bias, atol=step.max())


def test_fake_quantiser_is_on_grid_and_straight_through():
    step = torch.tensor([0.5, 0.25]).reshape(2, 1, 1, 1).expand(2, 1, 4, 4).clone()
    fq = TapwiseFakeQuant(step)
    w = torch.tensor(np.random.default_rng(0).normal(scale=80, size=(2, 3, 4, 4)),
                     dtype=torch.float32, requires_grad=True)
    U = fq(w)
    expected = torch.clamp(torch.round(w.detach()), -127, 127) * step
    assert torch.equal(U.detach(), expected)
    U.sum().backward()
    assert torch.equal(w.grad, step.expand(2, 3, 4, 4))
    assert torch.allclose(fq.right_inverse(expected), torch.clamp(torch.round(w.detach()),
                                                                  -127, 127))


@pytest.mark.parametrize("tile", TILES)
def test_finetune_keeps_zeros_and_exports_exactly(tile, tmp_path):
    data = load_digits(0)
    data = type(data)("digits", data.x_train[:64], data.y_train[:64], data.x_test[:32],
                      data.y_test[:32], 10)
    torch.manual_seed(0)
    model = VGGLike(1, (4, 6), {1}, image_size=8, classes=10)
    model.to_winograd(tile)
    with torch.no_grad():
        for conv in model.convs:
            conv.mask.copy_((torch.rand(conv.mask.shape) > 0.5).float())
    masks = [conv.mask.clone() for conv in model.convs]
    before = [conv.U.detach().clone() for conv in model.convs]
    steps = quantization_aware_finetune(model, data, tile, 1, 0.02, torch.Generator(), 16,
                                        tap_shifts=True)
    for conv, mask, start, name in zip(model.convs, masks, before, model.conv_names):
        assert torch.equal(conv.mask, mask) and not hasattr(conv, "parametrizations")
        w = conv.effective_weight().detach().double().numpy()
        assert np.all(w[mask.numpy() == 0] == 0)                      # pruned stay zero
        scale, shift = steps[name]
        q = w / (scale.astype(np.float64)[:, None, None, None] * np.exp2(-shift.astype(float)))
        np.testing.assert_allclose(q, np.rint(q), atol=1e-4)           # on the grid
        assert not torch.equal(conv.U.detach(), start)                 # and trained
    scales = calibrate_input_scales(model, data.x_train)
    weights = export_network(model, tile, scales, tap_shifts=True, steps=steps)
    for i, (layer, conv) in enumerate(zip(weights.layers, model.convs)):
        u = layer.U * layer.scale.astype(np.float64)[:, None, None, None]
        if layer.tap_shift is not None:
            u = u * np.exp2(-layer.tap_shift.astype(np.float64))
        np.testing.assert_allclose(u, conv.effective_weight().detach().double().numpy(),
                                   rtol=1e-6, atol=1e-12)
        ratio = layer.input_scale * output_step(layer) / np.float32(
            scales[i + 1])
        np.testing.assert_allclose(layer.requant_mult / 2.0 ** layer.requant_shift, ratio,
                                   rtol=2 ** -14)
    save_weights(tmp_path / "w.npz", weights)
    _, acc = evaluate(load_network(tmp_path / "w.npz"), data.x_test.numpy(),
                      data.y_test.numpy())
    assert 0.0 <= acc <= 1.0


def test_settings_defaults_follow_the_tile():
    assert PruneSettings(tile="6x6").use_tap_shifts and PruneSettings(tile="6x6").finetune_epochs
    assert not PruneSettings().use_tap_shifts and PruneSettings().finetune_epochs == 0
    assert PruneSettings(tap_shifts=True).use_tap_shifts
    assert PruneSettings(tile="6x6", qat_epochs=0).finetune_epochs == 0
    for bad, message in ((dict(max_tap_shift=16), r"max_tap_shift must be an integer in "
                                                  r"\[0, 15\], not 16"),
                         (dict(qat_epochs=-1), r"qat_epochs must be a non-negative integer"),
                         (dict(qat_lr=0), r"qat_lr must be positive, not 0"),
                         (dict(tap_shifts=1), r"tap_shifts must be a bool or None, not 1")):
        with pytest.raises(ValueError, match=message):
            PruneSettings(**bad)


def test_state_dict_import_uses_the_tap_wise_quantiser():
    g, U = _dense_U("6x6", seed=1)
    state = {"conv.weight": g.float()}
    (plain,) = import_state_dict(state, "6x6")
    (tapwise,) = import_state_dict(state, "6x6", tap_shifts=True)
    assert plain.tap_shift is None and tapwise.tap_shift is not None
    direct = quantize_layer("conv", spatial_to_winograd(g.float().double(), "6x6").numpy(),
                            "6x6", 1, tap_shifts=True)
    np.testing.assert_array_equal(tapwise.U, direct.U)
    np.testing.assert_array_equal(tapwise.tap_shift, direct.tap_shift)
    assert _rms_vs_torch(tapwise, g.float().double(), 1) < 0.056 < 0.5 < _rms_vs_torch(
        plain, g.float().double(), 1)
