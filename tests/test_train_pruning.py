"""Pruning masks: exact Winograd-domain zeros after step 1, thresholds, importance, retraining."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from train.data import load_digits  # noqa: E402
from train.pipeline import prune, winograd_weights  # noqa: E402
from train.settings import PruneSettings  # noqa: E402
from train.pruning import (importance_mask, magnitude_mask, structured_mask,  # noqa: E402
                           structured_threshold, winograd_zero_positions)
from train.winograd import WinogradConv2d, importance_matrix, spatial_to_winograd  # noqa: E402

TILES = ["4x4", "6x6"]


def _kernels(seed, k=8, c=5):
    return torch.randn(k, c, 3, 3, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("target", [0.0, 0.3, 0.7, 0.95])
def test_structured_mask_gives_exact_winograd_zeros(tile, target):
    g = _kernels(int(target * 100))
    threshold, mask = structured_threshold(g, tile, target)
    zero = winograd_zero_positions(mask, tile)
    assert int(zero.sum()) >= target * zero.numel() - 1e-9
    for dtype in (torch.float32, torch.float64):
        U = spatial_to_winograd((g * mask).to(dtype), tile)
        assert torch.all(U[zero] == 0)          # exactly zero, in float32 too
        assert torch.all(U[~zero] != 0)         # no accidental zeros for random kernels
    if target > 0:                              # bisection found (nearly) the smallest T
        below = structured_mask(g, tile, float(torch.nextafter(
            torch.tensor(threshold), torch.tensor(0.0))))
        assert int(winograd_zero_positions(below, tile).sum()) < target * zero.numel() - 1e-9


@pytest.mark.parametrize("tile", TILES)
def test_structured_mask_edge_cases(tile):
    zeros = torch.zeros(3, 2, 3, 3)
    _, mask = structured_threshold(zeros, tile, 0.5)
    assert winograd_zero_positions(zeros, tile).all()
    assert mask.shape == zeros.shape
    g = _kernels(5)
    assert torch.all(structured_mask(g, tile, 0.0) == 1)          # T = 0 prunes nothing
    assert torch.all(structured_mask(g, tile, 1e9) == 0)          # huge T prunes every tap
    with pytest.raises(ValueError, match=r"target sparsity must lie in \[0, 1\), not 1.0"):
        structured_threshold(g, tile, 1.0)


def test_structured_mask_prunes_whole_tap_groups():
    # F(2x2,3x3): position (0, 0) is fed by tap (0, 0) alone, (1, 1) by all nine taps.
    g = 1 + _kernels(9, 1, 1).abs()
    g[0, 0, 0, 0] = 0.01
    mask = structured_mask(g, "4x4", 0.5)
    assert mask[0, 0, 0, 0] == 0 and mask.sum() == 8
    U = spatial_to_winograd(g * mask, "4x4")
    assert U[0, 0, 0, 0] == 0 and torch.count_nonzero(U) == 15


@pytest.mark.parametrize("target", [0.0, 0.25, 0.5, 0.9])
def test_magnitude_mask_prunes_exactly_the_target_share(target):
    scores = torch.randn(7, 3, 4, 4, generator=torch.Generator().manual_seed(2)).abs()
    mask = magnitude_mask(scores, target)
    assert int((mask == 0).sum()) == round(target * scores.numel())
    if 0 < target:
        assert scores[mask == 0].max() <= scores[mask == 1].min()


@pytest.mark.parametrize("tile", TILES)
def test_importance_mask_prunes_low_importance_positions_first(tile):
    imp = importance_matrix(tile)
    a = imp.shape[0]
    U = torch.ones(2, 3, a, a)
    n_low = int((imp == imp.min()).sum())
    mask = importance_mask(U, tile, n_low / (a * a))
    low = torch.from_numpy(imp == imp.min())
    assert torch.all(mask[:, :, low] == 0) and torch.all(mask[:, :, ~low] == 1)


@pytest.fixture(scope="module")
def tiny_digits():
    data = load_digits(0)
    # A small slice keeps the retraining tests fast.
    return type(data)("digits", data.x_train[:96], data.y_train[:96], data.x_test[:64],
                      data.y_test[:64], 10)


@pytest.fixture(scope="module")
def tiny_dense():
    from train.models import digits_model
    torch.manual_seed(0)
    return digits_model()


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("method", ["spatial-winograd", "spatial-magnitude",
                                    "winograd-magnitude"])
def test_prune_reaches_targets_and_keeps_zeros_through_retraining(tiny_digits, tiny_dense,
                                                                 tile, method):
    s = PruneSettings(tile=tile, method=method, target=0.6, dense_epochs=0, prune_epochs=2,
                      stages=2, batch_size=32, step1_share=0.5)
    model = prune(tiny_dense, tiny_digits, s)
    weights = winograd_weights(model, tile)
    if method == "spatial-magnitude":
        spatial = [c.effective_weight() for c in model.convs]
        for w in spatial:
            assert float((w == 0).float().mean()) == pytest.approx(0.6, abs=0.01)
        # Spatial zeros survive G g G^T only where whole tap groups are zero: less sparse.
        assert np.mean([float((w == 0).float().mean()) for w in weights]) < 0.6
    else:
        assert all(isinstance(c, WinogradConv2d) for c in model.convs)
        for conv, w in zip(model.convs, weights):
            assert float((w == 0).double().mean()) >= 0.6 - 1e-3
            assert torch.all(w[conv.mask == 0] == 0)
            assert torch.all(conv.mask[w != 0] == 1)
    # The dense model is not modified.
    assert all(torch.all(c.mask == 1) for c in tiny_dense.convs)


def test_step1_alone_gives_exact_winograd_zeros_after_retraining(tiny_digits, tiny_dense):
    from train.pipeline import _staged
    s = PruneSettings(tile="6x6", target=0.5, prune_epochs=2, stages=2)
    import copy
    model = copy.deepcopy(tiny_dense)
    gen = torch.Generator().manual_seed(0)
    layers = len(model.convs)
    _staged(model, tiny_digits, s, [[0.25] * layers, [0.5] * layers], 2,
            lambda weight, mask, t: structured_threshold(weight, "6x6", t)[1],
            0.05, gen, "step 1", False)
    for conv in model.convs:
        zero = winograd_zero_positions(conv.mask, "6x6")
        U = spatial_to_winograd(conv.effective_weight().detach(), "6x6")
        assert float(zero.float().mean()) >= 0.5
        assert torch.all(U[zero] == 0)
        assert torch.any(conv.weight.detach() != 0)


def test_gradient_scaling_in_step_2_follows_importance(tiny_digits):
    # One full-batch SGD step must move U by lr * (I_hat ** -1.5 * dL/dU + weight decay).
    import torch.nn.functional as F

    from train.models import VGGLike
    from train.pipeline import _train
    torch.manual_seed(3)
    model = VGGLike(1, (2,), set(), image_size=8, classes=10)
    model.to_winograd("6x6")
    conv = model.convs[0]
    before = conv.U.detach().clone()
    loss = F.cross_entropy(model(tiny_digits.x_train), tiny_digits.y_train)
    raw = torch.autograd.grad(loss, conv.U)[0]
    scale = torch.as_tensor(importance_matrix("6x6") ** -1.5, dtype=torch.float32)
    lr = 1e-2
    _train(model, tiny_digits, 1, lr, torch.Generator().manual_seed(0), 96, "t", False,
           grad_scale=scale)
    expected = before - lr * (raw * scale + 1e-4 * before)
    torch.testing.assert_close(conv.U.detach(), expected, rtol=1e-4, atol=1e-7)
    unscaled = before - lr * (raw + 1e-4 * before)
    assert not torch.allclose(conv.U.detach(), unscaled, rtol=1e-4, atol=1e-7)
