"""The Docker engine as the controller sees it: one connection, vendor errors translated once."""

from __future__ import annotations

from agent.errors import MlperfEdgeError

#: Engine API version the SDK asks for. Debian's docker.io (20.10) speaks 1.41.
API_VERSION = "auto"


class ImageError(MlperfEdgeError):
    """An image cannot be made, found, pushed or exported as asked."""


def connect(timeout_s: float = 600.0):
    """A ``docker.DockerClient`` for the local engine (DOCKER_HOST honoured), or ImageError."""
    try:
        import docker
    except ImportError:
        raise ImageError("the Docker SDK is missing: pip install 'mlperf-edge[controller]'"
                         ) from None
    try:
        client = docker.from_env(version=API_VERSION, timeout=int(timeout_s))
        client.ping()
    except docker.errors.DockerException as exc:
        raise ImageError(f"no Docker engine reachable ({_first_line(exc)}); start it with "
                         "`setsid dockerd >/var/log/dockerd.log 2>&1 &` (as root) or set "
                         "DOCKER_HOST") from None
    return client


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
