"""Helpers of the Amaranth-simulator tests: stream drivers with random stalls and the small
configuration most tests build (``small_config``; the ``small_config`` fixture of conftest.py
gives it for both tiles)."""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from golden.encoding import encode
from sim.testing import small_config

__all__ = ["instances", "load_benchmark", "registered_read_mismatches", "replace_keys",
           "small_config", "sparse_with_counts", "stream_get", "stream_put"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sparse_with_counts(counts, c: int = 4, alpha: int = 4):
    """Encoded weights (``golden.encoding.encode``) whose output channel k has exactly
    ``counts[k]`` nonzeros among its ``c`` input channels, at random places."""
    u = np.zeros((len(counts), c * alpha * alpha), dtype=np.int64)
    rng = np.random.default_rng(len(counts))
    for k, n in enumerate(counts):
        u[k, rng.choice(u.shape[1], n, replace=False)] = rng.choice([-3, 5], n)
    return encode(u.reshape(len(counts), c, alpha, alpha))


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` imported as a module (benchmarks is no package)."""
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def instances(dut, platform, submodule=None) -> list:
    """Every ``Instance`` (a primitive) in ``dut`` elaborated for ``platform``, depth first;
    with ``submodule``, only those inside ``dut``'s submodule of that name."""
    from amaranth.hdl import Fragment, Instance
    found = []

    def walk(fragment):
        for sub, _name, _src in fragment.subfragments:
            if isinstance(sub, Instance):
                found.append(sub)
            else:
                walk(sub)
    top = Fragment.get(dut, platform)
    if submodule is not None:
        named = [sub for sub, name, _src in top.subfragments if name == submodule]
        assert len(named) == 1, f"{type(dut).__name__} has no submodule {submodule!r}"
        top = named[0]
    walk(top)
    return found


def registered_read_mismatches(dut, ops, platform=None) -> tuple[list, dict]:
    """Run a memory block (``hw.bram.MemoryBlock``) through ``ops`` against a plain model of a
    read of two registers, both held while ``read.en`` is low (``hw.bram.READ_LATENCY`` 2).

    ``ops`` are ``(write address, write data, write enable, read address, read enable)`` per
    cycle; words never written read 0. Returns the mismatches ``(cycle, got, expected)`` and
    the model's written words.
    """
    from amaranth.hdl import Fragment
    from amaranth.sim import Simulator
    model, mismatches = {}, []

    async def bench(ctx):
        first = second = 0
        for cycle, (w_addr, w_data, w_en, r_addr, r_en) in enumerate(ops):
            ctx.set(dut.write.addr, w_addr)
            ctx.set(dut.write.data, w_data)
            ctx.set(dut.write.en, w_en)
            ctx.set(dut.read.addr, r_addr)
            ctx.set(dut.read.en, r_en)
            await ctx.tick()
            if r_en:
                first, second = model.get(r_addr, 0), first
            if w_en:
                model[w_addr] = w_data
            got = ctx.get(dut.read.data)
            if got != second:
                mismatches.append((cycle, got, second))

    sim = Simulator(Fragment.get(dut, platform))
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return mismatches, model


async def stream_put(ctx, port, words, *, rng=None, gap: float = 0.0, on_transfer=None):
    """Drive ``words`` (raw payload integers) on the stream ``port``.

    Before each beat, idle cycles follow one another with probability ``gap`` (``rng`` is a
    ``random.Random`` or a NumPy ``Generator``). ``on_transfer(edge)`` is called with the index
    of the clock edge (from this call's start) at which each beat transferred.
    """
    edge = 0
    for word in words:
        while gap and rng.random() < gap:
            ctx.set(port.valid, 0)
            await ctx.tick()
            edge += 1
        ctx.set(port.valid, 1)
        ctx.set(port.payload.as_value(), word)
        while True:
            _, _, ready = await ctx.tick().sample(port.ready)
            edge += 1
            if ready:
                if on_transfer is not None:
                    on_transfer(edge - 1)
                break
    ctx.set(port.valid, 0)


async def stream_get(ctx, port, count: int, *, rng=None, stall: float = 0.0,
                     on_transfer=None, limit: int = 100_000) -> list[int]:
    """Collect ``count`` raw payloads from the stream ``port`` and return them.

    ``ready`` is low in a cycle with probability ``stall``. Checks the stream rules every cycle:
    ``valid`` does not depend on ``ready``, and a beat offered and not taken stays offered,
    unchanged. ``on_transfer(edge)`` as in :func:`stream_put`; fails after ``limit`` cycles.
    """
    words, edge, held = [], 0, None
    while len(words) < count:
        ready = not (stall and rng.random() < stall)
        valid_before = ctx.get(port.valid)
        ctx.set(port.ready, int(ready))
        assert ctx.get(port.valid) == valid_before, f"valid changed with ready at {edge}"
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload.as_value())
        if held is not None:
            assert valid and payload == held, f"beat changed before transfer at {edge}"
        held = None
        if valid and ready:
            words.append(payload)
            if on_transfer is not None:
                on_transfer(edge)
        elif valid:
            held = payload
        edge += 1
        assert edge < limit, f"only {len(words)} of {count} beats after {limit} cycles"
    ctx.set(port.ready, 0)
    return words


def replace_keys(**changes):
    """A mutation of a weight file's archive entries: replace keys (given with '__' for '/');
    None deletes the key."""
    def mutate(arrays):
        for key, value in changes.items():
            key = key.replace("__", "/")
            if value is None:
                del arrays[key]
            else:
                arrays[key] = value
        return arrays
    return mutate
