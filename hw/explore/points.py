"""Design points: the grid of tiles x arrays x channel limits x synthesis targets.

A point is one :class:`golden.config.AcceleratorConfig` and one synthesis target. The grid's
configurations are copies of a base design (for a network, :func:`golden.passes.network_design`:
its tile, the requant stage and its tap shift span) with the point's tile, array and channel
limit (input = output). :func:`screen` says, before any task runs, which points need no task:
those whose tile the network's layers cannot use, and those ``golden.cost`` refuses to build.
"""

from __future__ import annotations

from dataclasses import dataclass

from golden.config import AcceleratorConfig
from golden.cost import check_buildable
from golden.transforms import TILES

from hw.synth.yosys import TARGETS

__all__ = ["DesignPoint", "REFUSED", "UNUSABLE", "grid", "network_tile", "screen"]

#: Status of a point whose design the network cannot use.
UNUSABLE = "unusable"
#: Status of a point whose design ``golden.cost`` refuses to build.
REFUSED = "refused"


@dataclass(frozen=True)
class DesignPoint:
    """One design on one synthesis target.

    Members
    -------
    config : AcceleratorConfig
    target : str
        A key of :data:`hw.synth.yosys.TARGETS`.
    """

    config: AcceleratorConfig
    target: str

    def __post_init__(self):
        if not isinstance(self.config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not "
                            f"{type(self.config).__name__}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {self.target!r}")

    @property
    def name(self) -> str:
        """``<design name>-<target>``: unique in a grid, the point's work folder."""
        return f"{self.config.name}-{self.target}"

    @property
    def array_text(self) -> str:
        """The array as ``RxC``."""
        return f"{self.config.array[0]}x{self.config.array[1]}"

    @property
    def channels(self) -> int:
        """The channel limit (input = output in a grid)."""
        return self.config.max_in_channels


def grid(base: AcceleratorConfig, tiles, arrays, channels, targets) -> list[DesignPoint]:
    """Every tile x array x channel limit x target, in that nesting order (targets innermost).

    Parameters
    ----------
    base : AcceleratorConfig
        The design whose other parameters every point keeps.
    tiles : sequence of str
    arrays : sequence of (int, int)
    channels : sequence of int
        Limits of input and output channels (both).
    targets : sequence of str

    Raises
    ------
    ValueError
        A configuration is invalid or a target unknown (naming the value).
    """
    return [DesignPoint(base.replace(tile=tile, array=tuple(array), max_in_channels=c,
                                     max_out_channels=c), target)
            for tile in tiles for array in arrays for c in channels for target in targets]


def network_tile(weights) -> str:
    """The tile of a network's conv layers (:func:`golden.passes.network_design`'s rule: one
    tile for all). Raises ValueError otherwise."""
    from golden.passes import network_design
    return network_design(weights).tile


def screen(point: DesignPoint, tile: str | None,
           available_memory: int | None = None) -> tuple[str, str] | None:
    """``(status, reason)`` for a point that needs no task, else None.

    Parameters
    ----------
    point : DesignPoint
    tile : str or None
        The network's tile (None: no network, every tile is usable).
    available_memory : int, optional
        Bytes for :func:`golden.cost.check_buildable` (None asks this machine).
    """
    if tile is not None and point.config.tile != tile:
        m, r = TILES[tile]
        return UNUSABLE, (f"the network's layers are F({m}x{m}, {r}x{r}) for the {tile} tile, "
                          f"the design's tile is {point.config.tile}")
    try:
        check_buildable(point.config, available_memory)
    except ValueError as exc:
        return REFUSED, " ".join(str(exc).split())
    return None
