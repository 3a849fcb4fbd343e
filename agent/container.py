"""Runs one reference inside the container image a job names, on a device with an engine.

Same contract as the native ``ReferenceProcess``: MLLOG lines are forwarded live, untouched;
``result.json`` is read from the work directory; cancelling stops the container (SIGTERM,
then SIGKILL after KILL_GRACE_S). On top: the image is found locally, loaded from a sideloaded
tarball or pulled; the container gets ``--network host``, the dataset read-only, a memory
limit and ``--gpus all`` from the device profile; an OOM kill is reported as such; the image
digest goes into the result. Power is still sampled by the agent on the host."""

from __future__ import annotations

import codecs
import dataclasses
import json
import logging
import os
import queue
import tarfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from agent.errors import InfrastructureError, JobError
from agent.leftovers import AGENT_LABEL
from agent.runner import (
    KILL_GRACE_S,
    ReferenceProcess,
    RunOutcome,
    RunRequest,
    _error_line,
    _pump,
    _read_result,
)

log = logging.getLogger("mlperf.agent")

#: Where the job's output folder and dataset folder appear inside the container.
OUT_IN_CONTAINER = Path("/work/out")
DATA_IN_CONTAINER = Path("/data")
#: The user a container runs as when the agent is root (``nobody``); otherwise the agent's.
CONTAINER_UID = 65534
#: Most processes and threads in one container (torch starts a thread per core and loader).
PIDS_LIMIT = 4096
#: Size of the container's writable /tmp (HOME), MiB; counts against its memory limit.
TMP_MB = 512


@dataclass(frozen=True)
class ContainerLimits:
    """What the device profile says about running containers (memory in MiB)."""

    memory_limit_mb: int | None = None
    shm_size_mb: int = 256
    gpus: bool = False


@lru_cache(maxsize=1)
def engine_version() -> str | None:
    """'docker 20.10.24+dfsg1' when a Docker engine answers here (cached), else None."""
    client = _client(quiet=True)
    if client is None:
        return None
    try:
        return f"docker {client.version().get('Version', '?')}"
    except Exception:                                   # engine vanished between calls
        return None


def _client(quiet: bool = False):
    try:
        import docker
        client = docker.from_env(version="auto", timeout=600)
        client.ping()
        return client
    except Exception as exc:                            # no SDK, no socket, no permission
        if not quiet:
            raise InfrastructureError(f"no container engine reachable here "
                                      f"({str(exc)[:200]})") from None
        return None


def prepare_image(ref: str, images_dir: Path | None = None, pinned: str | None = None) -> str:
    """Make sure ``ref`` is in the engine: already there, loaded from a tarball in
    ``images_dir`` (``mlperf-controller images export``), or pulled. When ``pinned`` (the
    sha256 the signed job names) is given, the image must be exactly that one: its image id,
    or one of its registry digests. Returns the digest to report."""
    import docker

    client = _client()
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        image = _load(client, ref, images_dir) or _pull(client, ref, images_dir)
    except docker.errors.APIError as exc:
        raise InfrastructureError(f"image {ref}: {exc.explanation or exc}") from None
    if pinned is not None and pinned not in digests_of(image):
        raise JobError(f"image {ref} here is {image.id}, not the {pinned} the job pins: "
                       "refusing to run it (rebuild or re-export the image the controller "
                       "names, or pull it again)")
    return image_digest(image, ref)


def digests_of(image) -> set[str]:
    """Every sha256 that names ``image``: its id and its registry (manifest) digests."""
    found = {image.id}
    for digest in image.attrs.get("RepoDigests") or []:
        found.add(digest.split("@", 1)[-1])
    return found


def image_digest(image, ref: str) -> str:
    """The registry digest of ``ref`` (REPO@sha256:...) when it came from a registry, else the
    image id (sha256:... of its config): both pin exactly what ran."""
    repo = ref.split("@")[0]
    repo = repo.rsplit(":", 1)[0] if ":" in repo.rsplit("/", 1)[-1] else repo
    for digest in image.attrs.get("RepoDigests") or []:
        if digest.split("@")[0] == repo:
            return digest
    return image.id


def _load(client, ref: str, images_dir: Path | None):
    """Load the tarball in ``images_dir`` whose manifest tags ``ref``, if there is one."""
    if images_dir is None or not images_dir.is_dir():
        return None
    for path in sorted(images_dir.glob("*.tar")):
        try:
            with tarfile.open(path) as tar:
                tags = [t for entry in json.load(tar.extractfile("manifest.json"))
                        for t in entry.get("RepoTags") or []]
        except (OSError, KeyError, tarfile.TarError, json.JSONDecodeError):
            continue
        if ref in tags:
            log.info("loading image %s from %s", ref, path)
            with open(path, "rb") as fh:
                client.images.load(fh)
            return client.images.get(ref)
    return None


def _pull(client, ref: str, images_dir: Path | None):
    import docker

    log.info("pulling image %s", ref)
    try:
        return client.images.pull(ref)
    except docker.errors.APIError as exc:
        where = f" or put its tarball (`mlperf-controller images export`) in {images_dir}" \
            if images_dir else ""
        raise InfrastructureError(f"image {ref} is not here and cannot be pulled "
                       f"({(exc.explanation or str(exc))[:300]}); push it to a registry this "
                       f"device reaches{where}") from None


class ContainerProcess(ReferenceProcess):
    """One reference run in a container of ``image``."""

    def __init__(self, request: RunRequest, image: str, limits: ContainerLimits,
                 on_mllog=lambda lines: None, on_progress=lambda line: None,
                 agent: str = "mlperf-agent", platform: str | None = None) -> None:
        super().__init__(request, on_mllog, on_progress)
        self.image = image
        self.limits = limits
        self.agent = agent                 # labels the container: a restart reaps its own
        self.platform = platform           # set: run as this platform (under emulation)

    def argv(self) -> list[str]:
        """The reference command inside the container (paths as the container sees them)."""
        inner = dataclasses.replace(
            self.request, out_dir=OUT_IN_CONTAINER,
            data_dir=DATA_IN_CONTAINER if self.request.data_dir is not None else None)
        return ["python"] + inner.argv()[1:]

    def create(self, client):
        """The container, contained: the harness as its command (never the image's
        entrypoint), no capabilities, no privilege gain, a pids limit, a non-root user, a
        read-only root filesystem; writable only the job folder, /tmp and /dev/shm."""
        from docker.types import DeviceRequest

        req = self.request
        volumes = {str(req.out_dir.resolve()): {"bind": str(OUT_IN_CONTAINER), "mode": "rw"}}
        if req.data_dir is not None:
            volumes[str(req.data_dir.resolve())] = {"bind": str(DATA_IN_CONTAINER),
                                                    "mode": "ro"}
        kwargs = {}
        if self.limits.memory_limit_mb:
            limit = f"{self.limits.memory_limit_mb}m"
            kwargs.update(mem_limit=limit, memswap_limit=limit)    # no swap past the limit
        if self.limits.gpus:
            kwargs["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
        if self.platform:
            kwargs["platform"] = self.platform
        uid, gid = container_user()
        if os.getuid() == 0 and uid != 0:
            os.chown(req.out_dir, uid, gid)               # the run writes only its own folder
        return client.containers.create(
            self.image, entrypoint=self.argv(), command=None, network_mode="host",
            volumes=volumes, shm_size=f"{self.limits.shm_size_mb}m", user=f"{uid}:{gid}",
            environment={"PYTHONUNBUFFERED": "1", "HOME": "/tmp"}, working_dir="/tmp",
            labels={"io.mlperf-edge.out": str(req.out_dir), AGENT_LABEL: self.agent},
            detach=True,
            cap_drop=["ALL"], security_opt=["no-new-privileges"], pids_limit=PIDS_LIMIT,
            read_only=True, tmpfs={"/tmp": f"rw,nosuid,nodev,size={TMP_MB}m"}, **kwargs)

    def run(self, cancel: threading.Event) -> RunOutcome:
        req = self.request
        req.out_dir.mkdir(parents=True, exist_ok=True)
        import docker

        client = _client()
        started = time.monotonic()
        try:
            container = self.create(client)
        except docker.errors.APIError as exc:
            return self._refused(exc, started)
        try:
            with open(req.out_dir / "stdout.log", "w") as stdout_log, \
                    open(req.out_dir / "stderr.log", "w") as stderr_log:
                try:
                    container.start()
                except docker.errors.APIError as exc:  # e.g. --gpus without NVIDIA runtime
                    return self._refused(exc, started)
                self.on_started(container=container.id)
                lines: queue.Queue[str | None] = queue.Queue()
                tail: deque[str] = deque(maxlen=30)
                out = _lines(container.logs(stdout=True, stderr=False, stream=True, follow=True))
                err = _lines(container.logs(stdout=False, stderr=True, stream=True, follow=True))
                readers = [threading.Thread(target=_pump, args=(out, lines, stdout_log),
                                            daemon=True),
                           threading.Thread(target=self._stderr, args=(err, tail, stderr_log),
                                            daemon=True)]
                for t in readers:
                    t.start()
                stopper = threading.Thread(target=_stop_when, args=(cancel, container),
                                           daemon=True)
                stopper.start()
                count = self._forward(lines)
                exit_code = container.wait()["StatusCode"]
                for t in readers:
                    t.join(timeout=5)
            container.reload()
            oom = bool(container.attrs["State"].get("OOMKilled"))
        finally:
            cancelled = cancel.is_set()
            cancel.set()                                # releases the stopper thread
            try:
                container.remove(force=True)
            except Exception as exc:                    # the run's outcome matters more
                log.warning("could not remove container %s: %s", container.short_id, exc)
        outcome, error = None, None
        if exit_code == 0 and not cancelled:
            outcome, error = _read_result(req.out_dir / "result.json")
        elif not cancelled:
            error = _error_line(list(tail), exit_code)
            if oom:
                last = " | ".join(line for line in list(tail)[-3:] if line.strip())
                error = (f"the reference was killed for running out of memory (OOM; container "
                         f"limit {self.limits.memory_limit_mb} MiB, exit code {exit_code})"
                         + (f": {last}" if last else ""))
        return RunOutcome(exit_code, cancelled, time.monotonic() - started, count,
                          self.tracker, outcome, error, list(tail))

    def _refused(self, exc, started: float) -> RunOutcome:
        """The engine would not create or start the container: exit code 125, as docker run."""
        why = (getattr(exc, "explanation", None) or str(exc)).strip()[:500]
        return RunOutcome(125, False, time.monotonic() - started, 0, self.tracker, None,
                          f"the container engine refused to run {self.image}: {why}", [])


def container_user() -> tuple[int, int]:
    """(uid, gid) a benchmark container runs as: the agent's own, or ``nobody`` for root."""
    if os.getuid() == 0:
        return CONTAINER_UID, CONTAINER_UID
    return os.getuid(), os.getgid()


def _stop_when(cancel: threading.Event, container) -> None:
    """Stop the container when the job is cancelled: SIGTERM, then SIGKILL after the grace."""
    cancel.wait()
    try:
        container.reload()
        if container.status == "running":
            container.stop(timeout=int(KILL_GRACE_S))
    except Exception:                                   # already gone
        pass


def _lines(chunks, longest: int = 1 << 20):
    """Text lines (with their newline) from a stream of byte chunks; a line longer than
    ``longest`` characters is cut into pieces (a container's output is untrusted: one endless
    line must not fill the agent's memory)."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        *complete, pending = pending.split("\n")
        for line in complete:
            yield line + "\n"
        while len(pending) > longest:
            yield pending[:longest] + "\n"
            pending = pending[longest:]
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


@dataclass(frozen=True)
class Placement:
    """Where a run's code ran: the image (None: natively), the platform it ran as, and
    whether that was under emulation (qemu on another architecture)."""

    image_digest: str | None
    platform: str | None
    emulated: bool = False


def choose_process(job, workspace, request: RunRequest, on_mllog, on_progress
                   ) -> tuple[ReferenceProcess, Placement]:
    """The container run when the job names an image, this device has an engine and its
    profile is not native; else the native subprocess, as always. Returns the process and
    where it runs. Pulling/loading happens here, in the preparing state. An agent that
    emulates another platform (``--platform``) runs nothing natively, and only images of its
    platform."""
    from agent import platforms

    profile = workspace.profile
    target = workspace.container_platform
    try:
        host = platforms.host_platform()
    except platforms.UnsupportedPlatform:
        host = None
    emulated = target is not None and target != host
    if job.image is None or workspace.engine is None or (
            profile is not None and not profile.uses_container):
        if emulated:
            raise JobError(f"this agent runs {target} containers under emulation "
                           f"(--platform): a job must name a {target} image (`mlperf-controller "
                           "run --image PROFILE=REF`); nothing runs natively here")
        if job.image is not None:
            log.info("job %s names image %s but runs natively here (%s)", job.job_id, job.image,
                     "no container engine" if workspace.engine is None else
                     f"profile {profile.name} is native")
        return ReferenceProcess(request, on_mllog, on_progress), Placement(None, host)
    digest = prepare_image(job.image, workspace.images_dir, job.image_digest)
    image = _client().images.get(job.image)
    ran_as = image_platform(image)
    expected = target or host
    if expected is not None and ran_as != expected:
        hint = (f"; an agent started with --platform {ran_as} runs it under emulation"
                if ran_as in platforms.PLATFORMS else "")
        raise JobError(f"image {job.image} is built for {ran_as}; this agent runs {expected} "
                       f"containers{hint}")
    gpu_image = (image.labels or {}).get(ACCELERATOR_LABEL, "cuda") != "cpu"
    limits = ContainerLimits() if profile is None else ContainerLimits(
        memory_limit_mb=profile.memory_limit_mb(job.benchmark),
        shm_size_mb=profile.container.shm_size_mb,
        gpus=profile.container.gpus and gpu_image)
    if profile is not None and profile.container.gpus and not gpu_image:
        log.info("image %s is labelled a CPU image: it runs without --gpus", job.image)
    return (ContainerProcess(request, job.image, limits, on_mllog, on_progress,
                             agent=workspace.platform, platform=ran_as if emulated else None),
            Placement(digest, ran_as, emulated))


#: The label `images build` sets: cpu for an image that never uses a GPU (a Jetson's CPU
#: image), else the accelerator its torch was built for.
ACCELERATOR_LABEL = "io.mlperf-edge.accelerator"


def image_platform(image) -> str:
    """linux/ARCH of an image, as its config records it."""
    return f"{image.attrs.get('Os') or 'linux'}/{image.attrs.get('Architecture') or '?'}"
