"""The results store, on SQLite and on a real PostgreSQL: campaigns expand into jobs, one job
per device at a time, events and results are idempotent, and histories stay legal."""

import time

import pytest

from agent.identity import Identity
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
KEY = Identity.generate().public_b64
SESSION = "00112233445566778899"


def status(agent_id, state="online", benchmarks=("ncf",), tags=(), **over):
    return AgentStatus(**{**dict(
        agent_id=agent_id, name=agent_id, state=state, tags=list(tags), heartbeat_s=1, boot=1,
        session=SESSION,
        capabilities=Capabilities(hostname=agent_id, os="Linux", arch="x86_64", cpu_count=2,
                                  memory_total_bytes=1, python="3.11",
                                  benchmarks=list(benchmarks), agent_version="0")
        if state == "online" else None), **seq(), **over})


def online(store, agent_id, benchmarks=("ncf",), tags=()):
    """An approved device, online (as the enrolment token or `devices approve` leaves it)."""
    store.enrol(status(agent_id, benchmarks=benchmarks, tags=tags), KEY, "test")


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


def test_the_dispatch_window_bounds_jobs_assigned_and_not_yet_accepted(store):
    """A campaign over many devices goes out as acceptances come back: at most ``window`` jobs
    wait assigned, the oldest first, and each acceptance makes room for one more."""
    names = [f"d{i}" for i in range(7)]
    for name in names:
        online(store, name)
    store.create_campaign(["ncf"], "smoke", 1, names, "all", {})
    first = store.claim_dispatches(window=3)
    assert len(first) == 3
    assert store.claim_dispatches(window=3) == []                   # the window is full
    assert store.apply_event(event(first[0].job, JobState.ACCEPTED)) is JobState.ACCEPTED
    second = store.claim_dispatches(window=3)
    assert len(second) == 1                                         # room for one
    created = [store.job(d.job.id).created_at for d in first + second]
    later = [j.created_at for j in store.jobs(first[0].job.campaign_id)
             if j.state == "queued"]
    assert max(created) <= min(later)                               # oldest jobs first
    assert len(store.claim_dispatches()) == 3                       # no window: the rest


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
    c = store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {}, retries=0)
    job = store.claim_dispatches()[0].job
    assert store.mark_lost(job.id, "agent went offline") is True
    assert store.close_finished_campaigns() == [c.id]          # no retries: lost is its end
    assert store.store_result(result(job)) is True
    assert store.job(job.id).state == "done"


def beat(agent_id="a", session=SESSION, **over):
    return Heartbeat(**{**dict(agent_id=agent_id, boot=1, session=session, cpu_percent=10,
                               memory_percent=20), **seq(), **over})


def test_stale_devices_and_heartbeats(store):
    online(store, "a")
    assert store.stale_devices(time.time()) == []
    assert [d.agent_id for d in store.stale_devices(time.time() + 10)] == ["a"]
    store.set_offline("a", "no heartbeat")
    assert store.heartbeat(beat()) == ("offline", True)
    assert store.devices()[0].state == "online"
    assert store.devices()[0].load["cpu_percent"] == 10


def test_silent_devices_go_offline_with_their_jobs_lost_in_one_call(store):
    """mark_silent: each named device offline with its own reason, its active jobs lost with
    that reason; other devices, their jobs, and a device already offline are left alone."""
    for name in ("a", "b", "c"):
        online(store, name)
    store.create_campaign(["ncf"], "smoke", 1, ["a", "b", "c"], "all", {})
    jobs = {d.agent_id: d.job.id for d in store.claim_dispatches()}
    store.set_offline("c", "went away")
    lost = store.mark_silent({"a": "no heartbeat for 16 s", "c": "no heartbeat for 99 s"})
    assert sorted(lost) == [(jobs["a"], "no heartbeat for 16 s"),
                            (jobs["c"], "no heartbeat for 99 s")]
    by_id = {d.agent_id: d for d in store.devices()}
    assert (by_id["a"].state, by_id["a"].reason) == ("offline", "no heartbeat for 16 s")
    assert (by_id["c"].state, by_id["c"].reason) == ("offline", "went away")
    assert by_id["b"].state == "online"
    states = {j.agent_id: j.state for j in store.jobs()}
    assert states == {"a": "lost", "b": "assigned", "c": "lost"}
    assert store.mark_silent({}) == []


def test_heartbeats_of_another_connection_or_replayed_are_not_applied(store):
    online(store, "a")
    first = beat()
    assert store.heartbeat(first)[1] is True
    assert store.heartbeat(first)[1] is False                       # replayed
    store.set_offline("a", "no heartbeat")
    assert store.heartbeat(beat(session="ffffffffffffffff"))[1] is False
    assert store.devices()[0].state == "offline"


def test_a_batch_of_heartbeats_is_each_one_applied_in_order(store):
    """heartbeats() = heartbeat() per beat, in arrival order, in one transaction: a replay or
    an older beat after a newer one in the same batch is not applied, nor one of another
    connection or of a device nobody approved; a device named twice keeps the newer load."""
    for name in ("a", "b", "c"):
        online(store, name)
    store.set_offline("b", "no heartbeat")
    c = store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    (job,) = [d.job for d in store.claim_dispatches()]
    first, second = beat("a", cpu_percent=1), beat("a", cpu_percent=2, job_id=job.id)
    results = store.heartbeats([first, second, first, beat("b"),
                                beat("c", session="ffffffffffffffff"), beat("stranger")])
    assert results == [("online", True), ("online", True), ("online", False),
                       ("offline", True), ("online", False), (None, False)]
    devices = {d.agent_id: d for d in store.devices()}
    assert devices["a"].load["cpu_percent"] == 2 and devices["b"].state == "online"
    assert store.job(job.id).renewed_at is not None                # its lease, renewed
    assert store.heartbeats([]) == [] and store.progress(c.id) == {"assigned": 1}


def test_a_batch_is_one_transaction_and_a_refused_message_spoils_none_of_it(store):
    online(store, "a")
    c = store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    (job,) = [d.job for d in store.claim_dispatches()]
    with store.batch():
        assert store.apply_event(event(job, JobState.ACCEPTED)) is JobState.ACCEPTED
        with pytest.raises(StoreError, match="no such job"):
            store.apply_event(JobEvent(job_id="c-nope", agent_id="a", state=JobState.ACCEPTED,
                                       **seq()))
        assert store.heartbeats([beat("a")])[0][1] is True
        assert store.store_result(result(job)) is True
    assert store.job(job.id).state == "done" and store.progress(c.id) == {"done": 1}
    with pytest.raises(RuntimeError):                 # anything else: the whole batch undone
        with store.batch():
            store.heartbeats([beat("a", cpu_percent=99)])
            raise RuntimeError("disk on fire")
    assert store.devices()[0].load["cpu_percent"] == 10


def test_a_batch_loading_its_jobs_up_front_judges_as_one_call_at_a_time_does(store):
    """batch(job_ids) answers "seen?" and "stored?" from what it loaded, and from what it
    stored itself: a redelivery inside the same batch, or of an earlier batch's message, is a
    duplicate; a job it was not told of is looked up as usual."""
    for agent in ("a", "b"):
        online(store, agent)
    store.create_campaign(["ncf"], "smoke", 1, ["a", "b"], "all", {})
    ja, jb = sorted((d.job for d in store.claim_dispatches()), key=lambda j: j.agent_id)
    accepted = event(ja, JobState.ACCEPTED, mllog=[":::MLLOG 1"])
    store.apply_event(accepted)
    preparing = event(ja, JobState.PREPARING)
    with store.batch({ja.id}):
        assert store.apply_event(accepted) is None                # stored by an earlier call
        assert store.apply_event(preparing) is JobState.PREPARING
        assert store.apply_event(preparing) is None                 # redelivered in this batch
        assert store.apply_event(event(jb, JobState.ACCEPTED)) is JobState.ACCEPTED  # not loaded
        assert store.store_result(result(ja)) is True
        assert store.store_result(result(ja)) is False
    with store.batch({ja.id, jb.id}):
        assert store.store_result(result(ja)) is False            # stored by the last batch
        assert store.apply_event(preparing) is None
    assert store.log_lines(ja.id) == [":::MLLOG 1"]
    assert [t.to_state for t in store.transitions(ja.id)] == [
        "assigned", "accepted", "preparing", "running", "reporting", "done"]
    assert store.job(jb.id).state == "accepted"


def test_dispatch_takes_each_idle_devices_oldest_queued_job_in_one_pass(store):
    for name in ("a", "b", "c", "d"):
        online(store, name)
    first = store.create_campaign(["ncf"], "smoke", 2, ["a", "b", "c"], "all", {})
    later = store.create_campaign(["ncf"], "smoke", 1, ["a", "d"], "all", {})
    store.set_offline("c", "no heartbeat")
    claimed = {d.agent_id: d.job for d in store.claim_dispatches()}
    assert sorted(claimed) == ["a", "b", "d"]                          # c is offline
    assert claimed["a"].campaign_id == first.id and claimed["a"].run_index == 1
    assert claimed["b"].run_index == 1 and claimed["d"].campaign_id == later.id
    assert store.claim_dispatches() == []                              # all busy


def test_presence_is_ordered_by_boot_and_seq_and_a_will_by_its_connection(store):
    online(store, "a")
    old_will = status("a", "offline", last_will=True)                 # this connection's
    newer = status("a", boot=2, session="aaaaaaaaaaaaaaaa")          # the agent restarted
    assert store.device_status(newer) == ("online", True)
    assert store.device_status(old_will)[1] is False                 # a will kept from before
    assert store.devices()[0].state == "online"
    stale_offline = status("a", "offline", reason="stopped")          # boot 1: older
    assert store.device_status(stale_offline)[1] is False
    own_will = status("a", "offline", last_will=True, boot=2, session="aaaaaaaaaaaaaaaa")
    assert store.device_status(own_will) == ("online", True)
    assert store.devices()[0].state == "offline"
    assert store.device_status(own_will)[1] is False                  # only once
    assert store.device_status(newer)[1] is False                    # replayed old online


def test_a_status_from_a_device_nobody_approved_is_an_error(store):
    with pytest.raises(StoreError, match="not approved"):
        store.device_status(status("ghost"))
    assert store.devices() == []


def test_events_and_results_for_a_job_never_assigned_are_refused(store):
    online(store, "a")
    c = store.create_campaign(["ncf"], "smoke", 2, ["a"], "all", {})
    queued = store.jobs(c.id)[1]
    store.claim_dispatches()
    with pytest.raises(StoreError, match="never assigned"):
        store.store_result(result(queued))
    with pytest.raises(StoreError, match="never assigned"):
        store.apply_event(event(queued, mllog=[":::MLLOG x"]))
    assert store.job(queued.id).state == "queued" and store.log_lines(queued.id) == []


def test_a_result_describing_another_job_is_refused(store):
    online(store, "a")
    store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    job = store.claim_dispatches()[0].job
    with pytest.raises(StoreError, match="describes another job"):
        store.store_result(result(job).model_copy(update={"benchmark": "resnet"}))


def test_mllog_lines_per_job_are_bounded(store, monkeypatch):
    import controller.store as store_module

    monkeypatch.setattr(store_module, "MAX_LOG_LINES_PER_JOB", 5)
    online(store, "a")
    store.create_campaign(["ncf"], "smoke", 1, ["a"], "all", {})
    job = store.claim_dispatches()[0].job
    store.apply_event(event(job, mllog=[f":::MLLOG {i}" for i in range(4)]))
    store.apply_event(event(job, mllog=[f":::MLLOG {i}" for i in range(4, 10)]))
    assert len(store.log_lines(job.id)) == 5
    assert "dropped" in store.transitions(job.id)[-1].detail


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
    from agent.errors import ConfigError
    with pytest.raises(ConfigError, match="invalid store URL"):
        Store("not a url")
    with pytest.raises(StoreError, match="cannot open"):
        Store("postgresql+psycopg://nobody@127.0.0.1:1/none")


def test_enrolling_many_at_once_is_enrol_for_each(store):
    """enrol_many: each new device approved and online, a waiting request for it cleared, a
    device approved with another key refused by name, the rest unaffected."""
    other = Identity.generate().public_b64
    online(store, "taken")                                   # approved with KEY
    store.note_enrolment(status("a"), other)                 # a waiting request for "a"
    out = store.enrol_many([(status("a"), KEY), (status("taken"), other),
                            (status("b"), KEY)], "token")
    assert out[0] is None and out[2] is None
    assert out[1] == "device taken is approved with another key"
    by_id = {d.agent_id: d for d in store.devices()}
    assert sorted(by_id) == ["a", "b", "taken"]
    assert all(by_id[a].key == KEY and by_id[a].state == "online" for a in by_id)
    assert (by_id["a"].approved_by, by_id["taken"].approved_by) == ("token", "test")
    assert store.pending() == []


def test_a_log_short_of_what_the_agent_sent_is_said_and_heals_when_the_lines_arrive(store):
    """The result says how many MLLOG lines its agent forwarded; lines lost on the way (a
    worker killed holding the events) make the log incomplete: counted in `results`, said by
    `logs`, left out of an MLCommons export. Judged when read: the missing event may still be
    on its way through another worker, and once it is written the log is whole."""
    from controller.export_mlcommons import DEFAULT_RULESET, check_ruleset, choose
    from controller.runs import load

    def exported() -> tuple[list[str], list[str]]:
        notes: list[str] = []
        groups = choose(load(store), check_ruleset(DEFAULT_RULESET), DEFAULT_RULESET, notes)
        return [r.job_id for runs in groups.values() for r in runs], notes

    online(store, "a", benchmarks=("resnet",))
    store.create_campaign(["resnet"], "smoke", 1, ["a"], "all", {})
    job = store.claim_dispatches()[0].job
    lines = [f':::MLLOG {{"key": "k{i}", "value": {i}}}' for i in range(5)]
    store.apply_event(event(job, JobState.ACCEPTED, mllog=lines[:3]))
    store.store_result(result(job).model_copy(update={"mllog_lines": 5}))
    (run,) = load(store)
    assert run.log_missing == 2 and run.as_dict()["log_lines_missing"] == 2
    assert store.log_missing(job.id) == 2
    chosen, notes = exported()
    assert chosen == [] and "2 of the MLLOG lines its agent sent never reached" in notes[0]
    store.apply_event(event(job, mllog=lines[3:]))           # late, from another worker
    assert store.log_missing(job.id) == 0 and load(store)[0].log_missing == 0
    assert exported() == ([job.id], [])
