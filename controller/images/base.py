"""``images base``: a Debian base image made here, without any registry: ``debootstrap``
into a folder, then that folder imported as an image (``docker import``).

Engine 20.10 ignores the platform of an imported image, so a foreign one (arm64 on x86) is
relabelled through a save/edit/load round trip."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from controller.images import platforms
from controller.images.engine import ImageError, connect

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
#: What every image needs on top of minbase: Python 3.11 (bookworm) with venv, and CA roots.
PACKAGES = ["python3", "python3-venv", "ca-certificates"]
#: Trimmed after bootstrap (~124 MB instead of ~160 MB).
TRIM = ["var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man",
        "usr/share/locale", "usr/share/info"]


def base_tag(platform: str, suite: str = SUITE) -> str:
    """The stable name of the base image for a platform, e.g. mlperf-edge/base:bookworm-amd64."""
    return f"mlperf-edge/base:{suite}-{platforms.debian_arch(platform)}"


def exists(tag: str, client=None) -> bool:
    import docker

    client = client or connect()
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def make_base(platform: str | None = None, suite: str = SUITE, mirror: str = MIRROR,
              tag: str | None = None, log=print) -> str:
    """Bootstrap Debian ``suite`` for ``platform`` and import it as ``tag``; returns the tag."""
    platform = platforms.check(platform)
    tag = tag or base_tag(platform, suite)
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed: apt-get install debootstrap")
    client = connect()
    arch = platforms.debian_arch(platform)
    foreign = platform != platforms.host_platform()
    with tempfile.TemporaryDirectory(prefix="mlperf-base-") as tmp:
        root = Path(tmp) / "root"
        cmd = ["debootstrap", "--variant=minbase", f"--arch={arch}",
               f"--include={','.join(PACKAGES)}"] + (["--foreign"] if foreign else []) + \
              [suite, str(root), mirror]
        log(f"debootstrap {suite} ({arch}) from {mirror} ...")
        _run(cmd)
        if foreign:
            # Second stage runs arm64 binaries: needs the qemu binfmt handler checked above.
            _run(["chroot", str(root), "/debootstrap/debootstrap", "--second-stage"])
        for rel in TRIM:
            shutil.rmtree(root / rel, ignore_errors=True)
        log(f"importing as {tag} ...")
        proc = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."],
                                stdout=subprocess.PIPE)
        try:
            repo, _, version = tag.rpartition(":")
            client.api.import_image_from_stream(proc.stdout, repository=repo, tag=version)
        finally:
            proc.stdout.close()
            proc.wait()
    if foreign:
        _relabel(client, tag, arch)
    return tag


def _relabel(client, tag: str, arch: str) -> None:
    """Set the image config's architecture (engine 20.10 keeps the host's on import)."""
    blob = b"".join(client.images.get(tag).save(named=True))
    src = tarfile.open(fileobj=io.BytesIO(blob))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        manifest = json.load(src.extractfile("manifest.json"))
        config_name = manifest[0]["Config"]
        for member in src.getmembers():
            data = src.extractfile(member) if member.isfile() else None
            if member.name == config_name:
                config = json.load(data)
                config["architecture"] = arch
                if arch == "arm64":
                    config["variant"] = "v8"
                raw = json.dumps(config).encode()
                member.size = len(raw)
                data = io.BytesIO(raw)
            dst.addfile(member, data)
    client.images.load(out.getvalue())


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise ImageError(f"{cmd[0]} failed (exit {proc.returncode}): {tail}")
