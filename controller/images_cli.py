"""``mlperf-controller images``: make the base image, build per-profile images, push them to a
registry or export them for sideloading. Thin wiring to controller.images."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    help="Container images per device profile, built from containers/ with the Docker engine."
         "\n\nNo registry reachable (air-gapped lab, CI)? Start with `images base`, which "
         "bootstraps a Debian base image locally; then `images build --all`.",
    no_args_is_help=True, add_completion=False)

Platform = Annotated[Optional[str], typer.Option(
    "--platform", help="linux/amd64 or linux/arm64 (default: the profile's, else this host's; "
                       "another architecture builds under qemu-user-static with binfmt_misc).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@app.command()
def base(platform: Platform = None,
         suite: Annotated[str, typer.Option("--suite", help="Debian release.")] = "bookworm",
         mirror: Annotated[str, typer.Option("--mirror", help="Debian mirror (apt over http)."
                                             )] = "http://deb.debian.org/debian") -> None:
    """Make the Debian base image here, without any registry: debootstrap (minbase + python3,
    venv, CA roots, ~1 min) then import it as mlperf-edge/base:SUITE-ARCH (~124 MB)."""
    from controller.images.base import make_base

    print(make_base(platform, suite, mirror, log=_say))


@app.command()
def build(
    profile: Annotated[Optional[list[str]], typer.Option(
        "--profile", "-p", help="Device profile to build for (repeatable).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every profile that uses a container.")
                    ] = False,
    platform: Platform = None,
    base_image: Annotated[Optional[str], typer.Option(
        "--base-image", help="Image to build FROM (default: the profile's base_image, else "
                             "mlperf-edge/base:bookworm-ARCH from `images base`).")] = None,
    wheelhouse: Annotated[Optional[Path], typer.Option(
        "--wheelhouse", help="Folder of wheels to take the pinned dependencies from, with no "
                             "index at all (default: pip's configured find-links/indexes).")
    ] = None,
    cpu: Annotated[bool, typer.Option(
        "--cpu", help="Build a GPU profile's CPU image (Jetson: torch-cpu on Debian arm64, "
                      "tagged PROFILE-cpu) even where its GPU base image is here.")] = False,
    profiles_dir: Annotated[Optional[Path], typer.Option(
        "--profiles-dir", envvar="MLPERF_PROFILES_DIR",
        help="Folder of device profiles (default: device_profiles/).")] = None,
    as_json: Json = False,
) -> None:
    """Build the image of each chosen profile, tagged mlperf-edge/PROFILE:VERSION and labelled
    with the source revision, profile, platform, build time and every wheel's sha256.

    Pinned wheels are downloaded for the target platform (never built from source) into
    ~/.cache/mlperf-edge/images/wheelhouse/ARCH, and the Debian base is made once: both are
    kept, so a rebuild reuses them and the engine's layer cache. An arm64 image (Raspberry Pi,
    Jetson) builds on x86 under qemu emulation. Jetson profiles build their CPU image when
    NVIDIA's L4T base image is not here (see docs/boards.md).

    Examples: `mlperf-controller images build --profile raspberry-pi-5`;
    `mlperf-controller images build --all --platform linux/arm64` (every arm64 profile).
    """
    from agent.profiles.loading import find_profile, load_profiles
    from controller.images.build import build_profile
    from controller.images.engine import ImageError

    if all_ == bool(profile):
        raise ImageError("choose --profile NAME (repeatable) or --all")
    if platform is not None:
        from controller.images.platforms import check
        platform = check(platform)
    if all_:
        chosen = [p for p in load_profiles(profiles_dir).values() if p.uses_container
                  and (platform is None or p.platform in ("auto", platform))]
        if not chosen:
            raise ImageError(f"no profile that uses a container runs on {platform}")
        if platform is not None:
            _say(f"--all --platform {platform}: {', '.join(p.name for p in chosen)}")
    else:
        chosen = [find_profile(name, profiles_dir) for name in profile]
    built, failed = [], []
    for prof in chosen:
        try:
            b = build_profile(prof, platform, base_image, wheelhouse, cpu=cpu, log=_say)
        except ImageError as exc:
            if not all_:
                raise
            _say(f"error: {prof.name}: {exc}")          # --all: report, go on with the rest
            failed.append(prof.name)
            continue
        _say(f"built {b.tag} ({b.image_id[:19]}, {b.size_bytes / 1e6:.0f} MB, "
             f"{b.seconds:.0f} s)")
        built.append(b)
    if as_json:
        print(json.dumps([{"profile": b.profile, "tag": b.tag, "image_id": b.image_id,
                           "size_bytes": b.size_bytes, "platform": b.platform,
                           "accelerator": b.accelerator,
                           "build_s": round(b.seconds, 1), "labels": b.labels}
                          for b in built], indent=2))
    else:
        for b in built:
            print(b.tag)
    if failed:
        raise ImageError(f"{len(failed)} of {len(chosen)} image(s) not built: "
                         f"{', '.join(failed)} (reasons above)")


@app.command()
def push(registry: Annotated[str, typer.Option(
             "--registry", help="Registry HOST:PORT, e.g. 127.0.0.1:5000.")],
         image: Annotated[Optional[list[str]], typer.Argument(
             help="Images to push (default: every built mlperf-edge image).")] = None,
         as_json: Json = False) -> None:
    """Push images to a registry; prints each pushed reference and its digest (name it in
    `mlperf-controller run --image REF` and devices pull it)."""
    from controller.images.distribute import push as do_push

    pushed = do_push(registry, image, log=_say)
    if as_json:
        print(json.dumps([{"source": p.source, "ref": p.ref, "digest": p.digest}
                          for p in pushed], indent=2))
    else:
        for p in pushed:
            print(f"{p.ref}  {p.digest}")


@app.command()
def export(path: Annotated[Path, typer.Argument(
               help="Tarball to write (NAME.tar, one image) or a folder (one tarball per image).")],
           image: Annotated[Optional[list[str]], typer.Argument(
               help="Images to export (default: every built mlperf-edge image).")] = None
           ) -> None:
    """Write images to a tarball for a device without registry access: copy it into the
    agent's images folder (WORK_DIR/images) and the agent loads it when a job names it."""
    from controller.images.distribute import export as do_export

    for written in do_export(path, image, log=_say):
        print(written)


@app.command("list")
def list_(as_json: Json = False) -> None:
    """Built mlperf-edge images: tag, profile, revision, build time, size."""
    from controller.images.build import LABEL
    from controller.images.distribute import local_images

    rows = []
    for img in local_images():
        labels = img.labels or {}
        rows.append({"tags": img.tags, "id": img.id, "size_bytes": img.attrs.get("Size", 0),
                     "profile": labels.get(f"{LABEL}.profile"),
                     "platform": labels.get(f"{LABEL}.platform"),
                     "accelerator": labels.get(f"{LABEL}.accelerator"),
                     "revision": labels.get("org.opencontainers.image.revision"),
                     "created": labels.get("org.opencontainers.image.created")})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"{', '.join(r['tags']) or r['id'][:19]:<48} {r['profile']:<20} "
              f"{r['platform'] or '?':<12} {r['accelerator'] or '?':<5} "
              f"{(r['revision'] or '?')[:12]:<13} {r['created']}  {r['size_bytes'] / 1e6:.0f} MB")
