"""Compressed sparse encoding of Winograd-domain weights, as the hardware consumes it.

Only nonzero ``U[k, c, i, j]`` are kept. Entries are grouped by output channel ``k`` (CSR over k)
and ordered by Winograd position ``xi = i * alpha + j`` then input channel ``c`` inside a group
(a PE accumulates one position's run in one register and writes it to its result bank when the
position changes).
An entry is one memory word (``golden.protocol.entry_spec``, least significant field first)::

    value     signed(weight_width)    the weight, never 0
    position  unsigned                xi in [0, alpha**2)
    channel   unsigned                c in [0, max_in_channels)
    last      1 bit                   1 on the final entry of its output channel's run

A channel whose weights are all zero has no entries at all (it costs no multiplier cycle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import StructSpec

__all__ = ["SparseWeights", "decode", "encode", "pack_entries", "unpack_entries"]


@dataclass(frozen=True)
class SparseWeights:
    """CSR-by-output-channel form of U [K, C, alpha, alpha].

    Members
    -------
    counts : ndarray [K] of int64
        Nonzero entries of each output channel.
    channel, position, value : ndarray [nnz] of int64
        Entries of channel 0, then channel 1, ...; each run ordered by (position, channel).
    """

    out_channels: int
    in_channels: int
    alpha: int
    counts: np.ndarray
    channel: np.ndarray
    position: np.ndarray
    value: np.ndarray

    @property
    def nnz(self) -> int:
        """Total nonzero entries."""
        return int(self.value.size)

    @property
    def starts(self) -> np.ndarray:
        """Index of each output channel's first entry ([K + 1], CSR row pointer)."""
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    def run(self, k: int) -> slice:
        """Entry slice of output channel ``k``."""
        s = self.starts
        return slice(int(s[k]), int(s[k + 1]))

    def position_counts(self) -> np.ndarray:
        """Nonzero entries per Winograd position, [alpha * alpha]."""
        return np.bincount(self.position, minlength=self.alpha * self.alpha).astype(np.int64)


def encode(U: np.ndarray) -> SparseWeights:
    """Encode U [K, C, alpha, alpha] (integers) keeping only its nonzeros."""
    U = np.asarray(U)
    if U.ndim != 4 or U.shape[2] != U.shape[3]:
        raise ValueError(f"U must have shape [K, C, alpha, alpha], not {list(U.shape)}")
    k, c, a, _ = U.shape
    flat = U.reshape(k, c, a * a).astype(np.int64)
    # C order of [K, alpha**2, C]: sorted by (k, position, c).
    kk, pp, cc = np.nonzero(flat.transpose(0, 2, 1))
    return SparseWeights(
        out_channels=k, in_channels=c, alpha=a,
        counts=np.bincount(kk, minlength=k).astype(np.int64),
        channel=cc.astype(np.int64), position=pp.astype(np.int64),
        value=flat[kk, cc, pp])


def decode(sparse: SparseWeights) -> np.ndarray:
    """Rebuild U [K, C, alpha, alpha] as int64 from its encoding."""
    k, c, a = sparse.out_channels, sparse.in_channels, sparse.alpha
    U = np.zeros((k, c, a * a), dtype=np.int64)
    kk = np.repeat(np.arange(k), sparse.counts)
    U[kk, sparse.channel, sparse.position] = sparse.value
    return U.reshape(k, c, a, a)


def pack_entries(sparse: SparseWeights, spec: StructSpec, channels=None) -> list[int]:
    """Memory words of the entries of ``channels`` (default all, in order), ``last`` set on
    the final entry of each output channel's run. Empty channels contribute no word."""
    channels = range(sparse.out_channels) if channels is None else channels
    words = []
    for k in channels:
        sl = sparse.run(int(k))
        n = sl.stop - sl.start
        for i, (c, p, v) in enumerate(zip(sparse.channel[sl].tolist(),
                                          sparse.position[sl].tolist(),
                                          sparse.value[sl].tolist())):
            words.append(spec.pack({"value": v, "position": p, "channel": c,
                                    "last": int(i == n - 1)}))
    return words


def unpack_entries(words, spec: StructSpec) -> list[dict]:
    """Decode memory words into dicts with keys value, position, channel, last."""
    return [spec.unpack(w) for w in words]
