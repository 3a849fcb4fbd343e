"""The wire contract between mlperf-edge agents and controllers (schema 2).

Everything that crosses the broker is defined here and in ``agent.envelope`` (the codec and
the signed envelope every payload travels in): topic builders, message models with their
bounds, the job lifecycle both sides enforce. The MQTT connection both sides use is
``agent.link``; who may sign what is decided by ``agent.gate`` (the agent) and
``controller.trust`` (the controller).

Topics (prefix default ``mlperf/v2``). Each agent writes only under its own subtree and reads
only its own controller subtree, so a broker ACL can say exactly that::

    {prefix}/agents/{agent}/status                AgentStatus       retained; Last Will = offline
    {prefix}/agents/{agent}/heartbeat             Heartbeat
    {prefix}/agents/{agent}/jobs/{job}/events     JobEvent          states + raw MLLOG lines
    {prefix}/agents/{agent}/jobs/{job}/result     JobResult         spooled until acked
    {prefix}/agents/{agent}/refusals              Refusal           why it refused a message
    {prefix}/controller/status                    ControllerStatus  retained; Last Will = offline
    {prefix}/controller/agents/{agent}/jobs       JobAssignment
    {prefix}/controller/agents/{agent}/control    CancelJob
    {prefix}/controller/agents/{agent}/acks       ResultAck
    {prefix}/sync/{client}                        opaque barrier token (a client to itself)

Every payload is an ``Envelope``: the message JSON (``body``), the signer's Ed25519 public key,
a nonce, an expiry and a signature over all of them *and the topic*, so a message cannot be
altered, re-addressed, or replayed after it expires. Presence (status and Last Will) is
published again by the broker by design: it carries no expiry and is judged by the agent's
``(boot, seq)`` and connection ``session`` instead. Only MQTT 3.1.1 is required.
"""

from __future__ import annotations

import enum
import re
import threading
import time
from collections import deque
from itertools import count
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from agent.errors import ConfigError, IllegalTransition, ProtocolError

SCHEMA_VERSION = 2
DEFAULT_PREFIX = "mlperf/v2"
#: The schema-1 default prefix: the controller listens there only to tell old agents apart.
LEGACY_PREFIX = "mlperf/v1"
#: Largest message body (JSON) and largest envelope (the body is a JSON string in it, so
#: escaping can at worst double it). Brokers should allow packets a little over the latter.
MAX_BODY_BYTES = 256 * 1024
MAX_PAYLOAD_BYTES = 2 * MAX_BODY_BYTES + 4096
MAX_MLLOG_LINES_PER_EVENT = 500
MAX_MLLOG_LINE_CHARS = 16 * 1024
#: How far apart two clocks may be before a message counts as expired or from the future, s.
CLOCK_SKEW_S = 300.0
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_ID_RE = re.compile(ID_PATTERN)
#: Display names: printable, no control characters (they are shown in terminals and reports).
NAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
PLATFORM_PATTERN = r"^linux/(amd64|arm64)$"
#: A host a node's rendezvous names: an IPv4 address, [IPv6] or a DNS name.
HOST_PATTERN = r"^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252})$"
#: Most nodes one group run may span.
MAX_WORLD = 1024


# --------------------------------------------------------------------------------------------
# Topics

def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid agent/job/campaign id, else raise ProtocolError.

    Ids become topic levels, so MQTT wildcards and separators (``+ # /``) are refused.
    """
    if not isinstance(value, str) or not _ID_RE.match(value):
        shown = value[:80] if isinstance(value, str) else value
        raise ProtocolError(
            f"invalid {what} {shown!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
    return value


class TopicRef(BaseModel):
    """What a topic of this contract names: whose subtree, which job, which kind."""

    model_config = ConfigDict(frozen=True)

    side: Literal["agents", "controller"]
    agent_id: str | None
    job_id: str | None
    leaf: str


class Topics:
    """Builds every topic of the contract under one prefix (default ``mlperf/v2``)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix or prefix.startswith("/") or prefix.endswith("/") or any(
                c in prefix for c in "+#\0") or len(prefix) > 200:
            raise ConfigError(f"invalid topic prefix {prefix!r}: no wildcards, no leading or "
                              "trailing '/', at most 200 characters (example: mlperf/v2)")
        self.prefix = prefix

    def _agent(self, agent_id: str) -> str:
        return f"{self.prefix}/agents/{check_id(agent_id, 'agent id')}"

    def _to_agent(self, agent_id: str) -> str:
        return f"{self.prefix}/controller/agents/{check_id(agent_id, 'agent id')}"

    # -- agent -> controller: the agent's own subtree
    def agent_status(self, agent_id: str) -> str:
        return f"{self._agent(agent_id)}/status"

    def agent_heartbeat(self, agent_id: str) -> str:
        return f"{self._agent(agent_id)}/heartbeat"

    def job_events(self, agent_id: str, job_id: str) -> str:
        return f"{self._agent(agent_id)}/jobs/{check_id(job_id, 'job id')}/events"

    def job_result(self, agent_id: str, job_id: str) -> str:
        return f"{self._agent(agent_id)}/jobs/{check_id(job_id, 'job id')}/result"

    def agent_refusals(self, agent_id: str) -> str:
        return f"{self._agent(agent_id)}/refusals"

    # -- controller -> agent
    def agent_jobs(self, agent_id: str) -> str:
        return f"{self._to_agent(agent_id)}/jobs"

    def agent_control(self, agent_id: str) -> str:
        return f"{self._to_agent(agent_id)}/control"

    def agent_acks(self, agent_id: str) -> str:
        return f"{self._to_agent(agent_id)}/acks"

    def controller_status(self) -> str:
        return f"{self.prefix}/controller/status"

    def sync(self, client_id: str) -> str:
        """A private topic a client publishes to itself as an ordering barrier."""
        return f"{self.prefix}/sync/{check_id(client_id, 'client id')}"

    # -- subscription patterns (the controller's view of the whole fleet)
    def all_agent_status(self) -> str:
        return f"{self.prefix}/agents/+/status"

    def all_heartbeats(self) -> str:
        return f"{self.prefix}/agents/+/heartbeat"

    def all_job_events(self) -> str:
        return f"{self.prefix}/agents/+/jobs/+/events"

    def all_job_results(self) -> str:
        return f"{self.prefix}/agents/+/jobs/+/result"

    def all_refusals(self) -> str:
        return f"{self.prefix}/agents/+/refusals"

    def parse(self, topic: str) -> TopicRef:
        """The agent, job and kind a topic of this contract names; ProtocolError otherwise."""
        rest = topic[len(self.prefix) + 1:] if topic.startswith(self.prefix + "/") else None
        parts = rest.split("/") if rest else []
        if len(parts) == 3 and parts[0] == "agents":
            return TopicRef(side="agents", agent_id=check_id(parts[1], "agent id"), job_id=None,
                            leaf=parts[2])
        if len(parts) == 5 and parts[0] == "agents" and parts[2] == "jobs":
            return TopicRef(side="agents", agent_id=check_id(parts[1], "agent id"),
                            job_id=check_id(parts[3], "job id"), leaf=parts[4])
        if len(parts) == 4 and parts[:2] == ["controller", "agents"]:
            return TopicRef(side="controller", agent_id=check_id(parts[2], "agent id"),
                            job_id=None, leaf=parts[3])
        if parts == ["controller", "status"]:
            return TopicRef(side="controller", agent_id=None, job_id=None, leaf="status")
        raise ProtocolError(f"topic {topic[:200]!r} is not a topic of this contract under "
                            f"{self.prefix}/")
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
    # 'lost' is the controller's observation, not the device's: a device that comes back
    # still on the job (a heartbeat or event names it) or with a spooled result revives it.
    JobState.LOST: frozenset({JobState.ACCEPTED, JobState.PREPARING, JobState.COOLING,
                              JobState.RUNNING, JobState.REPORTING, JobState.DONE,
                              JobState.FAILED, JobState.CANCELLED}),
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
ParamKey = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
ParamValue = (StrictBool | Annotated[StrictInt, Field(ge=-(2 ** 53), le=2 ** 53)]
              | StrictFloat | Annotated[StrictStr, Field(max_length=256)])
Id = Annotated[str, Field(pattern=ID_PATTERN)]
Text = Annotated[str, Field(max_length=500)]
MllogLine = Annotated[str, Field(max_length=MAX_MLLOG_LINE_CHARS)]

#: Upper bounds of a job's own limits: a job that asks for more is refused, not obeyed.
MAX_RUN_INDEX = 10_000
MAX_SEED = 2 ** 32 - 1
MAX_STEPS = 10 ** 9
MAX_SECONDS = 30 * 24 * 3600.0
MAX_PARAMS = 64

#: Points of a power trace on the wire (a plot needs no more).
MAX_TRACE_POINTS = 600

STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False,
                    populate_by_name=True)


class Message(BaseModel):
    """Fields every message body carries. ``TTL_S``: how long after sending it may still be
    acted on (None: presence, judged by sequence instead)."""

    model_config = STRICT
    TTL_S: ClassVar[float | None] = 900.0

    schema_version: Literal[2] = Field(default=SCHEMA_VERSION, alias="schema")
    seq: int = Field(ge=0, le=2 ** 31 - 1, description="per-sender sequence number")
    sent_at: float = Field(ge=0, description="unix time the sender built the message, s")
    job_id: str | None = Field(default=None, pattern=ID_PATTERN)


#: What executes a reference: PyTorch, or the LiteRT interpreter on a .tflite model.
TrainingRuntime = Literal["torch", "litert"]


class Capabilities(BaseModel):
    """What a device is and can run, as the agent announces it."""

    model_config = STRICT

    hostname: str = Field(max_length=255)
    os: str = Field(max_length=255)
    arch: str = Field(max_length=64)
    cpu_count: int = Field(ge=1, le=65_536)
    memory_total_bytes: int = Field(ge=0, le=2 ** 60)
    python: str = Field(max_length=64)
    torch: str | None = Field(default=None, max_length=64)
    benchmarks: list[Id] = Field(default_factory=list, max_length=64)
    accelerators: list[Text] = Field(default_factory=list, max_length=64)
    agent_version: str = Field(max_length=64)
    profile: str | None = Field(default=None, pattern=ID_PATTERN,
                                description="matched device profile")
    container_engine: str | None = Field(default=None, max_length=128, description=(
        "e.g. 'docker 20.10.24'; None: jobs run natively"))
    cpu_model: str | None = Field(default=None, max_length=255, description=(
        "the processor's model name, e.g. 'Cortex-A76' or 'Intel(R) Xeon(R) ...'"))
    host_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$", description=(
        "a hash of the machine id: two agents with the same one share a host (and its power)"))
    runtimes: list[TrainingRuntime] = Field(default_factory=list, max_length=2, description=(
        "what can train here: torch (installed, or in the device's container images), litert "
        "(a LiteRT interpreter is installed)"))
    default_runtime: TrainingRuntime | None = Field(default=None, description=(
        "what a campaign that names no --runtime uses here (the profile's training_runtime; "
        "litert where only the interpreter is installed); None: torch"))
    container_platform: str | None = Field(default=None, pattern=PLATFORM_PATTERN, description=(
        "the platform of the containers jobs run in (mlperf-agent --platform); None: the host's"))
    emulated: bool = Field(default=False, description=(
        "those containers run under qemu emulation on another architecture: times and energy "
        "are the emulator's, never a board's"))
    address: str | None = Field(default=None, pattern=HOST_PATTERN, max_length=255, description=(
        "where the other nodes of a run trained across several reach this one (its "
        "rendezvous, as rank 0)"))


class AgentStatus(Message):
    """Retained presence of one agent. Its Last Will is the same message with state offline
    and ``last_will`` true, sealed anew for every connection (``session``).

    ``boot`` counts the agent's starts (kept in its work folder) and ``seq`` its messages
    since: the controller applies a status only if its ``(boot, seq)`` is newer than the last
    one it applied, and a Last Will only if it belongs to the connection it last saw online.
    ``enrolment`` proves the sender holds the lab's pre-shared enrolment token (an HMAC of its
    id and public key; the token itself never crosses the wire)."""

    TTL_S: ClassVar[float | None] = None

    agent_id: str = Field(pattern=ID_PATTERN)
    name: str = Field(pattern=NAME_PATTERN)
    state: Literal["online", "offline"]
    boot: int = Field(ge=0, le=2 ** 62)
    session: str = Field(pattern=r"^[0-9a-f]{16,64}$")
    instance: str = Field(default="0" * 16, pattern=r"^[0-9a-f]{16}$", description=(
        "this installation (machine and work folder): two agents using one name differ here"))
    last_will: bool = False
    tags: list[Id] = Field(default_factory=list, max_length=32)
    heartbeat_s: float = Field(ge=0.5, le=300, description="interval between heartbeats, s")
    capabilities: Capabilities | None = None
    reason: str | None = Field(default=None, max_length=500)
    enrolment: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{43}$")


class Heartbeat(Message):
    """Periodic liveness and load of an agent (not retained); ``boot``/``session`` tie it to
    the connection its status announced."""

    TTL_S: ClassVar[float | None] = 120.0

    agent_id: str = Field(pattern=ID_PATTERN)
    boot: int = Field(ge=0, le=2 ** 62)
    session: str = Field(pattern=r"^[0-9a-f]{16,64}$")
    job_state: JobState | None = None
    queued_jobs: int = Field(default=0, ge=0, le=10_000)
    queued: list[Id] = Field(default_factory=list, max_length=64, description=(
        "ids of the jobs waiting in this agent's queue: their leases are renewed too"))
    cpu_percent: float = Field(ge=0, le=100)
    memory_percent: float = Field(ge=0, le=100)
    temperature_c: float | None = Field(default=None, ge=-273.15, le=1000)


class GroupSpec(BaseModel):
    """One node's place in a run several agents train together (torch.distributed): the same
    ``group_id`` on every member, each its own ``rank``; rank 0 hosts the rendezvous at
    ``master_addr:master_port``. The members start together or fail within ``timeout_s``."""

    model_config = STRICT

    group_id: str = Field(pattern=ID_PATTERN)
    rank: int = Field(ge=0, lt=MAX_WORLD)
    world_size: int = Field(ge=2, le=MAX_WORLD)
    master_addr: str = Field(pattern=HOST_PATTERN, max_length=255)
    master_port: int = Field(ge=1024, le=65535)
    timeout_s: float = Field(default=300.0, ge=5, le=86_400, description=(
        "how long the members wait for each other: at the rendezvous, and in a collective "
        "whose peer went silent"))

    @model_validator(mode="after")
    def _rank_in_group(self) -> GroupSpec:
        if self.rank >= self.world_size:
            raise ValueError(f"rank {self.rank} is outside a group of {self.world_size}")
        return self

    @property
    def rendezvous(self) -> str:
        return f"{self.master_addr}:{self.master_port}"


class JobAssignment(Message):
    """A benchmark job for one agent. Names a registered reference and validated params only:
    an agent never executes a command string that came over the wire. A job that runs in a
    container pins the image by digest."""

    job_id: str = Field(pattern=ID_PATTERN)
    campaign_id: str = Field(pattern=ID_PATTERN)
    benchmark: str = Field(pattern=ID_PATTERN)
    mode: Mode
    run_index: int = Field(ge=1, le=MAX_RUN_INDEX)
    seed: int = Field(ge=0, le=MAX_SEED)
    params: dict[ParamKey, ParamValue] = Field(default_factory=dict, max_length=MAX_PARAMS)
    max_steps: int | None = Field(default=None, ge=1, le=MAX_STEPS)
    max_seconds: float | None = Field(default=None, gt=0, le=MAX_SECONDS)
    division: Literal["closed", "open"] | None = Field(
        default=None, description="MLPerf division; None: closed for full, open otherwise")
    image: str | None = Field(default=None, max_length=512, pattern=r"^[A-Za-z0-9][^\s]*$",
                              description="container image to run the reference in; None: "
                                          "natively (also on devices without an engine)")
    image_digest: str | None = Field(default=None, pattern=DIGEST_PATTERN, description=(
        "sha256 the image must have on the device (its image id or a registry digest)"))
    runtime: TrainingRuntime = Field(default="torch", description=(
        "torch: the PyTorch reference; litert: the LiteRT interpreter runs the model artifact "
        "model_sha256 (no torch on the device)"))
    model_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description=(
        "litert: the .tflite artifact by its SHA-256; the agent checks the bytes it runs"))
    group: GroupSpec | None = Field(default=None, description=(
        "this job is one node of a run several agents train together; None: a single node"))

    @model_validator(mode="after")
    def _image_is_pinned(self) -> JobAssignment:
        if self.image is not None and self.image_digest is None:
            raise ValueError("a job that names an image must pin it with image_digest")
        if self.runtime == "litert" and self.model_sha256 is None:
            raise ValueError("a litert job must name its model artifact by model_sha256")
        if self.runtime == "litert" and self.image is not None:
            raise ValueError("a litert job runs in the interpreter on the device, not in an image")
        if self.runtime == "torch" and self.model_sha256 is not None:
            raise ValueError("model_sha256 is for litert jobs")
        if self.group is not None and self.runtime != "torch":
            raise ValueError("a group run trains with torch.distributed, not in the interpreter")
        return self


class CancelJob(Message):
    """Ask an agent to cancel a queued or running job; it reports the job cancelled."""

    job_id: str = Field(pattern=ID_PATTERN)
    reason: str = Field(default="cancelled by the controller", max_length=500)


class JobEvent(Message):
    """A state change of a job and/or a batch of raw ``:::MLLOG`` lines, forwarded untouched.
    Deduplicated by the controller on ``(job_id, seq)``."""

    TTL_S: ClassVar[float | None] = 86_400.0

    job_id: str = Field(pattern=ID_PATTERN)
    agent_id: str = Field(pattern=ID_PATTERN)
    state: JobState | None = None
    detail: str | None = Field(default=None, max_length=2000)
    mllog: list[MllogLine] = Field(default_factory=list, max_length=MAX_MLLOG_LINES_PER_EVENT)


class Refusal(Message):
    """Why an agent refused a message addressed to it (sent at most a few per second; the
    rest are counted in ``suppressed``). ``claimed_job_id`` is trustworthy only when
    ``verified``: the refused message carried the pinned controller's valid signature."""

    TTL_S: ClassVar[float | None] = 3600.0

    agent_id: str = Field(pattern=ID_PATTERN)
    topic: str = Field(max_length=300)
    code: str = Field(pattern=r"^[a-z][a-z-]{0,23}$")
    reason: str = Field(max_length=500)
    claimed_job_id: str | None = Field(default=None, pattern=ID_PATTERN)
    verified: bool = False
    suppressed: int = Field(default=0, ge=0)


class Target(BaseModel):
    """A quality target: reached when ``value`` is met in ``direction``."""

    model_config = STRICT

    metric: str = Field(max_length=64)
    value: float
    direction: Literal["max", "min"]
    source: str = Field(max_length=500)


class Projection(BaseModel):
    """An estimate of time-to-train from a bounded run. Never a result."""

    model_config = STRICT

    kind: Literal["projection"]
    time_to_train_s: float
    epochs_to_converge: float
    epoch_time_s: float
    basis: str = Field(max_length=1000)


class ReferenceOutcome(BaseModel):
    """What a reference run wrote to its ``result.json`` (see references/common/result.py).
    On the device it is untrusted input: it is read size-bounded and validated here."""

    model_config = STRICT

    schema_version: Literal[1] = Field(default=1, alias="schema")
    benchmark: str = Field(pattern=ID_PATTERN)
    mode: Mode
    division: Literal["closed", "open"] | None = None    # MLPerf division the run was held to
    status: Literal["success", "aborted"]
    reached_target: bool
    target: Target
    quality: float | None
    # A target of several parts (Mask R-CNN: box and mask AP): each part's value, by the names
    # the target's metric lists; quality is their joint figure.
    quality_parts: dict[ParamKey, float] | None = Field(default=None, max_length=8)
    epochs: int = Field(ge=0)
    samples_trained: int = Field(ge=0)
    timed_window_s: float = Field(ge=0)
    time_to_target_s: float | None = Field(ge=0)
    time_to_train_s: float | None = Field(ge=0)
    throughput_samples_per_s: float | None = Field(ge=0)
    epoch_time_s: float | None = Field(ge=0)
    projection: Projection | None
    stop_reason: str = Field(max_length=200)
    dataset: str = Field(max_length=500)
    config: dict[str, Any] = Field(max_length=256)
    source_revision: str = Field(max_length=200)
    seed: int = Field(ge=0, le=MAX_SEED)
    platform: str = Field(max_length=200)
    mllog_file: str = Field(max_length=500)
    world_size: int = Field(default=1, ge=1, le=MAX_WORLD, description=(
        "nodes that trained this run together; samples and throughput are the group's"))
    rank: int = Field(default=0, ge=0, lt=MAX_WORLD, description="this node's rank in it")
    first_losses: list[float] = Field(default_factory=list, max_length=64, description=(
        "the training loss of the first steps, over the global batch"))


class TimedWindow(BaseModel):
    """The MLPerf timed window, read by the agent from the forwarded MLLOG lines."""

    model_config = STRICT

    run_start_ms: int
    run_stop_ms: int
    duration_s: float


class SourcePower(BaseModel):
    """One power source (one channel of a sensor) over a window. ``energy_j`` None: it gave
    no usable reading (``problem`` says why), never a silent zero."""

    model_config = STRICT

    source: str = Field(max_length=128,
                        description="backend/channel, e.g. rapl/package-0, ina3221/VDD_IN")
    kind: Literal["energy counter", "power reading"]
    scope: str = Field(max_length=32, description="package, dram, core, uncore, platform, gpu, "
                                                  "rail, board, battery or wall")
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
    problem: str | None = Field(default=None, max_length=1000)
    note: str | None = Field(default=None, max_length=1000,
                             description="convention used, or a caveat")


class ScopePower(BaseModel):
    """The sources of one scope summed (or, for ``PowerReport.total``, the headline scopes)."""

    model_config = STRICT

    scope: str = Field(max_length=32)
    method: Literal["measured", "estimated"]
    sources: list[Annotated[str, Field(max_length=128)]] = Field(max_length=64)
    energy_j: float
    avg_power_w: float
    peak_power_w: float | None
    samples: int = Field(ge=0)
    rate_hz: float = Field(ge=0)
    baseline_power_w: float | None = None
    net_energy_j: float | None = None


class Cooldown(BaseModel):
    """How the device cooled before the run (hottest thermal zone), C and s."""

    model_config = STRICT

    threshold_c: float
    start_c: float | None
    end_c: float | None
    waited_s: float
    reached: bool


class PowerTrace(BaseModel):
    """The headline power over the window, averaged per bin (energy difference / bin width),
    for plots: ``t_s`` are bin ends in seconds from the window's start."""

    model_config = STRICT

    t_s: list[float] = Field(max_length=MAX_TRACE_POINTS)
    power_w: list[float] = Field(max_length=MAX_TRACE_POINTS)


class PowerReport(BaseModel):
    """Energy over a window (the MLLOG timed window for a job): a headline ``total``, per
    scope and per source, each measured or estimated. ``status`` ``none``: nothing measured
    or estimated, ``reason`` says why -- never zeros."""

    model_config = STRICT

    status: Literal["measured", "estimated", "none"]
    reason: str | None = Field(default=None, max_length=2000)
    window: Literal["timed", "command", "duration"] = "timed"
    start_ms: int | None = Field(default=None, description="window start, unix ms")
    stop_ms: int | None = Field(default=None, description="window end, unix ms")
    duration_s: float | None = None
    rate_hz: float | None = Field(default=None, description="configured sampling rate")
    total: ScopePower | None = None
    scopes: list[ScopePower] = Field(default_factory=list, max_length=32)
    sources: list[SourcePower] = Field(default_factory=list, max_length=64)
    meets_mlperf_power_rules: bool = False
    rules_detail: str | None = Field(default=None, max_length=1000,
                                     description="why the rules were (not) met")
    baseline_s: float | None = Field(default=None, description="length of the idle baseline")
    cooldown: Cooldown | None = None
    unavailable: list[Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=list, max_length=64,
        description="sources present but unreadable, with the fix")
    trace: PowerTrace | None = None
    baseline_cpu_percent: float | None = Field(default=None, ge=0, le=100, description=(
        "the host's CPU use while the idle baseline was taken (a busy host: a wrong baseline)"))
    doubts: list[Annotated[str, Field(max_length=500)]] = Field(
        default_factory=list, max_length=16, description=(
            "why these figures should not be trusted; a doubted estimate is never scored"))


class DeviceSnapshot(BaseModel):
    """The device when a run began or ended (agent/device_state.py): CPU frequency now across
    cores, the highest allowed, the governor, the hottest thermal zone. None: not exposed."""

    model_config = STRICT

    when: Literal["start", "end"]
    at_ms: int
    cpu_freq_min_mhz: float | None = Field(default=None, ge=0, le=100_000)
    cpu_freq_max_mhz: float | None = Field(default=None, ge=0, le=100_000)
    cpu_freq_allowed_mhz: float | None = Field(default=None, ge=0, le=100_000)
    governor: str | None = Field(default=None, max_length=100)
    temperature_c: float | None = Field(default=None, ge=-273.15, le=1000)


class JobResult(Message):
    """The outcome of one job. Spooled on the agent until a ResultAck names ``result_id``;
    sealed anew at every (re)send."""

    TTL_S: ClassVar[float | None] = 86_400.0

    job_id: str = Field(pattern=ID_PATTERN)
    result_id: str = Field(pattern=ID_PATTERN, description="idempotency key")
    agent_id: str = Field(pattern=ID_PATTERN)
    campaign_id: str | None = Field(default=None, pattern=ID_PATTERN)
    benchmark: str = Field(pattern=ID_PATTERN)
    mode: Mode
    run_index: int = Field(ge=1, le=MAX_RUN_INDEX)
    status: Literal["done", "failed", "cancelled"]
    started_at: float
    finished_at: float
    exit_code: int | None = None
    error: str | None = Field(default=None, max_length=4000)
    timed_window: TimedWindow | None = None
    outcome: ReferenceOutcome | None = None
    mllog_lines: int = Field(default=0, ge=0)
    power: PowerReport | None = Field(default=None, description="energy over the timed window")
    image_digest: str | None = Field(default=None, max_length=400, description=(
        "the image the job ran in: repo digest (REPO@sha256:...) or image id (sha256:...)"))
    platform: str | None = Field(default=None, pattern=PLATFORM_PATTERN, description=(
        "the platform the run's code ran as: its container's, or the host's when native"))
    emulated: bool = Field(default=False, description=(
        "it ran under qemu emulation on another architecture: its times and energy are the "
        "emulator's and are never compared with a real board's"))
    retryable: bool = Field(default=False, description=(
        "the failure was the device's, not the job's (image, engine, sensor, agent crash or "
        "stop): the campaign's retry policy may run it again"))
    device_state: list[DeviceSnapshot] = Field(default_factory=list, max_length=2, description=(
        "the device at the start and the end of the run: CPU frequency, governor, temperature"))

    @property
    def final_state(self) -> JobState:
        return JobState(self.status)


class ResultAck(Message):
    """The controller stored a result; the agent may drop it from its spool."""

    job_id: str = Field(pattern=ID_PATTERN)
    result_id: str = Field(pattern=ID_PATTERN)


class ControllerStatus(Message):
    """Retained presence of the controller that dispatches (serve, or an attached run)."""

    TTL_S: ClassVar[float | None] = None

    controller_id: str = Field(pattern=ID_PATTERN)
    state: Literal["online", "offline"]
    store: str = Field(max_length=500, description="results store URL, password removed")
    version: str = Field(max_length=64)


M = TypeVar("M", bound=BaseModel)
#: Every message type that crosses the broker, by the ``kind`` its envelope names.
KINDS: dict[str, type[Message]] = {m.__name__: m for m in (
    AgentStatus, Heartbeat, JobAssignment, CancelJob, JobEvent, Refusal, JobResult, ResultAck,
    ControllerStatus)}


class Sequence:
    """Per-sender message sequence numbers (thread-safe, strictly increasing)."""

    def __init__(self, start: int = 0) -> None:
        self._next = count(start)
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, Any]:
        """The ``seq`` and ``sent_at`` fields for the next message."""
        with self._lock:
            return {"seq": next(self._next), "sent_at": time.time()}
