"""The cocotb test module that runs jobs on a :class:`sim.harness.StreamHarness` design.

Loaded by the simulator (``COCOTB_TEST_MODULES=sim.bench``); :func:`sim.runner.run_job` writes
the job (``$SIM_JOB``) and reads the result (``$SIM_RESULT``). Per run the bench holds reset,
fills the source memories and the pause patterns in bulk, raises ``run`` and sleeps until
``done`` (or a timeout) without waking per cycle, then reads the counters and the sink memories.
A run with ``abort_after`` is cut short by a reset after that many cycles: the reset-in-the-
middle scenario; the next run must then be correct.

Job format (JSON)::

    {"harness": {...}, "clock_ns": 10,
     "runs": [{"sources": {name: {"words": [hex, ...], "pause": [int, ...]}},
               "sinks": {name: {"expect": n, "pause": [int, ...]}},
               "timeout_cycles": n, "abort_after": null | n, "settle_cycles": n,
               "progress_cycles": n}]}

Result: per run ``done``, ``timed_out``, ``cycles``, per stream ``first``/``last``/``count``,
per sink the captured ``words`` (hex), ``unstable``: the sinks whose device withdrew or
changed an offered beat, the device's other outputs, ``wall_seconds`` and
``cpu_seconds`` of the simulator process while the device ran.
"""

from __future__ import annotations

import json
import os
import time
import traceback

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, RisingEdge, Timer
from cocotb.utils import get_sim_time

__all__ = ["run_job_bench"]

RESET_CYCLES = 4
#: Cycles between progress reports (and the bench's only wake-ups while the device runs).
PROGRESS_CYCLES = 250_000


def _load_memory(handle, words, fill_to=None):
    for i, word in enumerate(words):
        handle[i].value = word
    if fill_to is not None:
        for i in range(len(words), fill_to):
            handle[i].value = 0


def _uint(handle) -> int:
    value = handle.value
    # A one-bit signal reads as Logic, a wider one as LogicArray.
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


def _read_memory(handle, n):
    return [format(_uint(handle[i]), "x") for i in range(n)]


async def _wait_done(dut, harness, run, clock_ns) -> bool:
    """Sleep until ``done`` rises or the run's timeout passes; every ``progress_cycles``
    (default :data:`PROGRESS_CYCLES`) append a progress line to ``$SIM_PROGRESS`` (if set)."""
    done_edge = RisingEdge(dut.done)
    remaining = int(run["timeout_cycles"])
    progress = os.environ.get("SIM_PROGRESS")
    while remaining > 0:
        chunk = min(int(run.get("progress_cycles", PROGRESS_CYCLES)), remaining)
        fired = await First(done_edge, Timer(chunk * clock_ns, unit="ns"))
        if fired is done_edge:
            return True
        remaining -= chunk
        if progress:
            counts = {name: _uint(getattr(dut, f"{name}_received")) for name in harness["sinks"]}
            with open(progress, "a") as f:
                f.write(json.dumps({"cycles": _uint(dut.cycles), "received": counts,
                                    "expected": {name: run["sinks"].get(name, {}).get(
                                        "expect", 0) for name in harness["sinks"]}}) + "\n")
    return False


async def _one_run(dut, harness, run, clock_ns):
    dut.run.value = 0
    dut.rst.value = 1
    pause_words = harness["pause_words"]
    for name in harness["sources"]:
        spec = run["sources"].get(name, {"words": [], "pause": []})
        words = [int(w, 16) for w in spec["words"]]
        if len(words) > harness["depths"][name]:
            raise ValueError(f"stream {name}: {len(words)} words exceed the harness depth "
                             f"{harness['depths'][name]}")
        _load_memory(getattr(dut, f"{name}_data").mem, words)
        _load_memory(getattr(dut, f"{name}_pause").mem, spec["pause"], pause_words)
        getattr(dut, f"{name}_count").value = len(words)
    for name in harness["sinks"]:
        spec = run["sinks"].get(name, {"expect": 0, "pause": []})
        _load_memory(getattr(dut, f"{name}_pause").mem, spec["pause"], pause_words)
        getattr(dut, f"{name}_expect").value = int(spec["expect"])
    await ClockCycles(dut.clk, RESET_CYCLES)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    dut.run.value = 1
    start, start_cpu = time.perf_counter(), time.process_time()
    out = {"done": False, "timed_out": False}
    if run.get("abort_after") is not None:
        await Timer(int(run["abort_after"]) * clock_ns, unit="ns")
        out["aborted"] = True
    else:
        out["done"] = await _wait_done(dut, harness, run, clock_ns)
        out["timed_out"] = not out["done"]
        # Extra beats after the expected ones would show up in the counters.
        await ClockCycles(dut.clk, int(run.get("settle_cycles", 16)))
    out["wall_seconds"] = time.perf_counter() - start
    out["cpu_seconds"] = time.process_time() - start_cpu
    out["cycles"] = _uint(dut.cycles)
    out["streams"] = {}
    for name in [*harness["sources"], *harness["sinks"]]:
        count_sig = f"{name}_sent" if name in harness["sources"] else f"{name}_received"
        out["streams"][name] = {
            "count": _uint(getattr(dut, count_sig)),
            "first": _uint(getattr(dut, f"{name}_first")),
            "last": _uint(getattr(dut, f"{name}_last")),
        }
    out["unstable"] = [name for name in harness["sinks"]
                       if _uint(getattr(dut, f"{name}_unstable"))]
    out["sinks"] = {}
    for name in harness["sinks"]:
        n = min(out["streams"][name]["count"], harness["depths"][name])
        out["sinks"][name] = _read_memory(getattr(dut, f"{name}_data").mem, n)
    out["outputs"] = {name: _uint(getattr(dut, f"dev_{name}"))
                      for name in harness["outputs"]}
    dut.run.value = 0
    return out


@cocotb.test()
async def run_job_bench(dut):
    """Run every run of ``$SIM_JOB`` and write ``$SIM_RESULT``."""
    result_path = os.environ["SIM_RESULT"]
    result = {"runs": [], "error": None}
    try:
        with open(os.environ["SIM_JOB"]) as f:
            job = json.load(f)
        clock_ns = int(job["clock_ns"])
        cocotb.start_soon(Clock(dut.clk, clock_ns, unit="ns").start())
        for run in job["runs"]:
            t0 = get_sim_time("ns")
            out = await _one_run(dut, job["harness"], run, clock_ns)
            out["sim_ns"] = get_sim_time("ns") - t0
            result["runs"].append(out)
    except Exception:
        result["error"] = traceback.format_exc(limit=4).strip().splitlines()[-1]
        result["traceback"] = traceback.format_exc()
    with open(result_path, "w") as f:
        json.dump(result, f)
