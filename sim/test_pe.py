"""One processing element (``hw.pe.ProcessingElement``) alone, driven from Python by
:mod:`sim.pe_bench`: its result bank must hold ``M_k = sum_c U[k, c] * V[c]`` bit-exactly for
both buffer halves (where ``bank_mask`` is set, exactly at the positions with a weight), the V chain must pass every word on, and a tile must take one cycle per
entry plus ``golden.cycles.PE_PIPELINE_DEPTH`` (its start cycle and the cycles ``done`` is
low)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from golden.cycles import PE_PIPELINE_DEPTH
from golden.encoding import encode, pack_entries
from golden.layout import pack_array, unpack_array
from golden.protocol import entry_spec, index_bits, m_spec, v_spec
from golden.schedule import result_slots
from sim.runner import build_plain, run_bench
from sim.testing import small_config


@functools.cache
def _pe_design(tile, simulator):
    from amaranth.back import verilog

    from hw.pe import ProcessingElement
    config = small_config(tile)
    top = f"pe_{tile}"
    text = verilog.convert(ProcessingElement(config), name=top, emit_src=False)
    return build_plain(f"pe-{tile}", text, top, simulator), index_bits(config.max_in_channels), \
        index_bits(result_slots(config))


@pytest.mark.parametrize("case", ["sparse", "dense_extreme"])
@pytest.mark.parametrize("tile", ["4x4", "6x6"])
def test_pe_alone(simulator, tile, case):
    config = small_config(tile)
    design, chan_bits, slot_bits = _pe_design(tile, simulator)
    rng = np.random.default_rng(31)
    a, c, k = config.alpha, config.max_in_channels, result_slots(config)
    if case == "sparse":
        U = rng.integers(-127, 128, size=(k, c, a, a)) * (rng.random((k, c, a, a)) < 0.4)
        U[0, 0, 0, 0] = U[0, 0, 0, 0] or 5           # every owned channel has an entry
        U[-1, -1, -1, -1] = U[-1, -1, -1, -1] or -7
        d = rng.integers(-128, 128, size=(2, c, a, a))
    else:
        # Dense +-127 weights on all-extreme inputs: fills the weight memory, largest sums.
        U = np.where(rng.random((k, c, a, a)) < 0.5, 127, -127)
        d = np.where(rng.random((2, c, a, a)) < 0.5, 127, -128)
    sparse = encode(U)
    assert sparse.nnz <= config.pe_weight_depth
    V = config.BT @ d @ config.BT.T                           # [2, C, a, a]
    entries = pack_entries(sparse, entry_spec(config))
    job = {
        "entries": [format(w, "x") for w in entries],
        "v": {str(h): [format(w, "x") for w in pack_array(v_spec(config), V[h].reshape(c, -1))]
              for h in (0, 1)},
        "chan_bits": chan_bits, "slot_bits": slot_bits, "slots_used": k,
        "idle": rng.integers(0, 2, size=len(entries) + 2 * c).tolist(), "clock_ns": 10,
    }
    result = run_bench(design, "sim.pe_bench", job, name="pe")
    assert result["entries"] == sparse.nnz and result["channels"] == k
    assert result["full"] == int(sparse.nnz == config.pe_weight_depth)
    sent = job["v"]["0"] + job["v"]["1"]
    assert result["v_out"] == sent, "the V chain lost, duplicated or changed a word"
    for h in (0, 1):
        expected = np.einsum("kcxy,cxy->kxy", U, V[h]).reshape(k, -1)
        rows = result["halves"][str(h)]["bank"]
        got = unpack_array(m_spec(config), [int(w, 16) for w, _ in rows])
        masks = np.array([[(mask >> i) & 1 for i in range(a * a)] for _, mask in rows])
        np.testing.assert_array_equal(masks, np.any(U != 0, axis=1).reshape(k, -1),
                                      err_msg=f"bank mask, half {h}")
        np.testing.assert_array_equal(np.where(masks, got, 0), expected,
                                      err_msg=f"result bank, half {h}")
        # The start cycle and the busy ones: one per entry plus the pipeline depth.
        assert 1 + result["halves"][str(h)]["busy"] == sparse.nnz + PE_PIPELINE_DEPTH
