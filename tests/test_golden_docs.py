"""docs/weight-format.md stays true: its Python example runs and its stated layouts hold."""

import re
from pathlib import Path

import numpy as np
import pytest

from golden.config import DEFAULT
from golden.network import load_network, quantize_input
from golden.protocol import entry_spec
from golden.quant import requantize
from golden.synthetic import synthetic_network
from golden.weights import WeightFileError, validate_arrays

DOC = Path(__file__).resolve().parents[1] / "docs" / "weight-format.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_example_writes_and_reads_a_file(tmp_path, monkeypatch, capsys):
    blocks = _python_blocks()
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[1], str(DOC), "exec"), {})
    assert (tmp_path / "example.npz").exists()
    assert capsys.readouterr().out.strip().startswith("['conv1'] (8, 16, 16) int64 sparsity")


def test_network_example_writes_and_runs_a_version_2_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(_python_blocks()[0], str(DOC), "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[:3] == ["conv:conv0 (16, 8, 8) int8", "conv:conv1 (16, 8, 8) int8",
                         "maxpool2 (16, 4, 4) int8"]
    assert lines[-2] == "linear:fc (10,) int64" and re.fullmatch(r"class \d", lines[-1])
    weights = load_network(tmp_path / "net.npz")
    assert weights.network.shapes == [(16, 8, 8), (16, 8, 8), (16, 4, 4), (32, 4, 4),
                                      (32, 4, 4), (32, 2, 2), (128,), (10,)]
    chain = " ".join(DOC.read_text().split("```\n[1, 8, 8]")[1].split("```")[0].split())
    for shape in weights.network.shapes[:-1]:
        assert str(list(shape)) in chain


def test_worked_example_numbers():
    text = " ".join(DOC.read_text().split())
    weights = synthetic_network(DEFAULT, (1, 2, 3), (1,), (), classes=2)
    weights.network.input_scale = 0.0625
    q = quantize_input(weights, np.array([0.15625, 0.21875, -0.03125, 10, -9]))
    assert q.tolist() == [2, 4, 0, 127, -128]
    assert ("the real pixel values 0.15625, 0.21875, −0.03125, 10 and −9 become 2 (2.5 rounds to "
            "even), 4 (3.5), 0 (−0.5), 127 (160 clipped) and −128 (−144 clipped)") in text
    y = requantize(np.array([[[5, -5, 300]]]), 16384, 15, relu=True)
    assert y.ravel().tolist() == [3, 0, 127]
    assert "maps raw outputs 5, −5 and 300 to 3, 0 and 127" in text


def test_stated_error_messages(tmp_path):
    text = DOC.read_text()
    arrays = synthetic_network(DEFAULT, (1, 8, 8), (16, 16), (1,), classes=10).arrays()
    arrays["network/ops"] = np.array(["conv:conv0", "conv:conv1", "maxpool2", "linear:fc"])
    with pytest.raises(WeightFileError) as info:
        validate_arrays(arrays, "w.npz")
    assert str(info.value) in text
    arrays = synthetic_network(DEFAULT, (1, 8, 8), (16, 16), (1,), classes=10).arrays()
    for key in ("requant_mult", "requant_shift", "relu"):
        del arrays[f"conv1/{key}"]
    with pytest.raises(WeightFileError) as info:
        validate_arrays(arrays, "w.npz")
    assert str(info.value) in text


def test_entry_word_example():
    text = DOC.read_text()
    spec = entry_spec(DEFAULT)          # 4x4 tile, 64 input channels, int8 weights
    assert spec.size == 19 and "a word is 19 bits" in text
    for name in ("value", "position", "channel", "last"):
        field = next(f for f in spec.fields if f.name == name)
        lo = spec.offset(name)
        span = f"[{lo}]" if field.size == 1 else f"[{lo + field.size - 1}:{lo}]"
        assert f"`{name}` {span}" in text.replace("\n", " ")


@pytest.mark.parametrize("y, expected", [(5, 3), (-5, -2)])
def test_stated_tie_rounding(y, expected):
    assert int(requantize(np.array([[[y]]]), 1, 1)[0, 0, 0]) == expected
    assert f"{y / 2:g} → {expected}".replace("-", "−") in DOC.read_text()
