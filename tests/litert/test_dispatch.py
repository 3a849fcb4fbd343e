"""A litert campaign through the real parts: the controller names the model by hash in signed
jobs over Mosquitto, a real `mlperf-agent start` with the artifact sideloaded in its
--models-dir trains NCF in the interpreter to the smoke target, and the stored row says which
runtime and model ran. A device without the model fails the job in one line naming it; the
controller refuses a litert campaign without a model that fits its config, with an image, for a
reference the interpreter cannot run, or naming a model whose bytes do not match its hash."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from tests.conftest import cli, wait_for

pytestmark = pytest.mark.integration


def controller_env(mosquitto, tmp_path) -> dict[str, str]:
    return {"MLPERF_BROKER": mosquitto.url, "MLPERF_DB": f"sqlite:///{tmp_path / 'lab.db'}",
            "MLPERF_PREFIX": f"t{secrets.token_hex(3)}/v1"}


def online(env, *names: str) -> None:
    def all_online():
        devices = json.loads(cli("mlperf-controller", "devices", "--json", env=env,
                                 check=True).stdout)
        state = {d["name"]: d["state"] for d in devices}
        return all(state.get(n) == "online" for n in names)

    wait_for(all_online, 30, interval_s=0.5, what=f"{', '.join(names)} online")


def test_a_litert_campaign_trains_in_the_interpreter_on_the_device(
        mosquitto, agents, built_by_cli, ncf_artifact, tmp_path):
    folder, _ = built_by_cli
    env = controller_env(mosquitto, tmp_path)
    agents(mosquitto.url, "phone-1", "--prefix", env["MLPERF_PREFIX"], "--models-dir",
           str(folder))
    agents(mosquitto.url, "phone-2", "--prefix", env["MLPERF_PREFIX"], "--models-dir",
           str(tmp_path / "empty"))                 # the model was never copied here
    online(env, "phone-1", "phone-2")
    run = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "phone-1,phone-2",
              "--mode", "smoke", "--runtime", "litert", "--model", ncf_artifact.sha256,
              "--models-dir", str(folder), "--retries", "0", "--json", env=env, timeout=300)
    campaign = json.loads(run.stdout)
    rows = {r["device"]: r for r in campaign["results"]}
    done = rows["phone-1"]
    assert done["state"] == "done", done
    assert done["runtime"] == "litert" and done["model_sha256"] == ncf_artifact.sha256
    assert done["converged"] and done["quality"] >= done["target"]
    log = cli("mlperf-controller", "logs", done["job_id"], env=env, check=True).stdout
    assert f'"model_sha256": "{ncf_artifact.sha256}"' in log
    missing = rows["phone-2"]
    assert missing["state"] == "failed" and f"model {ncf_artifact.sha256} not found" in \
        missing["error"], missing
    assert run.returncode == 1                      # one run failed: the exit code says so


@pytest.mark.parametrize("args, complaint", [
    (["--runtime", "litert", "--set", "learning_rate=0.5"],
     "--runtime litert: no ncf model for smoke runs with this config in"),
    (["--runtime", "litert", "--model", "MODEL", "--set", "learning_rate=0.5"],
     "the model artifact was built with learning_rate="),
    (["--runtime", "litert", "--model", "MODEL", "--image", "lab/x:1"],
     "--image and --runtime litert exclude each other"),
    (["--runtime", "torch", "--model", "MODEL"], "--model is for --runtime litert"),
    (["--runtime", "litert", "--model", "MODEL", "--benchmarks", "minigo"],
     "minigo cannot run in the LiteRT interpreter yet"),
    (["--runtime", "litert", "--model", "TAMPERED"], "expected"),
])
def test_a_litert_campaign_that_cannot_run_is_one_line(mosquitto, built_by_cli, ncf_artifact,
                                                      tmp_path, args, complaint):
    folder, _ = built_by_cli
    copy = tmp_path / "models"
    shutil.copytree(folder, copy)
    tampered = "0" * 64
    (copy / f"{tampered}.tflite").write_bytes(b"not the model")
    shutil.copy(copy / f"{ncf_artifact.sha256}.json", copy / f"{tampered}.json")
    swap = {"MODEL": ncf_artifact.sha256, "TAMPERED": tampered}
    argv = [swap.get(a, a) for a in args]
    if "--benchmarks" not in argv:
        argv += ["--benchmarks", "ncf"]
    env = controller_env(mosquitto, tmp_path)
    run = cli("mlperf-controller", "run", *argv, "--devices", "phone-1", "--mode", "smoke",
              "--models-dir", str(copy), "--detach", env=env, timeout=60)
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert complaint in run.stderr, run.stderr[-2000:]


class ModelServer:
    """`mlperf-controller models serve` on a free loopback port, stopped after."""

    def __init__(self, folder) -> None:
        from tests.conftest import BIN

        self.proc = subprocess.Popen([str(BIN / "mlperf-controller"), "models", "serve",
                                      "--listen", "127.0.0.1:0", "--out", str(folder)],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        line = self.proc.stderr.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        self.url = match.group(1)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def model_servers():
    started: list[ModelServer] = []

    def start(folder) -> ModelServer:
        started.append(ModelServer(folder))
        return started[-1]

    yield start
    for server in started:
        server.close()


def test_devices_fetch_the_model_and_keep_it_only_if_its_hash_holds(
        mosquitto, agents, model_servers, built_by_cli, ncf_artifact, tmp_path):
    folder, _ = built_by_cli
    honest = model_servers(folder)
    forged = tmp_path / "forged"
    shutil.copytree(folder, forged)
    model = forged / f"{ncf_artifact.sha256}.tflite"
    model.write_bytes(model.read_bytes()[:-1] + b"\x00")     # same name, other bytes
    liar = model_servers(forged)
    # The server serves hash-named files and nothing else.
    with urllib.request.urlopen(f"{honest.url}/{ncf_artifact.sha256}.json") as r:
        assert json.loads(r.read())["sha256"] == ncf_artifact.sha256
    for path in ("/", "/../lab.db", f"/{ncf_artifact.sha256}.tflite/../x", "/models.json"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{honest.url}{path}")
        assert err.value.code == 404

    env = controller_env(mosquitto, tmp_path)
    work = {name: tmp_path / "agents" / name for name in ("phone-3", "phone-4")}
    agents(mosquitto.url, "phone-3", "--prefix", env["MLPERF_PREFIX"], "--models-url",
           honest.url, work_dir=work["phone-3"])
    agents(mosquitto.url, "phone-4", "--prefix", env["MLPERF_PREFIX"], "--models-url",
           liar.url, work_dir=work["phone-4"])
    online(env, "phone-3", "phone-4")
    run = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "phone-3,phone-4",
              "--mode", "smoke", "--runtime", "litert", "--model", ncf_artifact.sha256,
              "--models-dir", str(folder), "--retries", "0", "--json", env=env, timeout=300)
    rows = {r["device"]: r for r in json.loads(run.stdout)["results"]}
    assert rows["phone-3"]["state"] == "done" and rows["phone-3"]["converged"], rows["phone-3"]
    kept = work["phone-3"] / "models" / f"{ncf_artifact.sha256}.tflite"
    assert kept.read_bytes() == ncf_artifact.content
    refused = rows["phone-4"]
    assert refused["state"] == "failed", refused
    assert f"model fetched from {liar.url} refused" in refused["error"]
    assert ncf_artifact.sha256 in refused["error"] and "tampered" in refused["error"]
    assert not list((work["phone-4"] / "models").glob("*.tflite"))     # nothing kept


def test_a_models_url_that_is_not_http_is_refused_at_start(tmp_path):
    proc = cli("mlperf-agent", "start", "--broker", "mqtt://127.0.0.1:9", "--name", "p",
               "--work-dir", str(tmp_path), "--models-url", "file:///etc", timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "expected http(s)://HOST:PORT" in proc.stderr, proc.stderr[-2000:]


def test_each_device_trains_in_its_own_runtime_unless_the_campaign_says(built_by_cli,
                                                                       ncf_artifact):
    """No --runtime: a device announcing default_runtime litert (a phone's profile) gets litert
    jobs with the newest model built for the benchmark and mode; the rest torch. --runtime
    torch overrides. A benchmark the interpreter cannot run on such a device is one line."""
    from types import SimpleNamespace

    from controller.campaign import CampaignRequest
    from controller.errors import CampaignError

    folder, _ = built_by_cli
    phone = SimpleNamespace(agent_id="a1", name="pixel",
                            capabilities={"profile": "android-phone", "default_runtime": "litert"})
    pi = SimpleNamespace(agent_id="a2", name="pi", capabilities={"profile": "raspberry-pi-5"})
    req = CampaignRequest(benchmarks=["ncf"], mode="smoke", models_dir=folder)
    assert req.runtimes_for([phone, pi]) == {"a1": "litert", "a2": "torch"}
    assert req.models == {"ncf": ncf_artifact.sha256}
    forced = CampaignRequest(benchmarks=["ncf"], mode="smoke", runtime="torch")
    assert forced.runtimes_for([phone, pi]) == {"a1": "torch", "a2": "torch"}
    assert not forced.models
    assert CampaignRequest(benchmarks=["ncf"], mode="smoke").runtimes_for([pi]) == {"a2": "torch"}
    with pytest.raises(CampaignError, match=r"pixel trains in the LiteRT interpreter \(the "
                                            r"device's profile.*minigo cannot run in the LiteRT"):
        CampaignRequest(benchmarks=["minigo"], mode="smoke", models_dir=folder).runtimes_for(
            [phone, pi])
    with pytest.raises(CampaignError, match="no ncf model for smoke runs with this config"):
        CampaignRequest(benchmarks=["ncf"], mode="smoke", params={"factors": 16},
                        models_dir=folder).runtimes_for([phone])
    with pytest.raises(CampaignError, match="none of these devices trains in the interpreter"):
        CampaignRequest(benchmarks=["ncf"], mode="smoke", models={"ncf": ncf_artifact.sha256},
                        models_dir=folder).runtimes_for([pi])


def test_an_agent_announces_what_can_train_on_it():
    from agent import presence
    from agent.protocol import Capabilities

    here = presence.capabilities([])
    assert here.runtimes == ["torch", "litert"] and here.default_runtime is None
    phone = presence.capabilities([], training_runtime="litert")
    assert phone.default_runtime == "litert"
    with pytest.raises(ValueError):
        Capabilities.model_validate({**here.model_dump(), "runtimes": ["tensorflow"]})
