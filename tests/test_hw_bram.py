"""hw.bram.RegisteredReadMemory against a plain model of its ports: random writes and reads
(read enable low at random, addresses at the ends and the block boundaries) on the fabric
version and on the ECP5 DP16KD grid, the latter simulated through a behavioural model of the
primitive written from its port description; the grid's shape and the refusals."""

import numpy as np
import pytest
from amaranth.hdl import Cat, Elaboratable, Module, Mux, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

import hw.bram
from hw.bram import READ_LATENCY, RegisteredReadMemory, ecp5_block_grid
from helpers import instances, registered_read_mismatches


class _Platform:
    """Just what RegisteredReadMemory asks of a platform."""

    def __init__(self, family):
        self.family = family


class _DP16KDModel(Elaboratable):
    """A DP16KD as its port description defines it, for the writes on A and reads on B that
    RegisteredReadMemory uses: the word address sits above the low address pins a port width
    leaves unused (18 bits: pins 0 and 1 are the byte enables); B registers the address when
    CEB, and with REGMODE_B OUTREG the word again when OCEB."""

    _SKIP = {18: 4, 9: 3, 4: 2, 2: 1, 1: 0}

    def __init__(self, **ports):
        self.ports = ports

    def elaborate(self, platform):
        p = self.ports
        bits = p["p_DATA_WIDTH_A"]
        assert p["p_DATA_WIDTH_B"] == bits and p["p_CSDECODE_A"] == p["p_CSDECODE_B"] == "0b000"
        assert all(p[f"i_CS{port}{n}"].value == 0 for port in "AB" for n in range(3))
        assert p["i_WEB"].value == 0
        skip = self._SKIP[bits]
        m = Module()
        m.submodules.array = array = Memory(shape=bits, depth=16384 >> skip, init=[])
        write = array.write_port(granularity=9 if bits == 18 else None)
        read = array.read_port(transparent_for=())
        ada = Cat(*(p[f"i_ADA{n}"] for n in range(14)))
        adb = Cat(*(p[f"i_ADB{n}"] for n in range(14)))
        enable = p["i_WEA"] & p["i_CEA"]
        m.d.comb += [write.addr.eq(ada[skip:]),
                     write.data.eq(Cat(*(p[f"i_DIA{n}"] for n in range(bits)))),
                     write.en.eq(Mux(enable, ada[:2], 0) if bits == 18 else enable),
                     read.addr.eq(adb[skip:]), read.en.eq(p["i_CEB"])]
        dob = Cat(*(p[f"o_DOB{n}"] for n in range(bits)))
        if p["p_REGMODE_B"] == "OUTREG":
            with m.If(p["i_OCEB"]):
                m.d.sync += dob.eq(read.data)
        else:
            m.d.comb += dob.eq(read.data)
        return m


def _addresses(rng, depth):
    """A pool of addresses: both ends, the DP16KD row boundaries, and random ones."""
    pool = {0, depth - 1}
    for words in (1024, 2048, 4096, 8192, 16384):
        pool |= {a for k in range(1, depth // words + 1)
                 for a in (k * words - 1, k * words) if a < depth}
    pool |= {int(a) for a in rng.integers(0, depth, 24)}
    return sorted(pool)


def _check_random(width, depth, platform, cycles=400, seed=0):
    rng = np.random.default_rng(seed * 7919 + width * 31 + depth)
    pool = _addresses(rng, depth)
    ops = []
    for _ in range(cycles):
        w_en, r_en = bool(rng.random() < 0.5), bool(rng.random() < 0.8)
        w_addr, r_addr = (int(rng.choice(pool)) for _ in range(2))
        if w_en and r_en and w_addr == r_addr:      # a collision is undefined: drop one
            w_en, r_en = (False, True) if rng.random() < 0.5 else (True, False)
        ops.append((w_addr, int(rng.integers(0, 1 << width)), w_en, r_addr, r_en))
    mismatches, model = registered_read_mismatches(
        RegisteredReadMemory(shape=unsigned(width), depth=depth), ops, platform)
    assert mismatches == []
    assert len(model) > len(pool) // 2         # the run wrote most of the pool


@pytest.mark.parametrize("width,depth", [(17, 4096), (19, 4096), (8, 100), (40, 3000),
                                         (1, 20000), (3, 1)])
@pytest.mark.parametrize("family", [None, "ecp5"])
def test_reads_equal_a_plain_model(monkeypatch, family, width, depth):
    monkeypatch.setattr(hw.bram, "_dp16kd", _DP16KDModel)
    _check_random(width, depth, None if family is None else _Platform(family))


def test_read_latency_is_two():
    assert READ_LATENCY == 2


@pytest.mark.parametrize("width,depth,grid", [
    (17, 4096, (9, 2, 2)),          # the 16-channel weight memory: 4 blocks, 2 rows
    (19, 4096, (4, 5, 1)),          # the 64-channel one: 5 blocks, no row select
    (160, 128, (18, 9, 1)),
    (40, 3000, (18, 3, 3)),
    (1, 20000, (1, 1, 2)),
])
def test_ecp5_grid_of_dp16kd_with_output_registers(width, depth, grid):
    assert ecp5_block_grid(width, depth) == grid
    bits, columns, rows = grid
    blocks = instances(RegisteredReadMemory(shape=width, depth=depth), _Platform("ecp5"))
    assert len(blocks) == columns * rows
    for block in blocks:
        assert block.type == "DP16KD"
        params = block.parameters
        assert params["REGMODE_B"] == "OUTREG" and params["REGMODE_A"] == "NOREG"
        assert params["DATA_WIDTH_A"] == params["DATA_WIDTH_B"] == bits
        assert all(block.ports[f"DOB{n}"][1] == "o" for n in range(bits))


@pytest.mark.parametrize("family", [None, "ice40"])
def test_fabric_memory_elsewhere(family):
    platform = None if family is None else _Platform(family)
    assert instances(RegisteredReadMemory(shape=17, depth=4096), platform) == []


def test_layout_words():
    layout = data.StructLayout({"value": unsigned(8), "last": unsigned(1)})
    dut = RegisteredReadMemory(shape=layout, depth=16)
    assert dut.shape is layout and dut.depth == 16
    got = []

    async def bench(ctx):
        ctx.set(dut.write.addr, 5)
        ctx.set(dut.write.data, {"value": 200, "last": 1})
        ctx.set(dut.write.en, 1)
        await ctx.tick()
        ctx.set(dut.write.en, 0)
        ctx.set(dut.read.addr, 5)
        for _ in range(READ_LATENCY):
            got.append((ctx.get(dut.read.data.value), ctx.get(dut.read.data.last)))
            await ctx.tick()
        got.append((ctx.get(dut.read.data.value), ctx.get(dut.read.data.last)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == [(0, 0), (0, 0), (200, 1)]


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(shape="wide", depth=4), TypeError,
     "shape must be a shape-castable object, not 'wide'"),
    (dict(shape=unsigned(0), depth=4), ValueError,
     "shape must be at least 1 bit wide, not unsigned(0)"),
    (dict(shape=8, depth=0), ValueError, "depth must be a positive integer, not 0"),
    (dict(shape=8, depth=2.5), TypeError, "depth must be a positive integer, not 2.5"),
    (dict(shape=8, depth=True), TypeError, "depth must be a positive integer, not True"),
])
def test_refuses_bad_parameters(kwargs, error, message):
    with pytest.raises(error) as info:
        RegisteredReadMemory(**kwargs)
    assert str(info.value) == message
