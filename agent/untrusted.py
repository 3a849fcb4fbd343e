"""Reading what a reference run wrote to its job folder. A container writes that folder, so
everything in it is untrusted: a file may be huge, or a symlink to something of the host's
that the agent (often root) can read or write. Open without following links, check it is a
regular file, and bound what is read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent.errors import JobError

#: Largest result.json the agent reads (the JobResult it goes into is bounded too).
MAX_RESULT_BYTES = 256 * 1024


def _open_regular(path: Path, flags: int, mode: int = 0o644) -> int:
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0), mode)
    except FileNotFoundError:
        raise
    except OSError as exc:          # ELOOP: a symlink
        raise JobError(f"{path.name} in the job folder cannot be opened safely "
                       f"({exc.strerror}): is it a link?") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise JobError(f"{path.name} in the job folder is not a regular file")
    return fd


def read_bounded(path: Path, limit: int = MAX_RESULT_BYTES) -> bytes:
    """The bytes of ``path`` (a regular file, not a link), refusing more than ``limit``.
    FileNotFoundError when it is absent; JobError when it is unsafe or too large."""
    fd = _open_regular(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise JobError(f"{path.name} is larger than {limit} bytes")
    return data


def append_text(path: Path, text: str) -> None:
    """Append to ``path`` (created if absent), never through a link."""
    fd = _open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with os.fdopen(fd, "a") as fh:
        fh.write(text)
