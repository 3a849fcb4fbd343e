"""Properties of the codec and the signature checks (Hypothesis): whatever bytes arrive, the
answer is a message or one ProtocolError -- never another exception; a signed message comes
back exactly; and no change to a signed payload, however small, is ever admitted."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.envelope import decode, open_envelope, seal
from agent.errors import ProtocolError, Refused
from agent.gate import Gate, NonceCache
from agent.identity import Identity
from agent.protocol import (
    KINDS,
    AgentStatus,
    CancelJob,
    JobAssignment,
    JobEvent,
    Sequence,
)

KEY = Identity.generate()
TOPIC = "lab/v2/controller/agents/pi-5/jobs"
seq = Sequence()
FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


class Trusting(Gate):
    """Trusts KEY only: what is left to refuse is the envelope, signature, expiry, replay."""

    def known_key(self, topic, env):
        return env.key == KEY.public_b64


ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
params = st.dictionaries(
    st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True),
    st.one_of(st.booleans(), st.integers(-(2 ** 53), 2 ** 53),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40)),
    max_size=8)
jobs = st.builds(lambda job_id, p, steps, text: JobAssignment(
    job_id=job_id, campaign_id="c1", benchmark="ncf", mode="smoke", run_index=1, seed=1,
    params=p, max_steps=steps, **seq()), ids, params,
    st.one_of(st.none(), st.integers(1, 10 ** 9)), st.text())
events = st.builds(lambda job_id, lines, detail: JobEvent(
    job_id=job_id, agent_id="pi-5", mllog=lines, detail=detail, **seq()), ids,
    st.lists(st.text(max_size=200), max_size=20), st.one_of(st.none(), st.text(max_size=300)))


@FAST
@given(st.binary(max_size=4096))
def test_any_bytes_are_a_message_or_one_protocol_error(payload):
    for model in KINDS.values():
        try:
            decode(model, payload)
        except ProtocolError as exc:
            assert "\n" not in str(exc)
    try:
        Trusting().admit(TOPIC, payload, JobAssignment)
    except ProtocolError:
        pass


@FAST
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=40))
def test_any_json_is_a_message_or_one_protocol_error(value):
    payload = json.dumps({"schema": 2, "kind": "JobAssignment", "body": value}).encode()
    with pytest.raises(ProtocolError):
        Trusting().admit(TOPIC, payload, JobAssignment)


@FAST
@given(st.one_of(jobs, events))
def test_a_signed_message_comes_back_exactly(message):
    payload = seal(message, TOPIC, KEY)
    assert Trusting().admit(TOPIC, payload, type(message)) == message


@FAST
@given(jobs, st.data())
def test_no_change_to_a_signed_payload_is_admitted(message, data):
    payload = bytearray(seal(message, TOPIC, KEY))
    at = data.draw(st.integers(0, 10 ** 6)) % len(payload)        # the same draws each run
    payload[at] = (payload[at] + data.draw(st.integers(1, 255))) % 256
    with pytest.raises(ProtocolError):
        Trusting().admit(TOPIC, bytes(payload), JobAssignment)


@FAST
@given(jobs, st.sampled_from(["lab/v2/controller/agents/pi-4/jobs",
                              "lab/v2/controller/agents/pi-5/control", "lab/v3/x"]))
def test_a_signed_message_is_refused_on_any_other_topic(message, topic):
    with pytest.raises(Refused) as err:
        Trusting().admit(topic, seal(message, TOPIC, KEY), JobAssignment)
    assert err.value.code == "signature"


@FAST
@given(st.one_of(jobs, st.builds(lambda: CancelJob(job_id="j", **seq()))))
def test_a_replay_is_refused_but_presence_is_left_to_sequence(message):
    gate = Trusting()
    payload = seal(message, TOPIC, KEY)
    gate.admit(TOPIC, payload, type(message))
    with pytest.raises(Refused) as err:
        gate.admit(TOPIC, payload, type(message))
    assert err.value.code == "replay"
    status = AgentStatus(agent_id="pi-5", name="pi-5", state="online", boot=1,
                         session="ab" * 8, heartbeat_s=5, **seq())
    retained = seal(status, "lab/v2/agents/pi-5/status", KEY)
    for _ in range(2):                      # the broker replays retained presence by design
        gate.admit("lab/v2/agents/pi-5/status", retained, AgentStatus)


@FAST
@given(st.lists(st.tuples(st.text(min_size=1, max_size=8), st.floats(0, 100)), max_size=60))
def test_the_nonce_cache_never_grows_past_its_limit(entries):
    cache = NonceCache(limit=10)
    for nonce, expires in entries:
        cache.seen(nonce, expires, now=0.0)
        assert len(cache) <= 10


def test_the_envelope_names_the_signer_and_a_fresh_nonce():
    a, b = (json.loads(seal(CancelJob(job_id="j", **seq()), TOPIC, KEY)) for _ in range(2))
    assert a["key"] == KEY.public_b64 and a["nonce"] != b["nonce"]
    assert open_envelope(json.dumps(a).encode(), TOPIC).kind == "CancelJob"


def test_a_signature_spelled_another_way_is_not_the_same_signature():
    """Base64's last character carries unused bits; a decoder that ignores them would admit a
    payload whose signature text was changed (found by the fuzz run)."""
    from agent.protocol import JobAssignment as Job

    message = Job(job_id="j", campaign_id="c", benchmark="ncf", mode="smoke", run_index=1,
                  seed=1, **seq())
    env = json.loads(seal(message, TOPIC, KEY))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(env["sig"][-3])
    for other in (alphabet[(last & ~0b1111) | low] for low in range(16)):
        if other == env["sig"][-3]:
            continue
        forged = {**env, "sig": env["sig"][:-3] + other + "=="}
        with pytest.raises(Refused):
            Trusting().admit(TOPIC, json.dumps(forged).encode(), Job)
