"""Boards: the Raspberry Pi image built here for linux/arm64 from pinned wheels, the Jetson
profile's CPU image, and an NCF smoke job run in the arm64 container under qemu by an agent
started with --platform linux/arm64 -- sideloaded as a tarball, through the real controller,
Mosquitto and engine. Emulated figures are labelled as such end to end.

Cold, the arm64 base alone is ~5 min of debootstrap under qemu; the base image and wheels are
kept (engine, ~/.cache/mlperf-edge), so a second run of the suite builds from cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from controller.images.context import resolve_requirements, sha256_of, wheel_cache
from tests.conftest import ROOT, cli, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.boards]

PI = "raspberry-pi-5"


@pytest.fixture(scope="session")
def arm64_image(engine, qemu_arm64) -> dict:
    """raspberry-pi-5 built through the CLI (the arm64 base made on the way when missing)."""
    proc = cli("mlperf-controller", "images", "build", "--profile", PI, "--json",
               check=True, timeout=2400)
    (built,) = json.loads(proc.stdout)
    return built


def test_the_pi_image_is_arm64_from_pinned_wheels_with_their_hashes(arm64_image, engine):
    assert arm64_image["tag"] == f"mlperf-edge/{PI}:0.1.0"
    assert arm64_image["platform"] == "linux/arm64" and arm64_image["accelerator"] == "cpu"
    image = engine.images.get(arm64_image["tag"])
    assert image.attrs["Architecture"] == "arm64"
    labels = image.labels
    assert labels["io.mlperf-edge.platform"] == "linux/arm64"
    wheels = json.loads(labels["io.mlperf-edge.wheels"])
    pins = resolve_requirements(ROOT / "containers" / "torch-cpu" / "requirements.txt",
                                "linux/arm64")
    assert len(wheels) == len(pins)                      # one wheel per pin, nothing else
    assert any(name.startswith("torch-2.10.0-") and "aarch64" in name for name in wheels)
    cache = wheel_cache("linux/arm64")
    for name, digest in wheels.items():                  # the label names the exact bytes
        assert sha256_of(cache / name) == digest, name
    code = ("import platform, torch, agent, references, os; "
            "print(platform.machine(), torch.__version__, os.path.exists('/build'))")
    out = engine.containers.run(arm64_image["tag"], ["python", "-c", code], remove=True,
                                network_mode="host", platform="linux/arm64").decode().split()
    assert out == ["aarch64", "2.10.0+cpu", "False"]     # a CPU build, as on PyPI


def test_a_jetson_without_its_l4t_base_gets_its_cpu_image_and_is_told_why(arm64_image, engine):
    proc = cli("mlperf-controller", "images", "build", "--profile", "jetson-orin-nano",
               "--json", timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "nvcr.io/nvidia/l4t-pytorch:r35.2.1-pth2.0-py3 is not in this engine" in proc.stderr
    assert "images build does not fetch it" in proc.stderr and "nvcr.io" in proc.stderr
    assert "docs/boards.md" in proc.stderr
    (built,) = json.loads(proc.stdout)
    assert built["tag"] == "mlperf-edge/jetson-orin-nano-cpu:0.1.0"
    assert built["accelerator"] == "cpu" and built["platform"] == "linux/arm64"
    jetson = engine.images.get(built["tag"])
    assert jetson.labels["io.mlperf-edge.runtime"] == "torch-cpu"
    assert jetson.labels["io.mlperf-edge.profile"] == "jetson-orin-nano"
    pi = engine.images.get(arm64_image["tag"])                   # same recipe, same layers
    assert jetson.attrs["RootFS"]["Layers"] == pi.attrs["RootFS"]["Layers"]


def test_ncf_smoke_on_an_emulated_pi_from_a_sideloaded_tarball(arm64_image, engine, mosquitto,
                                                                 agents, tmp_path):
    """images export -> the agent's images folder; the engine forgets the image; an agent
    with --platform linux/arm64 loads it when the job comes and trains NCF to the smoke
    target in the arm64 container. The result records the platform, the image digest and
    that it was emulated; results and score say so."""
    env = {"MLPERF_BROKER": mosquitto.url, "MLPERF_DB": f"sqlite:///{tmp_path / 'lab.db'}",
           "MLPERF_PREFIX": f"b{uuid.uuid4().hex[:6]}/v1"}
    tag = f"mlperf-edge/{PI}-sideload:{uuid.uuid4().hex[:8]}"
    engine.images.get(arm64_image["tag"]).tag(tag)
    image_id = engine.images.get(tag).id
    images_dir = tmp_path / "agent-images"
    cli("mlperf-controller", "images", "export", str(images_dir / "pi.tar"), tag, check=True,
        timeout=900)

    try:
        _emulated_smoke(tag, image_id, images_dir, env, engine, mosquitto, agents)
    finally:
        if engine.images.list(name=tag):
            engine.images.remove(tag)


def _emulated_smoke(tag, image_id, images_dir, env, engine, mosquitto, agents):
    agent = agents(mosquitto.url, "pi5-qemu", "--prefix", env["MLPERF_PREFIX"],
                   "--profile", PI, "--platform", "linux/arm64", "--images-dir",
                   str(images_dir), "--heartbeat-s", "5")

    def device():
        rows = json.loads(cli("mlperf-controller", "devices", "--json", env=env,
                              check=True).stdout)
        return next((d for d in rows if d["name"] == "pi5-qemu" and d["state"] == "online"),
                    None)
    caps = wait_for(device, 90, interval_s=0.5, what="emulating agent online")["capabilities"]
    assert caps["container_platform"] == "linux/arm64" and caps["emulated"] is True
    assert "emulated on" in cli("mlperf-controller", "devices", env=env, check=True).stdout

    # The controller pins the image while its engine has it; the device's "engine" then
    # forgets it before the job arrives (the agent is paused meanwhile), so it must load the
    # sideloaded tarball.
    os.kill(agent.proc.pid, signal.SIGSTOP)
    try:
        run = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "mlperf-controller"), "run", "--benchmarks", "ncf",
             "--devices", "pi5-qemu", "--mode", "smoke", "--image", f"{PI}={tag}", "--json"],
            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)

        def assigned():
            proc = cli("mlperf-controller", "results", "--json", env=env)
            rows = json.loads(proc.stdout) if proc.returncode == 0 else []
            return rows and rows[0]["state"] == "assigned"
        wait_for(assigned, 60, interval_s=0.5, what="job assigned")
        engine.images.remove(tag)
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)
    started = time.monotonic()
    out, err = run.communicate(timeout=1800)
    assert run.returncode == 0, err[-3000:] + agent.log[-3000:]
    (row,) = json.loads(out)["results"]
    result = row["result"]
    assert row["state"] == "done", row
    assert result["outcome"]["reached_target"] is True
    assert result["platform"] == "linux/arm64" and result["emulated"] is True
    assert result["image_digest"] == image_id == engine.images.get(tag).id
    assert f"loading image {tag}" in agent.log
    assert row["emulated"] is True and row["platform"] == "linux/arm64"
    table = cli("mlperf-controller", "results", env=env, check=True).stdout
    assert "emulated)" in table
    score = json.loads(cli("mlperf-controller", "score", "--json", env=env,
                           check=True).stdout)
    assert [s["status"] for s in score] == ["emulated"]
    print(f"emulated NCF smoke job: {time.monotonic() - started:.0f} s after dispatch")
