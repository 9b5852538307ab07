"""pytest options and fixtures of the cocotb benches.

Options::

    --simulators verilator,icarus   simulators to run (default: both; a missing one is skipped)
    --weights FILE.npz              run every layer of a weight file through the RTL
    --input-size HxW                input size for --weights (default 16x16)
    --config DESIGN.json            with --weights: run exactly this design (a manifest written
                                    by hw.generate); default: one chosen for the file
    --build-dir DIR                 simulator build cache (default: $SIM_BUILD_DIR, else
                                    ~/.cache/sparse-winograd/sim_build)

Every design is built once per configuration and simulator (``sim.runner`` caches builds
under :func:`sim.runner.build_root`; :func:`sim.testing.design_cache` also keeps them per run).
"""

from __future__ import annotations

import pytest

from sim.testing import input_size, weight_file, weight_file_design, weight_reports
from sim.tools import BUILD_DIR_HELP, SIMULATORS, find_simulator


def pytest_addoption(parser):
    group = parser.getgroup("sim", "cocotb simulation of the generated RTL")
    group.addoption("--simulators", default=",".join(SIMULATORS),
                    help="comma-separated simulators to run: verilator, icarus (default both)")
    group.addoption("--weights", default=None, metavar="FILE.npz",
                    help="run every layer of this weight file through the RTL")
    group.addoption("--input-size", default="16x16", metavar="HxW",
                    help="input height x width for --weights (default 16x16)")
    group.addoption("--config", default=None, metavar="DESIGN.json",
                    help="with --weights: run exactly this design, a manifest written by "
                         "hw.generate (default: a design chosen for the file, named in the "
                         "session header)")
    group.addoption("--build-dir", default=None, metavar="DIR", help=BUILD_DIR_HELP)


def _selected(config) -> list[str]:
    names = [s.strip() for s in config.getoption("--simulators").split(",") if s.strip()]
    bad = [s for s in names if s not in SIMULATORS]
    if bad:
        raise pytest.UsageError(f"--simulators: unknown simulator(s) {', '.join(bad)}; "
                                f"choose from {', '.join(SIMULATORS)}")
    return names


def pytest_configure(config):
    _selected(config)
    if config.getoption("--build-dir") is not None:
        from sim.runner import set_build_root
        set_build_root(config.getoption("--build-dir"))
    input_size(config)
    if config.getoption("--weights") is not None:
        weight_file_design(config)              # a bad file or design stops the session here
    elif config.getoption("--config") is not None:
        raise pytest.UsageError("--config needs --weights FILE.npz (it names the design that "
                                "runs the weight file)")
    config.addinivalue_line("markers", "simulators(*names): run this bench only on these "
                            "simulators (default: every selected simulator)")


def pytest_report_header(config):
    if config.getoption("--weights") is None:
        return None
    from sim.layer import describe
    design, _, source = weight_file_design(config)
    return f"--weights {config.getoption('--weights')}: design {describe(design)}, {source}"


def pytest_generate_tests(metafunc):
    if "weight_layer" in metafunc.fixturenames:
        path = metafunc.config.getoption("--weights")
        if path is None:
            metafunc.parametrize("weight_layer", [pytest.param(
                None, marks=pytest.mark.skip(reason="no --weights FILE.npz given"))],
                ids=["no-weights"])
        else:
            weights = weight_file(path)
            input_size(metafunc.config)
            metafunc.parametrize("weight_layer", [(weights, name) for name in weights.names],
                                 ids=weights.names)
    if "simulator" in metafunc.fixturenames:
        params = []
        marker = metafunc.definition.get_closest_marker("simulators")
        only = marker.args if marker else None
        for name in _selected(metafunc.config):
            if only is not None and name not in only:
                continue
            info = find_simulator(name)
            marks = [] if info.available else [pytest.mark.skip(reason=info.reason)]
            params.append(pytest.param(name, marks=marks, id=name))
        metafunc.parametrize("simulator", params)


def pytest_terminal_summary(terminalreporter):
    reports = weight_reports()
    if not reports:
        return
    tr = terminalreporter
    tr.section("RTL run of the weight file")
    first = reports[0]
    positions = len(first["skipped_macs_per_position"])
    tr.write_line(f"{'layer':16} {'cycles':>9} {'model':>9} {'mult':>5} {'nonzero MACs':>13} "
                  f"{'util':>6}  result   skipped MACs per Winograd position (0..{positions - 1})")
    for row in reports:
        tr.write_line(f"{row['name']:16} {row['cycles']:9d} {row['model_cycles']:9d} "
                      f"{row['multipliers']:5d} {row['nonzero_macs']:13d} "
                      f"{row['utilisation']:6.1%}  {'pass' if row['passed'] else 'FAIL':7}  "
                      f"{' '.join(str(v) for v in row['skipped_macs_per_position'])}")
