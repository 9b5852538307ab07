"""golden.protocol: index widths, the range check, and every port and memory spec against the
widths the RTL gives the same port or memory."""

import numpy as np
import pytest
from amaranth.hdl import Shape

from golden import protocol
from golden.config import DEFAULT, PRESETS, SMALL, AcceleratorConfig
from golden.layout import ArraySpec, StructSpec, pack_array
from golden.schedule import result_slots
from golden.widths import check_range, signed_range, value_range
from hw.accelerator import Accelerator
from hw.layouts import to_layout
from hw.pe import ProcessingElement
from hw.transform import InputTransform, OutputTransform

CONFIGS = {
    "default": DEFAULT,
    "small": SMALL,
    "6x6-requant": DEFAULT.replace(tile="6x6", requant=True),
    # Odd widths, six PEs (unused PE codes), a single-entry slot index, 1-bit channel index.
    "odd": AcceleratorConfig(tile="4x4", array=(3, 2), max_in_channels=2, max_out_channels=5,
                             data_width=5, weight_width=6, bias_width=9, requant=True),
    "one-pe": AcceleratorConfig(tile="6x6", array=(1, 1), max_in_channels=1, max_out_channels=1),
    # Narrow result banks: 9 beats of 4 positions (not a power of two beats), requant.
    "6x6-narrow": AcceleratorConfig(tile="6x6", array=(1, 2), max_in_channels=3,
                                    max_out_channels=5, requant=True, drain_positions=4),
    # The narrow V chain: 4 beats of 9 positions (the default 6x6 design), 3 beats of 12 on a
    # 1-channel design (an unused beat code), a split weight memory (18 + 3 bits).
    "default-6x6": PRESETS["default-6x6"],
    "vb3": AcceleratorConfig(tile="6x6", array=(1, 1), max_in_channels=1, max_out_channels=2,
                             v_beats=3),
}


# -- index_bits --------------------------------------------------------------------------------

@pytest.mark.parametrize("n, bits", [
    (1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (7, 3), (8, 3), (9, 4), (16, 4), (17, 5), (36, 6),
    (64, 6), (65, 7), (4096, 12), (4097, 13),
])
def test_index_bits(n, bits):
    assert protocol.index_bits(n) == bits
    assert protocol.index_bits(np.int64(n)) == bits


@pytest.mark.parametrize("k", range(1, 20))
def test_index_bits_powers_of_two(k):
    """[0, 2**k) needs exactly k bits: its largest index fits, one more does not."""
    assert protocol.index_bits(1 << k) == k
    assert protocol.index_bits((1 << k) + 1) == k + 1
    assert (1 << k) - 1 < 1 << protocol.index_bits(1 << k)


@pytest.mark.parametrize("n", [0, -1, 2.0, True, "4", None])
def test_index_bits_refuses_empty_and_non_integers(n):
    with pytest.raises(ValueError, match=rf"^n must be a positive integer, not {n!r}$"):
        protocol.index_bits(n)


# -- the range check ---------------------------------------------------------------------------

@pytest.mark.parametrize("width, signed", [(1, False), (1, True), (2, True), (8, True),
                                           (8, False), (33, True), (64, True), (64, False)])
def test_check_range_accepts_exactly_the_range(width, signed):
    lo, hi = value_range(width, signed)
    assert (lo, hi) == (signed_range(width) if signed else (0, 2 ** width - 1))
    check_range("x", lo, width, signed)
    check_range("x", hi, width, signed)
    check_range("x", np.array([lo, hi, (lo + hi) // 2], dtype=object), width, signed)
    check_range("x", np.zeros(0, dtype=np.int64), width, signed)
    kind = "signed" if signed else "unsigned"
    for bad in (lo - 1, hi + 1):
        with pytest.raises(ValueError, match=rf"^x = {bad} does not fit {kind}\({width}\) "
                                             rf"\[{lo}, {hi}\]$"):
            check_range("x", bad, width, signed)


def test_check_range_names_the_first_value_outside():
    values = np.array([[0, 127], [-128, 200], [-300, 5]])
    with pytest.raises(ValueError, match=r"^bias = 200 does not fit signed\(8\) \[-128, 127\]$"):
        check_range("bias", values, 8)
    with pytest.raises(ValueError, match=r"^slot = -1 does not fit unsigned\(2\) \[0, 3\]$"):
        check_range("slot", [3, 0, -1, 4], 2, signed=False)


def test_packers_refuse_with_the_range_check_message():
    spec = protocol.table_spec(SMALL)
    with pytest.raises(ValueError, match=r"^owner = 4 does not fit unsigned\(2\) \[0, 3\]$"):
        spec.pack({"owner": 4, "slot": 0, "empty": 0, "bias": 0})
    with pytest.raises(ValueError, match=r"^owner = 4 does not fit unsigned\(2\) \[0, 3\]$"):
        pack_array(spec, {"owner": [0, 4], "slot": [0, 0], "empty": [0, 0], "bias": [0, 0]})


# -- specs -------------------------------------------------------------------------------------

def test_default_widths_are_the_documented_ones():
    """The figures of docs/architecture.md (memories) and of the layer program table."""
    d6 = DEFAULT.replace(tile="6x6")
    assert protocol.cfg_spec(DEFAULT).size == 16 + 16 + 32 + 32
    assert protocol.entry_spec(DEFAULT).size == 8 + 4 + 6 + 1 == 19
    assert protocol.entry_spec(d6).size == 8 + 6 + 6 + 1 == 21
    assert protocol.v_spec(DEFAULT).size == 160 and protocol.v_spec(d6).size == 540
    assert protocol.m_spec(DEFAULT).size == 368 and protocol.m_spec(d6).size == 1008
    assert protocol.patch_spec(DEFAULT).size == 16 * 8
    assert protocol.y_spec(DEFAULT).size == 4 * 33 and protocol.q_spec(d6).size == 16 * 8
    # owner (16 PEs), slot (4 slots), empty, bias [, mult u15, shift u6, relu].
    assert protocol.table_spec(DEFAULT).size == 4 + 2 + 1 + 32
    assert protocol.table_spec(DEFAULT.replace(requant=True)).size == 39 + 15 + 6 + 1
    assert protocol.weight_spec(DEFAULT).size == 4 + 19


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_field_widths_follow_the_config(name):
    config = CONFIGS[name]
    table = {f.name: f for f in protocol.table_spec(config).fields}
    assert table["owner"].width == protocol.index_bits(config.n_pe)
    assert table["slot"].width == protocol.index_bits(result_slots(config))
    assert (table["bias"].width, table["bias"].signed) == (config.bias_width, True)
    assert ("mult" in table) == config.requant
    entry = {f.name: f for f in protocol.entry_spec(config).fields}
    assert entry["position"].width == protocol.index_bits(config.positions)
    assert entry["channel"].width == protocol.index_bits(config.max_in_channels)
    assert (entry["value"].width, entry["value"].signed) == (config.weight_width, True)
    for spec, width, count in ((protocol.patch_spec(config), config.data_width, config.positions),
                               (protocol.v_spec(config), config.widths.v, config.positions),
                               (protocol.m_spec(config), config.widths.accumulator,
                                config.positions),
                               (protocol.y_spec(config), config.widths.output, config.m ** 2),
                               (protocol.q_spec(config), 8, config.m ** 2)):
        assert (spec.width, spec.count, spec.signed) == (width, count, True)
    assert [f.name for f in protocol.result_spec(config).fields] == (
        ["y", "q"] if config.requant else ["y"])


def _payload(member):
    return member.signature.members["payload"].shape


def _same(layout, spec):
    assert layout == to_layout(spec)
    assert Shape.cast(layout).width == spec.size


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_spec_is_what_the_rtl_ports_and_memories_use(name):
    config = CONFIGS[name]
    ports = Accelerator(config).signature.members
    for port, spec in (("cfg", protocol.cfg_spec), ("table", protocol.table_spec),
                       ("weights", protocol.weight_spec), ("patches", protocol.patch_spec),
                       ("results", protocol.result_spec)):
        _same(_payload(ports[port]), spec(config))
    it, ot = InputTransform(config).signature.members, OutputTransform(config).signature.members
    _same(_payload(it["i"]), protocol.patch_spec(config))
    _same(_payload(it["o"]), protocol.v_spec(config))
    _same(_payload(ot["i"]), protocol.output_transform_input_spec(config))
    _same(_payload(ot["o"]), protocol.result_spec(config))
    pe = ProcessingElement(config)
    _same(pe.signature.members["entry"].shape, protocol.entry_spec(config))
    _same(pe.signature.members["v_in"].signature.members["data"].shape,
          protocol.v_beat_spec(config))
    _same(pe.signature.members["bank_data"].shape, protocol.bank_word_spec(config))
    # Memory words, and address widths of the double-buffered memories: Cat(index, half).
    memories = pe.elaborate(None).submodules
    _same(memories.weight_memory.shape, protocol.entry_spec(config))
    _same(memories.v_memory.shape, protocol.v_beat_spec(config))
    assert memories.weight_memory.columns == protocol.weight_memory_columns(config)
    _same(memories.result_bank.shape, protocol.bank_word_spec(config))
    chan_bits = protocol.index_bits(config.max_in_channels)
    slot_bits = protocol.index_bits(result_slots(config))
    # Result bank addresses Cat(beat, slot, half); no beat index with whole-tile words.
    beat_bits = protocol.index_bits(config.drain_beats) if config.drain_beats > 1 else 0
    assert protocol.beat_bits(config) == beat_bits
    # V memory addresses Cat(beat, channel, half); no beat index with one beat per channel.
    part_bits = (config.v_beats - 1).bit_length()
    assert memories.v_memory.depth == 2 << (chan_bits + part_bits) == \
        1 << protocol.v_address_bits(config)
    assert protocol.v_beat_spec(config).count * config.v_beats == config.positions
    assert memories.result_bank.depth == 2 << (slot_bits + beat_bits)
    assert protocol.result_bank_shape(config) == (2 << (slot_bits + beat_bits),
                                                  config.drain_width * config.widths.accumulator)
    assert Shape.cast(pe.signature.members["v_in"].signature.members["addr"].shape).width == \
        part_bits + chan_bits + 1
    assert Shape.cast(pe.signature.members["bank_addr"].shape).width == \
        slot_bits + 1 + beat_bits
    assert protocol.bank_word_spec(config).count * config.drain_beats == config.positions


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_specs_are_built_from_the_config_alone(name):
    """Equal configs give equal specs; each is a golden.layout spec."""
    config = CONFIGS[name]
    twin = config.replace()
    for fn in (protocol.cfg_spec, protocol.table_spec, protocol.entry_spec, protocol.weight_spec,
               protocol.patch_spec, protocol.v_spec, protocol.m_spec, protocol.y_spec,
               protocol.q_spec, protocol.output_transform_input_spec, protocol.result_spec):
        spec = fn(config)
        assert isinstance(spec, (ArraySpec, StructSpec)) and spec == fn(twin)


@pytest.mark.parametrize("depth, width, blocks", [(9216, 21, 15), (9216, 18, 9), (9216, 3, 3),
                                                  (4096, 19, 5), (512, 135, 4), (128, 540, 15),
                                                  (1, 1, 1), (16385, 1, 2)])
def test_block_rams(depth, width, blocks):
    """18 Kbit block RAMs in the best single mode (1K x 18, 4K x 4, 512 x 36, ...)."""
    assert protocol.block_rams(depth, width) == blocks


@pytest.mark.parametrize("config, columns", [
    (PRESETS["default-6x6"], (18, 3)),           # 9216 x 21: 9 + 3 blocks instead of 15
    (DEFAULT.replace(tile="6x6", array=(1, 1), max_in_channels=16, max_out_channels=16),
     (18, 1)),                                   # 9216 x 19: 9 + 1 instead of 15
    (DEFAULT, (19,)),                            # 4096 x 19: 5 blocks either way
    (SMALL, (17,)),                              # at most 18 bits: one memory
    (DEFAULT.replace(weight_depth=5000), (18, 1)),  # 5000 x 19: 5 + 1 instead of 9
])
def test_weight_memory_columns(config, columns):
    assert protocol.weight_memory_columns(config) == columns
    assert sum(columns) == protocol.entry_spec(config).size
