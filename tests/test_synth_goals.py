"""benchmarks/synth_goals.py: the designs it measures, its table and goal lines (from made-up
rows, no tool run), and its one-line argument errors."""

import pytest

from helpers import load_benchmark


@pytest.fixture(scope="module")
def goals():
    return load_benchmark("synth_goals")


def _row(design, **fields):
    row = {"design": design, "target": "ecp5", "fmax": 151.2, "fits": True, "luts": 10240,
           "ffs": 20000, "lutram": 1600, "bram": 160, "spram": 0, "dsp": 16,
           "luts_per_mult": 640, "gops_per_mult": 1.2, "seconds": 3}
    return {**row, **fields}


def test_designs_are_the_issue_designs(goals):
    config, target = goals.DESIGNS["ecp5-4x4"]
    assert (config.tile, config.array, config.max_in_channels, target) == ("4x4", (4, 4), 64,
                                                                           "ecp5")
    narrow, target = goals.DESIGNS["ecp5-4x4-narrow"]
    assert narrow == config.replace(v_beats=4, drain_positions=1) and target == "ecp5"
    config, target = goals.DESIGNS["ecp5-6x6"]
    assert (config.tile, config.array, target) == ("6x6", (4, 4), "ecp5")
    config, target = goals.DESIGNS["up5k-2pe"]
    assert config.n_pe == 2 and target == "ice40"
    # Narrow result banks (block RAM) are what fits two PEs.
    assert config.drain_positions == 2 and goals.DESIGNS["up5k-1pe"][0].drain_positions == 2


def test_table_and_goals(goals):
    rows = [_row("ecp5-4x4"), _row("ecp5-6x6", fmax=None, fits=False, gops_per_mult=None),
            _row("up5k-2pe", target="ice40", fmax=47.9, luts_per_mult=2500)]
    lines = goals.table(rows)
    assert lines[0].startswith("| design | target | Fmax MHz | LUT4 | FF | LUT-RAM |")
    assert lines[2] == ("| ecp5-4x4 | ecp5 | 151.2 | 10240 | 20000 | 1600 | 160 | 0 | 16 | "
                        "640 | 1.2 |")
    assert "| ecp5-6x6 | ecp5 | does not fit |" in lines[3] and lines[3].endswith("| - |")
    text = "\n".join(goals.goal_lines(rows))
    assert ">= 150 MHz routed, default 4x4, ECP5-85F: 151.2 (met)" in text
    assert ">= 150 MHz routed, default 6x6, ECP5-85F: - (does not fit)" in text
    assert ">= 4.5 GOPS per multiplier, default 6x6, 74 %: - (does not fit)" in text
    unrouted = goals.goal_lines([_row("ecp5-4x4", fmax=None, fits=None)])
    assert unrouted[0].endswith(": - (not measured)") and unrouted[1].endswith("(met)")
    assert "<= 800 LUT4 per multiplier, default 4x4, ECP5: 640 (met)" in text
    assert ">= 2 PEs fit the UP5K at >= 48 MHz: 47.9 (missed)" in text
    # Goals of designs not measured are left out.
    assert len(goals.goal_lines([_row("ecp5-4x4")])) == 2


@pytest.mark.parametrize("only", ["nope", "ecp5-4x4,nope", ","])
def test_unknown_design_is_one_line_exit_2(goals, only, capsys):
    with pytest.raises(SystemExit) as exc:
        goals.main(["--only", only])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error: --only: unknown design" in err
