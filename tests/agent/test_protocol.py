"""The wire contract: topics, message round trips, the signed envelope, and what the codec
refuses (always as one line, never a traceback)."""

import json

import re

import pytest
from pydantic import ValidationError

from agent.display import quality_text
from agent.envelope import (
    check_fresh,
    check_signature,
    decode,
    encode,
    open_body,
    open_envelope,
    seal,
)
from agent.errors import ConfigError, ProtocolError, Refused
from agent.identity import Identity
from agent.link import BrokerUrl
from agent.protocol import (
    CLOCK_SKEW_S,
    MAX_BODY_BYTES,
    MAX_PAYLOAD_BYTES,
    AgentStatus,
    CancelJob,
    Capabilities,
    GroupSpec,
    ControllerStatus,
    Heartbeat,
    JobAssignment,
    JobEvent,
    JobResult,
    JobState,
    ReferenceOutcome,
    Refusal,
    ResultAck,
    Sequence,
    Target,
    TimedWindow,
    Topics,
)
from agent.settings import parse_params

seq = Sequence()
KEY = Identity.generate()
DIGEST = "sha256:" + "ab" * 32


def outcome(**over):
    base = dict(benchmark="ncf", mode="smoke", status="success", reached_target=True,
                target=Target(metric="hr@10", value=0.6, direction="max", source="smoke"),
                quality=0.71, epochs=3, samples_trained=1000, timed_window_s=4.2,
                time_to_target_s=4.2, time_to_train_s=None, throughput_samples_per_s=1e4,
                epoch_time_s=1.2, projection=None, stop_reason="target_reached",
                dataset="synthetic", config={"factors": 8}, source_revision="abc", seed=1,
                platform="pi", mllog_file="mllog.txt")
    return ReferenceOutcome(**{**base, **over})


MESSAGES = [
    AgentStatus(agent_id="pi-5", name="pi-5", state="online", tags=["arm"], heartbeat_s=5,
                boot=3, session="0123456789abcdef",
                capabilities=Capabilities(hostname="pi", os="Linux 6.1", arch="aarch64",
                                          cpu_count=4, memory_total_bytes=8 << 30,
                                          python="3.11.2", benchmarks=["ncf"],
                                          agent_version="0.1.0"), **seq()),
    Heartbeat(agent_id="pi-5", boot=3, session="0123456789abcdef", job_id="j1",
              job_state=JobState.RUNNING, cpu_percent=97.5, memory_percent=41.0,
              temperature_c=61.2, **seq()),
    JobAssignment(job_id="j1", campaign_id="c1", benchmark="ncf", mode="smoke", run_index=1,
                  seed=3, params={"lr": "0.1", "n": 3, "flag": True, "x": 0.5},
                  image="lab:5000/mlperf-edge/pi-5:0.1.0", image_digest=DIGEST, **seq()),
    CancelJob(job_id="j1", **seq()),
    JobEvent(job_id="j1", agent_id="pi-5", state=JobState.ACCEPTED, detail="ncf smoke",
             mllog=[':::MLLOG {"key": "run_start"}'], **seq()),
    JobResult(job_id="j1", result_id="r1", agent_id="pi-5", campaign_id="c1", benchmark="ncf",
              mode="smoke", run_index=1, status="done", started_at=1.0, finished_at=2.0,
              exit_code=0, timed_window=TimedWindow(run_start_ms=1, run_stop_ms=4201,
                                                    duration_s=4.2),
              outcome=outcome(), mllog_lines=40, **seq()),
    ResultAck(job_id="j1", result_id="r1", **seq()),
    Refusal(agent_id="pi-5", topic="t/x", code="signature", reason="forged", **seq()),
    ControllerStatus(controller_id="mlperf-controller", state="online", store="sqlite://",
                     version="2", **seq()),
    JobAssignment(job_id="j2", campaign_id="c1", benchmark="resnet", mode="smoke", run_index=1,
                  seed=3, group=GroupSpec(group_id="c1-g0001", rank=1, world_size=4,
                                          master_addr="10.0.0.5", master_port=29577), **seq()),
]
T = Topics("lab/mlperf")


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_in_a_signed_envelope(message):
    assert decode(type(message), encode(message)) == message
    payload = seal(message, "lab/mlperf/x", KEY)
    env = open_envelope(payload, "lab/mlperf/x")
    assert env.key == KEY.public_b64 and json.loads(payload)["schema"] == 2
    check_signature(env, "lab/mlperf/x")
    check_fresh(env, type(message), "lab/mlperf/x")
    assert open_body(env, type(message), "lab/mlperf/x") == message
    assert (env.expires_ms is None) == (type(message).TTL_S is None)  # presence: no expiry


def test_the_signature_covers_the_topic_the_body_the_nonce_and_the_expiry():
    payload = seal(MESSAGES[2], "lab/mlperf/controller/agents/pi-5/jobs", KEY)
    env = open_envelope(payload, "x")
    with pytest.raises(Refused) as err:                       # re-addressed to another agent
        check_signature(env, "lab/mlperf/controller/agents/pi-4/jobs")
    assert err.value.code == "signature"
    raw = json.loads(payload)
    for field, value in (("body", raw["body"].replace('"seed":3', '"seed":4')),
                         ("nonce", "0" * 32), ("expires_ms", raw["expires_ms"] + 1),
                         ("kind", "CancelJob")):
        forged = open_envelope(json.dumps({**raw, field: value}).encode(), "x")
        with pytest.raises(Refused):
            check_signature(forged, "lab/mlperf/controller/agents/pi-5/jobs")
    other = Identity.generate()                               # someone else's key, our sig
    forged = open_envelope(json.dumps({**raw, "key": other.public_b64}).encode(), "x")
    with pytest.raises(Refused):
        check_signature(forged, "lab/mlperf/controller/agents/pi-5/jobs")


def test_expired_and_future_messages_are_refused_with_the_clock_named():
    env = open_envelope(seal(MESSAGES[3], "t", KEY, now=1_000_000.0), "t")
    check_fresh(env, CancelJob, "t", now=1_000_000.0 + CancelJob.TTL_S + CLOCK_SKEW_S - 1)
    with pytest.raises(Refused, match="expired") as err:
        check_fresh(env, CancelJob, "t", now=1_000_000.0 + CancelJob.TTL_S + CLOCK_SKEW_S + 1)
    assert err.value.code == "expired" and "NTP" in str(err.value)
    with pytest.raises(Refused, match="ahead of this clock") as err:
        check_fresh(env, CancelJob, "t", now=1_000_000.0 - CLOCK_SKEW_S - 10)
    assert err.value.code == "clock"
    status = open_envelope(seal(MESSAGES[0], "t", KEY, now=1.0), "t")
    check_fresh(status, AgentStatus, "t", now=9e9)            # presence is judged by sequence


def test_a_body_of_another_kind_is_refused():
    env = open_envelope(seal(MESSAGES[3], "t", KEY), "t")
    with pytest.raises(Refused, match="carries JobAssignment"):
        open_body(env, JobAssignment, "t")


def test_sequence_numbers_increase():
    s = Sequence()
    assert [s()["seq"] for _ in range(3)] == [0, 1, 2]


def _raw(message, **changes):
    raw = json.loads(encode(message))
    raw.update(changes)
    return json.dumps(raw).encode()


@pytest.mark.parametrize("payload, complaint", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", "not JSON"),   # nesting: refused, no crash
    (b"\xff\xfe", "not JSON"),
    (_raw(MESSAGES[2], schema=1), "schema 1 is not the version this build speaks (2)"),
    (_raw(MESSAGES[2], mode="turbo"), "mode"),
    (_raw(MESSAGES[2], seed="3"), "seed"),                 # strict: no str -> int coercion
    (_raw(MESSAGES[2], command="rm -rf /"), "command"),     # unknown fields are refused
    (_raw(MESSAGES[2], job_id="a/b"), "job_id"),            # ids become topic levels
    (_raw(MESSAGES[2], benchmark="+"), "benchmark"),
    (_raw(MESSAGES[2], run_index=0), "run_index"),
    (_raw(MESSAGES[2], params={"k": [1, 2]}), "params"),
    (_raw(MESSAGES[2], max_steps=10 ** 12), "max_steps"),   # upper bounds on every limit
    (_raw(MESSAGES[2], max_seconds=1e9), "max_seconds"),
    (_raw(MESSAGES[2], seed=2 ** 40), "seed"),
    (_raw(MESSAGES[2], params={f"k{i}": 1 for i in range(100)}), "params"),
    (_raw(MESSAGES[2], params={"k": "x" * 1000}), "params"),
    (_raw(MESSAGES[2], image_digest=None), "pin it with image_digest"),
    (_raw(MESSAGES[2], max_seconds="NaN"), "max_seconds"),
])
def test_decode_refuses_with_a_one_line_reason(payload, complaint):
    with pytest.raises(ProtocolError) as err:
        decode(JobAssignment, payload, "t/jobs")
    assert complaint in str(err.value)
    assert "\n" not in str(err.value)


def test_presence_fields_are_bounded():
    for bad in (dict(heartbeat_s=1e9), dict(heartbeat_s=0.01), dict(name="x" * 200),
                dict(name="evil\x1b[2J"), dict(tags=[f"t{i}" for i in range(100)])):
        with pytest.raises(ProtocolError):
            decode(AgentStatus, _raw(MESSAGES[0], **bad))


def test_size_limits_both_ways():
    big = JobEvent(job_id="j1", agent_id="a", mllog=["x" * 1000] * 300, **seq())
    with pytest.raises(ProtocolError, match="limit"):
        encode(big)
    with pytest.raises(ProtocolError, match="limit"):
        decode(JobEvent, b" " * (MAX_BODY_BYTES + 1))
    with pytest.raises(ProtocolError, match="limit"):
        open_envelope(b" " * (MAX_PAYLOAD_BYTES + 1), "t")


def test_a_schema_1_payload_is_told_apart():
    v1 = json.dumps({"schema": 1, "seq": 0, "sent_at": 1.0, "job_id": None, "agent_id": "pi",
                     "name": "pi", "state": "online", "heartbeat_s": 5}).encode()
    with pytest.raises(ProtocolError, match="schema 1 is not the version this build speaks"):
        open_envelope(v1, "mlperf/v2/agents/pi/status")


def test_topics_are_built_in_one_place_and_parse_back():
    assert T.agent_jobs("pi-5") == "lab/mlperf/controller/agents/pi-5/jobs"
    assert T.job_result("pi-5", "c1-0001") == "lab/mlperf/agents/pi-5/jobs/c1-0001/result"
    assert T.parse(T.agent_status("pi-5")).agent_id == "pi-5"
    ref = T.parse(T.job_events("pi-5", "j.1"))
    assert (ref.side, ref.agent_id, ref.job_id, ref.leaf) == ("agents", "pi-5", "j.1", "events")
    assert T.parse(T.agent_acks("pi-5")).side == "controller"
    assert T.parse(T.controller_status()).agent_id is None
    with pytest.raises(ProtocolError):
        T.agent_jobs("pi/5")
    for bad in ("other/agents/x/status", "lab/mlperf/agents/x", "lab/mlperf/agents/+/status",
                "lab/mlperf/agents/x/jobs/a/b/c"):
        with pytest.raises(ProtocolError):
            T.parse(bad)
    for bad in ("", "/x", "x/", "a/+/b", "a/#"):
        with pytest.raises(ConfigError):
            Topics(bad)


def test_every_agent_topic_is_under_its_own_subtree():
    """What a broker ACL relies on: an agent writes only under agents/ID/ and reads only
    under controller/agents/ID/ (and the controller's presence)."""
    writes = [T.agent_status("a"), T.agent_heartbeat("a"), T.job_events("a", "j"),
              T.job_result("a", "j"), T.agent_refusals("a")]
    reads = [T.agent_jobs("a"), T.agent_control("a"), T.agent_acks("a")]
    assert all(t.startswith("lab/mlperf/agents/a/") for t in writes)
    assert all(t.startswith("lab/mlperf/controller/agents/a/") for t in reads)


@pytest.mark.parametrize("url, expected", [
    ("mqtt://lab:1883", BrokerUrl("lab", 1883)),
    ("lab", BrokerUrl("lab", 1883)),
    ("mqtts://u:p%40ss@broker.example", BrokerUrl("broker.example", 8883, True, "u", "p@ss")),
    ("mqtt://127.0.0.1:2000", BrokerUrl("127.0.0.1", 2000)),
])
def test_broker_urls(url, expected):
    assert BrokerUrl.parse(url) == expected


@pytest.mark.parametrize("url", ["http://lab", "mqtt://", "mqtt://lab:notaport"])
def test_bad_broker_urls(url):
    with pytest.raises(ConfigError):
        BrokerUrl.parse(url)


def test_str_of_a_broker_url_hides_the_password():
    assert "p@ss" not in str(BrokerUrl.parse("mqtt://u:p%40ss@lab"))


def test_params_from_key_value_pairs():
    assert parse_params(["lr=0.1", " layers = 256,128 "]) == {"lr": "0.1", "layers": "256,128"}
    for bad in (["lr"], ["=3"]):
        with pytest.raises(ConfigError):
            parse_params(bad)


def test_quality_text_says_whether_the_target_was_reached():
    assert quality_text(outcome()) == "hr@10 0.71 >= 0.6 (reached)"
    assert "not reached" in quality_text(outcome(reached_target=False, quality=None))
    assert quality_text(None) == "-"


def test_a_joint_quality_shows_its_parts_and_the_wire_bounds_them():
    joint = Target(metric="min(bbox_map/0.377,segm_map/0.339)", value=1.0, direction="max",
                   source="v0.5")
    out = outcome(benchmark="maskrcnn", target=joint, quality=0.8, reached_target=False,
                  quality_parts={"bbox_map": 0.3016, "segm_map": 0.2712})
    assert quality_text(out) == ("min(bbox_map/0.377,segm_map/0.339) 0.8 >= 1 (not reached): "
                                 "bbox_map 0.3016, segm_map 0.2712")
    assert quality_text(outcome()) == "hr@10 0.71 >= 0.6 (reached)"       # no parts: as before
    for hostile in ({f"k{i}": 0.1 for i in range(9)}, {"a b": 0.1}, {"x" * 65: 0.1},
                    {"bbox_map": "0.3"}):
        with pytest.raises(ValidationError):
            outcome(quality_parts=hostile)


@pytest.mark.parametrize("group, complaint", [
    (dict(rank=2, world_size=2), "outside a group of 2"),
    (dict(world_size=1), "greater than or equal to 2"),
    (dict(world_size=2000), "less than or equal to 1024"),
    (dict(master_port=80), "greater than or equal to 1024"),
    (dict(master_addr="10.0.0.5; rm -rf /"), "should match pattern"),
    (dict(master_addr="-oProxyCommand"), "should match pattern"),
    (dict(timeout_s=0.5), "greater than or equal to 5"),
])
def test_a_group_spec_is_bounded(group, complaint):
    fields = dict(group_id="g1", rank=0, world_size=2, master_addr="node1.lab",
                  master_port=29500, **{})
    with pytest.raises(ValidationError, match=re.escape(complaint)):
        GroupSpec(**{**fields, **group})
    assert GroupSpec(**{**fields, "master_addr": "[fe80::1]"}).rendezvous == "[fe80::1]:29500"


def test_a_group_job_trains_with_torch_only():
    group = GroupSpec(group_id="g1", rank=0, world_size=2, master_addr="10.0.0.5",
                      master_port=29500)
    with pytest.raises(ValidationError, match="trains with torch.distributed"):
        JobAssignment(job_id="j1", campaign_id="c1", benchmark="ncf", mode="smoke", run_index=1,
                      seed=1, runtime="litert", model_sha256="0" * 64, group=group, **seq())
