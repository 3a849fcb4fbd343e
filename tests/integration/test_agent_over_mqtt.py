"""The agent against a real Mosquitto, with the test playing the controller by hand."""

import secrets
import sqlite3

import pytest

from agent.protocol import JobState
from tests.conftest import Mosquitto, free_port, wait_for
from tests.integration.helpers import Peer

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix():
    return f"t{secrets.token_hex(3)}/v1"      # retained presence of other tests stays apart


@pytest.fixture
def peer(mosquitto, prefix):
    p = Peer(mosquitto.url, prefix)
    yield p
    p.close()


def test_a_job_runs_and_reports_through_every_state(mosquitto, agents, peer, prefix):
    agent = agents(mosquitto.url, "edge-1", "--prefix", prefix)
    status = peer.wait_state("edge-1", "online")
    assert "ncf" in status.capabilities.benchmarks and status.heartbeat_s == 1
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


def test_malformed_messages_are_rejected_and_the_agent_keeps_working(mosquitto, agents, peer,
                                                                     prefix):
    agent = agents(mosquitto.url, "edge-2", "--prefix", prefix)
    peer.wait_state("edge-2", "online")
    t = peer.topics
    for topic in (t.agent_jobs("edge-2"), t.agent_control("edge-2"), t.agent_acks("edge-2")):
        peer.send_raw(topic, b"\xff not json")
        peer.send_raw(topic, b'{"schema": 1, "seq": 0, "sent_at": 1.0, "job_id": "x"}')
    peer.send_raw(t.agent_jobs("edge-2"), b'{"schema": 99}')
    peer.send_raw(t.agent_jobs("edge-2"), b'{"schema": 1, "seq": 0, "sent_at": 1.0, '
                  b'"job_id": "y", "campaign_id": "c", "benchmark": "ncf", "mode": "smoke", '
                  b'"run_index": 1, "seed": 1, "command": "rm -rf /"}')
    # Every one is refused except the cancel, which is complete (its reason has a default).
    wait_for(lambda: agent.log.count("rejected") >= 7, 10, what="7 rejections logged")
    assert "cancel for job x, which is not queued or running here" in agent.log
    assert "command: Extra inputs are not permitted" in agent.log
    assert agent.proc.poll() is None
    peer.send_job("edge-2", "job-after-garbage")
    assert peer.wait_result("job-after-garbage").status == "done"


def test_a_job_the_agent_cannot_run_fails_with_the_reason(mosquitto, agents, peer, prefix):
    agents(mosquitto.url, "edge-3", "--prefix", prefix)
    peer.wait_state("edge-3", "online")
    peer.send_job("edge-3", "job-unknown", benchmark="nosuchbench")
    peer.send_job("edge-3", "job-badparam", params={"no_such_key": "1"})
    unknown, bad = peer.wait_result("job-unknown"), peer.wait_result("job-badparam")
    assert unknown.status == "failed" and "nosuchbench" in unknown.error
    assert bad.status == "failed" and "no_such_key" in bad.error
    assert peer.states("job-unknown") == [JobState.FAILED]


def test_ctrl_c_cancels_the_running_job_and_goes_offline(mosquitto, agents, peer, prefix):
    agent = agents(mosquitto.url, "edge-4", "--prefix", prefix)
    peer.wait_state("edge-4", "online")
    peer.send_job("edge-4", "job-long", params={"max_epochs": "1000", "learning_rate": "1e-9"})
    peer.send_job("edge-4", "job-queued")
    peer.wait_job_state("job-long", JobState.RUNNING)
    assert agent.interrupt() == 0
    long_, queued = peer.wait_result("job-long", 15), peer.wait_result("job-queued", 15)
    assert long_.status == "cancelled" and "signal" in long_.error
    assert queued.status == "cancelled"
    status = peer.wait_state("edge-4", "offline", 10)
    assert status.reason == "agent stopped by signal"       # explicit, not the Last Will


def test_sigkill_shows_offline_through_the_last_will(mosquitto, agents, peer, prefix):
    agent = agents(mosquitto.url, "edge-5", "--prefix", prefix)
    peer.wait_state("edge-5", "online")
    agent.kill()
    assert "Last Will" in peer.wait_state("edge-5", "offline", 10).reason


def test_results_are_resent_until_acked_and_survive_a_restart(mosquitto, agents, peer, prefix):
    agent = agents(mosquitto.url, "edge-6", "--prefix", prefix, "--resend-s", "1")
    peer.wait_state("edge-6", "online")
    peer.send_job("edge-6", "job-spooled")
    first = peer.wait_result("job-spooled")
    again = peer.wait_result("job-spooled", 10, count=2)        # no ack: sent again
    assert again.result_id == first.result_id
    agent.kill()                                              # crash before any ack
    spool = agent.work_dir / "spool.sqlite"
    assert sqlite3.connect(spool).execute("select count(*) from results").fetchone()[0] == 1
    n = len(peer.results_for("job-spooled"))
    restarted = agents(mosquitto.url, "edge-6", "--prefix", prefix, "--resend-s", "1")
    assert restarted.work_dir == agent.work_dir
    after = peer.wait_result("job-spooled", 15, count=n + 1)   # re-published on connect
    assert after.result_id == first.result_id
    peer.ack(after)
    wait_for(lambda: sqlite3.connect(spool).execute("select count(*) from results")
             .fetchone()[0] == 0, 10, what="spool emptied by the ack")


def test_the_agent_waits_for_a_broker_that_is_not_up_yet(tmp_path, agents, prefix):
    port = free_port()
    agent = agents(f"mqtt://127.0.0.1:{port}", "edge-7", "--prefix", prefix)
    wait_for(lambda: "unreachable" in agent.log, 15, what="retry message")
    broker = Mosquitto(tmp_path, port)
    broker.start()
    try:
        p = Peer(broker.url, prefix)
        p.wait_state("edge-7", "online", 40)
        p.close()
    finally:
        broker.stop()


def test_a_broker_restart_mid_job_loses_nothing(own_mosquitto, agents, prefix):
    agents(own_mosquitto.url, "edge-8", "--prefix", prefix, "--resend-s", "1")
    peer = Peer(own_mosquitto.url, prefix)
    try:
        peer.wait_state("edge-8", "online")
        peer.send_job("edge-8", "job-through-restart")
        peer.wait_job_state("job-through-restart", JobState.RUNNING)
        own_mosquitto.stop()                                  # retained state is gone too
        own_mosquitto.start()
        result = peer.wait_result("job-through-restart", 90)
        assert result.status == "done"
        assert peer.wait_state("edge-8", "online").capabilities is not None  # re-announced
    finally:
        peer.close()
