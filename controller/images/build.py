"""``images build``: one image per device profile, from its runtime's recipe, through the
Docker SDK. Tags are stable (``mlperf-edge/PROFILE:VERSION``) so rebuilds reuse the layer
cache; labels record the source revision, the profile and the build time."""

from __future__ import annotations

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


def target_platform(profile: DeviceProfile, override: str | None) -> str:
    if override:
        return override
    return platforms.host_platform() if profile.platform == "auto" else profile.platform


def build_profile(profile: DeviceProfile, platform: str | None = None,
                  base_image: str | None = None, wheelhouse: Path | None = None,
                  log=print) -> Built:
    """Build the image of ``profile``. ImageError for a native profile, a foreign platform
    without qemu, a missing base image or wheel, or a failing Dockerfile step."""
    if not profile.uses_container:
        raise ImageError(f"profile {profile.name} runs natively (runtime: native); "
                         "it has no image")
    started = time.monotonic()
    target = platforms.check(target_platform(profile, platform))
    client = connect()
    from_image = base_image or profile.container.base_image or base.base_tag(target)
    if not base.exists(from_image, client):
        hint = ("make it with `mlperf-controller images base"
                + (f" --platform {target}`" if target != platforms.host_platform() else "`")
                if from_image == base.base_tag(target) else
                "pull or load it first, or pass --base-image")
        raise ImageError(f"base image {from_image} is not in the engine: {hint}")
    ctx = context.prepare(profile.runtime, target, wheelhouse, log)
    rev = context.revision()
    tag = image_tag(profile.name)
    labels = {
        "org.opencontainers.image.title": f"mlperf-edge {profile.name}",
        "org.opencontainers.image.version": version(),
        "org.opencontainers.image.revision": rev.label,
        "org.opencontainers.image.created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "org.opencontainers.image.base.name": from_image,
        f"{LABEL}.profile": profile.name,
        f"{LABEL}.runtime": profile.runtime,
        f"{LABEL}.platform": target,
    }
    log(f"building {tag} ({profile.runtime}, {target}) FROM {from_image} ...")
    kwargs = {"platform": target} if target != platforms.host_platform() else {}
    image_id = None
    for chunk in client.api.build(path=str(ctx), tag=tag, buildargs={"BASE_IMAGE": from_image},
                                  labels=labels, rm=True, forcerm=True, decode=True, **kwargs):
        if "error" in chunk:
            raise ImageError(f"building {tag} failed: {chunk['error'].strip()[-600:]}")
        line = chunk.get("stream", "").rstrip()
        if line.startswith("Step "):
            log("  " + line)
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
    image = client.images.get(image_id or tag)
    return Built(profile.name, tag, image.id, image.attrs.get("Size", 0), target,
                 time.monotonic() - started, labels)
