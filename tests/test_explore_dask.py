"""hw.explore on Dask: the same small sweep (synthesis replaced by a deterministic stand-in,
the real network cycle model) on a local cluster of its own and on a scheduler at an address
give identical points.csv; the cache answers every task of a second run (no cluster started);
a worker killed mid-task does not lose its point; a task that fails for good is reported.

The stand-in keeps these tests to seconds: what they check is the scheduling. The real tools
run in the slow test at the end (generic synthesis of tiny designs)."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import pytest
from distributed import LocalCluster

from golden.config import AcceleratorConfig, DEFAULT
from golden.passes import network_design
from golden.synthetic import synthetic_network
from golden.weights import load_weights, save_weights
from hw import explore
from hw.explore import study as explore_study
from hw.explore import tasks

NETWORK = dict(input_shape=(3, 9, 7), widths=(6, 5), pool_after=(0,), classes=4, seed=5)
GRID = ["--tiles", "4x4,6x6", "--arrays", "1x1,2x2", "--max-channels", "4,8",
        "--targets", "ecp5", "--pnr", "--quiet"]


def fake_synthesise(config: dict, target: str, work_dir: str, pnr: bool = False,
                    sparsity: float = 0.74) -> dict:
    """A synthesis report made from the config alone (what the tests check is scheduling)."""
    cfg = AcceleratorConfig.from_dict(config)
    luts = 1500 * cfg.n_pe + 40 * cfg.max_in_channels
    report = {"resources": {"luts": luts, "ffs": luts // 2, "carry": 10, "dsp": cfg.n_pe,
                            "bram": cfg.n_pe * (1 + cfg.max_in_channels // 8)},
              "work_dir": work_dir}
    if pnr:
        report["pnr"] = {"fits": True, "fmax_mhz": 80.0 - 5 * cfg.n_pe}
    return report


def killing_synthesise(config: dict, target: str, work_dir: str, pnr: bool = False,
                       sparsity: float = 0.74) -> dict:
    """:func:`fake_synthesise`, but its first attempt kills its own worker process."""
    marker = Path(f"{work_dir}.killed")
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return fake_synthesise(config, target, work_dir, pnr, sparsity)


def failing_synthesise(config: dict, target: str, work_dir: str, pnr: bool = False,
                       sparsity: float = 0.74) -> dict:
    """Raises on every attempt."""
    raise RuntimeError(f"no tools for {AcceleratorConfig.from_dict(config).name}")


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    path = tmp_path_factory.mktemp("net") / "net.npz"
    save_weights(path, synthetic_network(DEFAULT, **NETWORK))
    return path


@pytest.fixture(scope="module")
def scheduler():
    """A scheduler and two worker processes on 127.0.0.1, started here; its address."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      scheduler_port=0, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(explore_study.STEPS, "synth", fake_synthesise)


def _rows(out: Path) -> list[dict]:
    with open(out / "points.csv", newline="") as f:
        return list(csv.DictReader(f))


def _tasks(out: Path) -> list[dict]:
    with open(out / "tasks.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def local_run(network, tmp_path_factory):
    """The grid on a local cluster of two workers that the command starts itself."""
    out = tmp_path_factory.mktemp("local")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(explore_study.STEPS, "synth", fake_synthesise)
        assert explore.main(["--weights", str(network), *GRID, "--workers", "2",
                             "--out", str(out)]) == 0
    return out


def test_local_cluster_sweep_figures(local_run, network):
    rows = _rows(local_run)
    assert len(rows) == 8
    assert [r["status"] for r in rows] == ["ok"] * 4 + ["unusable"] * 4
    weights = load_weights(network)
    for row in rows[:4]:
        arr = tuple(int(v) for v in row["array"].split("x"))
        c = int(row["max_channels"])
        config = network_design(weights).replace(array=arr, max_in_channels=c,
                                                 max_out_channels=c)
        want = tasks.network_figures(weights, config)
        fmax = 80.0 - 5 * config.n_pe
        assert row["design"] == config.name
        assert int(row["cycles_per_image"]) == want["total_cycles"]
        assert int(row["passes"]) == want["passes"]
        assert float(row["latency_us"]) == round(want["total_cycles"] / fmax, 3)
        assert float(row["gops"]) == round(2 * want["direct_macs"] * fmax
                                           / want["total_cycles"] / 1e3, 3)
        assert int(row["luts"]) == 1500 * config.n_pe + 40 * c
        assert row["fits"] == "yes" and row["fits_from"] == "place and route"
    ran = _tasks(local_run)
    # 4 synth tasks and 4 cycles tasks (one per design), all on the cluster.
    assert sorted(t["step"] for t in ran) == ["cycles"] * 4 + ["synth"] * 4
    assert {t["source"] for t in ran} == {"cluster"} and all(t["pid"] for t in ran)
    assert "Pareto-optimal designs: net.npz (8 design points)" in \
        (local_run / "pareto.md").read_text()
    assert (local_run / "pareto-ecp5.png").exists()


def test_scheduler_at_an_address_gives_identical_points(local_run, network, scheduler,
                                                        tmp_path, fake):
    assert explore.main(["--weights", str(network), *GRID, "--scheduler", scheduler,
                         "--out", str(tmp_path)]) == 0
    assert (tmp_path / "points.csv").read_text() == (local_run / "points.csv").read_text()
    assert (tmp_path / "pareto.md").read_text() == (local_run / "pareto.md").read_text()


def test_second_run_takes_every_task_from_the_cache(local_run, network, monkeypatch, capsys):
    before = (local_run / "points.csv").read_text()

    def no_cluster(**kwargs):
        raise AssertionError("a cluster was started although every task is cached")

    monkeypatch.setattr(explore_study, "dask_client", no_cluster)
    monkeypatch.setitem(explore_study.STEPS, "synth", failing_synthesise)
    assert explore.main(["--weights", str(network), *GRID, "--workers", "2",
                         "--out", str(local_run)]) == 0
    assert "8 tasks: 0 run on 0 worker processes, 8 from the cache" in capsys.readouterr().out
    assert {t["source"] for t in _tasks(local_run)} == {"cache"}
    assert (local_run / "points.csv").read_text() == before


def test_force_recomputes_and_a_new_weight_file_misses(network, scheduler, tmp_path, fake,
                                                       capsys):
    args = ["--weights", str(network), "--tiles", "4x4", "--arrays", "1x1",
            "--max-channels", "4,8", "--targets", "ecp5", "--quiet", "--scheduler", scheduler,
            "--out", str(tmp_path)]
    assert explore.main(args) == 0
    assert explore.main([*args, "--force"]) == 0
    assert "4 tasks: 4 run on" in capsys.readouterr().out
    other = tmp_path / "other.npz"
    save_weights(other, synthetic_network(DEFAULT, **{**NETWORK, "seed": 6}))
    args[1] = str(other)
    assert explore.main(args) == 0
    # The synthesis is the same design's; the cycles are another network's.
    assert "4 tasks: 2 run on" in capsys.readouterr().out
    assert {(t["step"], t["source"]) for t in _tasks(tmp_path)} == {("synth", "cache"),
                                                                    ("cycles", "cluster")}


def test_a_killed_worker_does_not_lose_its_point(network, scheduler, tmp_path, monkeypatch):
    monkeypatch.setitem(explore_study.STEPS, "synth", killing_synthesise)
    assert explore.main(["--weights", str(network), "--tiles", "4x4", "--arrays", "2x2",
                         "--max-channels", "8", "--targets", "ecp5", "--pnr", "--quiet",
                         "--scheduler", scheduler, "--out", str(tmp_path)]) == 0
    (marker,) = (tmp_path / "designs").glob("*.killed")
    killed = int(marker.read_text())
    (row,) = _rows(tmp_path)
    assert row["status"] == "ok" and row["luts"] == str(1500 * 4 + 40 * 8)
    (synth,) = [t for t in _tasks(tmp_path) if t["step"] == "synth"]
    assert int(synth["pid"]) != killed                   # the retry ran on a live worker


def test_a_task_that_fails_for_good_is_reported(network, scheduler, tmp_path, monkeypatch,
                                                capsys):
    monkeypatch.setitem(explore_study.STEPS, "synth", failing_synthesise)
    args = ["--weights", str(network), "--tiles", "4x4", "--arrays", "1x1",
            "--max-channels", "8", "--targets", "ecp5", "--quiet", "--retries", "1",
            "--scheduler", scheduler, "--out", str(tmp_path)]
    assert explore.main(args) == 1
    (row,) = _rows(tmp_path)
    assert row["status"] == "failed"
    assert row["reason"] == "RuntimeError: no tools for sparse_winograd_4x4_a1x1_c8_rq"
    assert "0 ok, 0 unusable, 0 refused, 1 failed" in capsys.readouterr().out
    # Not cached: the next run tries it again.
    monkeypatch.setitem(explore_study.STEPS, "synth", fake_synthesise)
    assert explore.main(args) == 0
    assert _rows(tmp_path)[0]["status"] == "ok"


def test_an_unreachable_scheduler_is_a_connection_error():
    from hw.explore.runner import dask_client
    with pytest.raises(ConnectionError):
        with dask_client(scheduler="tcp://127.0.0.1:9", timeout=1):
            pass


@pytest.mark.slow
def test_generic_synthesis_of_tiny_designs(network, tmp_path):
    """The real tools: two tiny designs synthesised (generic) on a local cluster."""
    assert explore.main(["--weights", str(network), "--tiles", "4x4", "--arrays", "1x1",
                         "--max-channels", "4,8", "--targets", "generic", "--workers", "2",
                         "--quiet", "--out", str(tmp_path)]) == 0
    for row in _rows(tmp_path):
        report = (tmp_path / "designs" / row["point"] / "report.json").read_text()
        assert row["status"] == "ok" and int(row["luts"]) > 0
        assert f'"luts": {row["luts"]}' in report
