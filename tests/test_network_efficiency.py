"""benchmarks/network_efficiency.py on a given weight file: the design ``sim.network`` picks."""

import json
import sys

import pytest

from golden.config import DEFAULT
from golden.network import load_network
from golden.passes import network_design
from golden.synthetic import synthetic_network
from golden.weights import save_weights
from helpers import load_benchmark


@pytest.mark.parametrize("tile, span", [("6x6", 3), ("4x4", 0)])
def test_a_weight_file_is_measured_on_its_tile_with_its_tap_shifts(tile, span, tmp_path,
                                                                   monkeypatch):
    from benchmarks.pruning_runs import cycles_per_image
    bench = load_benchmark("network_efficiency")
    path = tmp_path / "net.npz"
    save_weights(path, synthetic_network(DEFAULT.replace(tile=tile), (3, 9, 7), (6, 5), (0,),
                                         seed=2, tap_shift_span=span))
    out = tmp_path / "e.json"
    monkeypatch.setattr(sys, "argv", ["network_efficiency.py", "--weights", str(path),
                                      "--json", str(out)])
    assert bench.main() == 0
    rows = {r["design"]: r for r in json.loads(out.read_text()) if r["network"] == "net"}
    weights = load_network(path)
    picked = network_design(weights)
    assert picked.max_tap_shift == span
    before = rows["before"]["figures"]
    assert rows["before"]["tile"] == tile and before["design"] == picked.name
    # One weight lane and bank: every load is exposed, as in the sum over the passes.
    assert before["total_cycles"] == cycles_per_image(weights)["total"]
    assert rows["after, split"]["figures"]["total_cycles"] < before["total_cycles"]
