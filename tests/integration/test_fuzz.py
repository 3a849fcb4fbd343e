"""10,000 hostile payloads over every topic the controller and an agent read, through a real
Mosquitto: random bytes, empty, oversized, deeply nested, wrong types, schema 1, bad UTF-8,
genuine envelopes with one byte changed, envelopes signed by a stranger, replays. Afterwards
both sides are up, the store holds no junk, and a smoke job still runs to its target."""

import json
import random
import secrets
import time

import pytest

from agent.envelope import seal
from agent.identity import Identity
from agent.protocol import (
    AgentStatus,
    CancelJob,
    ControllerStatus,
    Heartbeat,
    JobAssignment,
    JobEvent,
    JobResult,
    Refusal,
    ResultAck,
)
from controller.fleet_store import MAX_PENDING
from tests.conftest import cli, wait_for
from tests.integration.conftest import devices
from tests.integration.mallory import Mallory

pytestmark = pytest.mark.integration
PAYLOADS = 10_000


def sample(kind: type, rng: random.Random, agent: str):
    """A well-formed message of ``kind`` with random but valid contents."""
    common = {"seq": rng.randrange(2 ** 31), "sent_at": time.time()}
    job = f"c-{rng.randrange(10 ** 6):06d}"
    return {
        AgentStatus: lambda: AgentStatus(agent_id=agent, name=rng.choice([agent, "[/x]", "é"]),
                                         state=rng.choice(["online", "offline"]),
                                         boot=rng.randrange(10 ** 9), session="ab" * 8,
                                         last_will=rng.random() < 0.3, heartbeat_s=5,
                                         **common),
        Heartbeat: lambda: Heartbeat(agent_id=agent, boot=1, session="ab" * 8, cpu_percent=5,
                                     memory_percent=5, **common),
        JobEvent: lambda: JobEvent(job_id=job, agent_id=agent, mllog=[":::MLLOG {}"] * 3,
                                   **common),
        JobResult: lambda: JobResult(job_id=job, result_id=secrets.token_hex(8), agent_id=agent,
                                     benchmark="ncf", mode="smoke", run_index=1, status="done",
                                     started_at=1.0, finished_at=2.0, **common),
        Refusal: lambda: Refusal(agent_id=agent, topic="x", code="signature", reason="x",
                                 claimed_job_id=job, verified=True, **common),
        JobAssignment: lambda: JobAssignment(job_id=job, campaign_id="c", benchmark="ncf",
                                             mode="smoke", run_index=1, seed=1, **common),
        CancelJob: lambda: CancelJob(job_id=job, **common),
        ResultAck: lambda: ResultAck(job_id=job, result_id="r", **common),
        ControllerStatus: lambda: ControllerStatus(controller_id="mlperf-controller",
                                                   state="offline", store="x", version="2",
                                                   **common),
    }[kind]()


def payloads(rng: random.Random, topic: str, kind: type, agent: str, trusted: Identity,
             stranger: Identity, genuine: list[bytes]):
    """One hostile payload for ``topic`` (which carries ``kind``)."""
    roll = rng.random()
    if roll < 0.12:
        return rng.randbytes(rng.randrange(0, 2000))
    if roll < 0.14:
        return b""
    if roll < 0.16:
        depth = rng.randrange(1000, 100_000)
        return b'{"schema": 2, "body": ' + b"[" * depth + b"]" * depth + b"}"
    if roll < 0.17:
        return rng.randbytes(600_000) if rng.random() < 0.5 else \
            b'{"schema": 2, "body": "' + b"x" * 700_000 + b'"}'
    if roll < 0.25:
        return json.dumps({"schema": 1, "seq": 0, "sent_at": 1.0, "agent_id": agent,
                           "job_id": None, "state": "online"}).encode()
    if roll < 0.33:
        env = json.loads(seal(sample(kind, rng, agent), topic, stranger))
        field = rng.choice(list(env))
        env[field] = rng.choice([None, 0, -1, 1e308, "", "\ud800", [], {}, "x" * 5000, True])
        return json.dumps(env).encode()
    if roll < 0.40:
        env = json.loads(seal(sample(kind, rng, agent), topic, stranger))
        env["body"] = '{"a":' + "[" * 5000 + "]" * 5000 + "}"
        return json.dumps(env).encode()
    if roll < 0.55:                       # well-formed, validly signed -- by a stranger
        return seal(sample(kind, rng, agent), topic, stranger)
    if roll < 0.85:                       # signed by a trusted key, then one byte changed
        data = bytearray(seal(sample(kind, rng, agent), topic, trusted))
        at = rng.randrange(len(data))
        data[at] = (data[at] + rng.randrange(1, 256)) % 256
        return bytes(data)
    if genuine:                           # a genuine message, replayed
        return rng.choice(genuine)
    return b"{}"


def test_ten_thousand_hostile_payloads_leave_both_sides_up_and_the_store_clean(
        env, serve, mosquitto, agents, lab_keys):
    prefix = env["MLPERF_PREFIX"]
    mallory = Mallory(mosquitto.url, prefix)
    try:
        agent = agents(mosquitto.url, "edge-f", "--prefix", prefix)
        wait_for(lambda: devices(env).get("edge-f", {}).get("state") == "online", 60,
                 interval_s=0.5, what="edge-f online")
        t = mallory.topics
        agent_key = Identity.load(agent.work_dir / "identity" / "agent_ed25519")
        genuine = mallory.captured(t.agent_status("edge-f")) + \
            mallory.captured(t.agent_heartbeat("edge-f"))
        rng = random.Random(20261130)
        stranger = Identity.generate()
        ids = ["edge-f"] + [f"ghost-{i}" for i in range(40)]
        targets = [   # topic builder, kind, whose key is trusted there
            (lambda a: t.agent_status(a), AgentStatus, agent_key),
            (lambda a: t.agent_heartbeat(a), Heartbeat, agent_key),
            (lambda a: t.job_events(a, "c-000001"), JobEvent, agent_key),
            (lambda a: t.job_result(a, "c-000001"), JobResult, agent_key),
            (lambda a: t.agent_refusals(a), Refusal, agent_key),
            (lambda a: t.agent_jobs("edge-f"), JobAssignment, lab_keys.identity),
            (lambda a: t.agent_control("edge-f"), CancelJob, lab_keys.identity),
            (lambda a: t.agent_acks("edge-f"), ResultAck, lab_keys.identity),
            (lambda a: t.controller_status(), ControllerStatus, lab_keys.identity),
        ]
        sent = 0
        for i in range(PAYLOADS):
            build, kind, trusted = targets[i % len(targets)]
            agent_id = rng.choice(ids)
            topic = build(agent_id)
            payload = payloads(rng, topic, kind, agent_id, trusted, stranger, genuine)
            retain = topic.endswith("/status") and rng.random() < 0.02
            mallory.client.publish(topic, payload, qos=1, retain=retain)
            sent += 1
            if i % 500 == 499:
                mallory.client.publish(f"{prefix}/fuzz/mark", b"", qos=1).wait_for_publish(30)
        mallory.client.publish(f"{prefix}/fuzz/mark", b"", qos=1).wait_for_publish(60)
        assert sent == PAYLOADS

        def refused_total():
            out = json.loads(cli("mlperf-controller", "devices", "refused", "--json", env=env,
                                 check=True).stdout)
            return sum(r["count"] for r in out["controller"]), out

        # The controller folds its counts into the store every few seconds: wait until they
        # stop growing (every payload handled), then look.
        last = -1
        for _ in range(60):
            total, refused = refused_total()
            if total == last and total > 0:
                break
            last = total
            time.sleep(2)
        assert serve.proc.poll() is None and agent.proc.poll() is None
        assert "Traceback" not in serve.log
        assert "Traceback" not in agent.log
        assert total >= 0.5 * PAYLOADS * 5 / 9       # the five topics the controller reads
        assert {"malformed", "signature", "unknown-key"} <= {r["code"] for r in
                                                              refused["controller"]}
        assert list(devices(env)) == ["edge-f"]
        assert json.loads(cli("mlperf-controller", "campaigns", "--json", env=env,
                              check=True).stdout) == []
        assert json.loads(cli("mlperf-controller", "results", "--json", env=env,
                              check=True).stdout) == []
        pending = json.loads(cli("mlperf-controller", "devices", "pending", "--json", env=env,
                                 check=True).stdout)
        assert len(pending) <= MAX_PENDING
        assert all(p["fingerprint"] == stranger.fingerprint for p in pending)
        assert len(refused["devices"]) <= 100                        # the agent's replies, kept
        assert not list((agent.work_dir / "jobs").glob("*")) if \
            (agent.work_dir / "jobs").exists() else True            # nothing ran

        run = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "edge-f",
                  "--json", env=env, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        [row] = json.loads(run.stdout)["results"]
        assert row["state"] == "done" and row["result"]["outcome"]["reached_target"]
    finally:
        mallory.close()
