"""The Fashion-MNIST training path: BatchNorm folding, presets, first-layer cap, --device, and
benchmarks/pruning_table.py (resumable, cycles from golden's cycle model)."""

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from golden.config import DEFAULT  # noqa: E402
from golden.cycles import layer_cycles  # noqa: E402
from golden.program import compile_layer  # noqa: E402
from golden.weights import load_weights  # noqa: E402
from train.models import fashion_model, fold_batch_norm  # noqa: E402
from train.settings import PruneSettings, default_settings, layer_targets  # noqa: E402
from train.prune import main as prune_main  # noqa: E402

from fashion_files import write_fashion  # noqa: E402
from helpers import load_benchmark  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _randomised_bn(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for norm in model.norms:
            k = norm.num_features
            norm.weight.copy_(torch.rand(k, generator=gen) + 0.5)
            norm.bias.copy_(torch.randn(k, generator=gen))
            norm.running_mean.copy_(torch.randn(k, generator=gen))
            norm.running_var.copy_(torch.rand(k, generator=gen) + 0.1)
    return model


@pytest.mark.parametrize("tile", [None, "4x4", "6x6"])
def test_folded_network_computes_the_same_function(tile):
    torch.manual_seed(0)
    model = _randomised_bn(fashion_model())
    with torch.no_grad():
        model.convs[2].mask[:5] = 0                              # some pruned weights
    if tile is not None:
        model.to_winograd(tile)
        with torch.no_grad():
            model.convs[3].mask[:, :, 0, 0] = 0
    model.eval()
    x = torch.rand(3, 1, 28, 28)
    folded = fold_batch_norm(model)
    assert folded.norms is None and model.norms is not None     # the original is unchanged
    np.testing.assert_allclose(folded(x).detach().numpy(), model(x).detach().numpy(),
                               rtol=1e-4, atol=1e-4)
    for a, b in zip(model.convs, folded.convs):
        zero = (a.effective_weight() == 0).numpy()
        assert np.all(b.effective_weight().detach().numpy()[zero] == 0)


def test_presets_keep_digits_and_cap_the_first_layer():
    assert default_settings("digits") == PruneSettings()
    s = default_settings("fashion-mnist", target=0.8)
    assert s.first_target == 0.3 and s.augment and s.batch_size == 128
    # The budget that fits 30 minutes on two CPU cores (docs/pruning.md); the table runs 12 + 12.
    assert (s.dense_epochs, s.prune_epochs, s.stages) == (10, 4, 3)
    assert layer_targets(s, 3) == [0.3, 0.8, 0.8]
    assert layer_targets(default_settings("fashion-mnist", target=0.2), 2) == [0.2, 0.2]
    with pytest.raises(ValueError, match="first_target must lie in"):
        PruneSettings(first_target=1.0)


@pytest.mark.parametrize("argv,message", [
    (["--data-dir", "x"], "--data-dir goes with --dataset fashion-mnist"),
    (["--dataset", "fashion-mnist", "--first-target", "1.5"], "first_target must lie in"),
    (["--dataset", "fashion-mnist", "--data-dir", "/nonexistent-folder"],
     "install the Debian package dataset-fashion-mnist or pass --data-dir DIR"),
])
def test_cli_refusals(tmp_path, capsys, argv, message):
    assert prune_main([*argv, "--out", str(tmp_path / "w.npz"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_device_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    assert prune_main(["--device", "cuda", "--out", str(tmp_path / "w.npz"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "device cuda: this PyTorch" in err and "sees no CUDA device" in err


def _table_module():
    return load_benchmark("pruning_table")


def test_pruning_table_runs_resumes_and_counts_cycles(tmp_path, capsys, monkeypatch):
    table = _table_module()
    data = tmp_path / "data"
    write_fashion(data)
    out = tmp_path / "t.json"
    argv = ["--dataset", "fashion-mnist", "--data-dir", str(data), "--tiles", "4x4",
            "--methods", "spatial-winograd,spatial-magnitude", "--targets", "0.5",
            "--seeds", "0", "--dense-epochs", "1", "--prune-epochs", "2", "--json", str(out),
            "--markdown", str(tmp_path / "t.md"), "--weights-dir", str(tmp_path / "w")]
    assert table.main(argv) == 0
    runs = json.loads(out.read_text())["runs"]
    assert [r["method"] for r in runs] == ["spatial-winograd", "spatial-magnitude"]
    assert os.path.isfile(tmp_path / "t.dense-seed0.pt")
    # Cycles: conv0 (32 channels) fits the default design in one pass: golden.cycles of it.
    tap = "int8_tap_wise"
    assert set(runs[0]["accuracy"]) == {"dense", "pruned", "int8_per_channel", tap}
    wf = load_weights(tmp_path / "w" / runs[0]["weight_files"][tap])
    program = compile_layer(DEFAULT.replace(tile="4x4", requant=True), wf["conv0"], 28, 28,
                            requant=(wf["conv0"].requant_mult, wf["conv0"].requant_shift, True))
    report = layer_cycles(program)
    cycles = runs[0]["cycles_per_image"][tap]
    assert cycles["layers"]["conv0"] == report.cycles + report.load_cycles
    assert cycles["total"] == sum(cycles["layers"].values()) and len(cycles["layers"]) == 6
    # The design and passes are those sim.network plans for the file.
    from golden.cycles import passes_cycles
    from sim.netrun import network_design, plan_network
    plan = plan_network(wf, network_design(wf))
    assert cycles["design"] == plan.config.name
    assert cycles["total"] == sum(passes_cycles(p).total_cycles for p in plan.programs.values())
    text = (tmp_path / "t.md").read_text()
    assert "| 4x4 | spatial-winograd | 0.50 | 1 |" in text and "conv5" in text
    # A rerun skips both cells (a run would fail) and renders the same table.
    monkeypatch.setattr(table, "run_task", lambda *a, **k: pytest.fail("a finished cell reran"))
    capsys.readouterr()
    assert table.main(argv) == 0
    assert "2 finished run(s) kept" in capsys.readouterr().out
    # Other settings for a finished cell: refused.
    assert table.main([*argv[:-6], "--prune-epochs", "3", "--json", str(out)]) == 2


def test_the_committed_table_resumes_under_the_table_budget():
    """Every run of docs/reports/pruning-fashion-mnist.json was made with the settings the
    table's command makes now (the preset with ``TABLE_BUDGET``), so rerunning the documented
    command skips all 90 cells instead of refusing them."""
    from dataclasses import asdict
    table = _table_module()
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "reports",
                        "pruning-fashion-mnist.json")
    with open(path) as f:
        runs = json.load(f)["runs"]
    assert len(runs) == 90
    budget = table.TABLE_BUDGET["fashion-mnist"]
    assert default_settings("fashion-mnist").dense_epochs != budget["dense_epochs"]
    for r in runs:
        want = default_settings("fashion-mnist", tile=r["tile"], method=r["method"],
                                target=r["target_sparsity"], seed=r["seed"], **budget)
        assert r["settings"] == json.loads(json.dumps(asdict(want))), r["settings"]


def test_pruning_table_jobs_match_one_process_and_share_spatial_pruning(tmp_path):
    """--jobs 2 gives the records of one process (CPU, one thread each: the same arithmetic),
    and spatial magnitude pruning runs once for both tiles."""
    table = _table_module()

    def run(name, jobs):
        out = tmp_path / f"{name}.json"
        argv = ["--dataset", "digits", "--limit", "300", "--tiles", "4x4,6x6",
                "--methods", "spatial-magnitude,winograd-magnitude", "--targets", "0.6",
                "--seeds", "0", "--dense-epochs", "1", "--prune-epochs", "1",
                "--jobs", str(jobs), "--json", str(out)]
        assert table.main(argv) == 0
        runs = json.loads(out.read_text())["runs"]
        return {(r["tile"], r["method"]): r for r in runs}

    one, two = run("one", 1), run("two", 2)
    assert sorted(one) == sorted(two) and len(one) == 4
    for key in one:
        for field in ("accuracy", "winograd_sparsity", "quantised_winograd_sparsity",
                      "cycles_per_image", "tap_shift_span", "settings"):
            assert one[key][field] == two[key][field], (key, field)
    shared = {t: one[(t, "spatial-magnitude")] for t in ("4x4", "6x6")}
    assert shared["4x4"]["pruning_shared_with"] == ["6x6"]
    assert shared["6x6"]["pruning_shared_with"] == ["4x4"]
    assert shared["4x4"]["accuracy"]["pruned"] == shared["6x6"]["accuracy"]["pruned"]
    assert "pruning_shared_with" not in one[("6x6", "winograd-magnitude")]
    assert table.main(["--jobs", "0"]) == 2


def test_pruning_table_refuses_a_dense_model_of_other_settings(tmp_path, capsys):
    table = load_benchmark("pruning_table")
    torch.save({"state_dict": {}, "made_with": "other"}, tmp_path / "t.dense-seed0.pt")
    argv = ["--dataset", "digits", "--limit", "100", "--tiles", "4x4", "--methods",
            "spatial-magnitude", "--targets", "0.5", "--seeds", "0", "--json",
            str(tmp_path / "t.json")]
    assert table.main(argv) == 2
    err = capsys.readouterr().err
    assert "t.dense-seed0.pt: dense model made with other settings (other)" in err, err


def test_mps_running_looks_for_the_daemons_control_pipe(tmp_path, monkeypatch):
    from benchmarks.pruning_runs import mps_running
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(tmp_path))
    assert not mps_running()
    (tmp_path / "control").touch()
    assert mps_running()
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(tmp_path / "elsewhere"))
    assert not mps_running()
