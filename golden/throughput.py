"""Throughput of a layer at a clock frequency, from the exact cycle model (:mod:`golden.cycles`).

Definitions, for a layer that takes ``cycles`` clock cycles (``CycleReport.cycles``) at
``fmax_mhz``:

* ``seconds = cycles / (fmax_mhz * 1e6)``;
* dense-equivalent ``gops = 2 * direct_macs / seconds / 1e9``: two operations (multiply, add) per
  multiply-accumulate of the *direct* dense 3x3 convolution, the figure Winograd and sparse
  accelerators are compared by (WinoGen, SCALE-Sim);
* ``gops_per_multiplier = gops / multipliers`` (``config.multipliers``);
* ``performed_gops = 2 * nonzero_macs / seconds / 1e9``: the operations the PEs really perform.

:func:`reference_throughput` evaluates them on the reference layer of the synthesis reports:
64 -> 64 channels (capped at the design's limits), 32 x 32 input, 3 x 3, padding 1, with
position-skewed Winograd sparsity (:func:`golden.synthetic.synthetic_layer`).

Importable with NumPy alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import AcceleratorConfig
from .cycles import CycleReport, layer_cycles
from .program import compile_layer
from .synthetic import synthetic_layer

__all__ = ["REFERENCE_LAYER", "Throughput", "layer_throughput", "reference_throughput"]

#: Reference layer of the throughput figures: C -> K channels, H x W input (3x3, padding 1).
REFERENCE_LAYER = {"in_channels": 64, "out_channels": 64, "height": 32, "width": 32}


@dataclass(frozen=True)
class Throughput:
    """Throughput of one layer at one clock frequency (module docstring for the definitions).

    Members
    -------
    fmax_mhz : float
        Clock frequency.
    cycles : int
        Cycles of the layer (``CycleReport.cycles``).
    direct_macs, nonzero_macs : int
        Direct-convolution and performed multiply-accumulates (``CycleReport``).
    multipliers : int
        Physical multipliers of the design.
    utilisation : float
        ``nonzero_macs / (n_pe * cycles)`` (``CycleReport.utilisation``).
    """

    fmax_mhz: float
    cycles: int
    direct_macs: int
    nonzero_macs: int
    multipliers: int
    utilisation: float

    @property
    def seconds(self) -> float:
        """Wall time of the layer."""
        return self.cycles / (self.fmax_mhz * 1e6)

    @property
    def gops(self) -> float:
        """Dense-equivalent giga-operations per second."""
        return 2 * self.direct_macs / self.seconds / 1e9

    @property
    def gops_per_multiplier(self) -> float:
        """Dense-equivalent GOPS per physical multiplier."""
        return self.gops / self.multipliers

    @property
    def performed_gops(self) -> float:
        """Giga-operations per second the multipliers really perform (nonzero weights)."""
        return 2 * self.nonzero_macs / self.seconds / 1e9


def _check_fmax(fmax_mhz) -> None:
    if isinstance(fmax_mhz, bool) or not isinstance(fmax_mhz, (int, float)) \
            or not fmax_mhz > 0:
        raise ValueError(f"fmax_mhz must be a positive number, not {fmax_mhz!r}")


def layer_throughput(report: CycleReport, fmax_mhz: float) -> Throughput:
    """The throughput of the layer whose cycle report is ``report``, clocked at ``fmax_mhz``.

    Parameters
    ----------
    report : golden.cycles.CycleReport
        Result of :func:`golden.cycles.layer_cycles`.
    fmax_mhz : float
        Clock frequency in MHz (positive).

    Raises
    ------
    ValueError
        ``fmax_mhz`` is not a positive number.
    """
    _check_fmax(fmax_mhz)
    if report.cycles < 1:
        raise ValueError(f"report.cycles must be a positive integer, not {report.cycles!r}")
    return Throughput(fmax_mhz=float(fmax_mhz), cycles=report.cycles,
                      direct_macs=report.direct_macs, nonzero_macs=report.nonzero_macs,
                      multipliers=report.multipliers, utilisation=report.utilisation)


def reference_throughput(config: AcceleratorConfig, fmax_mhz: float, sparsity: float, *,
                         seed: int = 0) -> dict:
    """Throughput of ``config`` at ``fmax_mhz`` on the reference layer, as a report entry.

    Parameters
    ----------
    config : AcceleratorConfig
        The design; the reference layer's channels are capped at its limits.
    fmax_mhz : float
        Clock frequency in MHz (usually the Fmax place and route achieved).
    sparsity : float
        Fraction of zero Winograd-domain weights, in [0, 1) (position-skewed pruning).
    seed : int
        Seed of the synthetic layer (deterministic).

    Returns
    -------
    dict
        ``layer`` (description), ``sparsity``, ``fmax_mhz``, ``cycles``, ``utilisation``,
        ``direct_macs``, ``nonzero_macs``, ``multipliers`` and, rounded to 3 decimals, ``gops``,
        ``gops_per_multiplier`` and ``performed_gops``.

    Raises
    ------
    ValueError
        ``fmax_mhz`` is not positive or ``sparsity`` is outside [0, 1).
    """
    _check_fmax(fmax_mhz)
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) \
            or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be a number in [0, 1), not {sparsity!r}")
    c = min(REFERENCE_LAYER["in_channels"], config.max_in_channels)
    k = min(REFERENCE_LAYER["out_channels"], config.max_out_channels)
    h, w = REFERENCE_LAYER["height"], REFERENCE_LAYER["width"]
    layer = synthetic_layer(config, c, k, sparsity, seed=seed)
    tp = layer_throughput(layer_cycles(compile_layer(config, layer, h, w)), fmax_mhz)
    return {"layer": f"{c}->{k} channels, {h}x{w}, 3x3, tile {config.tile}",
            "sparsity": sparsity, "fmax_mhz": tp.fmax_mhz, "cycles": tp.cycles,
            "utilisation": round(tp.utilisation, 4),
            "direct_macs": tp.direct_macs, "nonzero_macs": tp.nonzero_macs,
            "gops": round(tp.gops, 3), "multipliers": tp.multipliers,
            "gops_per_multiplier": round(tp.gops_per_multiplier, 3),
            "performed_gops": round(tp.performed_gops, 3)}
