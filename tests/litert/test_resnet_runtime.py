"""ResNet run in the LiteRT interpreter, as a device without torch runs it (torch and
tensorflow unimportable, test_ncf_runtime's sitecustomize): the smoke run reaches its target and
its log passes the v0.6 checker; ILSVRC folders are decoded by the reference's transforms in
the numpy path (a broken JPEG skipped when asked) and a reduced run reports its projection; an
artifact built for another config or data is one line, before anything is timed."""

from __future__ import annotations

import json
import shutil

import pytest

from references.compliance import check
from tests.litert.test_ncf_runtime import events, references
from tests.references.conftest import WNIDS, write_imagenet

pytestmark = pytest.mark.integration

# The ILSVRC run's settings: those the smoke model was built with (MUST_MATCH), so the one model
# built per session serves it (its 4 classes: the fixture's 3 folders and one more).
FOLDERS = ["--set", "arch=resnet14", "--set", "base_width=8", "--set", "image_size=32",
           "--set", "resize_size=40", "--set", "batch_size=32", "--set", "workers=1",
           "--set", "skip_bad_images=true"]


@pytest.fixture(scope="module")
def smoke_run(device_env, resnet_built_by_cli, resnet_artifact, tmp_path_factory):
    folder, _ = resnet_built_by_cli
    where = tmp_path_factory.mktemp("resnet-run")
    out = where / "out"
    proc = references(device_env, "resnet", "--mode", "smoke", "--seed", "3", "--runtime",
                      "litert", "--model", str(folder), "--model-sha256",
                      resnet_artifact.sha256, "--out", str(out), cwd=where)
    return out, proc


def test_smoke_reaches_its_target_in_the_interpreter(smoke_run, resnet_artifact):
    out, proc = smoke_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["reached_target"] and result["quality"] >= result["target"]["value"] == 0.9
    assert result["stop_reason"] == "target_reached" and result["epochs"] <= 10
    assert "LiteRT interpreter (ai-edge-litert" in proc.stderr
    assert "ResNet-14 v1.5 (base width 8" in proc.stderr
    logged = events(out)
    (ran,) = [e for e in logged if e["key"] == "mlperf_edge_runtime"]
    assert ran["value"]["model_sha256"] == resnet_artifact.sha256
    assert [e["value"] for e in logged if e["key"] == "eval_accuracy"][-1] == result["quality"]


def test_its_log_passes_the_v06_checker(smoke_run):
    out, proc = smoke_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    for done in check("resnet", out):
        assert done.returncode == 0 and "SUCCESS" in done.stderr, done.stderr[-3000:]


def test_ilsvrc_folders_train_in_the_interpreter(device_env, resnet_built_by_cli,
                                                 resnet_artifact, tmp_path):
    """The run decodes, crops and flips the JPEGs as the reference does, skips the broken one,
    trains its epoch, evaluates and projects, labelled."""
    root = write_imagenet(tmp_path / "imagenet", flat_val=True)
    shutil.copytree(root / "train" / WNIDS[0], root / "train" / "n01491361")   # a 4th class
    (root / "train" / WNIDS[1] / "broken.JPEG").write_bytes(b"not a jpeg")
    folder, _ = resnet_built_by_cli
    out = tmp_path / "out"
    proc = references(device_env, "resnet", "--mode", "reduced", "--data", str(root),
                      "--division", "open", *FOLDERS, "--set", "epochs_to_converge=3",
                      "--runtime", "litert", "--model", str(folder), "--model-sha256",
                      resnet_artifact.sha256, "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipped unreadable image" in proc.stderr and "broken.JPEG" in proc.stderr
    assert "4 classes, 17 training" in proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["stop_reason"] == "max_epochs" and result["samples_trained"] == 16
    # evaluated once on the 6 validation JPEGs (the numpy path's center crops); not a result
    assert 0 <= result["quality"] <= 1 and result["time_to_train_s"] is None
    assert not result["reached_target"]
    projection = result["projection"]
    assert projection["kind"] == "projection" and projection["epochs_to_converge"] == 3
    assert "ILSVRC-style folders" in result["dataset"]


@pytest.mark.parametrize("args, complaint", [
    (["--set", "momentum=0.8"], "the model artifact was built with momentum=0.9, this run has 0.8"),
    (["--set", "batch_size=16"], "the model artifact was built with batch_size=32"),
    (["--set", "synthetic_classes=5"], "the model artifact classifies 4 classes; this run's "
                                       "data has 5"),
    (["--set", "save_checkpoint=true"], "run it with the torch runtime"),
])
def test_a_model_that_does_not_fit_the_run_is_one_line(device_env, resnet_built_by_cli,
                                                      resnet_artifact, tmp_path, args,
                                                      complaint):
    folder, _ = resnet_built_by_cli
    out = tmp_path / "out"
    proc = references(device_env, "resnet", "--mode", "smoke", *args, "--runtime", "litert",
                      "--model", str(folder), "--model-sha256", resnet_artifact.sha256,
                      "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "run_start" not in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and complaint in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not (out / "result.json").exists()
