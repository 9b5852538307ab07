"""The accelerator's protocol: the bit layout of every port and memory word.

Every stream payload and memory word is described here as a :mod:`golden.layout` spec built
from the configuration alone; ``hw.layouts`` turns the specs into ``amaranth.lib.data`` layouts,
and the golden model and the simulators pack and unpack words with the same specs.

Layer program, host to accelerator (in this order, see :mod:`golden.program`):

``cfg`` (:func:`cfg_spec`)
    One beat: ``in_channels``, ``out_channels``, ``n_tiles``, ``n_entries`` [+ ``tap_left``,
    the left shift of every Winograd position, when ``config.max_tap_shift`` > 0].
``table`` (:func:`table_spec`, also the table memory word)
    One beat per output channel: owner PE, result slot, ``empty``, ``bias`` [+ requant].
``weights`` (:func:`weight_spec`)
    The destination ``pe`` and one compressed ``entry`` (:func:`entry_spec`, the PE's weight
    memory word); with ``weight_lanes`` L > 1, a PE ``group`` (PEs ``group * L .. + L - 1``)
    and one lane (:func:`weight_lane_spec`: ``valid`` and an ``entry``) per PE of the group.
``patches`` (:func:`patch_spec`)
    One channel's input patch ``d``.

Inside the accelerator: ``V`` (:func:`v_spec`, one channel's transformed tile; the V chain
beat and V memory word :func:`v_beat_spec` are ``positions / v_beats`` of its positions at the
address of :func:`v_address_bits` bits), ``M``
(:func:`m_spec`, the result bank word), the collector's output (:func:`collector_output_spec`),
the tap shift stage's output (:func:`shifted_spec`) and the output transform's input
(:func:`output_transform_input_spec`: the collector's output with the shifted ``M``).
Accelerator to host: ``results`` (:func:`result_spec`: ``Y`` (:func:`y_spec`) [+ ``Q``
(:func:`q_spec`)]).

Element ``p * alpha + q`` of a tile spec is entry ``[p, q]`` (row-major). Value ranges are
checked with :func:`golden.widths.check_range`; memory addresses are :func:`index_bits` wide.
"""

from __future__ import annotations

import numbers

from .config import AcceleratorConfig
from .layout import ArraySpec, Field, StructSpec
from .quant import MAX_SHIFT, MULTIPLIER_BITS
from .schedule import result_slots

__all__ = [
    "CHANNEL_FIELD_BITS",
    "COUNT_FIELD_BITS",
    "bank_read_latency",
    "bank_write_latency",
    "bank_word_spec",
    "beat_bits",
    "cfg_spec",
    "collector_output_spec",
    "entry_spec",
    "index_bits",
    "m_spec",
    "memory_bits",
    "output_transform_input_spec",
    "patch_spec",
    "pipeline_register_bits",
    "q_spec",
    "requant_fields",
    "result_bank_shape",
    "result_spec",
    "shifted_spec",
    "tap_left_spec",
    "table_spec",
    "BLOCK_RAM_MODES",
    "block_rams",
    "v_address_bits",
    "v_beat_spec",
    "v_part_bits",
    "v_spec",
    "weight_lane_spec",
    "weight_memory_columns",
    "weight_spec",
    "y_spec",
]

#: Width of the ``in_channels`` / ``out_channels`` fields of ``cfg`` (wider than any
#: configured maximum, so that an oversize layer can be expressed and refused).
CHANNEL_FIELD_BITS = 16
#: Width of the ``n_tiles`` / ``n_entries`` fields of ``cfg``.
COUNT_FIELD_BITS = 32


def index_bits(n: int) -> int:
    """Bits of an unsigned index in [0, n) (at least 1, so that a 1-entry index is a signal).

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer.
    """
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, not {n!r}")
    return max(1, (int(n) - 1).bit_length())


# -- tiles -----------------------------------------------------------------------------------


def patch_spec(config: AcceleratorConfig) -> ArraySpec:
    """One channel's input patch d (``patches`` payload), row-major."""
    return ArraySpec(config.data_width, config.positions, signed=True)


def v_spec(config: AcceleratorConfig) -> ArraySpec:
    """One channel's transformed tile V = BT d BT^T (V chain, V memory word), row-major."""
    return ArraySpec(config.widths.v, config.positions, signed=True)


def v_beat_spec(config: AcceleratorConfig) -> ArraySpec:
    """One V chain beat and V memory word: positions ``j * P .. j * P + P - 1`` of one
    channel's V for beat (part) ``j``, ``P = config.v_beat_positions`` (all of V with one beat
    per channel)."""
    return ArraySpec(config.widths.v, config.v_beat_positions, signed=True)


def v_part_bits(config: AcceleratorConfig) -> int:
    """Bits of the beat index ``j`` of a channel in the V memory address (0 with one beat)."""
    return (config.v_beats - 1).bit_length()


def v_address_bits(config: AcceleratorConfig) -> int:
    """Bits of a V memory address ``Cat(part, channel, half)`` (the V chain's ``addr``): the
    beat of the channel (:func:`v_part_bits`), the input channel and the buffer half."""
    return v_part_bits(config) + index_bits(config.max_in_channels) + 1


def m_spec(config: AcceleratorConfig) -> ArraySpec:
    """One output channel's accumulated Winograd tile M (result bank word), row-major."""
    return ArraySpec(config.widths.accumulator, config.positions, signed=True)


def bank_word_spec(config: AcceleratorConfig) -> ArraySpec:
    """One result bank word and drain beat: ``config.drain_width`` consecutive positions of an
    output channel's M tile (positions ``g * drain_width ..`` of beat ``g``; the whole
    :func:`m_spec` tile with the default ``drain_positions``)."""
    return ArraySpec(config.widths.accumulator, config.drain_width, signed=True)


def shifted_spec(config: AcceleratorConfig) -> ArraySpec:
    """One output channel's M tile after the tap shift stage, ``M * 2**tap_left``, row-major
    (the accumulator's layout when ``config.max_tap_shift`` is 0; one drain beat's positions,
    :func:`bank_word_spec`, with ``drain_positions`` below ``alpha**2``)."""
    return ArraySpec(config.widths.shifted, config.drain_width, signed=True)


def y_spec(config: AcceleratorConfig) -> ArraySpec:
    """One output channel's output tile Y = AT M AT^T + bias, row-major (m x m)."""
    return ArraySpec(config.widths.output, config.m * config.m, signed=True)


def q_spec(config: AcceleratorConfig) -> ArraySpec:
    """One output channel's requantised int8 tile (requant stage only)."""
    return ArraySpec(8, config.m * config.m, signed=True)


# -- layer program ---------------------------------------------------------------------------


def requant_fields() -> tuple[Field, ...]:
    """Per-channel requantisation parameters (see golden.quant)."""
    return (Field("mult", MULTIPLIER_BITS), Field("shift", MAX_SHIFT.bit_length()),
            Field("relu", 1))


def tap_left_spec(config: AcceleratorConfig) -> ArraySpec:
    """The left shift ``max(tap_shift) - tap_shift`` of every Winograd position, row-major,
    each in [0, ``config.max_tap_shift``] (a ``cfg`` field; needs ``max_tap_shift`` > 0)."""
    if config.max_tap_shift < 1:
        raise ValueError("the accelerator has no tap shift stage (config.max_tap_shift is 0)")
    return ArraySpec(config.max_tap_shift.bit_length(), config.positions, signed=False)


def cfg_spec(config: AcceleratorConfig) -> StructSpec:
    """The single ``cfg`` beat of a layer (``tap_left`` only with a tap shift stage)."""
    fields = (
        Field("in_channels", CHANNEL_FIELD_BITS),
        Field("out_channels", CHANNEL_FIELD_BITS),
        Field("n_tiles", COUNT_FIELD_BITS),
        Field("n_entries", COUNT_FIELD_BITS),
    )
    if config.max_tap_shift:
        fields += (Field("tap_left", spec=tap_left_spec(config)),)
    return StructSpec(fields)


def table_spec(config: AcceleratorConfig) -> StructSpec:
    """One ``table`` beat (table memory word): output channel k's owner, slot, empty flag,
    bias [+ requant] [+ ``split``: with ``split_channels``, the channel's second part is in PE
    ``owner + 1``, slot 0]."""
    fields = (
        Field("owner", index_bits(config.n_pe)),
        Field("slot", index_bits(result_slots(config))),
        Field("empty", 1),
        Field("bias", config.bias_width, signed=True),
    )
    if config.split_channels:
        fields += (Field("split", 1),)
    if config.requant:
        fields += requant_fields()
    return StructSpec(fields)


def entry_spec(config: AcceleratorConfig) -> StructSpec:
    """One compressed weight entry (PE weight memory word, see golden.encoding)."""
    return StructSpec((
        Field("value", config.weight_width, signed=True),
        Field("position", index_bits(config.positions)),
        Field("channel", index_bits(config.max_in_channels)),
        Field("last", 1),
    ))


def weight_lane_spec(config: AcceleratorConfig) -> StructSpec:
    """One lane of a wide ``weights`` beat: ``valid`` (the lane's PE takes ``entry``) and the
    entry."""
    return StructSpec((Field("valid", 1), Field("entry", spec=entry_spec(config))))


def weight_spec(config: AcceleratorConfig) -> StructSpec:
    """One ``weights`` beat: the destination ``pe`` and one compressed ``entry``; with
    ``config.weight_lanes`` L > 1, the PE ``group`` and lanes ``lane0 .. lane{L-1}``, lane j
    for PE ``group * L + j``."""
    lanes = config.weight_lanes
    if lanes == 1:
        return StructSpec((Field("pe", index_bits(config.n_pe)),
                           Field("entry", spec=entry_spec(config))))
    lane = weight_lane_spec(config)
    return StructSpec((Field("group", index_bits(config.weight_groups)),
                       *(Field(f"lane{j}", spec=lane) for j in range(lanes))))


# -- memories --------------------------------------------------------------------------------


def result_bank_shape(config: AcceleratorConfig) -> tuple[int, int]:
    """(words, bits per word) of one PE's double-buffered result bank: ``Cat(beat, slot,
    half)`` addresses (``hw.pe``) of :func:`bank_word_spec` words."""
    depth = 2 << (index_bits(result_slots(config)) + beat_bits(config))
    return depth, bank_word_spec(config).size


def memory_bits(config: AcceleratorConfig) -> dict:
    """Bits of every on-chip memory of the design (``hw.pe``, ``hw.collector``), by kind:
    ``weights`` (every PE's weight memory, ``weight_banks`` of ``pe_weight_depth`` entries),
    ``v`` (double-buffered V memories), ``results`` (double-buffered result banks),
    ``table`` (the channel table, two banks with ``weight_banks`` 2) and ``total``."""
    n_pe, banks = config.n_pe, config.weight_banks
    table_addr_bits = (config.max_out_channels - 1).bit_length()
    table_depth = (2 << table_addr_bits) if banks == 2 else config.max_out_channels
    bits = {
        "weights": n_pe * banks * config.pe_weight_depth * entry_spec(config).size,
        "v": n_pe * (1 << v_address_bits(config)) * v_beat_spec(config).size,
        "results": n_pe * result_bank_shape(config)[0] * result_bank_shape(config)[1],
        "table": table_depth * table_spec(config).size,
    }
    bits["total"] = sum(bits.values())
    return bits


#: (depth, width) modes of an 18 Kbit block RAM (ECP5 DP16KD and PDPW16KD, Xilinx RAMB18).
BLOCK_RAM_MODES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def block_rams(depth: int, width: int) -> int:
    """18 Kbit block RAMs a memory of ``depth`` words of ``width`` bits takes in the best
    single mode of :data:`BLOCK_RAM_MODES`."""
    return min(-(-width // w) * -(-depth // d) for d, w in BLOCK_RAM_MODES)


def weight_memory_columns(config: AcceleratorConfig) -> tuple[int, ...]:
    """Bit widths of the memories a PE's weight memory is built of, low entry bits first.

    One memory of the whole entry, unless 18-bit columns and the rest take fewer 18 Kbit block
    RAMs (:func:`block_rams`): an entry a little over 18 bits wide is then 1K x 18 blocks and a
    narrow deep rest, where the whole entry would be three 2K x 9 columns (the default 6x6
    design: 9216 x 21 bits, 12 blocks split, 15 whole; Yosys maps the whole one to 14).
    """
    width, depth = entry_spec(config).size, config.pe_weight_depth
    split = (18,) * (width // 18) + ((width % 18,) if width % 18 else ())
    if sum(block_rams(depth, w) for w in split) < block_rams(depth, width):
        return split
    return (width,)


def bank_read_latency(config: AcceleratorConfig) -> int:
    """Cycles from a result bank read address to its word at the collector: 2 for a
    ``pipelined`` design with narrow banks (``drain_positions`` below ``alpha**2``: deep banks
    in block RAM, read through the block RAM's own output register, ``hw.bram``), else 1."""
    return 2 if config.pipelined and config.drain_beats > 1 else 1


def bank_write_latency(config: AcceleratorConfig) -> int:
    """Cycles from a PE's sum to its result bank element: 2 where the write is registered
    (the designs of :func:`bank_read_latency` 2: the sum would otherwise go from the
    accumulator's carry chain straight across the chip into a block RAM), else 1. The last
    sum of a tile then lands at the end of the cycle in which the PE's ``done`` rises, so the
    bank is read from the next cycle on; the array's drain starts later than that anyway
    (``golden.cycles.COMPUTE_SYNC``), so no cycle is added."""
    return bank_read_latency(config)


def pipeline_register_bits(config: AcceleratorConfig) -> dict:
    """Flip-flops of the ``pipelined`` timing registers (``hw.pe``, ``hw.collector``), by kind:
    ``v_hold`` (every PE's registered V word), ``collector_output`` (the collector's output
    register: M, bias [and requant parameters]), ``bank_read`` (with a :func:`bank_read_latency`
    of 2: every PE's second select and mask register, the collector's extra stage of the
    table row, beat and valid; the word's second register is the block RAM's own on ECP5, in
    fabric elsewhere, and not counted), ``bank_write`` (with a :func:`bank_write_latency` of 2:
    every PE's registered sum, element enables and word address) and ``total``; all 0 when
    the design is not pipelined."""
    bits = {
        "v_hold": config.n_pe * v_beat_spec(config).size,
        "collector_output": collector_output_spec(config).size,
        "bank_read": 0,
        "bank_write": 0,
    }
    if bank_read_latency(config) == 2:
        bits["bank_read"] = (config.n_pe * (1 + config.drain_width) + table_spec(config).size
                             + beat_bits(config) + 1)
    if bank_write_latency(config) == 2:
        address = index_bits(result_bank_shape(config)[0])
        bits["bank_write"] = config.n_pe * (config.widths.accumulator + config.drain_width
                                            + address)
    if not config.pipelined:
        bits = dict.fromkeys(bits, 0)
    bits["total"] = sum(bits.values())
    return bits


# -- output ----------------------------------------------------------------------------------


def beat_bits(config: AcceleratorConfig) -> int:
    """Bits of a drain beat's index within its channel (0 with the default
    ``drain_positions``: one beat per channel, no index)."""
    return index_bits(config.drain_beats) if config.drain_beats > 1 else 0


def _output_channel(config: AcceleratorConfig, m: ArraySpec) -> StructSpec:
    fields = (Field("m", spec=m), Field("bias", config.bias_width, signed=True))
    if config.drain_beats > 1:
        fields += (Field("beat", beat_bits(config)),)
    if config.requant:
        fields += requant_fields()
    return StructSpec(fields)


def collector_output_spec(config: AcceleratorConfig) -> StructSpec:
    """Output of the collector: one output channel's accumulated M tile, its bias and, with
    the requant stage, its requantisation parameters; with ``drain_positions`` below
    ``alpha**2`` one beat of the tile (:func:`bank_word_spec`) and its index ``beat``."""
    return _output_channel(config, bank_word_spec(config))


def output_transform_input_spec(config: AcceleratorConfig) -> StructSpec:
    """Input of the output transform: the collector's output after the tap shift stage (``m``
    is :func:`shifted_spec`; without the stage it is the collector's output itself)."""
    return _output_channel(config, shifted_spec(config))


def result_spec(config: AcceleratorConfig) -> StructSpec:
    """One ``results`` beat: the raw output tile ``y`` and, with the requant stage, ``q``."""
    fields = (Field("y", spec=y_spec(config)),)
    if config.requant:
        fields += (Field("q", spec=q_spec(config)),)
    return StructSpec(fields)
