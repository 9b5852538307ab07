"""hw.units: every listed unit builds from the configuration alone, and every block's signature
is known without building it."""

import gc
import warnings

import pytest
from amaranth.hdl import Fragment, UnusedElaboratable
from amaranth.lib import wiring

from hw.accelerator import Accelerator
from hw.collector import Collector
from hw.feeder import VFeeder
from hw.loader import ProgramLoader
from hw.sequencer import StepSequencer
from hw.tap_shift import TapShift
from hw.units import UNITS

BLOCKS = [Accelerator, ProgramLoader, StepSequencer, VFeeder, Collector, TapShift]


@pytest.fixture
def config_for(small_config):
    """The small design, with a tap shift stage for the block that is one."""
    return lambda block: (small_config.replace(max_tap_shift=3)
                          if block in (TapShift, "tap-shift") else small_config)


@pytest.mark.parametrize("name", UNITS)
def test_every_unit_builds_and_elaborates(name, config_for):
    unit = UNITS[name]
    component = unit(config_for(name))
    assert isinstance(component, wiring.Component)
    assert "\n" not in unit.description and unit.description
    Fragment.get(component, None)


def _ports(signature):
    return [(path, member.flow, member.shape) for path, member in signature.members.flatten()
            if member.is_port]


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.__name__)
def test_signature_from_config_alone(block, config_for):
    signature = block.Signature(config_for(block))
    component = block(config_for(block))
    assert isinstance(component.signature, block.Signature)
    assert _ports(component.signature) == _ports(signature)
    Fragment.get(component, None)


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.__name__)
def test_blocks_reject_non_config(block):
    with warnings.catch_warnings():
        # The half-built component is never elaborated; that is the point.
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(TypeError, match=r"config must be a golden.config.AcceleratorConfig, "
                                            r"not '4x4'"):
            block("4x4")
        with pytest.raises(TypeError, match=r"config must be a golden.config.AcceleratorConfig, "
                                            r"not \{'tile': '4x4'\}"):
            block.Signature({"tile": "4x4"})
        gc.collect()


def test_accelerator_wires_the_blocks_under_stable_names(small_config):
    names = {name for _, name, _ in Fragment.get(Accelerator(small_config), None).subfragments}
    assert {"loader", "sequencer", "feeder", "collector", "input_transform",
            "output_transform", "pe_0_0", "pe_1_1"} <= names
