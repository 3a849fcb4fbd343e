"""Model artifacts: content-addressed .tflite files with a JSON label beside each.

A folder holds ``<sha256>.tflite`` (the model; its name is the SHA-256 of its bytes) and
``<sha256>.json`` (its label: which benchmark, mode and config it was built from, the data's
sizes, the static training batch, the signatures with their input and output names, the
parameter names in PyTorch's order, the source revision and the converter that made it). A job
names a model by hash; :func:`load` re-hashes the bytes and refuses any that differ, so a
tampered or truncated file never reaches the interpreter. Labels are untrusted input too: their
size is bounded and every field's type is checked.

Importable without TensorFlow and without torch: devices use it (the ``phone`` extra).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from litert_models.errors import ArtifactError

SCHEMA = 1
RUNTIME = "litert"
#: A label is a few kB; anything past this is not one of ours.
MAX_LABEL_BYTES = 256 * 1024
#: FlatBuffers address at most 2 GiB.
MAX_MODEL_BYTES = 2**31
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
log = logging.getLogger(__name__)

Text = Annotated[StrictStr, Field(max_length=512)]
Name = Annotated[StrictStr, Field(max_length=128)]
Count = Annotated[StrictInt, Field(ge=0)]
Scalar = StrictBool | StrictInt | StrictFloat | Text | None
ConfigValue = Scalar | Annotated[list[Scalar], Field(max_length=64)]


class Signature(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    inputs: Annotated[list[Name], Field(max_length=1024)]
    outputs: Annotated[list[Name], Field(max_length=1024)]


class Label(BaseModel):
    """What ``<sha256>.json`` holds (schema 1)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    schema_: Literal[1] = Field(alias="schema")
    runtime: Literal["litert"]
    benchmark: Name
    mode: Name
    config: Annotated[dict[Name, ConfigValue], Field(max_length=256)]
    sizes: Annotated[dict[Name, Count], Field(max_length=32)]   # e.g. {"users": .., "items": ..}
    batch_size: Annotated[StrictInt, Field(ge=1)]               # the static batch of `train`
    signatures: Annotated[dict[Name, Signature], Field(max_length=32)]
    param_names: Annotated[list[Name], Field(max_length=1024)]  # PyTorch state_dict order
    source_revision: Text
    converter: Text                                             # "tensorflow-cpu 2.21.0"
    created_at: Text                                            # ISO 8601, UTC
    sha256: Annotated[StrictStr, Field(pattern=_SHA256.pattern)]
    bytes: Count

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


@dataclass(frozen=True)
class Artifact:
    """One model: its hash, where its .tflite lies, its label; ``content`` holds the verified
    bytes after :func:`load` (load the interpreter from them, not from the path again)."""

    sha256: str
    path: Path
    label: Label
    content: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> int:
        return self.label.bytes

    @property
    def label_path(self) -> Path:
        return self.path.with_suffix(".json")


def default_folder() -> Path:
    """``$MLPERF_MODELS``, else ``models/`` beside the controller's default store
    (``~/.local/share/mlperf-edge/models``, or under ``$XDG_DATA_HOME``)."""
    if folder := os.environ.get("MLPERF_MODELS", "").strip():
        return Path(folder).expanduser()
    home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share")
    return home / "mlperf-edge" / "models"


def write(folder: Path, tflite_bytes: bytes, label: dict[str, Any]) -> Artifact:
    """Store a model as ``<sha256>.tflite`` + ``<sha256>.json`` in ``folder`` (made if need
    be). ``label`` gives the build's fields; schema, runtime, sha256, bytes and (unless given)
    created_at are filled in here. Written atomically, the model before its label."""
    sha = hashlib.sha256(tflite_bytes).hexdigest()
    full = {**label, "schema": SCHEMA, "runtime": RUNTIME, "sha256": sha,
            "bytes": len(tflite_bytes)}
    full.setdefault("created_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    checked = _validate(full, f"label of {sha}")        # never write what load() would refuse
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / f"{sha}.tflite"
    _write_atomic(model, tflite_bytes)
    _write_atomic(model.with_suffix(".json"),
                  (json.dumps(checked.as_dict(), indent=2) + "\n").encode())
    return Artifact(sha, model, checked, tflite_bytes)


def load(folder_or_path: Path, sha256: str) -> Artifact:
    """The artifact ``sha256`` from a folder (``<folder>/<sha256>.tflite``) or a .tflite path,
    its bytes re-hashed: ArtifactError (one line, both hashes) when they differ, and for a
    missing file or a missing, oversized or malformed label."""
    expected = str(sha256).strip().lower()
    if not _SHA256.match(expected):
        raise ArtifactError(f"not a SHA-256 model hash: {str(sha256)[:80]!r} "
                            "(expected 64 hex digits)")
    where = Path(folder_or_path)
    model = where / f"{expected}.tflite" if where.is_dir() else where
    if not model.is_file():
        raise ArtifactError(f"model {expected} not found: no file {model}")
    size = model.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise ArtifactError(f"model {model} is {size:,} bytes; at most {MAX_MODEL_BYTES:,}")
    content = model.read_bytes()
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected:
        raise ArtifactError(f"model {model} refused: its sha256 is {actual}, expected "
                            f"{expected} (tampered with or corrupt)")
    label = read_label(model.with_suffix(".json"))
    if label.sha256 != expected or label.bytes != len(content):
        raise ArtifactError(f"label {model.with_suffix('.json')} does not describe the model: "
                            f"it says sha256 {label.sha256} ({label.bytes:,} bytes), the model "
                            f"is {expected} ({len(content):,} bytes)")
    return Artifact(expected, model, label, content)


def read_label(path: Path) -> Label:
    """A label file, bounded and type-checked (ArtifactError in one line otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"model label {path} not found")
    size = path.stat().st_size
    if size > MAX_LABEL_BYTES:
        raise ArtifactError(f"model label {path} is {size:,} bytes; at most "
                            f"{MAX_LABEL_BYTES:,} (not a label)")
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(MAX_LABEL_BYTES + 1))
    except (ValueError, RecursionError) as exc:
        raise ArtifactError(f"model label {path} is not JSON: "
                            f"{str(exc).splitlines()[0][:200]}") from None
    return _validate(data, f"model label {path}")


def list_artifacts(folder: Path) -> list[Artifact]:
    """The artifacts in ``folder`` whose label reads and whose model is present with the size
    the label gives, oldest first (hashes are checked by :func:`load`, not here). Others are
    skipped with a warning."""
    found = []
    folder = Path(folder)
    if not folder.is_dir():
        return found
    for label_path in sorted(folder.glob("*.json")):
        if not _SHA256.match(label_path.stem):
            continue
        model = label_path.with_suffix(".tflite")
        try:
            label = read_label(label_path)
            if not model.is_file() or model.stat().st_size != label.bytes:
                raise ArtifactError(f"{model} is missing or not {label.bytes:,} bytes")
            if label.sha256 != label_path.stem:
                raise ArtifactError(f"{label_path} names another model ({label.sha256})")
        except ArtifactError as exc:
            log.warning("skipped: %s", exc)
            continue
        found.append(Artifact(label.sha256, model, label))
    return sorted(found, key=lambda a: a.label.created_at)


# `artifacts.list(folder)` reads naturally at call sites; inside this module use list_artifacts.
list = list_artifacts  # noqa: A001  (shadows the builtin here on purpose)


def _validate(data: Any, what: str) -> Label:
    if not isinstance(data, dict):
        raise ArtifactError(f"{what}: expected a JSON object, got {type(data).__name__}")
    try:
        return Label.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ArtifactError(f"{what} is malformed: {where}: {first['msg']}{more}") from None


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
