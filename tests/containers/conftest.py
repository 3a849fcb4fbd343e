"""Real container parts for these tests: the Docker engine (started if it is not running),
the locally made Debian base image, one CPU image built from containers/, and Debian's
docker-registry on a free loopback port. Images keep stable tags, so a second run of the
suite reuses the engine's layer cache (a warm build takes seconds)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import cli, free_port, wait_port

#: The profile whose image the tests build: platform auto, so any host can build it.
PROFILE = "generic-linux"


def _engine_up() -> bool:
    try:
        import docker
        docker.from_env(timeout=10).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def engine():
    """A Docker client for the local engine; starts ``dockerd`` (as root) when none answers."""
    import docker

    if not _engine_up():
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            pytest.fail("the Docker engine is not installed: `make test` installs it "
                        "(apt-get install docker.io)")
        log = open("/var/log/mlperf-dockerd.log", "a")
        subprocess.Popen(["setsid", dockerd], stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not _engine_up():
            if time.monotonic() > deadline:
                pytest.fail("dockerd did not answer within 60 s; see "
                            "/var/log/mlperf-dockerd.log")
            time.sleep(0.5)
    return docker.from_env(timeout=600)


@pytest.fixture(scope="session")
def base_image(engine) -> str:
    """mlperf-edge/base:bookworm-ARCH, made with `images base` when the engine lacks it."""
    from controller.images.base import base_tag
    from controller.images.platforms import host_platform

    tag = base_tag(host_platform())
    if not engine.images.list(name=tag):
        cli("mlperf-controller", "images", "base", check=True, timeout=900)
    return tag


@pytest.fixture(scope="session")
def cpu_image(base_image) -> dict:
    """The generic-linux (torch CPU) image built from containers/ through the CLI."""
    proc = cli("mlperf-controller", "images", "build", "--profile", PROFILE, "--json",
               check=True, timeout=1500)
    (built,) = json.loads(proc.stdout)
    return built


class Registry:
    """Debian's docker-registry serving from a folder on 127.0.0.1:PORT."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("docker-registry")
        if binary is None:
            pytest.fail("docker-registry is not installed: `make test` installs it "
                        "(apt-get install docker-registry)")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        conf = workdir / "registry.yml"
        conf.write_text(f"version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem:\n"
                        f"    rootdirectory: {workdir / 'data'}\n  delete: {{enabled: true}}\n"
                        f"http:\n  addr: {self.host}\n")
        self.log = open(workdir / "registry.log", "w")
        self.proc = subprocess.Popen([binary, "serve", str(conf)], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_port(self.port)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory, engine) -> Iterator[Registry]:
    reg = Registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.close()
    import docker

    for image in engine.images.list():               # this registry's names die with it
        for ref in image.tags + (image.attrs.get("RepoDigests") or []):
            if ref.startswith(reg.host + "/"):
                try:
                    engine.images.remove(ref)
                except docker.errors.ImageNotFound:  # went with the tag removed before it
                    pass


@pytest.fixture(scope="session")
def pushed(cpu_image, registry, engine) -> dict:
    """The CPU image pushed once to the test registry through `images push` (1.4 GB: each
    push costs a minute or more, so the tests that need it share this one), with the id of the
    image the tag named when it was pushed (``image_id``): a later rebuild moves the tag to a
    new image (its created label differs) while the registry keeps this one."""
    image_id = engine.images.get(cpu_image["tag"]).id
    proc = cli("mlperf-controller", "images", "push", "--registry", registry.host,
               cpu_image["tag"], "--json", check=True, timeout=900)
    (out,) = json.loads(proc.stdout)
    return {**out, "image_id": image_id}


QEMU_HANDLER = "qemu-aarch64"


@pytest.fixture(scope="session")
def qemu_arm64() -> None:
    """This host runs linux/arm64 binaries: natively, or through qemu-user-static registered
    with binfmt_misc -- installed (Debian packages) and registered here when missing. Fails
    with the kernel's own words where it refuses (a container without the privilege to mount
    binfmt_misc, a kernel built without it)."""
    from agent.platforms import emulation_problem

    if emulation_problem("linux/arm64") is None:
        return
    steps = []
    if shutil.which("update-binfmts") is None or not (
            Path("/usr/libexec/qemu-binfmt").is_dir() or shutil.which("qemu-aarch64-static")):
        steps.append(["sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                      "qemu-user-static binfmt-support >/dev/null 2>&1 || (apt-get update -qq "
                      "&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                      "qemu-user-static binfmt-support)"])
    if not Path("/proc/sys/fs/binfmt_misc/register").exists():
        steps.append(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"])
    steps.append(["update-binfmts", "--enable", QEMU_HANDLER])
    said = []
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            said.append(f"`{' '.join(step)}` exited {proc.returncode}: "
                        f"{(proc.stderr or proc.stdout).strip()[-300:]}")
    problem = emulation_problem("linux/arm64")
    if problem:
        pytest.fail("cannot run linux/arm64 binaries on this host, so the board images cannot "
                    f"be built or run here: {problem}. Tried: {'; '.join(said) or 'nothing'}")
