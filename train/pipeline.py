"""Dense training, the three pruning methods under one training budget, and the run report.

Methods (``--method``), each given ``prune_epochs`` of retraining after the same dense model:

``spatial-winograd`` (the seed method, Yu et al. 2019)
    Step 1 (first half of the budget): Winograd-structured spatial pruning, per-layer threshold
    bisected to a Winograd-domain sparsity that rises in stages to ``step1_share * target``;
    retraining in the spatial domain with fixed masks. Step 2 (second half): conversion to
    Winograd layers, pruning where |U| * I_hat is smallest up to ``target`` in stages, retraining
    with the masks fixed and gradients scaled by I_hat ** -1.5.
``spatial-magnitude`` (baseline)
    Spatial magnitude pruning to ``target`` (spatial sparsity) in stages, retraining, then the
    transform; the Winograd-domain sparsity is whatever survives G g G^T.
``winograd-magnitude`` (baseline, Li et al. 2017)
    Conversion to Winograd layers, magnitude pruning of U to ``target`` in stages, retraining
    in the Winograd domain.

After pruning, with ``tap_shifts`` (default for 6x6), the export gives every Winograd position
a power-of-two scale (weight file v2 ``tap_shift``), and ``qat_epochs`` of quantisation-aware
fine-tuning (:mod:`train.qat`, default 6 for 6x6, 0 for 4x4) put the weights on their int8 grid.

``first_target`` caps the first convolution's target for all three methods (the authors keep
the first layer, whose few weights see the raw image, at a low sparsity). Each dataset has its
preset (:func:`train.settings.default_settings`); the digits preset is :class:`PruneSettings`' defaults.
Training and quantisation-aware fine-tuning run on ``device`` ("cpu" or "cuda"); masks,
calibration, export and the integer evaluation always run on the CPU, so the weight file
depends on the device only through the trained float weights. BatchNorm (Fashion-MNIST's
network) is folded into the convolutions after pruning, before quantisation.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from golden.network import evaluate

from .data import CLASS_NAMES, Dataset
from .models import VGGLike, cifar_model, digits_model, fashion_model, fold_batch_norm
from .pruning import importance_mask, magnitude_mask, structured_threshold
from .qat import quantization_aware_finetune
from .quantize import calibrate_input_scales, export_network
from .settings import CALIBRATION_IMAGES, PruneSettings, layer_targets, resolve_device
from .winograd import WinogradConv2d, importance_matrix, spatial_to_winograd

__all__ = ["accuracy", "build_model", "prune", "quantise_network", "run", "sparsity_report",
           "train_dense", "winograd_weights"]

def build_model(dataset: str) -> VGGLike:
    """The VGG-like network for ``dataset``."""
    if dataset == "digits":
        return digits_model()
    return fashion_model() if dataset == "fashion-mnist" else cifar_model()


def _on(data: Dataset, device: torch.device) -> Dataset:
    if data.x_train.device == device:
        return data
    return Dataset(data.name, data.x_train.to(device), data.y_train.to(device),
                   data.x_test.to(device), data.y_test.to(device), data.classes)


@torch.no_grad()
def accuracy(model, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    """Top-1 accuracy of ``model`` on (x, y)."""
    model.eval()
    hits = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
               for i in range(0, len(x), batch))
    return hits / len(x)


def _train(model, data: Dataset, epochs: int, lr: float, generator: torch.Generator,
           batch_size: int, desc: str, progress: bool, grad_scale: torch.Tensor | None = None,
           augment: bool = False):
    """SGD with momentum, cosine-decayed over ``epochs``; optional gradient scaling of U and
    random horizontal flips (the order and the flips of each epoch are drawn from
    ``generator``, on the CPU, so that the batches are the same on every device)."""
    if epochs == 0:
        return
    device = data.x_train.device
    if grad_scale is not None:
        grad_scale = grad_scale.to(device)
    hooks = []
    if grad_scale is not None:
        hooks = [conv.U.register_hook(lambda g: g * grad_scale) for conv in model.convs
                 if isinstance(conv, WinogradConv2d)]
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    n = len(data.x_train)
    steps = epochs * -(-n // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    try:
        for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
            model.train()
            # One epoch's order and flips drawn at once and copied once: a copy per step
            # would wait for the device to finish the previous step every time.
            order = torch.randperm(n, generator=generator).to(device)
            flips = (torch.rand(n, generator=generator) < 0.5).to(device) if augment else None
            for i in range(0, n, batch_size):
                idx = order[i:i + batch_size]
                x = data.x_train[idx]
                if augment:
                    x = torch.where(flips[i:i + batch_size, None, None, None], x.flip(-1), x)
                opt.zero_grad()
                F.cross_entropy(model(x), data.y_train[idx]).backward()
                opt.step()
                sched.step()
    finally:
        for h in hooks:
            h.remove()


def train_dense(dataset: str, data: Dataset, settings: PruneSettings,
                progress: bool = False, device: str = "cpu") -> VGGLike:
    """Train the dense spatial model (deterministic by ``settings.seed`` on the CPU for a fixed
    thread count); it is returned on ``device``."""
    torch.manual_seed(settings.seed)
    dev = resolve_device(device)
    model = build_model(dataset).to(dev)
    gen = torch.Generator().manual_seed(settings.seed)
    _train(model, _on(data, dev), settings.dense_epochs, settings.lr, gen, settings.batch_size,
           "dense", progress, augment=settings.augment)
    return model


def winograd_weights(model: VGGLike, tile: str) -> list[torch.Tensor]:
    """Winograd-domain weights of every convolution (G g G^T for spatial ones), float64."""
    out = []
    for conv in model.convs:
        w = conv.effective_weight().detach().double()
        out.append(w if isinstance(conv, WinogradConv2d) else spatial_to_winograd(w, tile))
    return out


def _winograd_lr(s: PruneSettings, grad_scale: np.ndarray | None) -> float:
    if s.winograd_lr is not None:
        return s.winograd_lr
    gain = importance_matrix(s.tile, normalise=False) ** 2
    if grad_scale is not None:
        gain = gain * grad_scale
    return s.lr / float(gain.max())


def _stage_targets(target: float, stages: int) -> list[float]:
    return [target * (s + 1) / stages for s in range(stages)]


def _split(epochs: int, parts: int) -> list[int]:
    return [epochs // parts + (1 if i < epochs % parts else 0) for i in range(parts)]


def _staged(model, data, s: PruneSettings, targets, epochs, set_masks, lr, gen, desc,
            progress, grad_scale=None):
    """Prune each layer to its stage target (``targets[stage][layer]``), then retrain.

    ``set_masks(weight, mask, target)`` gets the layer's effective weight and mask on the CPU.
    """
    for i, (stage, e) in enumerate(zip(targets, _split(epochs, len(targets)))):
        with torch.no_grad():
            for conv, t in zip(model.convs, stage):
                w, m = conv.effective_weight().detach().cpu(), conv.mask.cpu()
                conv.mask.copy_(set_masks(w, m, t))
        _train(model, data, e, lr, gen, s.batch_size, f"{desc} {i + 1}/{len(targets)} "
               f"(target {stage[-1]:.2f})", progress, grad_scale, s.augment)


def _per_layer(finals: list[float], stages) -> list[list[float]]:
    """Stage targets [stage][layer] rising to ``finals`` (``stages`` maps a final to its list)."""
    return [list(t) for t in zip(*(stages(f) for f in finals))]


def prune(dense: VGGLike, data: Dataset, s: PruneSettings, progress: bool = False) -> VGGLike:
    """Prune and retrain a copy of ``dense`` with ``s.method`` (``dense`` is left unchanged),
    on the device ``dense`` is on."""
    model = copy.deepcopy(dense)
    device = next(model.parameters()).device
    data = _on(data, device)
    gen = torch.Generator().manual_seed(s.seed + 1)
    torch.manual_seed(s.seed + 1)
    finals = layer_targets(s, len(model.convs))
    if s.method == "spatial-magnitude":
        _staged(model, data, s, _per_layer(finals, lambda f: _stage_targets(f, s.stages)),
                s.prune_epochs, lambda w, m, t: magnitude_mask(w.abs(), t), s.lr, gen,
                "spatial magnitude", progress)
    elif s.method == "winograd-magnitude":
        model.to_winograd(s.tile)
        model.to(device)
        _staged(model, data, s, _per_layer(finals, lambda f: _stage_targets(f, s.stages)),
                s.prune_epochs, lambda w, m, t: magnitude_mask(w.abs(), t),
                _winograd_lr(s, None), gen, "winograd magnitude", progress)
    else:
        step1, step2 = _split(s.prune_epochs, 2)
        share = s.step1_target / s.target if s.target > 0 else 1.0
        firsts = [f * share if f != s.target else s.step1_target for f in finals]
        _staged(model, data, s, _per_layer(firsts, lambda f: _stage_targets(f, s.stages)),
                step1, lambda w, m, t: structured_threshold(w, s.tile, t)[1], s.lr, gen,
                "step 1", progress)
        model.to_winograd(s.tile)
        model.to(device)
        scale = importance_matrix(s.tile) ** -1.5
        target1 = s.step1_target
        n2 = max(1, min(s.stages, step2)) if target1 < s.target else 1

        def stages2(layer):
            t1, final = firsts[layer], finals[layer]
            return [t1 + (final - t1) * (i + 1) / n2 for i in range(n2)]

        _staged(model, data, s, [list(t) for t in zip(*(stages2(i) for i in range(len(finals))))],
                step2, lambda w, m, t: importance_mask(w, s.tile, t) * m,
                _winograd_lr(s, scale), gen, "step 2", progress,
                grad_scale=torch.as_tensor(scale, dtype=torch.float32))
    return model


def sparsity_report(weights: list[torch.Tensor], names: list[str]) -> dict:
    """Winograd-domain sparsity overall, per layer and per position (exact zeros)."""
    zeros = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    layers = {}
    for name, w in zip(names, weights):
        layers[name] = {
            "sparsity": float((w == 0).double().mean()),
            "per_position": (w == 0).double().mean(dim=(0, 1)).tolist(),
            "shape": list(w.shape),
        }
    return {"overall": zeros / total, "layers": layers}


def quantise_network(model: VGGLike, dataset: str, data: Dataset, s: PruneSettings,
                     progress: bool = False):
    """Quantise a pruned ``model`` as ``s`` says (tap shifts, quantisation-aware fine-tuning of
    a copy) and evaluate the int8 network with golden.

    Returns
    -------
    weights : golden.weights.WeightFile
    fine_tuned : float or None
        Accuracy of the fine-tuned float network (its weights on the int8 grid), if any.
    quantised : float
        Accuracy of the int8 network (:func:`golden.network.evaluate`).
    """
    steps, acc_qat = None, None
    if s.finetune_epochs:
        model = copy.deepcopy(model)
        gen = torch.Generator().manual_seed(s.seed + 2)
        steps = quantization_aware_finetune(model, data, s.tile, s.finetune_epochs, s.qat_lr,
                                            gen, s.batch_size, s.use_tap_shifts,
                                            s.max_tap_shift, progress)
        acc_qat = accuracy(model, data.x_test, data.y_test)
    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    scales = calibrate_input_scales(model, data.x_train[:CALIBRATION_IMAGES].cpu())
    weights = export_network(model, s.tile, scales, CLASS_NAMES.get(dataset),
                             tap_shifts=s.use_tap_shifts, steps=steps,
                             max_span=s.max_tap_shift)
    _, acc_quant = evaluate(weights, data.x_test.cpu().numpy(), data.y_test.cpu().numpy())
    return weights, acc_qat, acc_quant


def run(dataset: str, data: Dataset, s: PruneSettings, progress: bool = False,
        dense: VGGLike | None = None, device: str = "cpu"):
    """Full run: dense (unless given), prune, fold BatchNorm, quantise, evaluate.

    Training runs on ``device``; the pruned model's BatchNorm is then folded into the
    convolutions (:func:`~train.models.fold_batch_norm`) and it is quantised by
    :func:`quantise_network` (input scales calibrated on the first :data:`CALIBRATION_IMAGES`
    training images); the quantised accuracy is :func:`golden.network.evaluate`'s on the
    exported file: the figure ``python -m golden.network --weights W.npz --dataset NAME``
    prints.

    Returns
    -------
    weights : golden.weights.WeightFile
        The whole quantised network (version 2), ready for ``golden.weights.save_weights``.
    report : dict
        Accuracies, sparsities, settings and wall time (JSON-serialisable).
    """
    start = time.perf_counter()
    dev = resolve_device(device)
    if dense is None:
        dense = train_dense(dataset, data, s, progress, device)
    dense = dense.to(dev)
    on_device = _on(data, dev)
    acc_dense = accuracy(dense, on_device.x_test, on_device.y_test)
    model = prune(dense, on_device, s, progress)
    acc_pruned = accuracy(model, on_device.x_test, on_device.y_test)
    model = fold_batch_norm(model)
    pruned = sparsity_report([w.cpu() for w in winograd_weights(model, s.tile)],
                             model.conv_names)
    weights, acc_qat, acc_quant = quantise_network(model, dataset, on_device, s, progress)
    quant = sparsity_report([torch.from_numpy(layer.U.astype(np.float64))
                             for layer in weights.layers], model.conv_names)
    report = {
        "dataset": dataset,
        "method": s.method,
        "tile": s.tile,
        "target_sparsity": s.target,
        "accuracy": {"dense": acc_dense, "pruned": acc_pruned, "quantised": acc_quant,
                     "fine_tuned_int8_weights": acc_qat},
        "tap_shifts": {layer.name: (None if layer.tap_shift is None
                                    else layer.tap_shift.tolist()) for layer in weights.layers},
        "winograd_sparsity": pruned,
        "quantised_winograd_sparsity": {"overall": quant["overall"],
                                        "layers": {k: v["sparsity"]
                                                   for k, v in quant["layers"].items()}},
        "settings": asdict(s),
        "test_images": len(data.x_test),
        "device": dev.type,
        "wall_time_s": time.perf_counter() - start,
    }
    return weights, report

