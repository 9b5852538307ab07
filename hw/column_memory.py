"""A registered-read memory built of one :class:`hw.bram.RegisteredReadMemory` per bit column of
its word, so that each column maps onto block RAM of its own width.

A memory goes onto block RAMs in one configuration, so a word a little wider than a block
RAM's port wastes most of a column of blocks: the default 6x6 design's 9216 x 21-bit weight
memory takes 15 DP16KD whole (three 2K x 9 columns of five; Yosys' own mapping 14), 12 as an
18-bit column (nine 1K x 18 blocks) and a 3-bit one (three 4K x 4 blocks).
``golden.protocol.weight_memory_columns`` chooses the columns.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module

from .bram import MemoryBlock, RegisteredReadMemory

__all__ = ["ColumnMemory"]


class ColumnMemory(MemoryBlock):
    """Memory with one write port and one read port of ``hw.bram.READ_LATENCY``, of one
    ``hw.bram.RegisteredReadMemory`` per column (submodules ``column_0``, ``column_1``, ...).

    Parameters
    ----------
    shape : amaranth shape-castable
        The word (a ``Shape`` or a ``lib.data`` layout); its contents start at 0.
    depth : int
        Words.
    columns : tuple of int
        Bit widths of the columns, low bits first; they add up to the word's width.

    Members
    -------
    write : Out(amaranth.lib.memory.WritePort.Signature(addr_width, shape))
        ``addr``, ``data`` and ``en``: the word is written at the clock edge.
    read : Out(amaranth.lib.memory.ReadPort.Signature(addr_width, shape))
        ``addr`` and ``en`` (default 1) in, ``data`` out: as
        ``hw.bram.RegisteredReadMemory.read`` (the word at the address of the enabled cycle
        before the last enabled cycle).
    """

    def __init__(self, *, shape, depth: int, columns):
        super().__init__(shape=shape, depth=depth)
        columns = tuple(columns)
        if (not columns or any(not isinstance(c, int) or isinstance(c, bool) or c < 1
                               for c in columns) or sum(columns) != self._width):
            raise ValueError(f"columns must be positive widths adding up to the word's "
                             f"{self._width} bits, not {columns!r}")
        self._columns = columns

    @property
    def columns(self) -> tuple[int, ...]:
        """Bit widths of the columns, low bits first."""
        return self._columns

    def elaborate(self, platform):
        m = Module()
        whole = len(self._columns) == 1
        write_data = Cat(self.write.data)
        read_data = []
        low = 0
        for i, width in enumerate(self._columns):
            memory = RegisteredReadMemory(shape=self._shape if whole else width,
                                          depth=self._depth)
            m.submodules[f"column_{i}"] = memory
            m.d.comb += [memory.write.addr.eq(self.write.addr),
                         memory.write.en.eq(self.write.en),
                         Cat(memory.write.data).eq(write_data[low:low + width]),
                         memory.read.addr.eq(self.read.addr), memory.read.en.eq(self.read.en)]
            read_data.append(Cat(memory.read.data))
            low += width
        m.d.comb += Cat(self.read.data).eq(Cat(*read_data))
        return m
