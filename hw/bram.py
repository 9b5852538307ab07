"""A memory whose read port has one more register: the block RAM's own output register.

``read.data`` is the word at ``read.addr`` of two enabled cycles before: the address is
registered (the block RAM's synchronous read), then the word is registered again. On ECP5 (a
platform whose ``family`` is ``"ecp5"``) the memory is DP16KD block RAMs with the second
register inside them (REGMODE_B OUTREG): Yosys maps a memory to DP16KD without it (REGMODE
NOREG), and the 5.83 ns clock-to-out of such a read leaves no room for logic or routing at
150 MHz, while a registered read leaves the block in 0.97 ns. A memory deeper or wider than one
block is a grid of them (columns split the word, rows split the addresses, the row is selected
after the output registers). Everywhere else (simulation, Verilog, the other targets) it is an
``amaranth.lib.memory.Memory`` with its synchronous read port followed by a fabric register.

Writing and reading the same address in one cycle returns the old word from the fabric memory
and an undefined one from the block RAM: no user may rely on it.
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Shape, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2

__all__ = ["MemoryBlock", "READ_LATENCY", "RegisteredReadMemory", "ecp5_block_grid"]

#: Cycles from a read address to its word on ``read.data`` (enabled cycles).
READ_LATENCY = 2

#: DP16KD port configurations: (data bits, words, low address bits the word address skips).
_DP16KD_MODES = ((18, 1024, 4), (9, 2048, 3), (4, 4096, 2), (2, 8192, 1), (1, 16384, 0))
#: Address pins of a DP16KD port.
_DP16KD_ADDRESS = 14


def ecp5_block_grid(width: int, depth: int) -> tuple[int, int, int]:
    """The DP16KD grid of a ``width`` x ``depth`` memory: ``(port width, columns, rows)``.

    The fewest blocks, then the fewest rows (a shallower row select after the registers).
    """
    def cost(mode):
        bits, words, _skip = mode
        return math.ceil(width / bits) * math.ceil(depth / words), math.ceil(depth / words)

    bits, words, _skip = min(_DP16KD_MODES, key=cost)
    return bits, math.ceil(width / bits), math.ceil(depth / words)


def _dp16kd(**kwargs):
    """One DP16KD instance (a function of its own so that tests can model the primitive)."""
    return Instance("DP16KD", **kwargs)


class MemoryBlock(wiring.Component):
    """The ports of a memory block, ``depth`` words of ``shape``: ``amaranth.lib.memory``'s
    write and read port signatures (its own address width), its parameters validated first.

    The base of :class:`RegisteredReadMemory` and ``hw.column_memory.ColumnMemory``, which say
    what their read port returns.

    Raises
    ------
    TypeError
        If ``shape`` is not shape-castable or ``depth`` is not an integer.
    ValueError
        If ``shape`` has no bits or ``depth`` is below 1.
    """

    def __init__(self, *, shape, depth: int):
        try:
            width = Shape.cast(shape).width
        except TypeError:
            raise TypeError(f"shape must be a shape-castable object, not {shape!r}") from None
        if width < 1:
            raise ValueError(f"shape must be at least 1 bit wide, not {shape!r}")
        if not isinstance(depth, int) or isinstance(depth, bool):
            raise TypeError(f"depth must be a positive integer, not {depth!r}")
        if depth < 1:
            raise ValueError(f"depth must be a positive integer, not {depth!r}")
        self._shape, self._depth, self._width = shape, depth, width
        addr_width = ceil_log2(depth)
        super().__init__({
            "write": Out(WritePort.Signature(addr_width=addr_width, shape=shape)),
            "read": Out(ReadPort.Signature(addr_width=addr_width, shape=shape))})

    @property
    def shape(self):
        """The word's shape."""
        return self._shape

    @property
    def depth(self) -> int:
        """Words."""
        return self._depth


class RegisteredReadMemory(MemoryBlock):
    """Memory with one write port and one read port of ``READ_LATENCY`` 2.

    Parameters
    ----------
    shape : amaranth shape-castable
        The word (a ``Shape`` or a ``lib.data`` layout); its contents start at 0.
    depth : int
        Words.

    Members
    -------
    write : Out(amaranth.lib.memory.WritePort.Signature(addr_width, shape))
        ``addr``, ``data`` and ``en``: the word is written at the clock edge.
    read : Out(amaranth.lib.memory.ReadPort.Signature(addr_width, shape))
        ``addr`` and ``en`` (default 1) in, ``data`` out: the word at the address of the
        enabled cycle before the last enabled cycle (``en`` low holds both read registers,
        so ``data`` too). Addresses at or beyond ``depth`` read undefined words.
    """

    def elaborate(self, platform):
        m = Module()
        if getattr(platform, "family", None) == "ecp5":
            self._ecp5(m)
            return m
        m.submodules.memory = memory = Memory(shape=self._shape, depth=self._depth, init=[])
        write, read = memory.write_port(), memory.read_port(transparent_for=())
        # The block RAM's output register is not reset: neither is this one.
        output = Signal(self._width, reset_less=True)
        m.d.comb += [write.addr.eq(self.write.addr), write.data.eq(self.write.data),
                     write.en.eq(self.write.en), read.addr.eq(self.read.addr),
                     read.en.eq(self.read.en), self.read.data.eq(output)]
        with m.If(self.read.en):
            m.d.sync += output.eq(read.data)
        return m

    def _ecp5(self, m: Module) -> None:
        """A grid of DP16KD: port A writes, port B reads through its output register."""
        bits, columns, rows = ecp5_block_grid(self._width, self._depth)
        words, skip = next((w, s) for b, w, s in _DP16KD_MODES if b == bits)
        row_bits = ceil_log2(rows)
        word_bits = _DP16KD_ADDRESS - skip

        def pins(prefix, address, low):
            """Address pins: the word address above the ``skip`` low pins."""
            address = Value.cast(address)
            ports = {f"i_{prefix}{n}": low[n] for n in range(skip)}
            ports |= {f"i_{prefix}{skip + n}": address[n] if n < len(address) else Const(0)
                      for n in range(word_bits)}
            return ports

        # With 18-bit ports the two lowest address pins are the write's byte enables.
        write_low = [Const(1)] * 2 + [Const(0)] * 2 if bits == 18 else [Const(0)] * skip
        write_data = Value.cast(self.write.data)
        write_addr, read_addr = Value.cast(self.write.addr), Value.cast(self.read.addr)
        in_row = ceil_log2(words)
        row_data = []
        for row in range(rows):
            selected = self.write.en
            if rows > 1:
                selected = self.write.en & (write_addr[in_row:] == row)
            outputs = []
            for column in range(columns):
                out = Signal(bits, name=f"dob_{row}_{column}")
                outputs.append(out[:min(bits, self._width - column * bits)])
                data_in = write_data[column * bits:(column + 1) * bits]
                ports = pins("ADA", write_addr[:in_row], write_low)
                ports |= pins("ADB", read_addr[:in_row], [Const(0)] * skip)
                ports |= {f"i_DIA{n}": data_in[n] if n < len(data_in) else Const(0)
                          for n in range(18)}
                ports |= {f"i_DIB{n}": Const(0) for n in range(18)}
                ports |= {f"o_DOB{n}": out[n] for n in range(bits)}
                ports |= {f"i_CS{port}{n}": Const(0) for port in "AB" for n in range(3)}
                m.submodules[f"dp16kd_{row}_{column}"] = _dp16kd(
                    p_DATA_WIDTH_A=bits, p_DATA_WIDTH_B=bits,
                    p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
                    p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                    p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                    p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                    i_CLKA=ClockSignal("sync"), i_CEA=Const(1), i_OCEA=Const(1),
                    i_WEA=selected, i_RSTA=Const(0),
                    i_CLKB=ClockSignal("sync"), i_CEB=self.read.en, i_OCEB=self.read.en,
                    i_WEB=Const(0), i_RSTB=Const(0),
                    **ports)
            row_data.append(Cat(*outputs))
        if rows == 1:
            m.d.comb += self.read.data.eq(row_data[0])
            return
        # The row of the word, delayed as the word is: the select comes after the registers.
        row_address, row_output = (Signal(row_bits, reset_less=True, name=name)
                                   for name in ("row_address", "row_output"))
        with m.If(self.read.en):
            m.d.sync += [row_address.eq(read_addr[in_row:]), row_output.eq(row_address)]
        m.d.comb += self.read.data.eq(Array(row_data)[row_output])
