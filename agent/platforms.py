"""Container platforms (``linux/amd64``, ``linux/arm64``), this host's, and whether this host
runs another one's binaries: natively, or through qemu-user registered with binfmt_misc.

Shared by the agent (``--platform``: which containers it runs, and whether their time is
emulated) and the controller's image builds."""

from __future__ import annotations

import platform as _platform
from pathlib import Path

#: Docker platform -> (Debian architecture, kernel machine name, qemu binfmt entry).
PLATFORMS = {
    "linux/amd64": ("amd64", "x86_64", "qemu-x86_64"),
    "linux/arm64": ("arm64", "aarch64", "qemu-aarch64"),
}
_MACHINE_TO_PLATFORM = {"x86_64": "linux/amd64", "amd64": "linux/amd64",
                        "aarch64": "linux/arm64", "arm64": "linux/arm64"}
BINFMT = Path("/proc/sys/fs/binfmt_misc")


class UnsupportedPlatform(ValueError):
    """A platform this product does not build or run, or a host it does not know."""


def host_platform(machine: str | None = None) -> str:
    """``linux/amd64`` or ``linux/arm64`` for this host (or the kernel machine name given)."""
    machine = machine or _platform.machine()
    if machine not in _MACHINE_TO_PLATFORM:
        raise UnsupportedPlatform(f"this host's architecture {machine!r} is not supported "
                                  f"(supported: {', '.join(PLATFORMS)})")
    return _MACHINE_TO_PLATFORM[machine]


def known(platform: str) -> str:
    if platform not in PLATFORMS:
        raise UnsupportedPlatform(f"platform {platform!r}: use one of {', '.join(PLATFORMS)}")
    return platform


def emulated(platform: str) -> bool:
    """Whether containers of ``platform`` run under emulation on this host."""
    return known(platform) != host_platform()


def arch_of(platform: str) -> str:
    """The image architecture Docker records for a platform: amd64, arm64."""
    return PLATFORMS[known(platform)][0]


def machine_of(platform: str) -> str:
    """The kernel machine name a platform's binaries report: x86_64, aarch64."""
    return PLATFORMS[known(platform)][1]


def emulation_problem(platform: str, binfmt: Path = BINFMT) -> str | None:
    """None when this host runs ``platform``'s binaries (natively or through a registered,
    enabled qemu handler); else why not, with the commands that fix it."""
    if not emulated(platform):
        return None
    entry = binfmt / PLATFORMS[platform][2]
    try:
        enabled = entry.exists() and "enabled" in entry.read_text(errors="replace")
    except OSError:
        enabled = False
    if enabled:
        return None
    return (f"this {host_platform()} host cannot run {platform} binaries: no qemu binfmt "
            f"handler ({entry} missing or disabled). Fix: apt-get install qemu-user-static "
            "binfmt-support; mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; "
            f"update-binfmts --enable {PLATFORMS[platform][2]}")
