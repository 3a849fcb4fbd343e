"""The wire contract: topics, message round trips, and what the codec refuses."""

import json

import pytest

from agent.link import BrokerUrl
from agent.protocol import (
    MAX_PAYLOAD_BYTES,
    AgentStatus,
    CancelJob,
    Capabilities,
    ConfigError,
    ControllerStatus,
    Heartbeat,
    JobAssignment,
    JobEvent,
    JobResult,
    JobState,
    ProtocolError,
    ReferenceOutcome,
    ResultAck,
    Sequence,
    Target,
    TimedWindow,
    Topics,
    decode,
    encode,
    parse_params,
    quality_text,
)

seq = Sequence()


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
                capabilities=Capabilities(hostname="pi", os="Linux 6.1", arch="aarch64",
                                          cpu_count=4, memory_total_bytes=8 << 30,
                                          python="3.11.2", benchmarks=["ncf"],
                                          agent_version="0.1.0"), **seq()),
    Heartbeat(agent_id="pi-5", job_id="j1", job_state=JobState.RUNNING, cpu_percent=97.5,
              memory_percent=41.0, temperature_c=61.2, **seq()),
    JobAssignment(job_id="j1", campaign_id="c1", benchmark="ncf", mode="smoke", run_index=1,
                  seed=3, params={"lr": "0.1", "n": 3, "flag": True, "x": 0.5}, **seq()),
    CancelJob(job_id="j1", **seq()),
    JobEvent(job_id="j1", agent_id="pi-5", state=JobState.ACCEPTED, detail="ncf smoke",
             mllog=[':::MLLOG {"key": "run_start"}'], **seq()),
    JobResult(job_id="j1", result_id="r1", agent_id="pi-5", campaign_id="c1", benchmark="ncf",
              mode="smoke", run_index=1, status="done", started_at=1.0, finished_at=2.0,
              exit_code=0, timed_window=TimedWindow(run_start_ms=1, run_stop_ms=4201,
                                                    duration_s=4.2),
              outcome=outcome(), mllog_lines=40, **seq()),
    ResultAck(job_id="j1", result_id="r1", **seq()),
    ControllerStatus(controller_id="mlperf-controller", state="online", store="sqlite://",
                     version="1", **seq()),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message):
    payload = encode(message)
    assert json.loads(payload)["schema"] == 1
    assert decode(type(message), payload) == message


def test_every_message_carries_schema_seq_and_job_id():
    for message in MESSAGES:
        raw = json.loads(encode(message))
        assert {"schema", "seq", "sent_at", "job_id"} <= raw.keys()


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
    (_raw(MESSAGES[2], schema=2), "schema 2"),
    (_raw(MESSAGES[2], mode="turbo"), "mode"),
    (_raw(MESSAGES[2], seed="3"), "seed"),                 # strict: no str -> int coercion
    (_raw(MESSAGES[2], command="rm -rf /"), "command"),     # unknown fields are refused
    (_raw(MESSAGES[2], job_id="a/b"), "job_id"),            # ids become topic levels
    (_raw(MESSAGES[2], benchmark="+"), "benchmark"),
    (_raw(MESSAGES[2], run_index=0), "run_index"),
    (_raw(MESSAGES[2], params={"k": [1, 2]}), "params"),
])
def test_decode_refuses_with_a_one_line_reason(payload, complaint):
    with pytest.raises(ProtocolError) as err:
        decode(JobAssignment, payload, "t/jobs")
    assert complaint in str(err.value)
    assert "\n" not in str(err.value)


def test_size_limit_both_ways():
    big = JobEvent(job_id="j1", agent_id="a", mllog=["x" * 1000] * 300, **seq())
    with pytest.raises(ProtocolError, match="limit"):
        encode(big)
    with pytest.raises(ProtocolError, match="limit"):
        decode(JobEvent, b" " * (MAX_PAYLOAD_BYTES + 1))


def test_topics_are_built_in_one_place_and_parse_back():
    t = Topics("lab/mlperf")
    assert t.agent_jobs("pi-5") == "lab/mlperf/agents/pi-5/jobs"
    assert t.job_result("c1-0001") == "lab/mlperf/jobs/c1-0001/result"
    assert t.id_in(t.agent_status("pi-5")) == "pi-5"
    assert t.id_in(t.job_events("j.1")) == "j.1"
    with pytest.raises(ProtocolError):
        t.agent_jobs("pi/5")
    with pytest.raises(ProtocolError):
        t.id_in("other/agents/x/status")
    for bad in ("", "/x", "x/", "a/+/b", "a/#"):
        with pytest.raises(ConfigError):
            Topics(bad)


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
