"""Retries and leases in the store: every run the campaign asked for gets a final answer, a
lost or device-failed run is tried again within the budget, a late result is history and never
counted twice, and a job that stops moving is lost when its lease runs out."""

import time

import pytest

from agent.protocol import JobState
from controller.errors import StoreError
from controller.leases import ASSIGNED_S
from tests.controller.test_store import online, result

MOVE = (JobState.ACCEPTED, JobState.PREPARING, JobState.RUNNING)


def dispatch(store, device="a"):
    [d] = [d for d in store.claim_dispatches() if d.agent_id == device]
    return d.job


def runs(store, cid):
    """(run, attempt, state) of the runs that count, in order."""
    return [(j.run_index, j.attempt, j.state) for j in store.jobs(cid) if not j.superseded]


GRACE = 45.0


def later(store):
    """The grace after which a run still lost is retried has passed."""
    return store.retry_lost(GRACE, now=time.time() + GRACE + 1)


def test_a_lost_run_is_retried_once_then_the_campaign_ends_with_it_lost(store):
    online(store, "a")
    c = store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    first = dispatch(store)
    assert store.mark_lost(first.id, "agent went offline") is True
    assert runs(store, c.id) == [(1, 1, "lost")] and store.retry_lost(GRACE) == []
    assert store.close_finished_campaigns() == []              # it will be retried
    assert later(store) == [(first.id, f"{first.id}-a2")]
    assert runs(store, c.id) == [(1, 2, "queued")]             # the run, not the loss, counts
    assert store.progress(c.id) == {"queued": 1}
    assert store.close_finished_campaigns() == []              # a retry is pending
    second = dispatch(store)
    assert second.id == f"{first.id}-a2" and second.retry_of == first.id
    store.mark_lost(second.id, "again")
    assert later(store) == []
    assert runs(store, c.id) == [(1, 2, "lost")]               # budget spent: no attempt 3
    assert store.close_finished_campaigns() == [c.id]


def test_no_retries_when_the_campaign_says_so_or_is_cancelled(store):
    online(store, "a")
    c = store.create_campaign(["ncf"], "smoke", 2, ["a"], "all", {}, retries=0)
    store.mark_lost(dispatch(store).id, "gone")
    assert later(store) == []
    assert [s for _, _, s in runs(store, c.id)] == ["lost", "queued"]
    c2 = store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    store.cancel_campaign(c.id)
    job = store.jobs(c2.id)[0]
    store.cancel_campaign(c2.id)
    assert store.job(job.id).state == "cancelled" and len(store.jobs(c2.id)) == 1


def test_only_failures_of_the_device_are_retried(store):
    online(store, "a")
    c = store.create_campaign(["ncf"], "smoke", 2, ["a"], "all", {})
    job = dispatch(store)
    store.store_result(result(job, status="failed"))          # the job's own failure
    job = dispatch(store)
    device_fault = result(job, status="failed").model_copy(update={"retryable": True})
    store.store_result(device_fault)
    assert [(r, a, s) for r, a, s in runs(store, c.id)] == [(1, 1, "failed"), (2, 2, "queued")]


def test_a_late_result_answers_the_run_when_the_retry_was_not_sent_yet(store):
    online(store, "a")
    c = store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    first = dispatch(store)
    store.mark_lost(first.id, "unreachable for a while")
    later(store)
    assert store.store_result(result(first)) is True           # it finished after all
    assert runs(store, c.id) == [(1, 1, "done")]
    retry = store.job(f"{first.id}-a2")
    assert retry.state == "cancelled" and retry.superseded
    assert store.close_finished_campaigns() == [c.id]


def test_a_late_result_after_the_retry_was_sent_is_history(store):
    online(store, "a")
    c = store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    first = dispatch(store)
    store.mark_lost(first.id, "unreachable")
    later(store)
    second = dispatch(store)
    store.store_result(result(first))                         # history
    store.store_result(result(second))
    assert runs(store, c.id) == [(1, 2, "done")]               # counted once
    assert store.job(first.id).state == "done" and store.job(first.id).superseded


def test_leases_expire_and_heartbeats_renew_them(store):
    from tests.controller.test_store import beat

    online(store, "a")
    c = store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    job = dispatch(store)
    now = time.time()
    assert store.expire_leases(now + ASSIGNED_S - 5) == []
    [(job_id, why, again)] = store.expire_leases(now + ASSIGNED_S + 5)
    assert job_id == job.id and "assigned for" in why and again == f"{job.id}-a2"
    running = dispatch(store)
    from tests.controller.test_store import event
    for state in MOVE:
        store.apply_event(event(running, state))
    quiet = store.job(running.id).state_since + 60
    assert [j for j, _, _ in store.expire_leases(quiet)] == [running.id]   # nobody named it
    assert runs(store, c.id) == [(1, 2, "lost")]
    c2 = store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    job = dispatch(store)
    for state in MOVE:
        store.apply_event(event(job, state))
    store.heartbeat(beat(job_id=job.id))                      # the device is on it
    assert store.expire_leases(time.time() + 5) == []
    assert runs(store, c2.id) == [(1, 1, "running")]


def test_the_retry_command(store):
    online(store, "a")
    c = store.create_campaign(["ncf"], "smoke", 2, ["a"], "all", {}, retries=0)
    job = dispatch(store)
    store.store_result(result(job, status="failed"))
    with pytest.raises(StoreError, match="only failed, lost or cancelled"):
        store.retry(store.jobs(c.id)[1].id)                   # still queued
    [again] = store.retry(job.id)
    assert again.attempt == 2 and again.state == "queued"
    with pytest.raises(StoreError, match="already retried"):
        store.retry(job.id)
    store.cancel_campaign(c.id)
    assert store.campaign(c.id).state == "cancelled"
    retried = store.retry(c.id)                               # every cancelled run
    assert len(retried) == 2 and store.campaign(c.id).state == "active"
    with pytest.raises(StoreError, match="no job or campaign"):
        store.retry("nope")


def test_retry_anywhere_moves_a_retry_to_an_idle_device_of_the_same_profile(store):
    from controller.models import Device

    online(store, "a")
    online(store, "b")
    with store.tx() as s:
        for agent in ("a", "b"):
            s.get(Device, agent).capabilities = {"profile": "rpi5", "benchmarks": ["ncf"]}
    c = store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {}, retry_anywhere=True)
    job = dispatch(store)
    store.mark_lost(job.id, "a died")
    store.set_offline("a", "died")
    later(store)
    [moved] = store.claim_dispatches()
    assert moved.agent_id == "b" and moved.job.attempt == 2
    assert runs(store, c.id) == [(1, 2, "assigned")]


def test_a_lost_job_its_device_names_again_is_revived_not_retried(store):
    from tests.controller.test_store import beat, event

    online(store, "a")
    c = store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    job = dispatch(store)
    for state in MOVE:
        store.apply_event(event(job, state))
    store.mark_lost(job.id, "no heartbeat for 4 s")           # a broker outage, say
    store.heartbeat(beat(job_id=job.id, job_state=JobState.RUNNING))
    assert runs(store, c.id) == [(1, 1, "running")] and later(store) == []
    store.mark_lost(job.id, "again")
    later(store)                                              # the retry was queued ...
    store.apply_event(event(job, JobState.REPORTING))         # ... and it comes back
    assert runs(store, c.id) == [(1, 1, "reporting")]
    assert store.job(f"{job.id}-a2").state == "cancelled"
