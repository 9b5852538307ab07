"""Whole networks (weight file version 2) through the accelerator RTL (``sim.netrun``,
``python -m sim.network``): logits and every layer bit-exact against golden.network and an
independent reading of the specification, layers larger than the design as passes, cycles as
modelled, a corrupted program word caught at its op, bad input refused in one line."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from golden.config import AcceleratorConfig
from golden.cycles import passes_cycles
from golden.network import quantize_input, run_network
from golden.protocol import weight_spec
from golden.synthetic import synthetic_network
from golden.weights import WeightFile, load_weights, save_weights
from sim import netrun
from sim.network import main
from sim.testing import small_config
from sim.tools import find_simulator
from tests.spec_network import spec_network

pytestmark = pytest.mark.skipif(not find_simulator("verilator").available,
                                reason="verilator is not available")

#: The bench design with the requant stage (shared with sim/test_accelerator.py's build).
DESIGN = small_config("4x4").replace(requant=True)


def _network(widths, seed, shape=(3, 9, 7), pool_after=(0,)) -> WeightFile:
    return synthetic_network(DESIGN, shape, widths, pool_after, classes=4, seed=seed)


def _images(weights, n, seed):
    rng = np.random.default_rng(seed)
    return quantize_input(weights, rng.random((n, *weights.network.input_shape)))


@pytest.mark.parametrize("widths, passes", [((6, 5), (1, 1)),     # fits the design
                                            ((6, 12), (1, 2)),    # K > 8: two output groups
                                            ((12, 5), (2, 2))])   # C > 8: host requantisation
def test_network_on_the_rtl_is_bit_exact(widths, passes):
    weights = _network(widths, seed=sum(widths))
    images = _images(weights, 3, seed=1)
    plan = netrun.plan_network(weights, DESIGN)
    assert tuple(len(p) for p in plan.programs.values()) == passes
    outcome = netrun.run_network_rtl(weights, DESIGN, images, jobs=2, chunk=2, plan=plan)
    assert outcome.mismatch is None and outcome.passed, outcome.problems
    golden_logits, _ = run_network(weights, images)
    np.testing.assert_array_equal(outcome.logits, golden_logits)
    for i, image in enumerate(images):
        np.testing.assert_array_equal(outcome.logits[i], spec_network(weights, image)[-1])
    # One record per pass of one image, with the measured cycles equal to the model's.
    programs = [p for ps in plan.programs.values() for p in ps]
    model = passes_cycles(programs)
    assert [r.name for r in outcome.records] == [p.layer.name for p in programs]
    assert sum(r.cycles for r in outcome.records) == model.cycles
    assert sum(r.load_cycles for r in outcome.records) == model.load_cycles
    assert all(r.stall_cycles == 0 for r in outcome.records)


def test_network_with_tap_shifts_on_the_rtl_is_bit_exact():
    """Random nonzero tap shifts (span 6) in every conv, one layer split into passes over two
    input groups (host requantisation of the summed partial sums): logits and every op equal
    golden and the reading of the specification; the chosen design has the stage."""
    design = DESIGN.replace(max_tap_shift=6)
    weights = synthetic_network(design, (3, 9, 7), (12, 5), (0,), classes=4, seed=4,
                                tap_shift_span=6)
    assert netrun.network_design(weights).max_tap_shift == 6
    images = _images(weights, 2, seed=2)
    plan = netrun.plan_network(weights, design)
    assert tuple(len(p) for p in plan.programs.values()) == (2, 2)
    outcome = netrun.run_network_rtl(weights, design, images, jobs=2, chunk=2, plan=plan)
    assert outcome.mismatch is None and outcome.passed, outcome.problems
    golden_logits, _ = run_network(weights, images)
    np.testing.assert_array_equal(outcome.logits, golden_logits)
    for i, image in enumerate(images):
        np.testing.assert_array_equal(outcome.logits[i], spec_network(weights, image)[-1])


def test_a_corrupted_program_word_is_named_at_its_op(monkeypatch):
    weights = _network((6, 5), seed=3)
    images = _images(weights, 2, seed=2)
    compile_passes = netrun.compile_passes

    def corrupted(plan, h, w):
        programs = compile_passes(plan, h, w)
        if plan.layer.name != "conv1":
            return programs
        # Flip bit 1 of the first entry's weight value: a program the loader accepts, wrong.
        first = programs[0]
        words = list(first.weight_words)
        words[0] ^= 1 << (weight_spec(first.config).offset("entry") + 1)
        return [dataclasses.replace(first, weight_words=words), *programs[1:]]

    monkeypatch.setattr(netrun, "compile_passes", corrupted)
    outcome = netrun.run_network_rtl(weights, DESIGN, images, jobs=1)
    assert outcome.mismatch is not None and not outcome.bit_exact
    bad = outcome.mismatch
    assert bad.op == "conv:conv1" and bad.image in (0, 1) and bad.got != bad.want
    assert outcome.logits is None
    assert str(bad).startswith(f"image {bad.image}, op conv:conv1: output {list(bad.index)}")


def _files(tmp_path, weights, n=3):
    w, x = tmp_path / "net.npz", tmp_path / "x.npy"
    save_weights(w, weights)
    rng = np.random.default_rng(4)
    np.save(x, rng.random((n, *weights.network.input_shape)).astype(np.float32))
    design = tmp_path / "design.json"
    design.write_text(json.dumps(DESIGN.to_dict()))
    return w, x, design


def test_cli_writes_logits_and_reports(tmp_path, capsys):
    weights = _network((6, 12), seed=5)
    w, x, design = _files(tmp_path, weights)
    labels = tmp_path / "y.npy"
    np.save(labels, np.array([0, 1, 2]))
    out, report = tmp_path / "logits.npy", tmp_path / "R"
    status = main(["--weights", str(w), "--config", str(design), "--input", str(x),
                   "--labels", str(labels), "--jobs", "1", "--fmax", "50", "--out", str(out),
                   "--report", str(report)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "bit-exact" in captured.out and DESIGN.name in captured.err
    golden_logits, _ = run_network(load_weights(w), quantize_input(weights, np.load(x)))
    np.testing.assert_array_equal(np.load(out), golden_logits)
    r = json.loads((report / "report.json").read_text())
    assert r["images"] == 3 and r["bit_exact"] is True
    assert r["multipliers"] == DESIGN.n_pe
    assert r["total_cycles"] == r["compute_cycles"] + r["load_cycles"]
    assert [layer["name"] for layer in r["layers"]] == ["conv0", "conv1.k0-8.c0-6",
                                                        "conv1.k8-12.c0-6"]
    assert r["accuracy"]["hardware"] == r["accuracy"]["golden"]
    assert r["images_per_s_at_fmax"] == pytest.approx(50e6 / r["total_cycles"])
    macs = sum(layer["nonzero_macs"] for layer in r["layers"])
    assert r["utilisation_end_to_end"] == pytest.approx(macs / (DESIGN.n_pe * r["total_cycles"]))
    for name in ("layers.csv", "report.md", "cycles.png", "skipped_macs.png"):
        assert (report / name).stat().st_size > 0


@pytest.mark.parametrize("case, message", [
    ("v1", "is version 1"),
    ("tile", "design's tile 6x6"),
    ("jobs", "--jobs must be a positive integer, not 0"),
    ("report", "is a file, not a directory"),
])
def test_cli_refuses_bad_input_in_one_line(tmp_path, capsys, case, message):
    weights = _network((6, 5), seed=6)
    w, x, design = _files(tmp_path, weights)
    args = {"--weights": str(w), "--config": str(design), "--input": str(x),
            "--out": str(tmp_path / "l.npy"), "--report": str(tmp_path / "R"), "--jobs": "1"}
    if case == "v1":
        save_weights(w, [dataclasses.replace(layer, requant_mult=None, requant_shift=None,
                                             relu=None) for layer in weights.layers])
    elif case == "tile":
        design.write_text(json.dumps(AcceleratorConfig(tile="6x6").to_dict()))
    elif case == "jobs":
        args["--jobs"] = "0"
    else:
        (tmp_path / "R").write_text("")
    status = main([v for kv in args.items() for v in kv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err[-1].startswith("sim.network: error: ") and message in err[-1], err
    assert "Traceback" not in "\n".join(err)
