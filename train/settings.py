"""The settings of a pruning run: :class:`PruneSettings`, the per-dataset presets, the methods and
the devices (``train.prune``'s options; :mod:`train.pipeline` runs them)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from golden.transforms import parse_tile

__all__ = ["CALIBRATION_IMAGES", "DEVICES", "METHODS", "PruneSettings", "default_settings",
           "layer_targets", "resolve_device"]

METHODS = ("spatial-winograd", "spatial-magnitude", "winograd-magnitude")
#: Devices training runs on.
DEVICES = ("cpu", "cuda")
#: Training images the input scales are calibrated on (the first ones; all of digits').
CALIBRATION_IMAGES = 2048


@dataclass(frozen=True)
class PruneSettings:
    """Everything that determines a run (with the dataset); the report records it.

    Parameters
    ----------
    tile : str
        "4x4" or "6x6".
    method : str
        One of :data:`METHODS`.
    target : float
        Target sparsity per layer in [0, 1) (Winograd-domain, spatial for spatial-magnitude).
    seed : int
        Seeds initialisation and batch order; equal settings give equal results.
    dense_epochs, prune_epochs : int
        Epochs of dense training and of pruning + retraining (the same for every method).
    stages : int
        Pruning stages; the target rises linearly over them.
    batch_size : int
        Minibatch size.
    lr : float
        SGD learning rate in the spatial domain (momentum 0.9).
    winograd_lr : float or None
        SGD learning rate in the Winograd domain; None derives ``lr / max(I**2 * S)`` with I
        the (unnormalised) importance matrix and S the gradient scaling in use: position (i, j)
        of U reaches the output with gain about I_ij, so the loss curvature there grows as
        I_ij**2 (for F(4x4, 3x3) this gives ~7e-8, the order the authors used).
    step1_share : float or None
        Share of the target that step 1 of spatial-winograd reaches, in (0, 1]; None picks 0.8
        for 4x4 and 1.0 for 6x6 (F(4x4, 3x3) retrains in the Winograd domain only at learning
        rates ~1e-5, too slow to recover from further pruning within the budget).
    tap_shifts : bool or None
        Quantise with a power-of-two scale per Winograd position; None: for 6x6 only.
    max_tap_shift : int
        Largest span of a layer's tap shifts (the design's ``max_tap_shift``), in [0, 15].
    qat_epochs : int or None
        Epochs of quantisation-aware fine-tuning after pruning; None: 6 for 6x6, 0 for 4x4.
    qat_lr : float
        Its Adam learning rate, in weight steps per update.
    first_target : float or None
        Largest target of the first convolution, in [0, 1); None: the same target as the others.
    augment : bool
        Random horizontal flips of the training images (Fashion-MNIST's classes are symmetric).
    """

    tile: str = "4x4"
    method: str = "spatial-winograd"
    target: float = 0.7
    seed: int = 0
    dense_epochs: int = 30
    prune_epochs: int = 24
    stages: int = 3
    batch_size: int = 32
    lr: float = 0.05
    winograd_lr: float | None = None
    step1_share: float | None = None
    tap_shifts: bool | None = None
    max_tap_shift: int = 15
    qat_epochs: int | None = None
    qat_lr: float = 0.02
    first_target: float | None = None
    augment: bool = False

    def __post_init__(self):
        parse_tile(self.tile)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if not isinstance(self.target, (int, float)) or not 0.0 <= self.target < 1.0:
            raise ValueError(f"target sparsity must lie in [0, 1), not {self.target!r}")
        for name in ("dense_epochs", "prune_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
        for name in ("stages", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        for name in ("lr", "winograd_lr"):
            value = getattr(self, name)
            if name == "winograd_lr" and value is None:
                continue
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        if self.step1_share is not None and not (
                isinstance(self.step1_share, (int, float)) and 0.0 < self.step1_share <= 1.0):
            raise ValueError(f"step1_share must lie in (0, 1], not {self.step1_share!r}")
        if self.tap_shifts is not None and not isinstance(self.tap_shifts, bool):
            raise ValueError(f"tap_shifts must be a bool or None, not {self.tap_shifts!r}")
        if (not isinstance(self.max_tap_shift, int) or isinstance(self.max_tap_shift, bool)
                or not 0 <= self.max_tap_shift <= 15):
            raise ValueError(f"max_tap_shift must be an integer in [0, 15], not "
                             f"{self.max_tap_shift!r}")
        if self.qat_epochs is not None and (not isinstance(self.qat_epochs, int)
                                            or self.qat_epochs < 0):
            raise ValueError(f"qat_epochs must be a non-negative integer, not "
                             f"{self.qat_epochs!r}")
        if not isinstance(self.qat_lr, (int, float)) or not self.qat_lr > 0:
            raise ValueError(f"qat_lr must be positive, not {self.qat_lr!r}")
        if self.first_target is not None and not (
                isinstance(self.first_target, (int, float)) and 0.0 <= self.first_target < 1.0):
            raise ValueError(f"first_target must lie in [0, 1), not {self.first_target!r}")

    @property
    def use_tap_shifts(self) -> bool:
        """Quantise with tap shifts (``tap_shifts``, by default for 6x6 only)."""
        return self.tile == "6x6" if self.tap_shifts is None else self.tap_shifts

    @property
    def finetune_epochs(self) -> int:
        """Epochs of quantisation-aware fine-tuning (``qat_epochs``, by default 6 for 6x6)."""
        if self.qat_epochs is None:
            return 6 if self.tile == "6x6" else 0
        return self.qat_epochs

    @property
    def step1_target(self) -> float:
        """Winograd-domain sparsity that step 1 of spatial-winograd reaches."""
        share = self.step1_share
        if share is None:
            share = 0.8 if self.tile == "4x4" else 1.0
        return self.target * share


def layer_targets(s: PruneSettings, layers: int) -> list[float]:
    """Final target of each of ``layers`` convolutions (the first capped by ``first_target``)."""
    first = s.target if s.first_target is None else min(s.target, s.first_target)
    return [first] + [s.target] * (layers - 1)


#: Per-dataset changes to the defaults (digits: none, the CLI's and CI's run).
_PRESETS = {
    "digits": {},
    # 10 + 4 epochs: the run fits 30 minutes on two CPU cores (docs/pruning.md: dense 93.04 %,
    # int8 93.02 % over 3 seeds); the pruning table runs 12 + 12.
    "fashion-mnist": {"dense_epochs": 10, "prune_epochs": 4, "batch_size": 128, "lr": 0.05,
                      "first_target": 0.3, "augment": True},
}


def default_settings(dataset: str, **changes) -> PruneSettings:
    """The preset of ``dataset`` with ``changes`` (keyword arguments of :class:`PruneSettings`).

    Fashion-MNIST: 10 dense and 4 pruning epochs, batches of 128, flips, first layer at most
    30 % sparse; other datasets use the class defaults.
    """
    return replace(PruneSettings(**_PRESETS.get(dataset, {})), **changes)


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)`` for a name of :data:`DEVICES`, checked to be usable.

    Raises
    ------
    ValueError
        For another name, or "cuda" without a CUDA device.
    """
    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device cuda: this PyTorch {torch.__version__} sees no CUDA device")
    return torch.device(name)
