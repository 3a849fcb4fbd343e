"""Which code produced a result: saved with every result, as airbench saves its own source.

In order: ``MLPERF_SOURCE_REVISION`` (containers bake it in at build time); the git commit of the
checkout that holds this package, with ``-dirty`` when tracked files differ from it; the
installed package version; "unknown".
"""

from __future__ import annotations

import os
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGE = "mlperf-edge"


def source_revision() -> str:
    if revision := os.environ.get("MLPERF_SOURCE_REVISION", "").strip():
        return revision
    if revision := _git_revision(Path(__file__).resolve().parents[2]):
        return revision
    try:
        return f"{PACKAGE} {metadata.version(PACKAGE)}"
    except metadata.PackageNotFoundError:
        return "unknown"


def _git_revision(root: Path) -> str | None:
    """``<commit>[-dirty]`` when ``root`` is the top of a git work tree with a commit."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root:
        return None                       # installed somewhere inside another repository
    commit = git("rev-parse", "--verify", "-q", "HEAD")
    if not commit:
        return None                       # a checkout without commits yet
    changes = git("status", "--porcelain", "--untracked-files=no")
    return f"{commit}-dirty" if changes else commit
