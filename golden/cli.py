"""The command-line layer every tool shares (NumPy only: no simulator, no PyTorch).

One contract for ``hw.generate``, ``golden.run``, ``sim.layer``, ``train.prune`` and
``train.import_state_dict``:

* bad input prints ``<prog>: error: <one line>`` on stderr (``prog`` is the module, e.g.
  ``sim.layer``) and exits with status 2, never with a traceback; Ctrl-C (SIGINT) prints
  ``<prog>: interrupted`` and exits with status 130, SIGTERM likewise with status 143;
* the summary goes to stdout, progress to stderr;
* outputs are written atomically (a temporary file next to the target, then renamed); an
  output that names an input is refused, and a failed or interrupted run leaves no output
  behind (neither a partial file nor an older one that would pass for its result);
* input arrays are read within documented limits, checked from their headers
  (:mod:`golden.safeio`);
* the accelerator options (``--tile``, ``--array``, ``--max-channels`` ...) mean the same in
  every tool, and ``--config DESIGN.json`` reads a manifest written by ``hw.generate``
  (:mod:`golden.options`).

A tool builds a :class:`OneLineParser`, raises :class:`CliError` for anything else that is
wrong, and runs its body through :func:`run_main`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable

import numpy as np

from .safeio import ArrayReadError, read_npy
from .weights import LayerWeights, WeightFileError, load_weights

__all__ = ["CliError", "OneLineParser", "Terminated", "atomic_output", "check_input_fits",
           "check_output_dir", "check_output_path", "claim_output", "load_input", "load_layer",
           "one_line", "progress", "read_array", "run_main", "save_npy", "write_json",
           "write_text"]


class CliError(ValueError):
    """A bad command line or input file; the message is one line for stderr."""


def one_line(exc: BaseException | str) -> str:
    """The text of ``exc`` with all whitespace runs (newlines included) made single spaces."""
    return " ".join(str(exc).split())


def _print_error(prog: str, message) -> None:
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr, flush=True)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are ``<prog>: error: <message>``, exit status 2.

    Parameters
    ----------
    prog : str, optional
        The tool's module, e.g. ``"sim.layer"`` (a leading ``"python -m "`` is dropped). Usage
        lines show ``python -m <prog>``; error lines start with ``<prog>: error:``.
    **kwargs
        Passed on to :class:`argparse.ArgumentParser`.
    """

    def __init__(self, prog: str | None = None, **kwargs):
        if prog is None:
            prog = os.path.basename(sys.argv[0])
        self.tool = prog.removeprefix("python -m ")
        super().__init__(prog=f"python -m {self.tool}", **kwargs)

    def error(self, message):
        """Report a bad command line on one line and exit with status 2 (no usage block)."""
        _print_error(self.tool, message)
        raise SystemExit(2)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that every cleanup runs."""


def _on_sigterm(signum, frame):
    raise Terminated()


# Output files of the running tool (check_output_path) and those it has written (atomic_output).
_claimed: list[str] = []
_written: set[str] = set()


def claim_output(path) -> None:
    """Make ``path`` an output of the running tool: when the run fails or is interrupted it is
    removed (an older file there included), so that nothing there passes for this run's result.
    :func:`check_output_path` claims the files it checks."""
    _claimed.append(os.path.abspath(os.fspath(path)))


def _discard_outputs(keep_written: bool) -> None:
    for path in _claimed:
        if keep_written and path in _written:
            continue
        with contextlib.suppress(OSError):
            if os.path.islink(path) or os.path.isfile(path):
                os.unlink(path)


def run_main(prog: str, body: Callable[[], int | None]) -> int:
    """Run a tool's ``body`` and return its exit status.

    :class:`CliError` becomes one error line and status 2, Ctrl-C (SIGINT) one line and status
    130, SIGTERM the same line and status 143; a parser's exit (``--help``, a bad argument
    already reported) returns its status. On any failure the claimed outputs (see
    :func:`claim_output`) are removed; on a non-zero status those this run did not write.
    """
    _claimed.clear()
    _written.clear()
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        try:
            status = body()
        except BaseException:
            _discard_outputs(keep_written=False)
            raise
        status = 0 if status is None else status
        if status != 0:
            _discard_outputs(keep_written=True)
        return status
    except CliError as exc:
        _print_error(prog, exc)
        return 2
    except KeyboardInterrupt as exc:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return 143 if isinstance(exc, Terminated) else 130
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        _print_error(prog, exc.code)
        return 2
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def progress(text: str) -> None:
    """Print one progress line on stderr (the summary alone goes to stdout)."""
    print(text, file=sys.stderr, flush=True)


# -- paths -----------------------------------------------------------------------------------

def check_output_path(path: str, flag: str = "--out", ext: str | None = ".npy",
                      inputs=()) -> None:
    """Refuse, before any work, an output file path without ``ext`` (when given), that is a
    directory, whose directory does not exist or that names one of ``inputs`` (pairs of flag
    and path; the same file under another name or through a link counts), with a
    :class:`CliError` naming ``flag``; then :func:`claim_output` it."""
    path = os.fspath(path)
    if ext is not None and not path.endswith(ext):
        raise CliError(f"{flag} {path}: must end in {ext}")
    if os.path.isdir(path):
        raise CliError(f"{flag} {path}: is a directory")
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise CliError(f"{flag} {path}: directory {parent} does not exist")
    for input_flag, input_path in inputs:
        if input_path is not None and _same_file(path, os.fspath(input_path)):
            raise CliError(f"{flag} {path}: names the input {input_flag} {input_path}; "
                           f"choose another output file")
    claim_output(path)


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:         # one of them does not exist (yet)
        return False


def check_output_dir(path: str, flag: str = "--out") -> None:
    """Refuse an output directory that is a file, or below one (:class:`CliError`)."""
    path = os.fspath(path)
    probe = path
    while probe and not os.path.exists(probe):
        parent = os.path.dirname(probe)
        probe = parent if parent != probe else ""
    if probe and not os.path.isdir(probe):
        raise CliError(f"{flag} {path}: {probe} is a file, not a directory")


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to ``path`` (same extension, as NumPy appends its own);
    when the block succeeds it replaces ``path``, else it is removed. Raises OSError."""
    path = os.fspath(path)
    folder, base = os.path.split(path)
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.tmp{os.path.splitext(base)[1]}")
    try:
        yield tmp
        os.replace(tmp, path)       # a symlink at ``path`` is replaced, never written through
        _written.add(os.path.abspath(path))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _write(path, flag: str, write: Callable[[str], None]) -> None:
    try:
        with atomic_output(path) as tmp:
            write(tmp)
    except OSError as exc:
        raise CliError(f"{flag} {path}: cannot write ({exc.strerror or exc})") from None


def write_text(path, text: str, flag: str = "--out") -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) atomically; CliError naming ``flag``."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    _write(path, flag, write)


def write_json(path, obj, flag: str = "--report") -> None:
    """Write ``obj`` as indented JSON atomically; CliError naming ``flag``."""
    write_text(path, json.dumps(obj, indent=2) + "\n", flag)


def save_npy(path, array: np.ndarray, flag: str = "--out") -> None:
    """Save ``array`` as a ``.npy`` file (never pickled) atomically; CliError naming ``flag``."""
    _write(path, flag, lambda tmp: np.save(tmp, array, allow_pickle=False))


# -- input files -----------------------------------------------------------------------------

def read_array(path: str, flag: str) -> np.ndarray:
    """Read one ``.npy`` array within :data:`golden.safeio.MAX_ARRAY_BYTES` (its header checked
    before allocating), never unpickling; :class:`CliError` naming ``flag`` and ``path``."""
    if not os.path.exists(path):
        raise CliError(f"{flag} {path}: no such file")
    if os.path.isdir(path):
        raise CliError(f"{flag} {path}: is a directory, not a .npy file")
    try:
        return read_npy(path)
    except ArrayReadError as exc:
        raise CliError(f"{flag} {path}: {exc.reason}") from None
    except OSError as exc:
        raise CliError(f"{flag} {path}: cannot be read ({exc.strerror or exc})") from None


def load_input(path: str, flag: str = "input") -> np.ndarray:
    """Read an int8 activation array [C, H, W] or [N, C, H, W] from a ``.npy`` file, never
    unpickling (:class:`CliError` for a missing, unreadable, mistyped, empty or too large
    array: :func:`read_array`)."""
    x = read_array(path, flag)
    if x.dtype != np.int8:
        raise CliError(f"{flag} {path}: dtype must be int8, not {x.dtype}")
    if x.ndim not in (3, 4):
        raise CliError(f"{flag} {path}: shape must be [C, H, W] or [N, C, H, W], "
                       f"not {list(x.shape)}")
    if x.size == 0:
        raise CliError(f"{flag} {path}: is empty (shape {list(x.shape)})")
    return x


def load_layer(weights_path: str, name: str) -> LayerWeights:
    """Layer ``name`` of the weight file ``weights_path`` (validated, never unpickled);
    :class:`CliError` naming the file, layer and key of a problem, or the layers there are."""
    try:
        weights = load_weights(weights_path)
    except WeightFileError as exc:
        raise CliError(f"weights {one_line(exc)}") from None
    if name not in weights:
        raise CliError(f"weights {weights_path}: no layer '{name}'; layers are: "
                       f"{', '.join(weights.names)}")
    return weights[name]


def check_input_fits(x: np.ndarray, layer: LayerWeights, path: str) -> None:
    """Refuse an input whose channel count or size does not suit ``layer`` (CliError)."""
    c, h, w = x.shape[-3:]
    if c != layer.in_channels:
        raise CliError(f"input {path}: has {c} channels (shape {list(x.shape)}), layer "
                       f"'{layer.name}' expects {layer.in_channels}")
    pad = layer.padding
    if h + 2 * pad < layer.r or w + 2 * pad < layer.r:
        raise CliError(f"input {path}: {h}x{w} with padding {pad} is smaller than the "
                       f"{layer.r}x{layer.r} kernel of layer '{layer.name}'")
