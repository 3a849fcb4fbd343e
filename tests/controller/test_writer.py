"""The serving controller's writer (controller.service): heartbeats kept unopened and only each
device's newest verified and written; statuses and token enrolments stored in batches; silence
judged against what was heard. A real ControllerService (not connected: the broker part is in
tests/integration/test_controller_behind.py), real signatures, a real SQLite store."""

import json

import pytest

from agent.envelope import seal
from agent.identity import Identity, enrolment_proof
from agent.protocol import AgentStatus, Heartbeat, Sequence
from controller.service import ControllerService
from controller.settings import ControllerSettings
from controller.store import Store

TOKEN = "a-lab-token-of-some-length"
SESSION = "ab" * 8
seq = Sequence()


@pytest.fixture
def service(tmp_path):
    token = tmp_path / "token"
    token.write_text(TOKEN)
    settings = ControllerSettings(broker="mqtt://127.0.0.1:1", db=f"sqlite:///{tmp_path}/c.db",
                                  prefix="lab/v2", identity=tmp_path / "controller_ed25519",
                                  enrol_token_file=token)
    store = Store(settings.db)
    svc = ControllerService(settings, store)
    yield svc
    store.close()


def status(agent_id, key, **over):
    return AgentStatus(**{**dict(
        agent_id=agent_id, name=agent_id, state="online", boot=1, session=SESSION,
        heartbeat_s=5, enrolment=enrolment_proof(TOKEN, agent_id, key.public_b64)),
        **seq(), **over})


def beat(agent_id, **over):
    return Heartbeat(**{**dict(agent_id=agent_id, boot=1, session=SESSION, cpu_percent=1,
                               memory_percent=1), **seq(), **over})


def hear(svc, agent_id, key, message, kind="status"):
    """What the MQTT thread does with a message on the agent's topic."""
    t = svc.topics
    if kind == "status":
        topic = t.agent_status(agent_id)
        svc._on_status(topic, svc.link.admit(topic, seal(message, topic, key), AgentStatus))
    else:
        topic = t.agent_heartbeat(agent_id)
        svc._on_beat_bytes(topic, seal(message, topic, key))


def forged(payload: bytes) -> bytes:
    """The same envelope with its body changed after signing."""
    env = json.loads(payload)
    env["body"] = env["body"].replace('"cpu_percent":5.0', '"cpu_percent":99.0')
    return json.dumps(env).encode()


def test_enrolment_status_and_beats_are_stored_by_the_writer_in_one_batch(service):
    pis = {f"pi-{i}": Identity.generate() for i in range(3)}
    for name, key in pis.items():
        hear(service, name, key, status(name, key))
    assert service.store.devices() == []              # nothing written on the MQTT thread
    service._write_inbox()
    devices = {d.agent_id: d for d in service.store.devices()}
    assert sorted(devices) == sorted(pis)
    assert all(d.state == "online" and d.approved_by == "token" for d in devices.values())
    assert all(d.key == pis[a].public_b64 for a, d in devices.items())


def test_only_the_newest_heartbeat_of_a_device_is_verified_and_written(service, monkeypatch):
    pi = Identity.generate()
    hear(service, "pi-1", pi, status("pi-1", pi))
    service._write_inbox()
    beats = [beat("pi-1", cpu_percent=float(n)) for n in range(1, 4)]
    for b in beats:
        hear(service, "pi-1", pi, b, kind="beat")
    checked = []
    admit = service.trust.admit
    monkeypatch.setattr(service.trust, "admit",
                        lambda *a, **k: checked.append(a[0]) or admit(*a, **k))
    service._write_inbox()
    assert len(checked) == 1                           # the newest only
    [dev] = service.store.devices()
    assert dev.load["cpu_percent"] == 3.0 and dev.beat_seq == beats[-1].seq
    assert (service._beat_stats.heard, service._beat_stats.applied,
            service._beat_stats.superseded) == (3, 1, 2)


def test_a_forged_newest_heartbeat_is_refused_and_the_one_before_it_written(service):
    pi = Identity.generate()
    hear(service, "pi-1", pi, status("pi-1", pi))
    service._write_inbox()
    good = beat("pi-1", cpu_percent=4.0)
    hear(service, "pi-1", pi, good, kind="beat")
    topic = service.topics.agent_heartbeat("pi-1")
    service._on_beat_bytes(topic, forged(seal(beat("pi-1", cpu_percent=5.0), topic, pi)))
    service._write_inbox()
    [dev] = service.store.devices()
    assert dev.load["cpu_percent"] == 4.0 and dev.beat_seq == good.seq
    assert service.link.refusals.total["signature"] == 1
    # A heartbeat signed by a key nobody approved is refused however new it is.
    stranger = Identity.generate()
    hear(service, "pi-1", stranger, beat("pi-1", cpu_percent=7.0), kind="beat")
    service._write_inbox()
    assert service.store.devices()[0].load["cpu_percent"] == 4.0
    assert service.link.refusals.total["unknown-key"] == 1


def test_a_heartbeat_on_another_devices_topic_is_not_written(service):
    a, b = Identity.generate(), Identity.generate()
    hear(service, "pi-a", a, status("pi-a", a))
    hear(service, "pi-b", b, status("pi-b", b))
    service._write_inbox()
    before = {d.agent_id: d.beat_seq for d in service.store.devices()}
    # pi-a's key signs a beat claiming pi-b, sent on pi-a's own topic.
    hear(service, "pi-a", a, beat("pi-b"), kind="beat")
    service._write_inbox()
    assert {d.agent_id: d.beat_seq for d in service.store.devices()} == before


def test_waiting_heartbeats_are_bounded_per_device(service):
    pi = Identity.generate()
    hear(service, "pi-1", pi, status("pi-1", pi))
    service._write_inbox()
    for _ in range(50):
        hear(service, "pi-1", pi, beat("pi-1"), kind="beat")
    assert len(service._beats[service.topics.agent_heartbeat("pi-1")][1]) == 4
    service._write_inbox()
    stats = service._beat_stats
    assert (stats.heard, stats.applied, stats.superseded) == (50, 1, 49)
    assert service._beats == {}


def test_silence_is_judged_by_what_was_heard_not_by_the_clock(service):
    pi = Identity.generate()
    hear(service, "pi-1", pi, status("pi-1", pi))
    service._write_inbox()
    last_seen = service.store.devices()[0].last_seen
    service._judge_silence(last_seen + 3)              # heard through 3 s after its word
    assert service.store.devices()[0].state == "online"
    service._silence_at = 0.0
    service._judge_silence(last_seen + 16)             # 16 s of silence heard: gone
    dev = service.store.devices()[0]
    assert dev.state == "offline" and dev.reason == "no heartbeat for 16 s"


def test_copies_of_a_result_waiting_together_are_verified_stored_and_acked_once(
        service, monkeypatch):
    from agent.protocol import JobResult

    pi = Identity.generate()
    hear(service, "pi-1", pi, status("pi-1", pi, capabilities=None))
    service._write_inbox()
    service.store.create_campaign(["ncf"], "smoke", 1, ["pi-1"], "all", {})
    (job,) = [d.job for d in service.store.claim_dispatches()]
    body = dict(job_id=job.id, result_id=f"r-{job.id}", agent_id="pi-1",
                campaign_id=job.campaign_id, benchmark="ncf", mode="smoke", run_index=1,
                status="done", started_at=1.0, finished_at=2.0)
    topic = service.topics.job_result("pi-1", job.id)
    for _ in range(3):                                 # the agent re-sent it twice meanwhile
        service._on_result_bytes(topic, seal(JobResult(**body, **seq()), topic, pi))
    acks, checked = [], []
    monkeypatch.setattr(service.link, "publish", lambda t, m, **k: acks.append((t, m)))
    admit = service.trust.admit
    monkeypatch.setattr(service.trust, "admit",
                        lambda *a, **k: checked.append(a[0]) or admit(*a, **k))
    service._write_inbox()
    assert checked == [topic]
    assert [m.result_id for _, m in acks] == [f"r-{job.id}"]
    assert service.store.job(job.id).state == "done"
    assert service._beat_stats.results_superseded == 2
    # Another copy later (the ack was lost): acknowledged again, stored still once.
    service._on_result_bytes(topic, seal(JobResult(**body, **seq()), topic, pi))
    service._write_inbox()
    assert len(acks) == 2 and len(service.store.results(job.campaign_id)) == 1


def test_a_campaign_goes_out_as_acceptances_come_back(service, monkeypatch):
    """The dispatcher keeps at most dispatch_window jobs assigned and not yet accepted; an
    acceptance the writer stores wakes it to send the next (at 10,000 devices, all at once put
    the controller minutes behind what it had set off)."""
    from agent.protocol import JobAssignment, JobEvent, JobState

    service.dispatch_window = 2                        # serve --dispatch-window 2
    pis = {f"pi-{i}": Identity.generate() for i in range(5)}
    for name, key in pis.items():
        hear(service, name, key, status(name, key, capabilities=None))
    service._write_inbox()
    service.store.create_campaign(["ncf"], "smoke", 1, sorted(pis), "all", {})
    sent = []
    monkeypatch.setattr(service.link, "publish", lambda t, m, **k: sent.append(m))
    monkeypatch.setattr(service.link, "echo", lambda then: None)
    service.link.connected.set()
    service._tick()
    assert [type(m) for m in sent] == [JobAssignment, JobAssignment]
    service._tick()
    assert len(sent) == 2                              # the window is full
    first = sent[0]
    service._wake.clear()
    agent_id = service.store.job(first.job_id).agent_id
    topic = service.topics.job_events(agent_id, first.job_id)
    service._on_event(topic, JobEvent(job_id=first.job_id, agent_id=agent_id,
                                      state=JobState.ACCEPTED, **seq()))
    service._write_inbox()
    assert service._wake.is_set()                      # the dispatcher is woken at once
    service._tick()
    assert len(sent) == 3 and all(isinstance(m, JobAssignment) for m in sent)
    assert len({m.job_id for m in sent}) == 3


def test_what_waits_unopened_is_bounded_in_bytes(service, monkeypatch, caplog):
    """Payloads kept for the writer are bounded by bytes as well as by topics: past the budget
    they are dropped unread and counted (a beat comes again, a result is re-sent); a device's
    older beats falling out of its few places give their bytes back."""
    import controller.service as service_module

    keys = {f"pi-{i}": Identity.generate() for i in range(5)}
    for name, key in keys.items():
        hear(service, name, key, status(name, key))
    service._write_inbox()
    topic = service.topics.agent_heartbeat("pi-0")
    size = len(seal(beat("pi-0"), topic, keys["pi-0"]))
    monkeypatch.setattr(service_module, "MAX_WAITING_BYTES", int(4.5 * size))
    for _ in range(3 * service_module.CANDIDATES):       # one device: its newest few only
        hear(service, "pi-0", keys["pi-0"], beat("pi-0"), kind="beat")
    assert service._dropped == 0
    for name in ("pi-1", "pi-2"):
        hear(service, name, keys[name], beat(name), kind="beat")
    assert service._dropped == 2                         # the budget holds four
    with caplog.at_level("WARNING", logger="mlperf.controller"):
        service._write_inbox()
    assert any("2 heartbeat(s) or result(s) dropped unread" in r.getMessage()
               for r in caplog.records)
    hear(service, "pi-3", keys["pi-3"], beat("pi-3"), kind="beat")
    assert service._dropped == 0 and service._waiting_bytes > 0    # written: room again
