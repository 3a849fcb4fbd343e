"""``images build``: one image per device profile, from its runtime's recipe, through the
Docker SDK. Tags are stable (``mlperf-edge/PROFILE:VERSION``) so rebuilds reuse the layer
cache; labels record the source revision, the profile and the build time."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from agent.profiles.schema import DeviceProfile
from controller.images import base, context, platforms
from controller.images.engine import ImageError, connect

LABEL = "io.mlperf-edge"


def version() -> str:
    try:
        return metadata.version("mlperf-edge")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def image_tag(profile: str, registry: str | None = None) -> str:
    """``mlperf-edge/raspberry-pi-5:0.1.0``, optionally under ``HOST:PORT/``."""
    name = f"mlperf-edge/{profile}:{version()}"
    return f"{registry}/{name}" if registry else name


@dataclass(frozen=True)
class Built:
    """An image that was built: its tag, id (sha256 of its config), size and build time."""

    profile: str
    tag: str
    image_id: str
    size_bytes: int
    platform: str
    seconds: float
    labels: dict[str, str]
    accelerator: str = "cpu"


#: What each recipe's torch computes on (the agent runs a ``cpu`` image without --gpus).
ACCELERATOR = {"torch-cpu": "cpu", "torch-cuda": "cuda", "jetson-l4t": "cuda"}
#: Where a lab with access finds the GPU base images that cannot be fetched here.
GPU_GUIDE = "docs/boards.md"


def target_platform(profile: DeviceProfile, override: str | None) -> str:
    """The profile's platform; --platform may choose one only for an ``auto`` profile."""
    if profile.platform == "auto":
        return override or platforms.host_platform()
    if override and override != profile.platform:
        raise ImageError(f"profile {profile.name} is for {profile.platform}, not {override} "
                         f"(--platform chooses only for profiles with platform: auto)")
    return profile.platform


def choose_recipe(profile: DeviceProfile, base_image: str | None, cpu: bool, target: str,
                  client, log=print) -> tuple[str, str, str]:
    """(runtime, FROM image, tag) of the image to build: the profile's own, or its CPU image
    (``cpu_fallback``) when asked with ``cpu`` or when its GPU base is not in the engine."""
    runtime = profile.runtime
    from_image = base_image or profile.container.base_image or base.base_tag(target)
    fallback = profile.container.cpu_fallback
    if fallback and not base_image and (cpu or not base.exists(from_image, client)):
        cpu_tag = image_tag(f"{profile.name}-cpu")
        if not cpu:
            log(f"{profile.name}: its GPU base image {from_image} is not in this engine, and "
                "images build does not fetch it (NVIDIA's L4T images come from nvcr.io with an "
                "NGC login, which a lab's build machine may not reach): building its CPU image "
                f"instead, {cpu_tag} ({fallback} on Debian {platforms.debian_arch(target)}; "
                f"the GPU is not used, and its results are a CPU's). For the GPU image, load "
                f"{from_image} into this engine first: see {GPU_GUIDE}")
        return fallback, base.base_tag(target), cpu_tag
    if cpu:
        raise ImageError(f"--cpu: profile {profile.name} has no CPU image "
                         "(no container.cpu_fallback)")
    suffix = f"-{platforms.debian_arch(target)}" if profile.platform == "auto" and \
        target != platforms.host_platform() else ""
    return runtime, from_image, image_tag(profile.name) + suffix


def build_profile(profile: DeviceProfile, platform: str | None = None,
                  base_image: str | None = None, wheelhouse: Path | None = None,
                  cpu: bool = False, log=print) -> Built:
    """Build the image of ``profile``. ImageError for a native profile, a foreign platform
    without qemu, a missing base image or wheel, or a failing Dockerfile step. The Debian base
    of the platform is made here (once; cached in the engine) when it is missing."""
    if not profile.uses_container:
        raise ImageError(f"profile {profile.name} runs natively (runtime: native); "
                         "it has no image")
    started = time.monotonic()
    target = platforms.check(target_platform(profile, platform))
    client = connect()
    runtime, from_image, tag = choose_recipe(profile, base_image, cpu, target, client, log)
    if not base.exists(from_image, client):
        if from_image != base.base_tag(target):
            raise ImageError(f"base image {from_image} is not in the engine: pull or load it "
                             "first, or pass --base-image"
                             + (f" (GPU base images: {GPU_GUIDE})"
                                if ACCELERATOR.get(runtime) == "cuda" else ""))
        log(f"base image {from_image} is not in the engine: making it (debootstrap; kept "
            "for later builds) ...")
        base.make_base(target, log=log)
    ctx, wheels = context.prepare(runtime, target, wheelhouse, log)
    rev = context.revision()
    manifest = json.dumps(dict(sorted(wheels.items())), separators=(",", ":"))
    labels = {
        "org.opencontainers.image.title": f"mlperf-edge {profile.name}",
        "org.opencontainers.image.version": version(),
        "org.opencontainers.image.revision": rev.label,
        "org.opencontainers.image.created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "org.opencontainers.image.base.name": from_image,
        f"{LABEL}.profile": profile.name,
        f"{LABEL}.runtime": runtime,
        f"{LABEL}.platform": target,
        f"{LABEL}.accelerator": ACCELERATOR.get(runtime, "cpu"),
        # Every wheel installed, by file name and sha256; and one digest over that list.
        f"{LABEL}.wheels": manifest,
        f"{LABEL}.wheels.sha256": hashlib.sha256(manifest.encode()).hexdigest(),
    }
    emulated = target != platforms.host_platform()
    log(f"building {tag} ({runtime}, {target}{', under qemu emulation' if emulated else ''}) "
        f"FROM {from_image} ...")
    kwargs = {"platform": target} if emulated else {}
    image_id = None
    for chunk in client.api.build(path=str(ctx), tag=tag, buildargs={"BASE_IMAGE": from_image},
                                  labels=labels, rm=True, forcerm=True, decode=True, **kwargs):
        if "error" in chunk:
            raise ImageError(f"building {tag} failed: {chunk['error'].strip()[-600:]}")
        line = chunk.get("stream", "").rstrip()
        if line.startswith("Step "):
            short = line if len(line) <= 120 else line[:117] + "..."
            log(f"  {short}  [{time.monotonic() - started:.0f} s]")
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
    image = client.images.get(image_id or tag)
    return Built(profile.name, tag, image.id, image.attrs.get("Size", 0), target,
                 time.monotonic() - started, labels, ACCELERATOR.get(runtime, "cpu"))
