"""Tables of the results store (SQLAlchemy; SQLite by default, PostgreSQL by URL).

Times are unix seconds (float) so every backend stores them alike.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(128)


class Base(DeclarativeBase):
    pass


class Device(Base):
    """An approved agent as last seen: retained status plus the latest heartbeat.

    ``key`` is the Ed25519 public key the operator approved (None: revoked, or enrolled before
    messages were signed). ``boot``/``status_seq`` order its presence messages,
    ``session``/``beat_seq`` tie heartbeats and the Last Will to its current connection."""

    __tablename__ = "devices"
    agent_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(16))              # online | offline
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    capabilities: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    heartbeat_s: Mapped[float] = mapped_column(Float, default=5.0)
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    load: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    approved_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(32), nullable=True)  # operator|token
    boot: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    session: Mapped[str | None] = mapped_column(String(64), nullable=True)
    instance: Mapped[str | None] = mapped_column(String(16), nullable=True)
    beat_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Meta(Base):
    """Small facts about the store itself, e.g. when a dispatching controller last ticked."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class Worker(Base):
    """A `serve --worker` process sharing the fleet's messages: when it was last alive, up to
    when it has written what the fleet sent, and until when it holds the dispatcher's lead."""

    __tablename__ = "controller_workers"
    worker_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    seen_at: Mapped[float] = mapped_column(Float)
    heard_through: Mapped[float | None] = mapped_column(Float, nullable=True)


class Lead(Base):
    """Which worker dispatches (and judges silence and leases) until when: one at a time."""

    __tablename__ = "controller_lead"
    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(160))
    until: Mapped[float] = mapped_column(Float)


class Enrolment(Base):
    """A device that asked to join with a validly signed status and waits for
    `mlperf-controller devices approve` (one row per id and key; bounded)."""

    __tablename__ = "enrolments"
    agent_id: Mapped[str] = mapped_column(ID, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(256))
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    messages: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[dict[str, Any]] = mapped_column(JSON)          # its last AgentStatus body
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class Rejection(Base):
    """Messages the controller refused, counted by claimed sender and reason (bounded: past
    a thousand senders, the rest are counted under ``(other)``)."""

    __tablename__ = "rejections"
    source: Mapped[str] = mapped_column(String(160), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[float] = mapped_column(Float)
    last_at: Mapped[float] = mapped_column(Float)
    example: Mapped[str | None] = mapped_column(Text, nullable=True)


class AgentRefusal(Base):
    """A Refusal an approved agent sent: why it would not act on a message addressed to it
    (the latest 100 per agent are kept)."""

    __tablename__ = "agent_refusals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent_id: Mapped[str] = mapped_column(ID, index=True)
    at: Mapped[float] = mapped_column(Float)
    topic: Mapped[str] = mapped_column(String(300))
    code: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)


class Campaign(Base):
    """benchmarks x devices x runs, created by one `mlperf-controller run`."""

    __tablename__ = "campaigns"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="active")  # active|done|cancelled
    benchmarks: Mapped[list[str]] = mapped_column(JSON)
    mode: Mapped[str] = mapped_column(String(16))
    runs: Mapped[int] = mapped_column(Integer)
    devices: Mapped[str] = mapped_column(Text)                      # the selector as given
    retries: Mapped[int | None] = mapped_column(Integer, nullable=True, default=1)
    retry_anywhere: Mapped[bool | None] = mapped_column(Boolean, nullable=True, default=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    nodes: Mapped[int | None] = mapped_column(Integer, nullable=True, default=1)


class Job(Base):
    """One benchmark run on one device; ``state`` follows agent.protocol.TRANSITIONS."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    agent_id: Mapped[str] = mapped_column(ID, index=True)
    benchmark: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    run_index: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    max_steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    image: Mapped[str | None] = mapped_column(String(512), nullable=True)  # None: native
    image_digest: Mapped[str | None] = mapped_column(String(80), nullable=True)  # sha256:...
    # litert: the interpreter runs the .tflite artifact model_sha256 (None/torch: PyTorch)
    runtime: Mapped[str | None] = mapped_column(String(16), nullable=True, default="torch")
    model_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    log_lines: Mapped[int | None] = mapped_column(Integer, nullable=True, default=0)
    # Attempts: a lost or infrastructure-failed job is retried as a new job (attempt + 1,
    # retry_of = this one), and this one is then ``superseded``: kept as history, not counted.
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True, default=1)
    retry_of: Mapped[str | None] = mapped_column(ID, nullable=True)
    superseded: Mapped[bool | None] = mapped_column(Boolean, nullable=True, default=False)
    # Leases: when the job entered its state, and when its device last said it was on it.
    state_since: Mapped[float | None] = mapped_column(Float, nullable=True)
    renewed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    division: Mapped[str | None] = mapped_column(String(8), nullable=True)  # None: by mode
    # A run several devices train together (controller.groups): every member has the group's
    # id and its own rank; rank 0's address and a port are chosen when the group is sent.
    group_id: Mapped[str | None] = mapped_column(ID, nullable=True, index=True)
    rank: Mapped[int | None] = mapped_column("node_rank", Integer, nullable=True)
    world_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rendezvous: Mapped[str | None] = mapped_column(String(300), nullable=True)
    group_timeout_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    # A member that ended for its device's reason (lost, a broken group): the group is retried.
    retryable: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class Transition(Base):
    """Every state change of a job, from the agent's events or the controller's own view.

    ``agent_seq`` (the agent's message sequence number) is unique per job, which makes a
    redelivered QoS 1 event a no-op.
    """

    __tablename__ = "transitions"
    __table_args__ = (UniqueConstraint("job_id", "agent_seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    agent_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[float] = mapped_column(Float)
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    source: Mapped[str] = mapped_column(String(16))                 # agent|controller|result
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class LogLine(Base):
    """A raw ``:::MLLOG`` line as the reference printed it (for MLCommons' tools)."""

    __tablename__ = "log_lines"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    agent_seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, primary_key=True)
    line: Mapped[str] = mapped_column(Text)


class Result(Base):
    """The JobResult of a job, stored once (its ``result_id`` is the idempotency key)."""

    __tablename__ = "results"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    result_id: Mapped[str] = mapped_column(ID, unique=True)
    agent_id: Mapped[str] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[float] = mapped_column(Float)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


Index("ix_jobs_agent_state", Job.agent_id, Job.state)
