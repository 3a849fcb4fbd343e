"""Target platforms of an image build and whether this host can build them: natively, or
through qemu-user-static registered with binfmt_misc (agent.platforms, as ImageError)."""

from __future__ import annotations

from pathlib import Path

from agent.platforms import BINFMT, PLATFORMS, UnsupportedPlatform, emulation_problem
from agent.platforms import arch_of as debian_arch  # noqa: F401 (the images' own names)
from agent.platforms import machine_of as machine  # noqa: F401
from agent.platforms import host_platform as _host_platform
from controller.images.engine import ImageError


def host_platform() -> str:
    try:
        return _host_platform()
    except UnsupportedPlatform as exc:
        raise ImageError(str(exc)) from None


def check(platform: str | None, binfmt: Path = BINFMT) -> str:
    """The platform to build (default: the host's); ImageError when this host cannot run its
    binaries, with the commands that fix it."""
    target = platform or host_platform()
    if target not in PLATFORMS:
        raise ImageError(f"--platform {target!r}: use one of {', '.join(PLATFORMS)}")
    problem = emulation_problem(target, binfmt)
    if problem:
        raise ImageError(f"cannot build {target}: {problem}")
    return target
