"""Hypothesis fuzzing of the weight-file reader (v1 and v2 keys) and the tools' inputs: at least
500 generated corrupt or hostile files, each a clean refusal, in a child process whose address
space is capped so that an unbounded allocation fails this test instead of the machine."""

import json
import os
import subprocess
import sys
from pathlib import Path

from hostile import MEMORY_CEILING

FUZZ = Path(__file__).resolve().parent / "fuzz_inputs.py"
_CAPPED = ("import resource, runpy, sys; "
           f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CEILING}, {MEMORY_CEILING})); "
           "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def test_fuzzed_files_are_refused_cleanly_under_a_memory_ceiling(tmp_path):
    result = subprocess.run([sys.executable, "-c", _CAPPED, str(FUZZ), str(tmp_path), "400"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    # Hypothesis prints the shrunk failing file; its first and last lines say what broke.
    assert result.returncode == 0, result.stderr[:3000] + "\n...\n" + result.stderr[-3000:]
    counts = json.loads(result.stdout.splitlines()[-1])
    files = counts["weights"] + counts["golden.run"] + counts["manifest"]
    assert files >= 500, counts
    assert counts["golden.network"] == counts["golden.run"]


def test_the_ceiling_catches_an_unbounded_allocation():
    result = subprocess.run([sys.executable, "-c", _CAPPED.replace("runpy.run_path(sys.argv[0],"
                                                                   " run_name='__main__')",
                                                                   "bytearray(2**31)")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "MemoryError" in result.stderr
