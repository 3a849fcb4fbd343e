"""Jobs in containers, end to end: controller -> Mosquitto -> agent -> container -> result
with the image digest; pulling from the registry; OOM kills and cancellation reported."""

import io
import json
import secrets
import threading
import time
import uuid

import pytest

from agent.jobs import JobExecution, Workspace
from agent.platforms import host_platform
from agent.protocol import JobAssignment, JobState, Sequence
from tests.conftest import cli, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def env(mosquitto, tmp_path):
    return {"MLPERF_BROKER": mosquitto.url, "MLPERF_DB": f"sqlite:///{tmp_path / 'lab.db'}",
            "MLPERF_PREFIX": f"t{secrets.token_hex(3)}/v1"}


def devices(env):
    return {d["name"]: d for d in json.loads(cli("mlperf-controller", "devices", "--json",
                                                 env=env, check=True).stdout)}


def test_ncf_smoke_in_container_then_from_the_registry(env, agents, mosquitto, cpu_image,
                                                       pushed, engine):
    agent = agents(mosquitto.url, "boxed", "--prefix", env["MLPERF_PREFIX"])
    online = wait_for(lambda: (d := devices(env).get("boxed")) and d["state"] == "online" and d,
                      60, interval_s=0.5, what="agent online")
    caps = online["capabilities"]
    assert caps["container_engine"].startswith("docker ")
    profile = caps["profile"]
    assert profile                                       # detected on this host

    run = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices",
              f"profile:{profile}", "--image", cpu_image["tag"], "--json", env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:] + agent.log[-3000:]
    (row,) = json.loads(run.stdout)["results"]
    result = row["result"]
    assert row["state"] == "done" and result["outcome"]["reached_target"] is True
    assert result["image_digest"] == engine.images.get(cpu_image["tag"]).id
    job_dir = agent.work_dir / "jobs" / row["job_id"]          # the container's /work/out
    assert (job_dir / "result.json").is_file() and (job_dir / "stdout.log").is_file()
    log = cli("mlperf-controller", "logs", row["job_id"], env=env, check=True).stdout
    keys = [json.loads(line[len(":::MLLOG "):])["key"] for line in log.splitlines()]
    assert keys.count("run_start") == 1 and keys.count("run_stop") == 1
    assert len(keys) == result["mllog_lines"]

    # Through the registry: the device does not have the registry's ref, so it pulls it.
    if engine.images.list(name=pushed["ref"]):
        engine.images.remove(pushed["ref"])
    run = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "boxed",
              "--image", f"{profile}={pushed['ref']}", "--json", env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:] + agent.log[-3000:]
    (row,) = json.loads(run.stdout)["results"]
    assert row["state"] == "done"
    assert row["result"]["image_digest"] == pushed["digest"]
    assert f"pulling image {pushed['ref']}" in agent.log


def job(image, digest=None, **fields):
    """A job in ``image``, pinned to ``digest`` (default: the image's id in this engine)."""
    if digest is None:
        import docker
        try:
            digest = docker.from_env().images.get(image).id
        except docker.errors.ImageNotFound:
            digest = "sha256:" + "00" * 32
    return JobAssignment(**{**dict(job_id=f"j{uuid.uuid4().hex[:8]}", campaign_id="ctest",
                                   benchmark="ncf", mode="smoke", run_index=1, seed=1,
                                   image=image, image_digest=digest, seq=0, sent_at=0.0),
                            **fields})


def workspace(tmp_path, profile=None):
    from agent.container import engine_version

    return Workspace(tmp_path / "data", tmp_path / "work", "test", profile=profile,
                     engine=engine_version(), images_dir=tmp_path / "images")


def test_oom_kill_is_reported(cpu_image, tmp_path):
    from agent.profiles.schema import DeviceProfile

    tiny = DeviceProfile(name="tiny", description="64 MiB", platform="auto",
                         runtime="torch-cpu", container={"memory_limit_mb": 64})
    result = JobExecution(job(cpu_image["tag"]), "test", workspace(tmp_path, tiny),
                          Sequence()).run()
    assert result.status == "failed"
    assert "out of memory (OOM; container limit 64 MiB" in result.error
    assert result.exit_code == 137
    assert result.image_digest.startswith("sha256:")


def test_cancel_stops_the_container(cpu_image, engine, tmp_path):
    lines: list[str] = []
    execution = JobExecution(job(cpu_image["tag"]), "test", workspace(tmp_path), Sequence(),
                             on_mllog=lines.extend)
    done: list = []
    worker = threading.Thread(target=lambda: done.append(execution.run()))
    worker.start()
    wait_for(lambda: any('"run_start"' in line for line in lines), 120, what="run_start")
    execution.request_cancel("test cancel")
    worker.join(60)
    (result,) = done
    assert result.status == "cancelled" and result.error == "test cancel"
    assert execution.state == JobState.REPORTING
    out = str(tmp_path / "work" / "jobs" / result.job_id)
    assert not engine.containers.list(all=True, filters={"label": f"io.mlperf-edge.out={out}"})


def test_without_an_engine_the_job_runs_natively(tmp_path):
    from agent.container import choose_process
    from agent.runner import ReferenceProcess, RunRequest

    ws = Workspace(tmp_path, tmp_path, "test", engine=None)
    request = RunRequest("ncf", "smoke", 1, tmp_path / "out", "test")
    process, placed = choose_process(job("mlperf-edge/x:1", "sha256:" + "11" * 32), ws,
                                     request, print, print)
    assert type(process) is ReferenceProcess and placed.image_digest is None
    assert placed.platform == host_platform() and placed.emulated is False


def test_an_emulating_agent_runs_nothing_natively(tmp_path):
    from agent.container import choose_process
    from agent.errors import JobError
    from agent.runner import RunRequest

    foreign = "linux/arm64" if host_platform() == "linux/amd64" else "linux/amd64"
    ws = Workspace(tmp_path, tmp_path, "test", engine=None, container_platform=foreign)
    request = RunRequest("ncf", "smoke", 1, tmp_path / "out", "test")
    bare = JobAssignment(job_id="jbare", campaign_id="ctest", benchmark="ncf", mode="smoke",
                         run_index=1, seed=1, seq=0, sent_at=0.0)
    with pytest.raises(JobError, match=f"runs {foreign} containers under emulation"):
        choose_process(bare, ws, request, print, print)


def test_an_image_of_another_platform_is_refused(cpu_image, tmp_path):
    """An agent runs only images of its platform: an amd64 image on an agent that runs arm64
    containers (or the other way round) is one line, never an exec format error."""
    from agent.container import choose_process, engine_version
    from agent.errors import JobError
    from agent.runner import RunRequest

    foreign = "linux/arm64" if host_platform() == "linux/amd64" else "linux/amd64"
    ws = Workspace(tmp_path, tmp_path, "test", engine=engine_version(),
                   images_dir=tmp_path / "images", container_platform=foreign)
    request = RunRequest("ncf", "smoke", 1, tmp_path / "out", "test")
    with pytest.raises(JobError, match=f"is built for {host_platform()}; this agent runs "
                                       f"{foreign} containers"):
        choose_process(job(cpu_image["tag"]), ws, request, print, print)


def test_engine_refusal_is_a_failed_result_not_a_crash(cpu_image, engine, tmp_path):
    """--gpus all on a host without the NVIDIA runtime: the engine refuses to start it."""
    from agent.profiles.schema import DeviceProfile

    if "nvidia" in (engine.info().get("Runtimes") or {}):
        pytest.skip("this host has the NVIDIA container runtime")
    gpu = DeviceProfile(name="gpu", description="gpus", platform="auto", runtime="torch-cuda",
                        container={"gpus": True})
    tag = f"mlperf-edge/gpu-labelled:{uuid.uuid4().hex[:8]}"      # an image that wants a GPU
    engine.images.build(fileobj=io.BytesIO(
        f"FROM {cpu_image['tag']}\nLABEL io.mlperf-edge.accelerator=cuda\n".encode()), tag=tag,
        rm=True)
    try:
        result = JobExecution(job(tag), "test", workspace(tmp_path, gpu), Sequence()).run()
    finally:
        engine.images.remove(tag)
    assert result.status == "failed" and result.exit_code == 125
    assert result.error.startswith(f"the container engine refused to run {tag}")
    out = str(tmp_path / "work" / "jobs" / result.job_id)
    assert not engine.containers.list(all=True, filters={"label": f"io.mlperf-edge.out={out}"})


def test_a_cpu_image_runs_without_gpus_on_a_gpu_profile(cpu_image, engine, tmp_path):
    """A Jetson's CPU image (labelled accelerator=cpu) on its GPU profile: no --gpus, so it
    runs where the NVIDIA runtime is missing instead of being refused."""
    from agent.profiles.schema import DeviceProfile

    assert engine.images.get(cpu_image["tag"]).labels["io.mlperf-edge.accelerator"] == "cpu"
    gpu = DeviceProfile(name="gpu", description="gpus", platform="auto", runtime="torch-cuda",
                        container={"gpus": True})
    result = JobExecution(job(cpu_image["tag"]), "test", workspace(tmp_path, gpu),
                          Sequence()).run()
    assert result.status == "done", result.error
    assert result.platform == host_platform() and result.emulated is False


def test_an_image_that_cannot_be_had_fails_the_job_in_preparing(engine, tmp_path):
    states = []
    result = JobExecution(job("127.0.0.1:9/none/such:1"), "test", workspace(tmp_path),
                          Sequence(), on_state=lambda s, d: states.append(s)).run()
    assert result.status == "failed" and result.image_digest is None
    assert result.error.startswith("image 127.0.0.1:9/none/such:1 is not here and cannot be "
                                   "pulled")
    assert JobState.RUNNING not in states


def running_container(engine, tmp_path, lines, timeout_s=120):
    """The container of the job whose folder is under ``tmp_path``, once it logged run_start."""
    wait_for(lambda: any('"run_start"' in line for line in lines), timeout_s, what="run_start")
    jobs = str(tmp_path / "work" / "jobs")
    [container] = [c for c in engine.containers.list()
                   if c.labels.get("io.mlperf-edge.out", "").startswith(jobs)]
    return container


def test_the_container_is_contained(cpu_image, engine, tmp_path):
    """The harness is the command (never the image's entrypoint); no capabilities, no
    privilege gain, a pids limit, a non-root user, a read-only root filesystem."""
    lines: list[str] = []
    execution = JobExecution(job(cpu_image["tag"], params={"max_epochs": "1000",
                                                           "learning_rate": "1e-9"}),
                             "test", workspace(tmp_path), Sequence(), on_mllog=lines.extend)
    done: list = []
    worker = threading.Thread(target=lambda: done.append(execution.run()))
    worker.start()
    try:
        container = running_container(engine, tmp_path, lines)
        config, host = container.attrs["Config"], container.attrs["HostConfig"]
        assert config["Entrypoint"][:4] == ["python", "-m", "references", "run"]
        assert not config["Cmd"]
        assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
        assert host["PidsLimit"] == 4096 and host["ReadonlyRootfs"] is True
        assert config["User"] == "65534:65534"                  # the tests run as root
        probe = container.exec_run(["sh", "-c", "id -u; grep CapEff /proc/self/status; "
                                    "touch /usr/x 2>&1 || echo read-only; "
                                    "touch /work/out/ok && echo out-writable"]).output.decode()
        assert probe.splitlines()[0] == "65534"
        assert "CapEff:\t0000000000000000" in probe
        assert "read-only" in probe and "out-writable" in probe
    finally:
        execution.request_cancel("test over")
        worker.join(60)
    assert done[0].status == "cancelled"


def test_an_image_other_than_the_pinned_one_is_refused(cpu_image, tmp_path):
    states = []
    result = JobExecution(job(cpu_image["tag"], "sha256:" + "12" * 32), "test",
                          workspace(tmp_path), Sequence(),
                          on_state=lambda s, d: states.append(s)).run()
    assert result.status == "failed" and "the job pins" in result.error
    assert JobState.RUNNING not in states


@pytest.mark.parametrize("benchmark", ["transformer", "deepspeech2", "maskrcnn", "minigo"])
def test_newer_references_read_their_real_formats_in_the_image(cpu_image, tmp_path, benchmark):
    """WMT text with .sgm, LibriSpeech FLAC, COCO JSON with images and SGF game records, in the
    layouts they ship in, through the image's pinned sentencepiece, sacrebleu, soundfile,
    pycocotools and sgfmill. The data mount is read-only: the vocabulary is learned into the
    job's folder instead, and Minigo's self-play games are written there."""
    from tests.references.test_deepspeech2 import write_librispeech
    from tests.references.test_maskrcnn_coco import write_coco
    from tests.references.test_minigo_runs import write_pro_games
    from tests.references.test_transformer import write_wmt

    if benchmark == "minigo":
        write_pro_games(tmp_path / "data" / "benchmark_sgf")
        params = {"conv_width": "8", "fc_width": "16", "trunk_layers": "1", "readouts": "4",
                  "games_per_generation": "2", "batch_size": "8",
                  "examples_per_generation": "32", "gating_games_per_side": "1",
                  "gating_readouts": "2", "eval_readouts": "2", "max_epochs": "1",
                  "threads": "1"}
        meaning = "self-play: 2 games"
    elif benchmark == "maskrcnn":
        write_coco(tmp_path / "data" / "coco")
        params = {"variant": "r14-fpn-tiny", "min_size_px": "64", "batch_size": "1",
                  "max_epochs": "1", "workers": "0", "threads": "1"}
        meaning = "box AP"                      # COCOeval ran, in the image
    elif benchmark == "transformer":
        write_wmt(tmp_path / "data" / "wmt_en_de")
        params = {"arch": "tiny", "vocab_size": "128", "max_epochs": "1", "threads": "1"}
        meaning = "vocabulary: learned /work/out/"
    else:
        write_librispeech(tmp_path / "data" / "LibriSpeech")
        params = {"model": "ds2-c8-2x96", "train_subsets": "train-clean-100",
                  "eval_subsets": "dev-clean", "batch_size": "2", "max_epochs": "1",
                  "threads": "1"}
        meaning = "dev-clean: 6 utterances"
    lines: list[str] = []
    result = JobExecution(job(cpu_image["tag"], benchmark=benchmark, mode="reduced",
                              division="open", params=params),
                          "test", workspace(tmp_path), Sequence(), on_mllog=lines.extend).run()
    assert result.status == "done", result.error
    outcome = result.outcome
    assert outcome.stop_reason == "max_epochs" and outcome.reached_target is False
    assert "NOT the MLPerf dataset" in outcome.dataset
    assert outcome.quality is not None and outcome.time_to_train_s is None
    job_dir = tmp_path / "work" / "jobs" / result.job_id
    said = "".join(p.read_text() for p in job_dir.glob("std*.log")) + outcome.dataset
    assert meaning in said, said[-2000:]
    assert any('"eval_accuracy"' in line for line in lines)
    if benchmark == "minigo":
        assert len(list((job_dir / "selfplay").glob("*.sgf"))) == 2, \
            sorted(p.name for p in job_dir.rglob("*"))


HOSTILE = '''
import json, os, sys, time
out = sys.argv[sys.argv.index("--out") + 1]
seed = int(sys.argv[sys.argv.index("--seed") + 1])
def mllog(key, t):
    print(":::MLLOG " + json.dumps({"namespace": "", "time_ms": t, "event_type": "POINT_IN_TIME",
                                    "key": key, "value": None, "metadata": {}}), flush=True)
now = int(time.time() * 1000)
if seed == 1:        # result.json is a link to a host file the agent (root) could read
    mllog("run_start", now); mllog("run_stop", now + 5)
    os.symlink("/etc/shadow", os.path.join(out, "result.json"))
elif seed == 2:      # a window from 1970, an endless line, a nested MLLOG line
    mllog("run_start", 1000); mllog("run_stop", 2000)
    print("y" * 3_000_000, flush=True)
    print(":::MLLOG " + "[" * 100_000 + "]" * 100_000, flush=True)
    with open(os.path.join(out, "result.json"), "w") as fh:
        fh.write("{}")
else:                # a result.json far past the bound
    mllog("run_start", now); mllog("run_stop", now + 5)
    with open(os.path.join(out, "result.json"), "w") as fh:
        fh.write(" " * (2 << 20) + "{}")
'''


@pytest.fixture(scope="module")
def hostile_image(cpu_image, engine, tmp_path_factory):
    """The CPU image with its reference harness replaced by one that lies and attacks."""
    where = engine.containers.run(cpu_image["tag"], ["python", "-c", "import references, os; "
                                                     "print(os.path.dirname(references.__file__))"],
                                  remove=True).decode().strip()
    ctx = tmp_path_factory.mktemp("hostile")
    (ctx / "main.py").write_text(HOSTILE)
    (ctx / "Dockerfile").write_text(f"FROM {cpu_image['tag']}\nCOPY main.py {where}/__main__.py\n")
    image, _ = engine.images.build(path=str(ctx), tag="mlperf-edge/hostile:test", rm=True)
    yield image
    engine.images.remove(image.id, force=True)


@pytest.mark.parametrize("seed, complaint", [
    (1, "result.json in the job folder cannot be opened safely"),
    (2, "the timed window lies outside the time the run took"),
    (3, "result.json is larger than"),
])
def test_what_a_container_writes_back_is_untrusted(hostile_image, tmp_path, seed, complaint):
    result = JobExecution(job("mlperf-edge/hostile:test", hostile_image.id, seed=seed), "test",
                          workspace(tmp_path), Sequence()).run()
    assert result.status == "failed" and complaint in result.error, result.error
    assert result.outcome is None
    assert "root:" not in (result.error or "")                       # /etc/shadow not read


def test_a_container_left_by_a_killed_agent_is_removed_before_the_next_job(
        env, agents, mosquitto, cpu_image, engine, tmp_path):
    """SIGKILL the agent mid-job: its container runs on. The restarted agent removes it
    before it takes anything, and the retried run has the device to itself."""
    from tests.integration.conftest import Serve

    serve = Serve(env, tmp_path / "serve.log")
    serve.ready()
    try:
        agent = agents(mosquitto.url, "boxed-k", "--prefix", env["MLPERF_PREFIX"])
        wait_for(lambda: (devices(env).get("boxed-k") or {}).get("state") == "online", 60,
                 interval_s=0.5, what="agent online")
        queued = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "boxed-k",
                     "--image", cpu_image["tag"], "--set", "learning_rate=1e-9", "--set",
                     "max_epochs=10000", "--set", "max_seconds=30", "--detach", "--json",
                     env=env, check=True)
        cid = json.loads(queued.stdout)["campaign_id"]
        label = {"label": "io.mlperf-edge.agent=boxed-k"}
        wait_for(lambda: engine.containers.list(filters=label), 180, what="the container")
        agent.kill()
        time.sleep(2)
        assert engine.containers.list(filters=label), "the container outlives its agent"
        again = agents(mosquitto.url, "boxed-k", "--prefix", env["MLPERF_PREFIX"])
        wait_for(lambda: "removing container" in again.log, 120, what="the leftover removed")
        most = 0
        while json.loads(cli("mlperf-controller", "campaigns", "--json", env=env,
                             check=True).stdout)[-1]["state"] != "done":
            most = max(most, len(engine.containers.list(all=True, filters=label)))
            time.sleep(0.5)
        assert most <= 1                                       # never two at once
        rows = json.loads(cli("mlperf-controller", "results", "--campaign", cid, "--json",
                              env=env, check=True).stdout)
        counted = [r for r in rows if not r["superseded"]]
        assert len(counted) == 1 and counted[0]["state"] == "done"
        assert not engine.containers.list(all=True, filters=label)
    finally:
        serve.stop()


def test_two_agents_train_one_run_in_their_containers(env, agents, mosquitto, cpu_image,
                                                      engine):
    """A group run in the benchmark image: each member's reference runs in its own container
    (non-root, no capabilities, --network host), and they meet at rank 0's rendezvous."""
    for name in ("box-0", "box-1"):
        agents(mosquitto.url, name, "--prefix", env["MLPERF_PREFIX"], "--tag", "boxes",
               "--address", "127.0.0.1")
    wait_for(lambda: all(devices(env).get(n, {}).get("state") == "online"
                         for n in ("box-0", "box-1")), 60, interval_s=0.5, what="agents online")
    run = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "tag:boxes",
              "--nodes", "2", "--image", cpu_image["tag"], "--json", env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    [row] = json.loads(run.stdout)["results"]
    assert row["state"] == "done" and row["nodes"] == 2, row
    outcome = row["result"]["outcome"]
    assert outcome["reached_target"] and outcome["world_size"] == 2
    assert row["result"]["image_digest"] == engine.images.get(cpu_image["tag"]).id
    assert [d["state"] for d in row["node_detail"]] == ["done", "done"]
