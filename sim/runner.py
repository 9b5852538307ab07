"""Build a harnessed design once per configuration and run bench jobs on it through cocotb.

A build directory is keyed by the simulator, a readable design key and a hash of every Verilog
text and build option, under :func:`build_root` (a per-user cache folder,
``~/.cache/sparse-winograd/sim_build`` by default; ``$SIM_BUILD_DIR`` or ``--build-dir`` move
it). A second request for the same design reuses the compiled model (a Verilator build costs a
minute or more on two cores); a lock file serialises concurrent builders of one directory
(pytest-xdist). The stamp file is written last, so a build that fails or is interrupted is
redone from scratch by the next request.

A *job* (JSON) lists runs for :mod:`sim.bench`, the cocotb test module; the bench writes a
result JSON that :func:`run_job` returns. Comparisons with golden happen in the caller, so a
failure is reported by pytest with the golden model's numbers, not in a simulator log.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog

from cocotb_tools.runner import Verilator, get_runner

from .harness import RAM_SOURCE, StreamHarness
from .tools import TIMESCALE, find_simulator, simulator_build_args, simulator_build_env

__all__ = ["BUILD_DIR_ENV", "BuiltDesign", "REPO_ROOT", "SimulationError", "build_harnessed",
           "build_plain", "build_root", "default_build_root", "run_bench", "run_job",
           "set_build_root"]

REPO_ROOT = Path(__file__).resolve().parent.parent
HARNESS_TOP = "stream_harness"
#: Verilator control file: VPI access to the harness only (see :class:`_LeanVerilator`).
VERILATOR_CONTROL = Path(__file__).resolve().parent / "hdl" / "harness.vlt"


#: Icarus waveform dump (Verilog-2005): FST to the file named by +dumpfile_path=...
_ICARUS_DUMP = """module sim_waves_dump;
  reg [8*4096-1:0] path;
  initial begin
    if ($value$plusargs("dumpfile_path=%s", path)) begin
      $dumpfile(path);
      $dumpvars(0, {top});
    end
  end
endmodule
"""


class _LeanVerilator(Verilator):
    """cocotb's Verilator runner without ``--public-flat-rw``.

    Making every signal of the device public costs minutes of C++ compilation and most of the
    simulation speed; :data:`VERILATOR_CONTROL` makes just the harness public instead.
    """

    def _build_command(self):
        cmds = super()._build_command()
        cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
        return cmds


def _get_runner(simulator: str):
    return _LeanVerilator() if simulator == "verilator" else get_runner(simulator)


class SimulationError(RuntimeError):
    """A build or a simulation failed; the message names the log to read."""


@dataclass(frozen=True)
class BuiltDesign:
    """A compiled harnessed design.

    Members
    -------
    simulator : str
        "verilator" or "icarus".
    build_dir : Path
        Where the model lives.
    top : str
        Verilog top (the harness).
    harness : StreamHarness or None
        The harness it was built from (stream names, widths, depths, pause period); None for
        a device built on its own (:func:`build_plain`).
    waves : bool
        Built with FST tracing.
    build_seconds : float
        Wall time of the build (0 when reused).
    """

    simulator: str
    build_dir: Path
    top: str
    harness: StreamHarness
    waves: bool
    build_seconds: float


#: The environment variable that moves the build cache (``--build-dir`` of the tools wins).
BUILD_DIR_ENV = "SIM_BUILD_DIR"
_build_root_override: Path | None = None


def default_build_root() -> Path:
    """The per-user cache folder of the builds: ``$XDG_CACHE_HOME/sparse-winograd/sim_build``,
    ``$XDG_CACHE_HOME`` defaulting to ``~/.cache`` (XDG base directories)."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache):        # unset, empty or relative: ignored, as XDG says
        cache = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "sparse-winograd" / "sim_build"


def set_build_root(path: str | os.PathLike | None) -> None:
    """Use ``path`` as the build root from now on in this process (None: back to the
    environment); the tools' ``--build-dir`` option calls it."""
    global _build_root_override
    _build_root_override = None if path is None else Path(path)


def build_root() -> Path:
    """Root of all build directories: :func:`set_build_root`'s, else ``$SIM_BUILD_DIR``, else
    :func:`default_build_root` (never the source checkout)."""
    if _build_root_override is not None:
        return _build_root_override.resolve()
    return Path(os.environ.get(BUILD_DIR_ENV) or default_build_root()).resolve()


def _ensure_importable():
    # cocotb's runner hands sys.path to the simulator as PYTHONPATH; the bench module
    # (sim.bench) must resolve from the simulator's working directory too.
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.append(root)


def _build(key: str, texts: dict, top: str, simulator: str, waves: bool,
           control: str) -> tuple[Path, float]:
    """Compile Verilog ``texts`` (file name -> text) with top ``top``, or reuse the build.

    Returns the build directory and the build's wall time (0 when reused).
    """
    info = find_simulator(simulator)
    if not info.available:
        raise SimulationError(f"{simulator} is not available: {info.reason}")
    control = control if simulator == "verilator" else ""
    build_args = simulator_build_args(simulator, waves)
    runner_waves = waves
    if simulator == "icarus" and waves:
        # cocotb's own dump module is SystemVerilog, which the -g2005 build cannot read.
        texts = {**texts, "sim_waves_dump.v": _ICARUS_DUMP.format(top=top)}
        build_args = [*build_args, "-s", "sim_waves_dump"]
        runner_waves = False
    digest = hashlib.sha256()
    # The directory name carries the key (and so the top); the hash covers every text.
    for part in (*texts.values(), control, json.dumps(build_args), info.version, str(waves)):
        digest.update(part.encode())
        digest.update(b"\0")
    safe_key = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)
    build_dir = build_root() / simulator / f"{safe_key}-{digest.hexdigest()[:12]}"
    build_dir.mkdir(parents=True, exist_ok=True)
    stamp = build_dir / "build.stamp"
    with open(build_dir / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():
            return build_dir, 0.0
        # No stamp: a build that failed or was interrupted; start again from nothing (make
        # would trust a half-written object file that is newer than its source).
        for leftover in build_dir.iterdir():
            if leftover.name != "build.lock":
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
        src = build_dir / "src"
        src.mkdir(exist_ok=True)
        files = []
        if control:
            path = src / VERILATOR_CONTROL.name
            path.write_text(control)
            files.append(path)
        for name, text in texts.items():
            path = src / name
            path.write_text(text)
            files.append(path)
        runner = _get_runner(simulator)
        log = build_dir / "build.log"
        start = time.perf_counter()
        saved = {k: os.environ.get(k) for k in simulator_build_env(simulator)}
        os.environ.update(simulator_build_env(simulator))
        try:
            runner.build(sources=files, hdl_toplevel=top, build_dir=build_dir,
                         build_args=build_args, timescale=TIMESCALE, waves=runner_waves,
                         always=True, log_file=log)
        except (SystemExit, Exception) as exc:
            raise SimulationError(f"{simulator} build of {key} failed ({exc}); see {log}") \
                from None
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        seconds = time.perf_counter() - start
        stamp.write_text(json.dumps({"key": key, "seconds": seconds}) + "\n")
        return build_dir, seconds


def build_harnessed(key: str, device_verilog: str, device_name: str, harness: StreamHarness,
                    simulator: str = "verilator", waves: bool = False) -> BuiltDesign:
    """Compile ``device_verilog`` inside ``harness`` with ``simulator`` (or reuse the build).

    Parameters
    ----------
    key : str
        Readable name of the design configuration (part of the directory name).
    device_verilog : str
        Verilog text defining module ``device_name``.
    harness : StreamHarness
        Harness instantiating ``device_name``.
    simulator : str
        "verilator" or "icarus".
    waves : bool
        Build with FST waveform support.
    """
    if harness.device_name != device_name:
        raise ValueError(f"harness wraps {harness.device_name!r}, not {device_name!r}")
    texts = {f"{device_name}.v": device_verilog,
             f"{HARNESS_TOP}.v": verilog.convert(harness, name=HARNESS_TOP, emit_src=False),
             RAM_SOURCE.name: RAM_SOURCE.read_text()}
    build_dir, seconds = _build(key, texts, HARNESS_TOP, simulator, waves,
                                VERILATOR_CONTROL.read_text())
    return BuiltDesign(simulator, build_dir, HARNESS_TOP, harness, waves, seconds)


def build_plain(key: str, top_verilog: str, top: str, simulator: str = "verilator",
                waves: bool = False) -> BuiltDesign:
    """Compile a device on its own (no harness): its bench drives its ports from Python.

    Every signal of ``top``'s own module is visible to the bench; submodules stay private.
    """
    control = f'`verilator_config\npublic_flat_rw -module "{top}" -var "*"\n'
    build_dir, seconds = _build(key, {f"{top}.v": top_verilog}, top, simulator, waves, control)
    return BuiltDesign(simulator, build_dir, top, None, waves, seconds)


class _ProgressWatcher:
    """Forwards the bench's progress lines to a callback from a background thread."""

    def __init__(self, path: Path, callback, interval: float = 1.0):
        self._path, self._callback, self._interval = path, callback, interval
        self._seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _poll(self):
        try:
            lines = self._path.read_text().splitlines()
        except OSError:
            return
        for line in lines[self._seen:]:
            try:
                self._callback(json.loads(line))
            except ValueError:      # a line being written; read it next time
                return
            self._seen += 1

    def _watch(self):
        while not self._stop.wait(self._interval):
            self._poll()

    def stop(self):
        """Stop watching (after a last look at the file)."""
        self._stop.set()
        self._thread.join()
        self._poll()


def harness_description(harness: StreamHarness) -> dict:
    """What the bench needs to know about a harness (JSON-able)."""
    return {"sources": harness.sources, "sinks": harness.sinks, "depths": harness.depths,
            "outputs": harness.outputs, "pause_words": harness.pause_words}


def run_job(design: BuiltDesign, runs: list[dict], *, clock_ns: int = 10,
            waves: str | os.PathLike | None = None, name: str = "job",
            progress=None) -> list[dict]:
    """Run ``runs`` (see :mod:`sim.bench`) in one simulator process and return their results.

    ``waves`` names an FST file to write (the design must be built with ``waves=True``);
    ``progress(report)`` is called with the bench's progress reports on long runs.

    Raises
    ------
    SimulationError
        When the simulator or the bench fails (the message names the log).
    """
    job = {"harness": harness_description(design.harness), "clock_ns": clock_ns, "runs": runs}
    return run_bench(design, "sim.bench", job, waves=waves, name=name,
                     progress=progress)["runs"]


def run_bench(design: BuiltDesign, test_module: str, job: dict, *,
              waves: str | os.PathLike | None = None, name: str = "job",
              progress=None) -> dict:
    """Run cocotb ``test_module`` on ``design`` with ``job`` (JSON, as ``$SIM_JOB``) and return
    the result it writes to ``$SIM_RESULT``. The run's directory (job, result, log) is removed
    after a successful run and kept for inspection otherwise.

    Raises
    ------
    SimulationError
        When the simulator or the bench fails (the message names the log).
    """
    if waves is not None and not design.waves:
        raise ValueError("waves need a design built with waves=True")
    _ensure_importable()
    runner = _get_runner(design.simulator)
    test_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=design.build_dir))
    job_path, result_path = test_dir / "job.json", test_dir / "result.json"
    job_path.write_text(json.dumps(job))
    log = test_dir / "sim.log"
    progress_path = test_dir / "progress.jsonl"
    env = {"SIM_JOB": str(job_path), "SIM_RESULT": str(result_path),
           "SIM_PROGRESS": str(progress_path)}
    watcher = _ProgressWatcher(progress_path, progress) if progress else None
    # cocotb's runner exits the process on failure when it sees pytest; we report ourselves.
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    test_args, plusargs = [], []
    if waves is not None:
        fst = str(Path(waves).resolve())
        if design.simulator == "verilator":
            test_args = ["--trace-file", fst]
        else:
            plusargs = [f"+dumpfile_path={fst}"]
    try:
        runner.test(test_module=test_module, hdl_toplevel=design.top, hdl_toplevel_lang="verilog",
                    build_dir=design.build_dir, test_dir=test_dir, extra_env=env,
                    timescale=TIMESCALE, waves=waves is not None, log_file=log,
                    results_xml=str(test_dir / "results.xml"), test_args=test_args,
                    plusargs=plusargs)
    except (SystemExit, Exception) as exc:
        raise SimulationError(f"{design.simulator} simulation failed ({exc}); see {log}") \
            from None
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
        if watcher is not None:
            watcher.stop()
    if not result_path.exists():
        raise SimulationError(f"the bench wrote no result; see {log}")
    result = json.loads(result_path.read_text())
    if result.get("error"):
        raise SimulationError(f"bench error: {result['error']}; see {log}")
    shutil.rmtree(test_dir, ignore_errors=True)
    return result
