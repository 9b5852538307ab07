"""hw.column_memory.ColumnMemory: a word split over column memories reads back exactly what a
registered-read memory does (two read registers), for random writes, reads and read enables;
parameters are validated."""

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.lib import data

from hw.column_memory import ColumnMemory
from helpers import instances, registered_read_mismatches


@pytest.mark.parametrize("width, columns", [(21, (18, 3)), (19, (18, 1)), (7, (7,)),
                                            (12, (1, 5, 6))])
def test_reads_what_was_written(width, columns):
    depth = 37
    dut = ColumnMemory(shape=width, depth=depth, columns=columns)
    rng = np.random.default_rng(width)
    ops = []
    for _ in range(400):
        waddr, raddr = (int(a) for a in rng.integers(depth, size=2))
        wen = bool(rng.random() < 0.5) and waddr != raddr   # same address: undefined word
        ops.append((waddr, int(rng.integers(1 << width)), wen, raddr, bool(rng.random() < 0.8)))

    mismatches, _model = registered_read_mismatches(dut, ops)
    assert mismatches == []


def test_layout_word_and_properties():
    layout = data.StructLayout({"a": 5, "b": 14})
    dut = ColumnMemory(shape=layout, depth=9216, columns=(18, 1))
    assert (dut.shape, dut.depth, dut.columns) == (layout, 9216, (18, 1))
    assert Shape.cast(dut.signature.members["read"].signature.members["addr"].shape).width == 14
    memories = dut.elaborate(None).submodules
    assert [(Shape.cast(mem.shape).width, mem.depth)
            for mem in (memories.column_0, memories.column_1)] == [(18, 9216), (1, 9216)]
    assert ColumnMemory(shape=layout, depth=8, columns=(19,)).elaborate(None).submodules \
        .column_0.shape == layout


@pytest.mark.parametrize("kwargs, error, message", [
    ({"shape": "x", "depth": 4, "columns": (1,)}, TypeError,
     r"^shape must be a shape-castable object, not 'x'$"),
    ({"shape": 8, "depth": 0, "columns": (8,)}, ValueError,
     r"^depth must be a positive integer, not 0$"),
    ({"shape": 8, "depth": True, "columns": (8,)}, TypeError,
     r"^depth must be a positive integer, not True$"),
    ({"shape": 8, "depth": 4, "columns": (4, 3)}, ValueError,
     r"^columns must be positive widths adding up to the word's 8 bits, not \(4, 3\)$"),
    ({"shape": 8, "depth": 4, "columns": (8, 0)}, ValueError,
     r"^columns must be positive widths adding up to the word's 8 bits, not \(8, 0\)$"),
    ({"shape": 8, "depth": 4, "columns": ()}, ValueError,
     r"^columns must be positive widths adding up to the word's 8 bits, not \(\)$"),
])
def test_invalid_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        ColumnMemory(**kwargs)


def test_default_6x6_weight_memory_is_12_dp16kd_on_ecp5():
    """On ECP5 every column is a DP16KD grid of its own width: the default 6x6 design's
    9216 x 21-bit weight memory is nine 1K x 18 blocks and three 16K x 1 (15 as one grid)."""
    from golden.config import PRESETS
    from golden.protocol import entry_spec
    from hw.bram import ecp5_block_grid
    from hw.pe import ProcessingElement

    class Platform:
        family = "ecp5"

    config = PRESETS["default-6x6"]
    found = instances(ProcessingElement(config), Platform(), submodule="weight_memory")
    widths = sorted(i.parameters["DATA_WIDTH_B"] for i in found if i.type == "DP16KD")
    assert widths == [1] * 3 + [18] * 9
    _bits, columns, rows = ecp5_block_grid(entry_spec(config).size, config.pe_weight_depth)
    assert columns * rows == 15
