"""A litert job's model on this device: from the agent's models folder, or fetched from the
controller's model server (`mlperf-controller models serve`) when it is not there yet.

Fetched bytes are untrusted until they hash to what the signed job names: both files are read
size-bounded into a private temporary folder beside the models folder, checked by
litert_models.artifacts.load (the model re-hashed, the label parsed strictly), and only then
moved in. A model whose bytes differ is refused naming both hashes and never kept; a server
that cannot be reached is an infrastructure failure (the run is retried), not the job's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from agent.errors import InfrastructureError, JobError

CHUNK = 1 << 20


def check_url(url: str) -> str:
    """The models URL without a trailing slash; ValueError unless http(s)://HOST[:PORT][/path]."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url) > 2000 or any(
            c.isspace() for c in url):
        raise ValueError(f"--models-url {url[:200]!r}: expected http(s)://HOST:PORT "
                         "(`mlperf-controller models serve`)")
    return url


def ensure_model(sha256: str, folder: Path, url: str | None, timeout_s: float = 60.0) -> Path:
    """``folder`` once it holds model ``sha256`` (fetched and verified if it did not)."""
    from litert_models import artifacts
    from litert_models.errors import ArtifactError

    folder = Path(folder)
    if (folder / f"{sha256}.tflite").is_file():
        return folder                          # the reference re-hashes it before it loads
    if not url:
        raise JobError(f"model {sha256} not found in {folder}: copy it there (`mlperf-controller "
                       "models build --out`) or start the agent with --models-url")
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=folder))
    try:
        for suffix, limit in ((".json", artifacts.MAX_LABEL_BYTES),
                              (".tflite", artifacts.MAX_MODEL_BYTES)):
            _download(f"{url}/{sha256}{suffix}", staging / f"{sha256}{suffix}", limit, timeout_s)
        try:
            artifacts.load(staging, sha256)
        except ArtifactError as exc:
            raise JobError(f"model fetched from {url} refused: {exc}") from None
        for suffix in (".json", ".tflite"):    # the label first: the .tflite marks it complete
            os.replace(staging / f"{sha256}{suffix}", folder / f"{sha256}{suffix}")
        return folder
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _download(url: str, dest: Path, limit: int, timeout_s: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:   # noqa: S310
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise JobError(f"{url}: {int(declared):,} bytes, more than {limit:,}: refused")
            got = 0
            with open(dest, "wb") as out:
                while chunk := response.read(CHUNK):
                    got += len(chunk)
                    if got > limit:
                        raise JobError(f"{url}: more than {limit:,} bytes: refused")
                    out.write(chunk)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise JobError(f"{url}: the model server has no such model (404)") from None
        raise InfrastructureError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise InfrastructureError(f"cannot fetch {url}: {reason}") from None
