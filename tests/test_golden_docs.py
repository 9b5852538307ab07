"""docs/weight-format.md stays true: its Python example runs and its stated layouts hold."""

import re
from pathlib import Path

import numpy as np
import pytest

from golden.encoding import entry_spec
from golden.quant import requantize

DOC = Path(__file__).resolve().parents[1] / "docs" / "weight-format.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_example_writes_and_reads_a_file(tmp_path, monkeypatch, capsys):
    blocks = _python_blocks()
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], str(DOC), "exec"), {})
    assert (tmp_path / "example.npz").exists()
    assert capsys.readouterr().out.strip().startswith("['conv1'] (8, 16, 16) int64 sparsity")


def test_entry_word_example():
    text = DOC.read_text()
    spec = entry_spec(4, 64)
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
