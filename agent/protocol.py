"""The wire contract between mlperf-edge agents and controllers.

Everything that crosses the broker is defined here and nowhere else: topic builders, message
models, the job lifecycle both sides enforce, the codec (size limit, schema version, strict
validation). The MQTT connection both sides use is ``agent.link``; the controller imports
these two modules and nothing else from ``agent``.

Topics (prefix default ``mlperf/v1``)::

    {prefix}/agents/{agent_id}/status      AgentStatus       agent -> all, retained; Last Will = offline
    {prefix}/agents/{agent_id}/heartbeat   Heartbeat         agent -> controller
    {prefix}/agents/{agent_id}/jobs        JobAssignment     controller -> agent
    {prefix}/agents/{agent_id}/control     CancelJob         controller -> agent
    {prefix}/agents/{agent_id}/acks        ResultAck         controller -> agent
    {prefix}/jobs/{job_id}/events          JobEvent          agent -> controller (states + raw MLLOG lines)
    {prefix}/jobs/{job_id}/result          JobResult         agent -> controller (spooled until acked)
    {prefix}/controller/status             ControllerStatus  controller -> all, retained; Last Will = offline

Only MQTT 3.1.1 is required (the embedded demo broker speaks nothing newer). Every message is
JSON with ``schema`` (version), ``seq`` (per-sender sequence number), ``sent_at`` (unix s)
and ``job_id`` (``null`` where no job is concerned), so QoS 1 redelivery is idempotent.
"""

from __future__ import annotations

import enum
import json
import logging
import re
import threading
import time
from collections import deque
from itertools import count
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

SCHEMA_VERSION = 1
DEFAULT_PREFIX = "mlperf/v1"
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_MLLOG_LINES_PER_EVENT = 500
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_ID_RE = re.compile(ID_PATTERN)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Errors shared by both sides (each package adds its own below MlperfEdgeError)

class MlperfEdgeError(Exception):
    """Base of every error this product raises on purpose; the CLIs print it as one line."""


class ConfigError(MlperfEdgeError):
    """A setting, flag or file given by the user is wrong."""


class ProtocolError(MlperfEdgeError):
    """A message or topic does not follow this contract."""


class BrokerUnavailable(MlperfEdgeError):
    """The MQTT broker cannot be reached or refused the connection."""


class IllegalTransition(MlperfEdgeError):
    """A job lifecycle move that the state machine forbids."""


# --------------------------------------------------------------------------------------------
# Topics

def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid agent/job/campaign id, else raise ProtocolError.

    Ids become topic levels, so MQTT wildcards and separators (``+ # /``) are refused.
    """
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ProtocolError(
            f"invalid {what} {value!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
    return value


class Topics:
    """Builds every topic of the contract under one prefix (default ``mlperf/v1``)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix or prefix.startswith("/") or prefix.endswith("/") or any(
                c in prefix for c in "+#\0"):
            raise ConfigError(f"invalid topic prefix {prefix!r}: no wildcards, no leading or "
                              "trailing '/' (example: mlperf/v1)")
        self.prefix = prefix

    def agent_status(self, agent_id: str) -> str:
        return f"{self.prefix}/agents/{check_id(agent_id, 'agent id')}/status"

    def agent_heartbeat(self, agent_id: str) -> str:
        return f"{self.prefix}/agents/{check_id(agent_id, 'agent id')}/heartbeat"

    def agent_jobs(self, agent_id: str) -> str:
        return f"{self.prefix}/agents/{check_id(agent_id, 'agent id')}/jobs"

    def agent_control(self, agent_id: str) -> str:
        return f"{self.prefix}/agents/{check_id(agent_id, 'agent id')}/control"

    def agent_acks(self, agent_id: str) -> str:
        return f"{self.prefix}/agents/{check_id(agent_id, 'agent id')}/acks"

    def job_events(self, job_id: str) -> str:
        return f"{self.prefix}/jobs/{check_id(job_id, 'job id')}/events"

    def job_result(self, job_id: str) -> str:
        return f"{self.prefix}/jobs/{check_id(job_id, 'job id')}/result"

    def controller_status(self) -> str:
        return f"{self.prefix}/controller/status"

    def sync(self, client_id: str) -> str:
        """A private topic a client publishes to itself as an ordering barrier."""
        return f"{self.prefix}/sync/{check_id(client_id, 'client id')}"

    # Subscription patterns (the controller's view of the whole fleet).
    def all_agent_status(self) -> str:
        return f"{self.prefix}/agents/+/status"

    def all_heartbeats(self) -> str:
        return f"{self.prefix}/agents/+/heartbeat"

    def all_job_events(self) -> str:
        return f"{self.prefix}/jobs/+/events"

    def all_job_results(self) -> str:
        return f"{self.prefix}/jobs/+/result"

    def id_in(self, topic: str) -> str:
        """The agent or job id of a topic built by this class (the level after the kind)."""
        rest = topic[len(self.prefix) + 1:] if topic.startswith(self.prefix + "/") else ""
        parts = rest.split("/")
        if len(parts) != 3 or parts[0] not in ("agents", "jobs"):
            raise ProtocolError(f"topic {topic!r} is not under {self.prefix}/agents|jobs/ID/...")
        return check_id(parts[1])


# --------------------------------------------------------------------------------------------
# Job lifecycle: one enum, one transition function (DESIGN.md section 3)

class JobState(str, enum.Enum):
    QUEUED = "queued"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    PREPARING = "preparing"
    COOLING = "cooling"
    RUNNING = "running"
    REPORTING = "reporting"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"

    @property
    def terminal(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


_ENDS = {JobState.FAILED, JobState.CANCELLED, JobState.LOST}
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.ASSIGNED, JobState.CANCELLED}),
    JobState.ASSIGNED: frozenset({JobState.ACCEPTED} | _ENDS),
    JobState.ACCEPTED: frozenset({JobState.PREPARING} | _ENDS),
    # Cooling is skipped where the device profile sets no thermal threshold.
    JobState.PREPARING: frozenset({JobState.COOLING, JobState.RUNNING} | _ENDS),
    JobState.COOLING: frozenset({JobState.RUNNING} | _ENDS),
    JobState.RUNNING: frozenset({JobState.REPORTING} | _ENDS),
    # A job cancelled or failed while running still passes through reporting: its result
    # (status cancelled/failed) is spooled and sent like any other.
    JobState.REPORTING: frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED,
                                   JobState.LOST}),
    # A lost agent may come back with a spooled result: data is never thrown away.
    JobState.LOST: frozenset({JobState.REPORTING, JobState.DONE, JobState.FAILED,
                              JobState.CANCELLED}),
    JobState.DONE: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


def transition(current: JobState, new: JobState) -> JobState:
    """Return ``new`` if the lifecycle allows ``current -> new``; else raise IllegalTransition."""
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (terminal)"
        raise IllegalTransition(f"job cannot go from {current.value} to {new.value} "
                                f"(allowed: {allowed})")
    return new


def path(current: JobState, target: JobState) -> list[JobState]:
    """Shortest list of legal moves from ``current`` to ``target`` (empty if equal).

    The controller uses it when a result shows a job finished but some of its state events
    never arrived (QoS 1 is not delivery): the skipped states are recorded, not invented
    out of order. Raises IllegalTransition when ``target`` cannot be reached at all.
    """
    if current == target:
        return []
    frontier: deque[list[JobState]] = deque([[current]])
    seen = {current}
    while frontier:
        route = frontier.popleft()
        for nxt in sorted(TRANSITIONS[route[-1]], key=lambda s: s.value):
            # Never route through 'lost': it is an observation, not a step an agent takes.
            if nxt in seen or (nxt == JobState.LOST and nxt != target):
                continue
            if nxt == target:
                return route[1:] + [nxt]
            seen.add(nxt)
            frontier.append(route + [nxt])
    raise IllegalTransition(f"job cannot go from {current.value} to {target.value}")


# --------------------------------------------------------------------------------------------
# Messages

Mode = Literal["smoke", "reduced", "full"]
ParamValue = StrictBool | StrictInt | StrictFloat | StrictStr
Id = Field(pattern=ID_PATTERN)


class Message(BaseModel):
    """Fields every message carries. ``schema`` is the contract version on the wire."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, alias="schema")
    seq: int = Field(ge=0, description="per-sender sequence number")
    sent_at: float = Field(description="unix time the sender built the message, s")
    job_id: str | None = Field(default=None, pattern=ID_PATTERN)


class Capabilities(BaseModel):
    """What a device is and can run, as the agent announces it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    hostname: str
    os: str
    arch: str
    cpu_count: int = Field(ge=1)
    memory_total_bytes: int = Field(ge=0)
    python: str
    torch: str | None = None
    benchmarks: list[str] = Field(default_factory=list)
    accelerators: list[str] = Field(default_factory=list)
    agent_version: str
    # Added with device profiles and images; optional so older agents stay valid.
    profile: str | None = Field(default=None, description="matched device profile")
    container_engine: str | None = Field(default=None, description=(
        "e.g. 'docker 20.10.24'; None: jobs run natively"))


class AgentStatus(Message):
    """Retained presence of one agent. Its Last Will is the same message with state offline."""

    agent_id: str = Field(pattern=ID_PATTERN)
    name: str
    state: Literal["online", "offline"]
    tags: list[str] = Field(default_factory=list)
    heartbeat_s: float = Field(gt=0, description="interval between heartbeats, s")
    capabilities: Capabilities | None = None
    reason: str | None = Field(default=None, max_length=500)


class Heartbeat(Message):
    """Periodic liveness and load of an agent (not retained)."""

    agent_id: str = Field(pattern=ID_PATTERN)
    job_state: JobState | None = None
    queued_jobs: int = Field(default=0, ge=0)
    cpu_percent: float = Field(ge=0)
    memory_percent: float = Field(ge=0, le=100)
    temperature_c: float | None = None


class JobAssignment(Message):
    """A benchmark job for one agent. Names a registered reference and validated params only:
    an agent never executes a command string that came over the wire."""

    job_id: str = Field(pattern=ID_PATTERN)
    campaign_id: str = Field(pattern=ID_PATTERN)
    benchmark: str = Field(pattern=ID_PATTERN)
    mode: Mode
    run_index: int = Field(ge=1)
    seed: int = Field(ge=0)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    max_steps: int | None = Field(default=None, ge=1)
    max_seconds: float | None = Field(default=None, gt=0)
    division: Literal["closed", "open"] | None = Field(
        default=None, description="MLPerf division; None: closed for full, open otherwise")
    image: str | None = Field(default=None, max_length=512, pattern=r"^[A-Za-z0-9][^\s]*$",
                              description="container image to run the reference in; None: "
                                          "natively (also on devices without an engine)")


def parse_params(items: list[str] | None) -> dict[str, ParamValue]:
    """``["lr=0.1", "layers=256,128"]`` -> job params. Values stay strings: the reference's
    typed config parses them (and rejects an unknown key or a bad type)."""
    params: dict[str, ParamValue] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        params[key.strip()] = value.strip()
    return params


class CancelJob(Message):
    """Ask an agent to cancel a queued or running job; it reports the job cancelled."""

    job_id: str = Field(pattern=ID_PATTERN)
    reason: str = Field(default="cancelled by the controller", max_length=500)


class JobEvent(Message):
    """A state change of a job and/or a batch of raw ``:::MLLOG`` lines, forwarded untouched."""

    job_id: str = Field(pattern=ID_PATTERN)
    agent_id: str = Field(pattern=ID_PATTERN)
    state: JobState | None = None
    detail: str | None = Field(default=None, max_length=2000)
    mllog: list[str] = Field(default_factory=list, max_length=MAX_MLLOG_LINES_PER_EVENT)


class Target(BaseModel):
    """A quality target: reached when ``value`` is met in ``direction``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    metric: str
    value: float
    direction: Literal["max", "min"]
    source: str


class Projection(BaseModel):
    """An estimate of time-to-train from a bounded run. Never a result."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: Literal["projection"]
    time_to_train_s: float
    epochs_to_converge: float
    epoch_time_s: float
    basis: str


class ReferenceOutcome(BaseModel):
    """What a reference run wrote to its ``result.json`` (see references/common/result.py)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    schema_version: Literal[1] = Field(default=1, alias="schema")
    benchmark: str
    mode: Mode
    division: Literal["closed", "open"] | None = None    # MLPerf division the run was held to
    status: Literal["success", "aborted"]
    reached_target: bool
    target: Target
    quality: float | None
    epochs: int
    samples_trained: int
    timed_window_s: float
    time_to_target_s: float | None
    time_to_train_s: float | None
    throughput_samples_per_s: float | None
    epoch_time_s: float | None
    projection: Projection | None
    stop_reason: str
    dataset: str
    config: dict[str, Any]
    source_revision: str
    seed: int
    platform: str
    mllog_file: str


def quality_text(outcome: ReferenceOutcome | None) -> str:
    """'hr@10 0.712 >= 0.600 (reached)' -- the quality reached against the target."""
    if outcome is None:
        return "-"
    t = outcome.target
    op = ">=" if t.direction == "max" else "<="
    got = "n/a" if outcome.quality is None else f"{outcome.quality:.4g}"
    return f"{t.metric} {got} {op} {t.value:.4g} ({'reached' if outcome.reached_target else 'not reached'})"


class TimedWindow(BaseModel):
    """The MLPerf timed window, read by the agent from the forwarded MLLOG lines."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    run_start_ms: int
    run_stop_ms: int
    duration_s: float


class SourcePower(BaseModel):
    """One power source (one channel of a sensor) over a window. ``energy_j`` None: it gave
    no usable reading (``problem`` says why), never a silent zero."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    source: str = Field(description="backend/channel, e.g. rapl/package-0, ina3221/VDD_IN")
    kind: Literal["energy counter", "power reading"]
    scope: str = Field(description="package, dram, core, uncore, platform, gpu, rail, board, "
                                   "battery or wall")
    method: Literal["measured", "estimated"]
    energy_j: float | None
    avg_power_w: float | None
    peak_power_w: float | None
    samples: int = Field(ge=0, description="readings inside the window")
    rate_hz: float = Field(ge=0, description="achieved readings per second")
    max_gap_s: float | None = Field(default=None, description="longest time between readings")
    baseline_power_w: float | None = Field(default=None, description="idle, before the run")
    net_energy_j: float | None = Field(default=None, description="energy_j - baseline x window")
    errors: int = Field(default=0, ge=0, description="failed reads")
    stale: int = Field(default=0, ge=0, description="reads older than the source's refresh")
    problem: str | None = None
    note: str | None = Field(default=None, description="convention used, or a caveat")


class ScopePower(BaseModel):
    """The sources of one scope summed (or, for ``PowerReport.total``, the headline scopes)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    scope: str
    method: Literal["measured", "estimated"]
    sources: list[str]
    energy_j: float
    avg_power_w: float
    peak_power_w: float | None
    samples: int = Field(ge=0)
    rate_hz: float = Field(ge=0)
    baseline_power_w: float | None = None
    net_energy_j: float | None = None


class Cooldown(BaseModel):
    """How the device cooled before the run (hottest thermal zone), C and s."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    threshold_c: float
    start_c: float | None
    end_c: float | None
    waited_s: float
    reached: bool


class PowerReport(BaseModel):
    """Energy over a window (the MLLOG timed window for a job): a headline ``total``, per
    scope and per source, each measured or estimated. ``status`` ``none``: nothing measured
    or estimated, ``reason`` says why -- never zeros."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    status: Literal["measured", "estimated", "none"]
    reason: str | None = Field(default=None, max_length=2000)
    window: Literal["timed", "command", "duration"] = "timed"
    start_ms: int | None = Field(default=None, description="window start, unix ms")
    stop_ms: int | None = Field(default=None, description="window end, unix ms")
    duration_s: float | None = None
    rate_hz: float | None = Field(default=None, description="configured sampling rate")
    total: ScopePower | None = None
    scopes: list[ScopePower] = Field(default_factory=list)
    sources: list[SourcePower] = Field(default_factory=list)
    meets_mlperf_power_rules: bool = False
    rules_detail: str | None = Field(default=None, description="why the rules were (not) met")
    baseline_s: float | None = Field(default=None, description="length of the idle baseline")
    cooldown: Cooldown | None = None
    unavailable: list[str] = Field(default_factory=list,
                                   description="sources present but unreadable, with the fix")


class JobResult(Message):
    """The outcome of one job. Spooled on the agent until a ResultAck names ``result_id``."""

    job_id: str = Field(pattern=ID_PATTERN)
    result_id: str = Field(pattern=ID_PATTERN, description="idempotency key")
    agent_id: str = Field(pattern=ID_PATTERN)
    campaign_id: str | None = Field(default=None, pattern=ID_PATTERN)
    benchmark: str
    mode: Mode
    run_index: int = Field(ge=1)
    status: Literal["done", "failed", "cancelled"]
    started_at: float
    finished_at: float
    exit_code: int | None = None
    error: str | None = Field(default=None, max_length=4000)
    timed_window: TimedWindow | None = None
    outcome: ReferenceOutcome | None = None
    mllog_lines: int = Field(default=0, ge=0)
    power: PowerReport | None = Field(default=None, description="energy over the timed "
                                      "window; None from agents older than this field")
    image_digest: str | None = Field(default=None, description=(
        "the image the job ran in: repo digest (REPO@sha256:...) or image id (sha256:...)"))

    @property
    def final_state(self) -> JobState:
        return JobState(self.status)


class ResultAck(Message):
    """The controller stored a result; the agent may drop it from its spool."""

    job_id: str = Field(pattern=ID_PATTERN)
    result_id: str = Field(pattern=ID_PATTERN)


class ControllerStatus(Message):
    """Retained presence of the controller that dispatches (serve, or an attached run)."""

    controller_id: str = Field(pattern=ID_PATTERN)
    state: Literal["online", "offline"]
    store: str = Field(description="results store URL, password removed")
    version: str


M = TypeVar("M", bound=BaseModel)


# --------------------------------------------------------------------------------------------
# Codec

def encode(message: BaseModel) -> bytes:
    """Serialise a message to JSON bytes; refuse one larger than MAX_PAYLOAD_BYTES."""
    payload = message.model_dump_json(by_alias=True).encode()
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"{type(message).__name__} is {len(payload)} bytes; "
                            f"the limit is {MAX_PAYLOAD_BYTES}")
    return payload


def decode(model: type[M], payload: bytes, topic: str = "?") -> M:
    """Parse and strictly validate ``payload`` as ``model``; ProtocolError names what is wrong."""
    name = model.__name__
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"{name} on {topic}: {len(payload)} bytes exceeds the "
                            f"{MAX_PAYLOAD_BYTES}-byte limit")
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"{name} on {topic}: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ProtocolError(f"{name} on {topic}: expected a JSON object")
    version = raw.get("schema")
    if version != SCHEMA_VERSION:
        raise ProtocolError(f"{name} on {topic}: schema {version!r} is not the version this "
                            f"build speaks ({SCHEMA_VERSION})")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ProtocolError(f"{name} on {topic}: {where}: {first['msg']}{more}") from None


class Sequence:
    """Per-sender message sequence numbers (thread-safe, strictly increasing)."""

    def __init__(self) -> None:
        self._next = count()
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, Any]:
        """The ``seq`` and ``sent_at`` fields for the next message."""
        with self._lock:
            return {"seq": next(self._next), "sent_at": time.time()}
