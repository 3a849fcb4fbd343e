"""Target platforms (``linux/amd64``, ``linux/arm64``) and whether this host can build them:
natively, or through qemu-user-static registered with binfmt_misc."""

from __future__ import annotations

import platform as _platform
from pathlib import Path

from controller.images.engine import ImageError

#: Docker platform -> (Debian architecture, kernel machine name, qemu binfmt entry).
PLATFORMS = {
    "linux/amd64": ("amd64", "x86_64", "qemu-x86_64"),
    "linux/arm64": ("arm64", "aarch64", "qemu-aarch64"),
}
_MACHINE_TO_PLATFORM = {"x86_64": "linux/amd64", "amd64": "linux/amd64",
                        "aarch64": "linux/arm64", "arm64": "linux/arm64"}


def host_platform() -> str:
    machine = _platform.machine()
    if machine not in _MACHINE_TO_PLATFORM:
        raise ImageError(f"this host's architecture {machine!r} is not supported "
                         f"(supported: {', '.join(PLATFORMS)})")
    return _MACHINE_TO_PLATFORM[machine]


def check(platform: str | None, binfmt: Path = Path("/proc/sys/fs/binfmt_misc")) -> str:
    """The platform to build (default: the host's); ImageError when this host cannot run its
    binaries, with the commands that fix it."""
    target = platform or host_platform()
    if target not in PLATFORMS:
        raise ImageError(f"--platform {target!r}: use one of {', '.join(PLATFORMS)}")
    if target == host_platform():
        return target
    entry = binfmt / PLATFORMS[target][2]
    if not entry.exists() or "enabled" not in entry.read_text(errors="replace"):
        raise ImageError(
            f"cannot build {target} on this {host_platform()} host: no qemu binfmt handler "
            f"({entry} missing or disabled). Fix: apt-get install qemu-user-static "
            "binfmt-support; mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; "
            f"update-binfmts --enable {PLATFORMS[target][2]}")
    return target


def debian_arch(platform: str) -> str:
    return PLATFORMS[platform][0]
