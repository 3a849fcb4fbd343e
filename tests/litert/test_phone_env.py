"""A phone's environment, built here: a fresh venv with only `pip install '.[phone]'` -- no
torch, no tensorflow, importing either fails -- whose `mlperf-agent start` takes a litert job
from the controller over the real Mosquitto and trains NCF, sentiment and ResNet in the
interpreter to their smoke targets."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import venv

import pytest
import yaml

from tests.conftest import ROOT, cli, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def phone_bin(tmp_path_factory):
    """The phone venv's bin folder (made once per module: ~1-2 minutes of pip)."""
    where = tmp_path_factory.mktemp("phone-venv")
    venv.EnvBuilder(with_pip=True).create(where)
    bin_dir = where / "bin"
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", f"{ROOT}[phone]"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return bin_dir


def phone_profile(where):
    """A folder holding the android-phone profile as shipped, but for its power: this machine
    has no battery, so the sources are discovered (none: the result says unmeasured) and the
    cooldown's idle baseline is skipped."""
    profile = yaml.safe_load((ROOT / "device_profiles" / "android-phone.yaml").read_text())
    assert profile["training_runtime"] == "litert"
    profile["power"] = {"sources": [], "cooldown": {"baseline_s": 0}}
    folder = where / "profiles"
    folder.mkdir()
    (folder / "android-phone.yaml").write_text(yaml.safe_dump(profile))
    return folder


def test_the_phone_extra_has_no_torch_and_no_tensorflow(phone_bin):
    for module in ("torch", "tensorflow"):
        proc = subprocess.run([str(phone_bin / "python"), "-c", f"import {module}"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, module
    ok = subprocess.run([str(phone_bin / "python"), "-c",
                         "import ai_edge_litert.interpreter, numpy, PIL, references.litert.run"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr[-2000:]


def test_a_phone_environment_trains_litert_jobs_from_the_controller(
        mosquitto, agents, phone_bin, ncf_artifact, sentiment_artifact, resnet_artifact,
        tmp_path):
    folder = tmp_path / "models"                  # what the operator copies to the phone
    folder.mkdir()
    for artifact in (ncf_artifact, sentiment_artifact, resnet_artifact):
        shutil.copy(artifact.path, folder)
        shutil.copy(artifact.label_path, folder)
    env = {"MLPERF_BROKER": mosquitto.url, "MLPERF_DB": f"sqlite:///{tmp_path / 'lab.db'}",
           "MLPERF_PREFIX": f"t{secrets.token_hex(3)}/v1"}
    agents(mosquitto.url, "pixel", "--prefix", env["MLPERF_PREFIX"], "--models-dir",
           str(folder), "--profile", "android-phone", "--profiles-dir",
           str(phone_profile(tmp_path)), bin_dir=phone_bin)

    def online():
        devices = json.loads(cli("mlperf-controller", "devices", "--json", env=env,
                                 check=True).stdout)
        return any(d["name"] == "pixel" and d["state"] == "online" for d in devices)

    wait_for(online, 60, interval_s=0.5, what="the phone agent online")
    # No --runtime, no --model: the phone's profile trains in the interpreter, and each job's
    # model is the one built for its benchmark and mode in the controller's models folder.
    run = cli("mlperf-controller", "run", "--benchmarks", "ncf,sentiment,resnet", "--devices",
              "pixel", "--mode", "smoke", "--models-dir", str(folder), "--json", env=env,
              timeout=400)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {r["benchmark"]: r for r in json.loads(run.stdout)["results"]}
    for bench, artifact in (("ncf", ncf_artifact), ("sentiment", sentiment_artifact),
                            ("resnet", resnet_artifact)):
        row = rows[bench]
        assert row["state"] == "done" and row["converged"], row
        assert row["runtime"] == "litert" and row["model_sha256"] == artifact.sha256
    assert sys.prefix not in str(phone_bin)                 # it really was the other venv
