"""Shared command-line helpers: argument parsing that fails with one line and exit status 2."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["OneLineParser", "check_output_path", "fail"]


def fail(prog: str, message: str) -> None:
    """Print ``prog: error: message`` on one line to stderr and exit with status 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (no usage block), exit status 2."""

    def error(self, message):
        """Report a bad command line."""
        fail(self.prog, f"{message} (see --help)")


def check_output_path(prog: str, option: str, path: str) -> None:
    """Fail early when ``path`` cannot be written (missing folder, or a folder itself)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        fail(prog, f"{option} {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        fail(prog, f"{option} {path}: is a folder, not a file")
