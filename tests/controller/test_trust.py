"""Whom the controller hears (controller.trust): approved keys only; a new device waits for
approval or proves the enrolment token; refused messages are counted, bounded."""

import json

import pytest

from agent.envelope import seal
from agent.errors import ProtocolError, Refused
from agent.identity import Identity, enrolment_proof
from agent.protocol import (
    AgentStatus,
    ControllerStatus,
    Heartbeat,
    JobEvent,
    Sequence,
    Topics,
)
from controller.errors import StoreError
from controller.store import Store
from controller.trust import FleetTrust

T = Topics("lab/v2")
TOKEN = "a-lab-token-of-some-length"
seq = Sequence()


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'c.db'}")
    yield s
    s.close()


@pytest.fixture
def me():
    return Identity.generate()


def trust(store, me, token=TOKEN):
    return FleetTrust(store, T, me, token)


def status(agent_id, key: Identity, proof=False, token=TOKEN, **over):
    return AgentStatus(**{**dict(
        agent_id=agent_id, name=agent_id, state="online", boot=1, session="ab" * 8,
        heartbeat_s=5, enrolment=enrolment_proof(token, agent_id, key.public_b64)
        if proof else None), **seq(), **over})


def send(gate, message, topic, key):
    return gate.admit(topic, seal(message, topic, key), type(message))


def test_an_unknown_device_waits_for_approval_and_is_not_a_device(store, me):
    gate, pi = trust(store, me), Identity.generate()
    with pytest.raises(Refused, match="devices approve pi-5") as err:
        send(gate, status("pi-5", pi), T.agent_status("pi-5"), pi)
    assert err.value.code == "unknown-key" and err.value.verified is False
    [waiting] = store.pending()
    assert (waiting.agent_id, waiting.fingerprint) == ("pi-5", pi.fingerprint)
    assert store.devices() == []
    beat = Heartbeat(agent_id="pi-5", boot=1, session="ab" * 8, cpu_percent=1,
                     memory_percent=1, **seq())
    with pytest.raises(Refused, match="not trusted"):                # not even verified
        send(gate, beat, T.agent_heartbeat("pi-5"), pi)
    dev = store.approve("pi-5")
    assert dev.key == pi.public_b64 and dev.state == "online" and store.pending() == []
    gate.forget()                        # a running controller re-reads keys within a second
    assert send(gate, beat, T.agent_heartbeat("pi-5"), pi) == beat   # heard from now on


def test_the_enrolment_token_approves_a_new_device_at_once(store, me):
    gate, pi = trust(store, me), Identity.generate()
    msg = status("pi-5", pi, proof=True)
    assert send(gate, msg, T.agent_status("pi-5"), pi) == msg
    [dev] = store.devices()
    assert (dev.agent_id, dev.approved_by, dev.state) == ("pi-5", "token", "online")


def test_a_fleet_enrolling_does_not_reread_every_key_per_device(store, me, monkeypatch):
    """An enrolment adds its key to what the gate knows; re-reading all approved keys at each
    message after one made enrolling N devices cost O(N²) (20 devices/s at 5,000)."""
    gate = trust(store, me)
    reads = []
    real = store.approved_keys
    monkeypatch.setattr(store, "approved_keys", lambda: reads.append(1) or real())
    keys = {f"pi-{i}": Identity.generate() for i in range(30)}
    for name, key in keys.items():
        msg = status(name, key, proof=True)
        assert send(gate, msg, T.agent_status(name), key) == msg
        beat = Heartbeat(agent_id=name, boot=1, session="ab" * 8, cpu_percent=1,
                         memory_percent=1, **seq())
        assert send(gate, beat, T.agent_heartbeat(name), key) == beat    # heard at once
    assert len(store.devices()) == 30 and len(reads) <= 2


def test_a_proof_for_another_key_or_id_or_token_is_worth_nothing(store, me):
    gate, pi, mallory = trust(store, me), Identity.generate(), Identity.generate()
    stolen = status("pi-5", pi, proof=True)                          # pi's proof ...
    with pytest.raises(Refused):
        send(gate, stolen, T.agent_status("pi-5"), mallory)         # ... signed by another key
    with pytest.raises(Refused):
        send(gate, status("pi-6", mallory, proof=True, token="a-different-lab-token"),
             T.agent_status("pi-6"), mallory)
    assert store.devices() == []
    assert "does not match" in next(r.note for r in store.pending() if r.agent_id == "pi-6")


def test_a_new_key_for_an_approved_id_needs_the_operator_even_with_the_token(store, me):
    gate, pi, mallory = trust(store, me), Identity.generate(), Identity.generate()
    send(gate, status("pi-5", pi, proof=True), T.agent_status("pi-5"), pi)
    with pytest.raises(Refused):
        send(gate, status("pi-5", mallory, proof=True, boot=9), T.agent_status("pi-5"),
             mallory)
    [waiting] = store.pending()
    assert waiting.note.startswith("KEY CHANGED")
    assert store.devices()[0].key == pi.public_b64                   # unchanged
    with pytest.raises(StoreError, match="already approved"):
        store.approve("pi-5", pi.fingerprint)
    store.approve("pi-5", mallory.fingerprint)                       # the operator decides
    assert store.devices()[0].key == mallory.public_b64


def test_two_keys_waiting_under_one_name_need_a_fingerprint(store, me):
    gate, a, b = trust(store, me, token=None), Identity.generate(), Identity.generate()
    for key in (a, b):
        with pytest.raises(Refused):
            send(gate, status("raspberrypi", key), T.agent_status("raspberrypi"), key)
    with pytest.raises(StoreError, match="--fingerprint"):
        store.approve("raspberrypi")
    store.approve("raspberrypi", b.fingerprint)
    assert store.devices()[0].key == b.public_b64 and store.pending() == []


def test_revoked_devices_are_refused(store, me):
    gate, pi = trust(store, me), Identity.generate()
    send(gate, status("pi-5", pi, proof=True), T.agent_status("pi-5"), pi)
    store.revoke("pi-5")
    gate.forget()
    ev = JobEvent(job_id="j1", agent_id="pi-5", **seq())
    with pytest.raises(Refused):
        send(gate, ev, T.job_events("pi-5", "j1"), pi)
    assert store.devices()[0].state == "offline"


def test_a_forged_signature_is_refused_and_never_waits_for_approval(store, me):
    gate, pi = trust(store, me), Identity.generate()
    payload = json.loads(seal(status("pi-5", pi), T.agent_status("pi-5"), pi))
    payload["body"] = payload["body"].replace('"heartbeat_s":5.0', '"heartbeat_s":300.0')
    with pytest.raises(Refused) as err:
        gate.admit(T.agent_status("pi-5"), json.dumps(payload).encode(), AgentStatus)
    assert err.value.code == "signature"
    assert store.pending() == []


def test_a_status_on_another_devices_topic_is_refused(store, me):
    gate, pi = trust(store, me), Identity.generate()
    with pytest.raises(Refused, match="claims agent"):
        send(gate, status("pi-4", pi, proof=True), T.agent_status("pi-5"), pi)


def test_only_this_controllers_key_speaks_for_the_controller(store, me):
    gate = trust(store, me)
    msg = ControllerStatus(controller_id="mlperf-controller", state="online", store="x",
                           version="2", **seq())
    assert send(gate, msg, T.controller_status(), me) == msg
    with pytest.raises(Refused, match="a controller with another key") as err:
        send(gate, msg, T.controller_status(), Identity.generate())
    assert err.value.code == "foreign-controller"
    payload = json.loads(seal(msg, T.controller_status(), me))
    payload["body"] = payload["body"].replace("online", "offline")
    with pytest.raises(Refused) as err:                               # our key, forged body
        gate.admit(T.controller_status(), json.dumps(payload).encode(), ControllerStatus)
    assert err.value.code == "signature"


def test_waiting_devices_are_bounded(store, me, monkeypatch):
    import controller.fleet_store as fleet_store

    monkeypatch.setattr(fleet_store, "MAX_PENDING", 3)
    gate = trust(store, me, token=None)
    for i in range(5):
        key = Identity.generate()
        with pytest.raises(Refused) as err:
            send(gate, status(f"ghost-{i}", key), T.agent_status(f"ghost-{i}"), key)
    assert err.value.code == "busy"
    assert len(store.pending()) == 3 and store.devices() == []


def test_refused_messages_are_counted_by_sender_and_reason_within_bounds(store, me,
                                                                      monkeypatch):
    import controller.fleet_store as fleet_store

    monkeypatch.setattr(fleet_store, "MAX_REJECTION_SOURCES", 10)
    gate = trust(store, me)
    for i in range(50):
        topic = T.agent_heartbeat(f"ghost-{i}")
        try:
            gate.admit(topic, b"junk", Heartbeat)
        except ProtocolError as exc:
            gate.count(exc)
    gate.legacy("mlperf/v1/agents/old/status", b'{"schema": 1, "agent_id": "old"}')
    assert gate.flush() == 51
    rows = store.rejections()
    assert sum(r.count for r in rows) == 51
    assert len({r.source for r in rows}) <= 11 and "(other)" in {r.source for r in rows}
    assert {r.code for r in rows} == {"malformed", "old-schema"} or \
        {r.code for r in rows if r.source != "(other)"} <= {"malformed", "old-schema"}


def test_waiting_requests_can_be_cleared_and_the_devices_view_stays_short(store, me,
                                                                          tmp_path):
    """A flood of self-signed requests (an outsider with many keys) is bounded, shown briefly
    by `devices`, and cleared by the operator."""
    from typer.testing import CliRunner

    from controller.cli import app

    gate = trust(store, me, token=None)
    for i in range(30):
        key = Identity.generate()
        with pytest.raises(Refused):
            send(gate, status(f"flood-{i}", key), T.agent_status(f"flood-{i}"), key)
    db = ["--db", store.url]
    shown = CliRunner().invoke(app, ["devices", "--broker", "mqtt://127.0.0.1:9", *db])
    assert shown.exit_code == 0, shown.output
    assert shown.output.count("flood-") == 2 * 20          # name and agent id, 20 rows
    assert "and 10 more waiting" in shown.output
    cleared = CliRunner().invoke(app, ["devices", "pending", "--clear", *db])
    assert "forgot 30" in cleared.output and store.pending() == []


def test_in_the_background_keys_are_read_by_refresh_only_and_pending_enrolments_kept(store,
                                                                                      me):
    """The serving controller's gate never reads the store on the MQTT thread; an enrolment
    handed to the writer stays trusted across a refresh until the store shows it."""
    gate, pi = trust(store, me), Identity.generate()
    handed = []
    gate.enrolments, gate.background = lambda st, key: handed.append((st, key)), True
    gate.refresh()
    reads = []
    real = store.approved_keys
    store.approved_keys = lambda: reads.append(1) or real()
    msg = status("pi-5", pi, proof=True)
    assert send(gate, msg, T.agent_status("pi-5"), pi) == msg
    assert [h[1] for h in handed] == [pi.public_b64] and store.devices() == []
    beat = Heartbeat(agent_id="pi-5", boot=1, session="ab" * 8, cpu_percent=1,
                     memory_percent=1, **seq())
    assert send(gate, beat, T.agent_heartbeat("pi-5"), pi) == beat
    stranger = Identity.generate()
    gate._loaded -= 2                                  # a second on: a miss may ask ...
    with pytest.raises(Refused):                       # ... for a refresh, and reads nothing
        send(gate, status("pi-6", stranger), T.agent_status("pi-6"), stranger)
    assert reads == [] and gate.refresh_due()
    gate.refresh()                                     # not stored yet: still trusted
    assert send(gate, beat.model_copy(update=seq()), T.agent_heartbeat("pi-5"), pi)
    store.enrol(*handed[0], "token")                   # the writer stores it
    gate.refresh()
    assert gate._pending == {} and gate._keys["pi-5"] == pi.public_b64
    gate.unlearn("pi-5", pi.public_b64)
    with pytest.raises(Refused):
        send(gate, beat.model_copy(update=seq()), T.agent_heartbeat("pi-5"), pi)
