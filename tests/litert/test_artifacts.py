"""The artifact store: content addressing, tampered models and hostile labels refused in one
line, and a device-side import without TensorFlow or torch."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import pytest

from litert_models import artifacts, ncf_state
from litert_models.errors import ArtifactError
from tests.conftest import ROOT


@pytest.fixture
def folder(ncf_artifact, tmp_path):
    """A copy of the built smoke model's folder to spoil."""
    shutil.copy(ncf_artifact.path, tmp_path)
    shutil.copy(ncf_artifact.label_path, tmp_path)
    return tmp_path


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and len(message) < 400, message
    return message


def test_the_label_names_what_was_built(ncf_artifact):
    label = ncf_artifact.label
    assert ncf_artifact.path.name == f"{label.sha256}.tflite"
    assert label.bytes == len(ncf_artifact.content) == ncf_artifact.path.stat().st_size
    assert (label.runtime, label.benchmark, label.mode, label.schema_) == ("litert", "ncf",
                                                                           "smoke", 1)
    assert label.config["factors"] == 8 and label.config["mlp_layers"] == [32, 16, 8]
    assert label.converter == "tensorflow-cpu 2.21.0"
    assert label.source_revision and label.created_at.endswith("+00:00")
    sigs = label.signatures
    assert sorted(sigs) == ["infer", "restore", "save", "train"]
    assert sorted(sigs["train"].inputs) == ["items", "labels", "users", "weights"]
    assert sigs["train"].outputs == ["loss"] and sigs["infer"].outputs == ["logits"]
    assert sorted(sigs["infer"].inputs) == ["items", "users"]
    assert sorted(sigs["save"].outputs) == sorted(sigs["restore"].inputs) == sorted(
        ncf_state.state_names(label.param_names))
    assert sigs["restore"].outputs == ["ok"] and sigs["save"].inputs == []


def test_list_and_load_round_trip(ncf_artifact, folder):
    (listed,) = artifacts.list(folder)
    assert listed.sha256 == ncf_artifact.sha256 and listed.content is None
    loaded = artifacts.load(folder, listed.sha256)
    assert loaded.content == ncf_artifact.content
    assert artifacts.load(loaded.path, listed.sha256).label == loaded.label   # a file path


def test_a_tampered_model_is_refused_with_both_hashes(ncf_artifact, folder):
    model = folder / ncf_artifact.path.name
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(ArtifactError) as exc:
        artifacts.load(folder, ncf_artifact.sha256)
    message = one_line(exc)
    assert ncf_artifact.sha256 in message and actual in message and "refused" in message


def test_a_missing_model_and_a_bad_hash_are_one_line(tmp_path):
    with pytest.raises(ArtifactError, match="not found") as exc:
        artifacts.load(tmp_path, "ab" * 32)
    one_line(exc)
    with pytest.raises(ArtifactError, match="64 hex digits") as exc:
        artifacts.load(tmp_path, "../../etc/passwd")
    one_line(exc)


HOSTILE = [
    (lambda d: "x" * (artifacts.MAX_LABEL_BYTES + 1), "at most"),
    (lambda d: "[" * 100_000, "not JSON"),
    (lambda d: json.dumps([d]), "expected a JSON object"),
    (lambda d: json.dumps({**d, "batch_size": "1024"}), "batch_size"),
    (lambda d: json.dumps({**d, "sizes": {"users": -1, "items": 2}}), "sizes.users"),
    (lambda d: json.dumps({**d, "param_names": [{"$": 1}]}), "param_names.0"),
    (lambda d: json.dumps({**d, "signatures": {"train": {"inputs": 5}}}), "signatures.train"),
    (lambda d: json.dumps({**d, "source_revision": "r" * 10_000}), "source_revision"),
    (lambda d: json.dumps({**d, "schema": 2}), "schema"),
    (lambda d: json.dumps({**d, "extra": 1}), "extra"),
    (lambda d: json.dumps({k: v for k, v in d.items() if k != "converter"}), "converter"),
    (lambda d: json.dumps({**d, "bytes": d["bytes"] + 1}), "does not describe"),
]


@pytest.mark.parametrize("spoil, why", HOSTILE, ids=[why for _, why in HOSTILE])
def test_a_hostile_label_is_refused_in_one_line(ncf_artifact, folder, spoil, why):
    label = folder / ncf_artifact.label_path.name
    label.write_text(spoil(json.loads(label.read_text())))
    with pytest.raises(ArtifactError) as exc:
        artifacts.load(folder, ncf_artifact.sha256)
    message = one_line(exc)
    assert why in message and str(label) in message, message
    assert artifacts.list(folder) == []                     # listing skips it, no crash


def test_write_is_content_addressed_and_refuses_a_bad_label(ncf_artifact, tmp_path):
    label = {k: v for k, v in ncf_artifact.label.as_dict().items()
             if k not in ("schema", "runtime", "sha256", "bytes", "created_at")}
    first = artifacts.write(tmp_path, ncf_artifact.content, label)
    assert first.sha256 == ncf_artifact.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{first.sha256}.json",
                                                          f"{first.sha256}.tflite"]
    with pytest.raises(ArtifactError, match="batch_size"):
        artifacts.write(tmp_path / "other", b"TFL3", {**label, "batch_size": 0})
    assert not (tmp_path / "other").exists()


def test_the_device_side_imports_without_tensorflow_or_torch(ncf_artifact):
    """What a phone imports (artifacts, ncf_state, flatbuffer) works with tensorflow and torch
    made unimportable, and verifies and describes the model."""
    code = f"""
import sys
sys.modules["tensorflow"] = None
sys.modules["torch"] = None
from litert_models import artifacts, flatbuffer, ncf_state
a = artifacts.load({str(ncf_artifact.path)!r}, {ncf_artifact.sha256!r})
info = flatbuffer.describe(a.content)
flatbuffer.check_builtins_only(info)
assert sorted(info.signatures) == ["infer", "restore", "save", "train"]
assert not any(m in sys.modules and sys.modules[m] for m in ("tensorflow", "torch"))
print("ok", len(info.ops))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-2000:]
