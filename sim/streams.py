"""Stream test library: pause generators, harness jobs for any streaming unit, an in-order
scoreboard.

Pause generators are iterators of booleans, one per clock cycle, as in cocotbext-axi
(``set_pause_generator(itertools.cycle([1, 1, 0]))``); :func:`pause_words` materialises one
into a harness pause pattern, so the pauses cost the simulator no Python call per cycle.
:func:`stream_run` describes one run of a :class:`sim.harness.StreamHarness` device (words for
every input stream, counts for every output stream, gaps and backpressure);
:class:`InOrderScoreboard` compares what a sink received with the reference, beat by beat.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .harness import PAUSE_WORD, StreamHarness

__all__ = [
    "InOrderScoreboard",
    "no_pauses",
    "pause_words",
    "random_pauses",
    "stream_run",
]


def random_pauses(rng: np.random.Generator, probability: float):
    """A pause generator: each cycle pauses with ``probability``, independently."""
    if not 0.0 <= probability < 1.0:
        raise ValueError(f"pause probability must lie in [0, 1), not {probability!r}")
    while True:
        yield bool(rng.random() < probability)


def no_pauses():
    """A pause generator that never pauses."""
    return itertools.repeat(False)


def pause_words(generator, n_words: int) -> list[int]:
    """Materialise ``n_words * 32`` cycles of a pause generator into pattern words (bit t of
    the pattern is cycle t modulo the period)."""
    bits = np.fromiter((bool(b) for b in itertools.islice(generator, n_words * PAUSE_WORD)),
                       dtype=np.int64)
    if bits.size != n_words * PAUSE_WORD:
        raise ValueError(f"the pause generator ended after {bits.size} of "
                         f"{n_words * PAUSE_WORD} cycles")
    weights = np.left_shift(np.int64(1), np.arange(PAUSE_WORD, dtype=np.int64))
    return [int(w) for w in (bits.reshape(n_words, PAUSE_WORD) * weights).sum(axis=1)]


def _generator(rng, probability):
    return random_pauses(rng, probability) if probability else no_pauses()


def stream_run(harness: StreamHarness, inputs: dict, expects: dict, *, gaps: float = 0.0,
               backpressure: float = 0.0, seed: int = 0, timeout_cycles: int | None = None,
               abort_after: int | None = None) -> dict:
    """One bench run (see :mod:`sim.bench`) of a harnessed device.

    Parameters
    ----------
    inputs : dict of str to list of int
        Words for input streams (a stream left out sends nothing).
    expects : dict of str to int
        Beats expected on output streams (left out: 0).
    gaps, backpressure : float
        Pause probability on every input / output stream.
    timeout_cycles : int, optional
        Default: generous for the total word count and stall probabilities.
    """
    unknown = sorted(set(inputs) - set(harness.sources)) + sorted(
        set(expects) - set(harness.sinks))
    if unknown:
        raise ValueError(f"no such streams: {', '.join(unknown)}")
    rng = np.random.default_rng(seed)
    sources = {}
    for name, words in inputs.items():
        words = [int(w) for w in words]
        if len(words) > harness.depths[name]:
            raise ValueError(f"stream {name!r}: {len(words)} words exceed the harness depth "
                             f"{harness.depths[name]}")
        sources[name] = {"words": [format(w, "x") for w in words],
                         "pause": pause_words(_generator(rng, gaps), harness.pause_words)}
    sinks = {}
    for name, n in expects.items():
        if n > harness.depths[name]:
            raise ValueError(f"stream {name!r}: {n} beats exceed the harness depth "
                             f"{harness.depths[name]}")
        sinks[name] = {"expect": int(n),
                       "pause": pause_words(_generator(rng, backpressure), harness.pause_words)}
    if timeout_cycles is None:
        total = sum(len(s["words"]) for s in sources.values()) + sum(expects.values())
        timeout_cycles = int(4 * total / ((1 - gaps) * (1 - backpressure))) + 2000
    return {"sources": sources, "sinks": sinks, "timeout_cycles": int(timeout_cycles),
            "abort_after": abort_after}


@dataclass
class InOrderScoreboard:
    """Compares received beats with expected ones, in order.

    Parameters
    ----------
    name : str
        What is compared (in messages).
    describe : callable, optional
        ``describe(i)`` names beat ``i`` in messages (e.g. "tile 3, channel 5").

    Members
    -------
    problems : list of str
        One line per count mismatch and for the first differing beat.
    """

    name: str
    describe: object = None
    problems: list = field(default_factory=list)

    def compare(self, received, expected) -> bool:
        """Compare two sequences of beats (ints or arrays); record and return success."""
        received, expected = list(received), list(expected)
        ok = True
        if len(received) != len(expected):
            self.problems.append(f"{self.name}: received {len(received)} beats, expected "
                                 f"{len(expected)}")
            ok = False
        for i, (got, want) in enumerate(zip(received, expected)):
            if not np.array_equal(np.asarray(got), np.asarray(want)):
                where = self.describe(i) if self.describe else f"beat {i}"
                self.problems.append(f"{self.name}: {where} is {np.asarray(got).tolist()}, "
                                     f"expected {np.asarray(want).tolist()}")
                return False
        return ok

    @property
    def passed(self) -> bool:
        """No problem recorded."""
        return not self.problems
