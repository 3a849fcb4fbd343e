"""The results store, on SQLite and on a real PostgreSQL: campaigns expand into jobs, one job
per device at a time, events and results are idempotent, and histories stay legal."""

import time

import pytest

from agent.protocol import (
    AgentStatus,
    Capabilities,
    Heartbeat,
    JobEvent,
    JobResult,
    JobState,
    Sequence,
    transition,
)
from controller.errors import StoreError
from controller.store import Store

seq = Sequence()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'c.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    s = Store(url)
    yield s
    if request.param == "postgresql":
        from controller.models import Base
        Base.metadata.drop_all(s.engine)
    s.close()


def online(store, agent_id, benchmarks=("ncf",), tags=()):
    store.device_status(AgentStatus(
        agent_id=agent_id, name=agent_id, state="online", tags=list(tags), heartbeat_s=1,
        capabilities=Capabilities(hostname=agent_id, os="Linux", arch="x86_64", cpu_count=2,
                                  memory_total_bytes=1, python="3.11",
                                  benchmarks=list(benchmarks), agent_version="0"), **seq()))


def event(job, state=None, mllog=(), s=None):
    return JobEvent(job_id=job.id, agent_id=job.agent_id, state=state, mllog=list(mllog),
                    **({**seq(), "seq": s} if s is not None else seq()))


def result(job, status="done", result_id=None):
    return JobResult(job_id=job.id, result_id=result_id or f"r-{job.id}", agent_id=job.agent_id,
                     campaign_id=job.campaign_id, benchmark=job.benchmark, mode=job.mode,
                     run_index=job.run_index, status=status, started_at=1.0, finished_at=2.0,
                     **seq())


def test_campaign_expands_benchmarks_devices_runs(store):
    c = store.create_campaign(["ncf"], "smoke", 2, ["a", "b"], "all", {"lr": "0.1"}, seed_base=7)
    jobs = store.jobs(c.id)
    assert len(jobs) == 4
    assert {(j.agent_id, j.run_index, j.seed) for j in jobs} == {
        ("a", 1, 7), ("b", 1, 7), ("a", 2, 8), ("b", 2, 8)}
    assert all(j.state == "queued" and j.params == {"lr": "0.1"} for j in jobs)
    assert store.progress(c.id) == {"queued": 4}


def test_one_job_per_device_at_a_time(store):
    online(store, "a")
    c = store.create_campaign(["ncf"], "smoke", 2, ["a", "b"], "all", {})
    first = store.claim_dispatches()
    assert [(d.agent_id, d.job.run_index) for d in first] == [("a", 1)]  # b is not online
    assert store.claim_dispatches() == []                                # a is busy
    job = first[0].job
    for state in (JobState.ACCEPTED, JobState.PREPARING, JobState.RUNNING, JobState.REPORTING):
        assert store.apply_event(event(job, state)) is state
    assert store.store_result(result(job)) is True
    second = store.claim_dispatches()
    assert [(d.agent_id, d.job.run_index) for d in second] == [("a", 2)]
    assert store.progress(c.id) == {"done": 1, "assigned": 1, "queued": 2}


def test_events_are_idempotent_and_keep_mllog_lines(store):
    online(store, "a")
    store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    job = store.claim_dispatches()[0].job
    ev = event(job, JobState.ACCEPTED, mllog=[":::MLLOG 1", ":::MLLOG 2"])
    assert store.apply_event(ev) is JobState.ACCEPTED
    assert store.apply_event(ev) is None                   # QoS 1 redelivery
    store.apply_event(event(job, mllog=[":::MLLOG 3"]))
    assert store.log_lines(job.id) == [":::MLLOG 1", ":::MLLOG 2", ":::MLLOG 3"]


def test_illegal_moves_are_recorded_but_do_not_change_the_job(store):
    online(store, "a")
    store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    job = store.claim_dispatches()[0].job
    assert store.apply_event(event(job, JobState.DONE)) is None
    assert store.job(job.id).state == "assigned"
    assert "ignored" in store.transitions(job.id)[-1].detail


def test_a_result_fills_missing_states_and_is_stored_once(store):
    online(store, "a")
    store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    job = store.claim_dispatches()[0].job
    store.apply_event(event(job, JobState.ACCEPTED))
    assert store.store_result(result(job)) is True
    assert store.store_result(result(job)) is False        # duplicate delivery
    history = [t.to_state for t in store.transitions(job.id)]
    state = JobState.QUEUED
    for step in history:                                   # the whole history is legal
        state = transition(state, JobState(step))
    assert state is JobState.DONE


def test_results_and_events_from_the_wrong_device_are_refused(store):
    online(store, "a")
    store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    job = store.claim_dispatches()[0].job
    forged = result(job).model_copy(update={"agent_id": "mallory"})
    with pytest.raises(StoreError):
        store.store_result(forged)
    with pytest.raises(StoreError):
        store.apply_event(event(job).model_copy(update={"agent_id": "mallory"}))


def test_a_lost_job_still_takes_its_late_result(store):
    online(store, "a")
    c = store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    job = store.claim_dispatches()[0].job
    assert store.mark_lost(job.id, "agent went offline") is True
    assert store.close_finished_campaigns() == [c.id]
    assert store.store_result(result(job)) is True
    assert store.job(job.id).state == "done"


def test_stale_devices_and_heartbeats(store):
    online(store, "a")
    assert store.stale_devices(time.time()) == []
    assert [d.agent_id for d in store.stale_devices(time.time() + 10)] == ["a"]
    store.set_offline("a", "no heartbeat")
    assert store.heartbeat(Heartbeat(agent_id="a", cpu_percent=10, memory_percent=20,
                                     **seq())) == "offline"
    assert store.devices()[0].state == "online"
    assert store.devices()[0].load["cpu_percent"] == 10


def test_cancel_campaign(store):
    online(store, "a")
    c = store.create_campaign(["ncf"], "smoke", 2, ["a"], "all", {})
    running = store.claim_dispatches()[0].job
    out = store.cancel_campaign(c.id)
    assert [j.id for j in out] == [running.id]
    assert store.progress(c.id) == {"assigned": 1, "cancelled": 1}
    with pytest.raises(StoreError, match="no campaign"):
        store.cancel_campaign("nope")


def test_results_join_devices_by_name(store):
    online(store, "a")
    c = store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    job = store.claim_dispatches()[0].job
    store.store_result(result(job, status="failed"))
    [(j, r, name)] = store.results(c.id)
    assert (j.state, r.status, name) == ("failed", "failed", "a")


def test_bad_store_urls_are_one_line_errors(tmp_path):
    from agent.protocol import ConfigError
    with pytest.raises(ConfigError, match="invalid store URL"):
        Store("not a url")
    with pytest.raises(StoreError, match="cannot open"):
        Store("postgresql+psycopg://nobody@127.0.0.1:1/none")
