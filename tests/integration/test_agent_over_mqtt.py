"""The agent against a real Mosquitto, with the test playing the controller by hand (signing
with the key the agents pin) and an outsider (Mallory) trying to give it orders."""

import json
import os
import secrets
import sqlite3
import time

import pytest

from agent.envelope import seal
from agent.identity import Identity
from agent.protocol import (
    CancelJob,
    ControllerStatus,
    JobAssignment,
    JobState,
    ResultAck,
)
from tests.conftest import Mosquitto, cli, free_port, wait_for
from tests.integration.helpers import Peer
from tests.integration.mallory import Mallory

pytestmark = pytest.mark.integration
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def prefix():
    return f"t{secrets.token_hex(3)}/v2"      # retained presence of other tests stays apart


@pytest.fixture
def peer(mosquitto, prefix):
    p = Peer(mosquitto.url, prefix)
    yield p
    p.close()


@pytest.fixture
def mallory(mosquitto, prefix):
    m = Mallory(mosquitto.url, prefix)
    yield m
    m.close()


def job(peer, job_id, **fields):
    return JobAssignment(job_id=job_id, campaign_id="ctest", benchmark="ncf", mode="smoke",
                         run_index=1, seed=1, **fields, **peer.seq())


def test_a_job_runs_and_reports_through_every_state(mosquitto, agents, peer, prefix):
    agent = agents(mosquitto.url, "edge-1", "--prefix", prefix)
    status = peer.wait_state("edge-1", "online")
    assert "ncf" in status.capabilities.benchmarks and status.heartbeat_s == 1
    assert status.boot >= 1 and len(status.session) == 16 and not status.last_will
    peer.send_job("edge-1", "job-1")
    result = peer.wait_result("job-1")
    assert result.status == "done", result.error
    assert result.outcome.mode == "smoke" and result.outcome.reached_target
    assert result.outcome.time_to_train_s is None           # smoke is never an MLPerf result
    assert result.timed_window.duration_s == pytest.approx(result.outcome.timed_window_s,
                                                           abs=1e-3)
    peer.wait_job_state("job-1", JobState.DONE)
    # cooling: where the device profile sets a thermal threshold (x86-64-cpu-server does)
    states = [s for s in peer.states("job-1") if s is not JobState.COOLING]
    assert states == [JobState.ACCEPTED, JobState.PREPARING, JobState.RUNNING,
                      JobState.REPORTING, JobState.DONE]
    assert result.power is not None                          # measured, estimated or none
    lines = peer.mllog("job-1")
    assert len(lines) == result.mllog_lines and all(ln.startswith(":::MLLOG ") for ln in lines)
    assert any('"run_start"' in ln for ln in lines) and any('"run_stop"' in ln for ln in lines)
    peer.ack(result)
    wait_for(lambda: "acknowledged" in agent.log, 10, what="ack logged")
    assert Identity.load(agent.work_dir / "identity" / "agent_ed25519").fingerprint in agent.log


def test_forged_unsigned_and_malformed_orders_are_refused_and_answered(mosquitto, agents, peer,
                                                                       prefix, mallory):
    agent = agents(mosquitto.url, "edge-2", "--prefix", prefix)
    peer.wait_state("edge-2", "online")
    t = peer.topics
    forged = job(peer, "forged-1", image="evil/rootkit:latest", image_digest=DIGEST)
    mallory.signed(t.agent_jobs("edge-2"), forged)                  # a key nobody pinned
    mallory.raw(t.agent_jobs("edge-2"), forged.model_dump_json(by_alias=True).encode())
    for topic in (t.agent_jobs("edge-2"), t.agent_control("edge-2"), t.agent_acks("edge-2")):
        mallory.raw(topic, b"\xff not json")
        mallory.raw(topic, b'{"schema": 1, "seq": 0, "sent_at": 1.0, "job_id": "x"}')
    mallory.raw(t.agent_jobs("edge-2"), b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    mallory.raw(t.agent_jobs("edge-2"), b"x" * 700_000)
    wait_for(lambda: len(peer.refusals) >= 10, 20, what="10 refusals answered")
    codes = {r.code for r in peer.refusals}
    assert {"unknown-key", "malformed"} <= codes, codes
    signed = next(r for r in peer.refusals if r.code == "unknown-key")
    assert signed.claimed_job_id == "forged-1" and signed.verified is False
    assert all(r.agent_id == "edge-2" for r in peer.refusals)
    assert not (agent.work_dir / "jobs" / "forged-1").exists()       # nothing ran
    assert agent.proc.poll() is None and "Traceback" not in agent.log
    peer.send_job("edge-2", "job-after-garbage")
    assert peer.wait_result("job-after-garbage").status == "done"
    assert not peer.results_for("forged-1")


def test_signed_orders_that_are_late_replayed_or_readdressed_are_refused(mosquitto, agents,
                                                                          peer, prefix):
    agents(mosquitto.url, "edge-3", "--prefix", prefix)
    agents(mosquitto.url, "edge-3b", "--prefix", prefix)
    peer.wait_state("edge-3", "online")
    peer.wait_state("edge-3b", "online")
    t = peer.topics
    late = seal(job(peer, "late-1"), t.agent_jobs("edge-3"), peer.identity,
                now=time.time() - 3600)
    peer.send_raw(t.agent_jobs("edge-3"), late)
    expired = wait_for(lambda: [r for r in peer.refusals if r.claimed_job_id == "late-1"], 20,
                       what="the expired job answered")[0]
    assert expired.code == "expired" and expired.verified is True     # the controller's own
    genuine = seal(job(peer, "once-1"), t.agent_jobs("edge-3"), peer.identity)
    peer.send_raw(t.agent_jobs("edge-3"), genuine)
    peer.send_raw(t.agent_jobs("edge-3"), genuine)                   # replayed at once
    peer.send_raw(t.agent_jobs("edge-3b"), genuine)                  # sent to another device
    assert peer.wait_result("once-1").agent_id == "edge-3"
    wait_for(lambda: any(r.code == "signature" and r.agent_id == "edge-3b"
                         for r in peer.refusals), 20, what="re-addressed job refused")
    wait_for(lambda: any(r.code == "replay" and r.agent_id == "edge-3" for r in peer.refusals),
             20, what="replayed job refused")
    time.sleep(2)
    assert len(peer.results_for("once-1")) == 1 and not peer.results_for("late-1")


def test_jobs_the_agent_must_not_run_fail_with_the_reason(mosquitto, agents, peer, prefix):
    agents(mosquitto.url, "edge-4", "--prefix", prefix)
    peer.wait_state("edge-4", "online")
    peer.send_job("edge-4", "job-unknown", benchmark="nosuchbench")
    peer.send_job("edge-4", "job-badparam", params={"no_such_key": "1"})
    peer.send_job("edge-4", "job-image", image="docker.io/library/alpine:3",
                  image_digest=DIGEST)
    unknown, bad = peer.wait_result("job-unknown"), peer.wait_result("job-badparam")
    image = peer.wait_result("job-image")
    assert unknown.status == "failed" and "nosuchbench" in unknown.error
    assert bad.status == "failed" and "no_such_key" in bad.error
    assert image.status == "failed" and "is not allowed on this agent" in image.error
    assert peer.states("job-unknown") == [JobState.FAILED]


def test_ctrl_c_cancels_the_running_job_and_goes_offline(mosquitto, agents, peer, prefix):
    agent = agents(mosquitto.url, "edge-5", "--prefix", prefix)
    peer.wait_state("edge-5", "online")
    peer.send_job("edge-5", "job-long", params={"max_epochs": "1000", "learning_rate": "1e-9"})
    peer.send_job("edge-5", "job-queued")
    peer.wait_job_state("job-long", JobState.RUNNING)
    assert agent.interrupt() == 0
    long_, queued = peer.wait_result("job-long", 15), peer.wait_result("job-queued", 15)
    assert long_.status == "cancelled" and "signal" in long_.error
    assert queued.status == "cancelled"
    status = peer.wait_state("edge-5", "offline", 10)
    assert status.reason == "agent stopped by signal" and not status.last_will


def test_sigkill_shows_offline_through_a_signed_last_will(mosquitto, agents, peer, prefix):
    agent = agents(mosquitto.url, "edge-6", "--prefix", prefix)
    online = peer.wait_state("edge-6", "online")
    agent.kill()
    will = peer.wait_state("edge-6", "offline", 10)
    assert "Last Will" in will.reason and will.last_will
    assert will.session == online.session and will.boot == online.boot


def test_results_are_resent_until_acked_forged_acks_change_nothing_and_a_restart_keeps_all(
        mosquitto, agents, peer, prefix, mallory):
    agent = agents(mosquitto.url, "edge-7", "--prefix", prefix, "--resend-s", "1")
    peer.wait_state("edge-7", "online")
    t = peer.topics
    assignment = seal(job(peer, "job-spooled"), t.agent_jobs("edge-7"), peer.identity)
    peer.send_raw(t.agent_jobs("edge-7"), assignment)
    first = peer.wait_result("job-spooled")
    again = peer.wait_result("job-spooled", 10, count=2)        # no ack: sent again
    assert again.result_id == first.result_id
    forged_ack = ResultAck(job_id="job-spooled", result_id=first.result_id, seq=0,
                           sent_at=time.time())
    mallory.signed(t.agent_acks("edge-7"), forged_ack)
    mallory.raw(t.agent_acks("edge-7"), forged_ack.model_dump_json(by_alias=True).encode())
    spool = agent.work_dir / "spool.sqlite"
    time.sleep(2)
    assert sqlite3.connect(spool).execute("select count(*) from results").fetchone()[0] == 1
    agent.kill()                                              # crash before any ack
    n = len(peer.results_for("job-spooled"))
    restarted = agents(mosquitto.url, "edge-7", "--prefix", prefix, "--resend-s", "1")
    assert restarted.work_dir == agent.work_dir
    after = peer.wait_result("job-spooled", 15, count=n + 1)   # re-published on connect
    assert after.result_id == first.result_id
    peer.send_raw(t.agent_jobs("edge-7"), assignment)          # the genuine job, replayed
    wait_for(lambda: "already taken" in restarted.log or any(
        r.code == "replay" for r in peer.refusals), 10, what="replay ignored")
    peer.ack(after)
    wait_for(lambda: sqlite3.connect(spool).execute("select count(*) from results")
             .fetchone()[0] == 0, 10, what="spool emptied by the genuine ack")
    assert {r.result_id for r in peer.results_for("job-spooled")} == {first.result_id}


def test_the_agent_waits_for_a_broker_that_is_not_up_yet(tmp_path, agents, prefix):
    port = free_port()
    agent = agents(f"mqtt://127.0.0.1:{port}", "edge-8", "--prefix", prefix)
    wait_for(lambda: "unreachable" in agent.log, 15, what="retry message")
    broker = Mosquitto(tmp_path, port)
    broker.start()
    try:
        p = Peer(broker.url, prefix)
        p.wait_state("edge-8", "online", 40)
        p.close()
    finally:
        broker.stop()


def test_a_broker_restart_mid_job_loses_nothing(own_mosquitto, agents, prefix):
    agents(own_mosquitto.url, "edge-9", "--prefix", prefix, "--resend-s", "1")
    peer = Peer(own_mosquitto.url, prefix)
    try:
        peer.wait_state("edge-9", "online")
        peer.send_job("edge-9", "job-through-restart")
        peer.wait_job_state("job-through-restart", JobState.RUNNING)
        own_mosquitto.stop()                                  # retained state is gone too
        own_mosquitto.start()
        result = peer.wait_result("job-through-restart", 90)
        assert result.status == "done"
        assert peer.wait_state("edge-9", "online").capabilities is not None  # re-announced
    finally:
        peer.close()


def no_pin_env():
    return {k: v for k, v in os.environ.items() if k != "MLPERF_CONTROLLER_KEY"}


def test_trust_on_first_use_pins_the_first_controller_and_says_so(mosquitto, agents, peer,
                                                                  prefix, mallory):
    agent = agents(mosquitto.url, "edge-10", "--prefix", prefix, env=no_pin_env())
    peer.wait_state("edge-10", "online")
    peer.link.publish(peer.topics.controller_status(), ControllerStatus(
        controller_id="mlperf-controller", state="online", store="test", version="2",
        **peer.seq()), retain=True).wait_for_publish(5)
    wait_for(lambda: "TRUST ON FIRST USE" in agent.log, 15, what="the pin announced")
    assert peer.identity.fingerprint in agent.log
    pin = (agent.work_dir / "identity" / "controller.pin").read_text().strip()
    assert pin == peer.identity.fingerprint
    mallory.signed(peer.topics.agent_jobs("edge-10"), job(peer, "after-pin"))
    wait_for(lambda: any(r.claimed_job_id == "after-pin" for r in peer.refusals), 15,
             what="a second controller key refused")
    assert "not by the pinned controller key" in next(
        r.reason for r in peer.refusals if r.claimed_job_id == "after-pin")
    peer.send_job("edge-10", "job-pinned")
    assert peer.wait_result("job-pinned").status == "done"


def test_without_a_pin_and_without_trust_on_first_use_the_agent_will_not_start(tmp_path):
    proc = cli("mlperf-agent", "start", "--broker", "mqtt://127.0.0.1:9", "--work-dir",
               str(tmp_path), "--no-trust-on-first-use", env=no_pin_env(), replace_env=True,
               timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--controller-key" in proc.stderr


def test_the_agent_prints_its_key_for_the_operator_to_compare(tmp_path):
    first = cli("mlperf-agent", "key", "--work-dir", str(tmp_path), check=True)
    again = cli("mlperf-agent", "key", "--work-dir", str(tmp_path), check=True)
    assert first.stdout == again.stdout and first.stdout.startswith("SHA256:")
    key_file = tmp_path / "identity" / "agent_ed25519"
    assert key_file.stat().st_mode & 0o077 == 0
    os.chmod(key_file, 0o644)
    proc = cli("mlperf-agent", "key", "--work-dir", str(tmp_path))
    assert proc.returncode == 1 and "chmod 600" in proc.stderr


def test_cancel_must_come_from_the_controller(mosquitto, agents, peer, prefix, mallory):
    agents(mosquitto.url, "edge-11", "--prefix", prefix)
    peer.wait_state("edge-11", "online")
    peer.send_job("edge-11", "job-keep", params={"max_epochs": "6"})
    peer.wait_job_state("job-keep", JobState.RUNNING)
    mallory.signed(peer.topics.agent_control("edge-11"),
                   CancelJob(job_id="job-keep", seq=0, sent_at=time.time()))
    mallory.raw(peer.topics.agent_control("edge-11"),
                json.dumps({"schema": 2, "seq": 1, "sent_at": time.time(),
                            "job_id": "job-keep"}).encode())
    result = peer.wait_result("job-keep", 120)
    assert result.status == "done"
