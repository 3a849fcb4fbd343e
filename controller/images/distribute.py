"""Getting images to devices: push to a registry (devices pull by digest) or export a tarball
(``docker save``) to sideload into a device without registry access."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from controller.images.build import LABEL
from controller.images.engine import ImageError, connect


@dataclass(frozen=True)
class Pushed:
    source: str
    ref: str
    digest: str            # REF-REPO@sha256:..., what a job can name to pin the exact image


def local_images(client=None) -> list:
    """Images built by ``images build`` (they carry the io.mlperf-edge.profile label)."""
    client = client or connect()
    return client.images.list(filters={"label": f"{LABEL}.profile"})


def resolve(refs: list[str], client) -> list:
    """The named images, or every built one when none is named."""
    import docker

    if not refs:
        images = local_images(client)
        if not images:
            raise ImageError("no mlperf-edge image is built yet: "
                             "`mlperf-controller images build --all` first")
        return images
    found = []
    for ref in refs:
        try:
            found.append(client.images.get(ref))
        except docker.errors.ImageNotFound:
            raise ImageError(f"no image {ref} in the engine (see `mlperf-controller images "
                             "list`)") from None
    return found


def push(registry: str, refs: list[str] | None = None, log=print) -> list[Pushed]:
    """Tag each image as REGISTRY/NAME:TAG and push it; returns the registry digests."""
    if "/" in registry or not registry.strip():
        raise ImageError(f"--registry {registry!r}: expected HOST:PORT (e.g. 127.0.0.1:5000)")
    client = connect()
    sources = list(refs) if refs else [
        next((t for t in image.tags if not _has_registry(t)), image.tags[0])
        for image in resolve([], client) if image.tags]
    out = []
    for source in sources:
        image = resolve([source], client)[0]
        target = f"{registry}/{source.split('/', 1)[1] if _has_registry(source) else source}"
        image.tag(target)
        repo, _, version = target.rpartition(":")
        log(f"pushing {target} ...")
        for chunk in client.api.push(repo, tag=version, stream=True, decode=True):
            if "error" in chunk:
                raise ImageError(f"push of {target} failed: {chunk['error'].strip()}")
        out.append(Pushed(source, target, _repo_digest(client, target, repo)))
    return out


def export(path: Path, refs: list[str] | None = None, log=print) -> list[Path]:
    """Write each image (with its tag) to a tarball for ``docker load`` / the agent's images
    folder: ``path`` is the file for one image, or a folder for one ``NAME_TAG.tar`` each."""
    client = connect()
    tags = list(refs) if refs else [t for image in resolve([], client) for t in image.tags[:1]]
    path = Path(path)
    if len(tags) > 1 and path.suffix == ".tar":
        raise ImageError(f"{path}: {len(tags)} images need a folder (one tarball each)")
    written = []
    for tag in tags:
        image = resolve([tag], client)[0]
        target = path / (tag.replace("/", "_").replace(":", "_") + ".tar") \
            if path.suffix != ".tar" else path
        target.parent.mkdir(parents=True, exist_ok=True)
        log(f"exporting {tag} to {target} ...")
        part = target.with_suffix(".tar.part")
        with open(part, "wb") as fh:
            fh.writelines(image.save(named=tag))
        part.replace(target)
        written.append(target)
    return written


def _has_registry(tag: str) -> bool:
    first = tag.split("/", 1)[0]
    return "/" in tag and ("." in first or ":" in first or first == "localhost")


def _repo_digest(client, target: str, repo: str) -> str:
    image = client.images.get(target)
    for digest in image.attrs.get("RepoDigests") or []:
        if digest.startswith(repo + "@"):
            return digest
    raise ImageError(f"pushed {target} but the engine reports no digest for it")


def pin(ref: str, client=None) -> str:
    """The sha256 a job names to pin ``ref``: the digest written in ``REF@sha256:...``; else
    the image id when the image is in this workstation's engine (what `images build` made);
    else the registry's digest for it (asked without pulling). ImageError otherwise."""
    import docker

    name, _, digest = ref.partition("@")
    if digest:
        if not digest.startswith("sha256:") or len(digest) != 71:
            raise ImageError(f"--image {ref}: the digest after @ must be sha256:<64 hex>")
        return digest
    try:
        client = client or connect()
    except ImageError as exc:
        raise ImageError(f"cannot pin image {ref}: {exc}; name it as REF@sha256:DIGEST "
                         "instead") from None
    try:
        return client.images.get(ref).id
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        raise ImageError(f"cannot pin image {ref}: {exc.explanation or exc}") from None
    try:
        return client.images.get_registry_data(ref).id
    except docker.errors.APIError as exc:
        raise ImageError(f"cannot pin image {ref}: it is not in this workstation's engine and "
                         f"its registry did not answer ({(exc.explanation or str(exc))[:200]}); "
                         "build it here, or name it as REF@sha256:DIGEST") from None
