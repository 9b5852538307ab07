"""Helpers of the cocotb benches, imported by the tests and by conftest.py: the small bench
configuration, the per-run cache of built designs, the ``--input-size``, ``--weights`` and
``--config`` options and the weight-file report rows. Importable without pytest (``sim.units``
uses the configuration)."""

from __future__ import annotations

import functools

from golden.config import AcceleratorConfig

__all__ = ["design_cache", "input_size", "record_weight_report", "small_config",
           "weight_file", "weight_file_design", "weight_reports"]

_WEIGHT_REPORTS: list = []


def small_config(tile: str = "4x4", **changes) -> AcceleratorConfig:
    """The configuration of the default benches: 2x2 PEs, at most 8 input and 8 output channels
    (``changes`` replace fields)."""
    return AcceleratorConfig(tile=tile, array=(2, 2), max_in_channels=8,
                             max_out_channels=8).replace(**changes)


def input_size(config) -> tuple[int, int]:
    """The --input-size option as (height, width)."""
    text = config.getoption("--input-size")
    parts = text.lower().split("x")
    if len(parts) == 2 and all(p.isdigit() and int(p) >= 1 for p in parts):
        return int(parts[0]), int(parts[1])
    import pytest
    raise pytest.UsageError(f"--input-size must be HxW with H, W >= 1 (e.g. 16x16), "
                            f"not {text!r}")


@functools.cache
def weight_file(path: str):
    """The weight file of ``--weights`` (loaded once); a bad file is a usage error."""
    import pytest

    from golden.weights import WeightFileError, load_weights
    try:
        return load_weights(path)
    except WeightFileError as exc:
        raise pytest.UsageError(f"--weights: {exc}") from None


@functools.cache
def _design(weights_path: str, config_path: str | None, size: tuple[int, int]):
    import pytest

    from golden.cli import CliError
    from golden.options import read_config
    from sim.layer import file_design
    try:
        fixed = None if config_path is None else read_config(config_path)
        return file_design(weight_file(weights_path), *size, fixed,
                           "chosen for the file" if config_path is None else f"from {config_path}")
    except CliError as exc:
        raise pytest.UsageError(f"--weights {weights_path}: {exc}") from None


def weight_file_design(config):
    """The design that runs the --weights file: (AcceleratorConfig, harness depths, source),
    from --config or chosen for the file."""
    return _design(config.getoption("--weights"), config.getoption("--config"),
                   input_size(config))


@functools.cache
def design_cache(kind: str, key, simulator: str):
    """Build (once per pytest run and configuration) a design: ``kind`` selects the builder."""
    if kind == "accelerator":
        from sim.accel import build_accelerator
        config, depths = key
        return build_accelerator(config, simulator, depths=dict(depths) if depths else None)
    if kind == "transforms":
        from sim.units import build_transform_units
        return build_transform_units(key, simulator)
    raise ValueError(f"unknown design kind {kind!r}")


def record_weight_report(row: dict) -> None:
    """Keep one --weights layer report for the terminal summary."""
    _WEIGHT_REPORTS.append(row)


def weight_reports() -> list:
    """The rows recorded by :func:`record_weight_report`, in order."""
    return list(_WEIGHT_REPORTS)
