"""Load balancing: which processing element computes which output channel.

Every PE owns whole output channels ``k`` and, for every tile, multiplies its channels'
nonzero Winograd-domain weights one per cycle. The per-tile time of the array is the largest
per-PE entry count (the makespan), so the schedule spreads the entries evenly: channels are
placed in decreasing entry count on the currently least-loaded PE that still has room
(longest-processing-time first, LPT). Spatial-Winograd pruning skews sparsity across Winograd
*positions*; since a PE walks all positions of its channels, that skew is averaged inside each
channel and does not idle any multiplier.

Room is bounded by two per-PE memories: ``config.pe_weight_depth`` weight entries and
:func:`result_slots` finished channels (the PE's result bank). All-zero channels have no entries
and no owner (their ``M_k`` is 0).

With few output channels per PE whole channels cannot balance (16 channels on 16 PEs: the
makespan is the largest channel). With ``config.split_channels`` the schedule may cut a channel
in two: the first part is the last channel of its owner PE p, the second the first channel
(slot 0) of PE p + 1, and the collector adds the two partial sums (integer addition: exact).
The split schedule wraps the channels around the PEs in order with a per-PE capacity
(McNaughton's wrap-around rule, starting a channel on a fresh PE when it would need three
parts), the smallest capacity found by bisection, for two channel orders (decreasing entry
count, and alternating largest and smallest); it is used only when its makespan is below LPT's,
so large layers keep their LPT schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import AcceleratorConfig
from .encoding import SparseWeights

__all__ = ["Schedule", "result_slots", "schedule_layer"]


def result_slots(config: AcceleratorConfig) -> int:
    """Output channels one PE can own: ``ceil(max_out_channels / n_pe)`` (the depth of one half
    of its double-buffered result bank)."""
    return math.ceil(config.max_out_channels / config.n_pe)


@dataclass(frozen=True)
class Schedule:
    """Assignment of output channels to processing elements.

    Members
    -------
    owner : ndarray [K] of int64
        PE index (``row * columns + column``) computing channel ``k``; -1 for an all-zero
        channel.
    slot : ndarray [K] of int64
        Index of channel ``k`` within its owner's channel list (its result-bank slot); -1 for
        an all-zero channel.
    pe_channels : tuple of tuple of int
        Execution order of each PE's channels (slot order).
    pe_entries : ndarray [n_pe] of int64
        Weight entries (multiply-accumulates per tile) of each PE.
    channel_entries : ndarray [K] of int64
        Weight entries of each channel.
    split : ndarray [K] of int64
        Entries of channel k in its second part (PE ``owner + 1``, slot 0); 0 when the
        channel is whole (always without ``split_channels``).
    """

    owner: np.ndarray
    slot: np.ndarray
    pe_channels: tuple[tuple[int, ...], ...]
    pe_entries: np.ndarray
    channel_entries: np.ndarray
    split: np.ndarray

    @property
    def n_pe(self) -> int:
        """Processing elements."""
        return len(self.pe_channels)

    @property
    def makespan(self) -> int:
        """Largest per-PE entry count: multiplier cycles the array needs per tile."""
        return int(self.pe_entries.max()) if self.pe_entries.size else 0

    @property
    def entries(self) -> int:
        """Total weight entries (nonzero weights)."""
        return int(self.pe_entries.sum())

    @property
    def balance(self) -> float:
        """Mean over maximum per-PE entries (1.0 is perfect balance; 1.0 for an empty layer)."""
        if self.makespan == 0:
            return 1.0
        return float(self.pe_entries.mean()) / self.makespan

    def pe_runs(self, pe: int) -> list[tuple[int, int, int]]:
        """PE ``pe``'s work in execution (slot) order: ``(channel, first, stop)``, the range
        of the channel's entries (in ``golden.encoding`` order) it computes."""
        runs = []
        for k in self.pe_channels[pe]:
            n, second = int(self.channel_entries[k]), int(self.split[k])
            if not second:
                runs.append((k, 0, n))
            elif self.owner[k] == pe:
                runs.append((k, 0, n - second))
            else:
                runs.append((k, n - second, n))
        return runs


def schedule_layer(sparse: SparseWeights, config: AcceleratorConfig,
                   layer_name: str = "layer") -> Schedule:
    """Assign the output channels of ``sparse`` to the PEs of ``config`` (LPT by entry count,
    or split channels wrapped around the PEs with ``config.split_channels``: module docstring).

    Parameters
    ----------
    sparse : SparseWeights
        The layer's compressed weights.
    config : AcceleratorConfig
        Supplies the PE count, ``pe_weight_depth`` and :func:`result_slots`.
    layer_name : str
        Used in error messages.

    Raises
    ------
    ValueError
        If there are more output channels than ``config.max_out_channels``, or a channel
        cannot be placed without overflowing a PE's weight memory or result bank.
    """
    if not isinstance(sparse, SparseWeights):
        raise TypeError(f"sparse must be a SparseWeights, not {type(sparse).__name__}")
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {type(config).__name__}")
    k_total = sparse.out_channels
    if k_total > config.max_out_channels:
        raise ValueError(f"layer '{layer_name}' has {k_total} output channels; the accelerator's "
                         f"max_out_channels is {config.max_out_channels}")
    n_pe, depth, slots = config.n_pe, config.pe_weight_depth, result_slots(config)
    counts = np.asarray(sparse.counts, dtype=np.int64)
    too_big = np.flatnonzero(counts > depth)
    if too_big.size:
        k = int(too_big[0])
        raise ValueError(f"layer '{layer_name}': output channel {k} has {int(counts[k])} weight "
                         f"entries; a PE holds at most pe_weight_depth = {depth}")

    lpt = _lpt(counts, n_pe, depth, slots, layer_name)
    if not config.split_channels or lpt.makespan == 0:
        return lpt
    # The smallest wrap-around capacity that places every channel, below LPT's makespan, for
    # two channel orders: decreasing, and alternating large and small (spreads the small
    # channels, so the last PEs do not run out of result slots before capacity).
    descending = _order(counts)
    alternating = [descending[i // 2] if i % 2 == 0 else descending[-1 - i // 2]
                   for i in range(len(descending))]
    best = lpt
    for order in (descending, alternating):
        lo = max(-(-int(counts.sum()) // n_pe), -(-int(counts.max()) // 2))
        hi = best.makespan - 1
        while lo <= hi:
            cap = (lo + hi) // 2
            wrapped = _wrap(counts, order, n_pe, slots, cap)
            if wrapped is None:
                lo = cap + 1
            else:
                best, hi = wrapped, cap - 1
    return best


def _order(counts: np.ndarray) -> list[int]:
    """Nonzero channels in decreasing entry count, ties by channel index (reproducible)."""
    return [k for k in np.argsort(-counts, kind="stable").tolist() if counts[k]]


def _lpt(counts, n_pe, depth, slots, layer_name) -> Schedule:
    """Whole channels, each on the least-loaded PE with room (module docstring)."""
    load = np.zeros(n_pe, dtype=np.int64)
    lists: list[list[int]] = [[] for _ in range(n_pe)]
    owner = np.full(counts.size, -1, dtype=np.int64)
    slot = np.full(counts.size, -1, dtype=np.int64)
    for k in _order(counts):
        n = int(counts[k])
        fits = np.array([len(lst) < slots for lst in lists]) & (load + n <= depth)
        if not fits.any():
            raise ValueError(
                f"layer '{layer_name}': output channel {k} ({n} entries) does not fit any PE "
                f"(weight memory {depth} entries and {slots} result slots per PE, "
                f"{n_pe} PEs, {int(counts.sum())} entries in the layer)")
        pe = int(np.flatnonzero(fits)[np.argmin(load[fits])])
        owner[k], slot[k] = pe, len(lists[pe])
        lists[pe].append(k)
        load[pe] += n
    return Schedule(owner=owner, slot=slot, pe_channels=tuple(tuple(lst) for lst in lists),
                    pe_entries=load, channel_entries=counts,
                    split=np.zeros(counts.size, dtype=np.int64))


def _wrap(counts, order, n_pe, slots, cap) -> Schedule | None:
    """The channels of ``order`` wrapped around the PEs in order, at most ``cap`` entries each
    (a channel cut in two where a PE fills up); None if they do not all fit. ``cap`` is below
    LPT's makespan, so every PE's entries fit its weight memory."""
    load = np.zeros(n_pe, dtype=np.int64)
    lists: list[list[int]] = [[] for _ in range(n_pe)]
    owner = np.full(counts.size, -1, dtype=np.int64)
    slot = np.full(counts.size, -1, dtype=np.int64)
    split = np.zeros(counts.size, dtype=np.int64)
    pe = 0

    def place(k, p, n):
        lists[p].append(k)
        load[p] += n

    for k in order:
        n = int(counts[k])
        while pe < n_pe and (load[pe] == cap or len(lists[pe]) == slots):
            pe += 1
        if pe < n_pe and n > cap - load[pe] and n - (cap - load[pe]) > cap:
            pe += 1                 # three parts: start the channel on a fresh PE
        if pe == n_pe:
            return None
        owner[k], slot[k] = pe, len(lists[pe])
        room = int(cap - load[pe])
        if n <= room:
            place(k, pe, n)
            continue
        if pe + 1 == n_pe or n - room > cap:
            return None
        place(k, pe, room)
        place(k, pe + 1, n - room)
        split[k] = n - room
        pe += 1
    return Schedule(owner=owner, slot=slot, pe_channels=tuple(tuple(lst) for lst in lists),
                    pe_entries=load, channel_entries=counts, split=split)
