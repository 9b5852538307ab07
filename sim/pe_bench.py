"""cocotb test module for one ``hw.pe.ProcessingElement`` on its own.

The PE has no streams: the accelerator's loader and sequencer drive it with plain signals. This
bench plays their part from Python, one cycle at a time (the PE alone is small, so the
per-cycle Python cost does not matter here): ``clear``, then the weight entries with ``write``,
the V words of both buffer halves on ``v_in``, with random idle cycles between beats, then a
``start`` per tile and the result bank read-back. Outputs are sampled after ``ReadOnly``.

Job (``$SIM_JOB``)::

    {"entries": [hex, ...], "v": {"0": [hex per channel], "1": [...]}, "chan_bits": n,
     "slot_bits": n, "slots_used": n, "idle": [0/1 per beat], "clock_ns": 10}

Result (``$SIM_RESULT``): ``entries`` and ``channels`` as counted by the PE, per half the
cycles ``done`` is low after ``start`` (``busy``) and the bank words (hex) of every used slot;
``v_out``: the words seen on the chain.
"""

from __future__ import annotations

import json
import os
import traceback

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

__all__ = ["pe_job"]


def _uint(handle) -> int:
    value = handle.value
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


async def _beat(dut, idle):
    """Wait for the next falling edge, optionally idling one extra cycle first."""
    if idle:
        await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)


async def _run(dut, job):
    idle = iter(job["idle"])
    dut.rst.value = 1
    for name in ("clear", "write", "start", "half", "bank_en", "v_in__valid"):
        getattr(dut, name).value = 0
    dut.entry.value = 0
    dut.bank_addr.value = 0
    dut.bank_select.value = 1                      # the bench reads as the owner
    dut.v_in__addr.value = 0
    dut.v_in__last.value = 0
    dut.v_in__data.value = 0
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    dut.clear.value = 1
    await FallingEdge(dut.clk)
    dut.clear.value = 0
    for word in job["entries"]:
        dut.write.value = 1
        dut.entry.value = int(word, 16)
        await FallingEdge(dut.clk)
        dut.write.value = 0
        if next(idle, 0):
            await FallingEdge(dut.clk)
    out = {"entries": _uint(dut.entries), "channels": _uint(dut.channels),
           "full": _uint(dut.full), "halves": {}, "v_out": []}

    # V words of both halves; the chain output is the input one cycle later.
    v_sent = []
    for half in ("0", "1"):
        for channel, word in enumerate(job["v"][half]):
            dut.v_in__valid.value = 1
            dut.v_in__addr.value = channel | (int(half) << job["chan_bits"])
            dut.v_in__last.value = int(channel == len(job["v"][half]) - 1)
            dut.v_in__data.value = int(word, 16)
            v_sent.append(word)
            await RisingEdge(dut.clk)
            await ReadOnly()
            if _uint(dut.v_out__valid):
                out["v_out"].append(format(_uint(dut.v_out__data), "x"))
            await FallingEdge(dut.clk)
            dut.v_in__valid.value = 0
            if next(idle, 0):
                await RisingEdge(dut.clk)
                await ReadOnly()
                if _uint(dut.v_out__valid):
                    out["v_out"].append(format(_uint(dut.v_out__data), "x"))
                await FallingEdge(dut.clk)
    await RisingEdge(dut.clk)
    await ReadOnly()
    if _uint(dut.v_out__valid):
        out["v_out"].append(format(_uint(dut.v_out__data), "x"))
    await FallingEdge(dut.clk)

    for half in ("0", "1"):
        dut.half.value = int(half)
        dut.start.value = 1
        # Count the cycles with done low, from the cycle after the start edge.
        busy = 0
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if busy == 0:
                await FallingEdge(dut.clk)
                dut.start.value = 0
                await ReadOnly()
            if _uint(dut.done):
                break
            busy += 1
            if busy > 100000:
                raise RuntimeError("done never rose")
        await FallingEdge(dut.clk)
        bank = []
        for slot in range(job["slots_used"]):
            dut.bank_addr.value = slot | (int(half) << job["slot_bits"])
            dut.bank_en.value = 1
            await RisingEdge(dut.clk)
            await FallingEdge(dut.clk)
            dut.bank_en.value = 0
            await ReadOnly()
            bank.append([format(_uint(dut.bank_data), "x"), _uint(dut.bank_mask)])
            await FallingEdge(dut.clk)
        out["halves"][half] = {"busy": busy, "bank": bank}
    return out


@cocotb.test()
async def pe_job(dut):
    """Run ``$SIM_JOB`` on the PE and write ``$SIM_RESULT``."""
    result = {"error": None}
    try:
        with open(os.environ["SIM_JOB"]) as f:
            job = json.load(f)
        cocotb.start_soon(Clock(dut.clk, int(job["clock_ns"]), unit="ns").start())
        result.update(await _run(dut, job))
    except Exception:
        result["error"] = traceback.format_exc(limit=4).strip().splitlines()[-1]
        result["traceback"] = traceback.format_exc()
    with open(os.environ["SIM_RESULT"], "w") as f:
        json.dump(result, f)
