"""The controller's results store: devices, campaigns, jobs, their transitions, MLLOG lines and
results. Every method is one short transaction; the MQTT thread and the dispatcher share it."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import create_engine, event, func, or_, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.orm import Session, sessionmaker

from agent.errors import ConfigError, IllegalTransition
from agent.protocol import JobEvent, JobResult, JobState, path, transition
from controller.attempts import AttemptRecords
from controller.groups import GroupRecords
from controller.errors import StoreError
from controller.fleet_store import DeviceRecords
from controller.workers import WorkerRecords
from controller.models import (
    Base,
    Campaign,
    Device,
    Job,
    LogLine,
    Meta,
    Result,
    Transition,
)

#: Most MLLOG lines stored for one job; past it, lines are dropped and the job says so.
MAX_LOG_LINES_PER_JOB = 200_000

ACTIVE = tuple(s.value for s in JobState
               if not s.terminal and s not in (JobState.QUEUED, JobState.LOST))
FINISHED = tuple(s.value for s in JobState if s.terminal or s == JobState.LOST)


def default_db_url() -> str:
    home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share")
    return f"sqlite:///{home / 'mlperf-edge' / 'controller.db'}"


def redact(url: str) -> str:
    """The URL without its password, for logs and presence messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


@dataclass(frozen=True)
class Dispatch:
    """A job the store just moved from queued to assigned, for one online device."""

    job: Job
    agent_id: str


def _add_columns(engine, wanted: dict[str, dict[str, str]]) -> None:
    """Add columns that newer versions introduced to a store made by an older one
    (create_all never alters an existing table). All such columns are nullable."""
    from sqlalchemy import inspect, text

    inspector = inspect(engine)
    for table, columns in wanted.items():
        have = {c["name"] for c in inspector.get_columns(table)}
        for name, sql_type in columns.items():
            if name not in have:
                with engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}"))


def _retire_unsigned_devices(engine) -> None:
    """Devices a store knew before messages were signed have no approved key: they are shown
    offline until they enrol again (their next start asks for approval)."""
    with engine.begin() as conn:
        conn.execute(update(Device).where(Device.key.is_(None), Device.state == "online")
                     .values(state="offline", reason="known from before signed messages: "
                             "approve it again (`mlperf-controller devices approve NAME`)"))


def _create_tables(engine) -> None:
    """create_all, tolerating a second process (``serve`` and ``run`` started together) that
    creates the same tables between our existence check and our CREATE."""
    for attempt in range(3):
        try:
            Base.metadata.create_all(engine)
            return
        except (OperationalError, ProgrammingError, IntegrityError) as exc:
            if "already exists" not in str(exc.orig) and "duplicate key" not in str(exc.orig):
                raise
            if attempt == 2:
                raise
            time.sleep(0.2)


def log_missing(job: Job, result: JobResult) -> int:
    """How many of the MLLOG lines ``result`` says its agent forwarded the store lacks (a job
    keeps at most MAX_LOG_LINES_PER_JOB). Judged when read: with several workers a job's
    events and its result may be written by different ones, in either order."""
    return max(0, min(result.mllog_lines, MAX_LOG_LINES_PER_JOB) - (job.log_lines or 0))


class Store(DeviceRecords, AttemptRecords, GroupRecords, WorkerRecords):
    """Thread-safe access to the results store at ``url`` (any SQLAlchemy URL)."""

    def __init__(self, url: str, create: bool = True) -> None:
        """Open the store; ``create=False`` (commands that only read) refuses to make a new,
        empty SQLite store where a mistyped --db points."""
        self.url = url
        self.engine = _engine(url, create)
        try:
            _create_tables(self.engine)
            _add_columns(self.engine, {
                "jobs": {"image": "VARCHAR(512)", "division": "VARCHAR(8)",
                         "image_digest": "VARCHAR(80)", "log_lines": "INTEGER",
                         "attempt": "INTEGER", "retry_of": "VARCHAR(128)",
                         "superseded": "BOOLEAN", "state_since": "FLOAT",
                         "renewed_at": "FLOAT", "runtime": "VARCHAR(16)",
                         "model_sha256": "VARCHAR(64)", "group_id": "VARCHAR(128)",
                         "node_rank": "INTEGER", "world_size": "INTEGER",
                         "rendezvous": "VARCHAR(300)", "group_timeout_s": "FLOAT",
                         "retryable": "BOOLEAN"},
                "campaigns": {"retries": "INTEGER", "retry_anywhere": "BOOLEAN",
                              "nodes": "INTEGER"},
                "devices": {"key": "VARCHAR(64)", "approved_at": "FLOAT",
                            "approved_by": "VARCHAR(32)", "boot": "BIGINT",
                            "status_seq": "BIGINT", "session": "VARCHAR(64)",
                            "beat_seq": "BIGINT", "instance": "VARCHAR(16)"}})
            _retire_unsigned_devices(self.engine)
        except OperationalError as exc:
            raise StoreError(f"cannot open the results store {redact(url)}: "
                             f"{str(exc.orig).strip().splitlines()[0]}") from None
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self._lock = threading.RLock()
        self._local = threading.local()

    @contextmanager
    def tx(self) -> Iterator[Session]:
        """One transaction; inside :meth:`batch` (same thread), the batch's."""
        shared = getattr(self._local, "session", None)
        if shared is not None:
            yield shared
            return
        with self._lock, self._session() as session, session.begin():
            yield session

    @contextmanager
    def batch(self, job_ids: Iterable[str] = ()) -> Iterator[Session]:
        """Every store call this thread makes inside the block is one transaction, committed
        at its end (rolled back whole if it raises). The controller writes what it hears in
        batches: a commit per message, each an fsync, was where its time went. Methods that
        refuse a message (StoreError) do so before they write, so a refusal inside a batch
        leaves the rest of it intact. ``job_ids``: the jobs the calls will touch, loaded
        up front (jobs, results, messages seen) in a few queries instead of several per call."""
        with self._lock, self._session() as session, session.begin():
            self._local.session = session
            self._local.known = _Known.load(session, set(job_ids)) if job_ids else None
            try:
                yield session
            finally:
                self._local.session = self._local.known = None

    def _known(self, job_id: str) -> _Known | None:
        """What the batch loaded about ``job_id`` up front, if it did."""
        known = getattr(self._local, "known", None)
        return known if known is not None and job_id in known.job_ids else None

    def _seen(self, s: Session, job_id: str, seq: int) -> bool:
        """Whether the agent's message ``seq`` about the job was stored already."""
        if (known := self._known(job_id)) is not None:
            if (job_id, seq) in known.seen:
                return True
            known.seen.add((job_id, seq))             # the caller stores it now
            return False
        return bool(s.scalar(select(func.count()).where(Transition.job_id == job_id,
                                                        Transition.agent_seq == seq)))

    def _has_result(self, s: Session, job_id: str) -> bool:
        if (known := self._known(job_id)) is not None:
            return job_id in known.results
        return s.get(Result, job_id) is not None

    def close(self) -> None:
        self.engine.dispose()

    # -- the dispatching controller ----------------------------------------------------------
    def mark_serving(self, serving: bool = True) -> None:
        """A dispatching controller says it is alive (every few seconds) or stopping."""
        try:
            self._mark_serving(serving)
        except IntegrityError:                     # another process made the row just now
            self._mark_serving(serving)

    def _mark_serving(self, serving: bool) -> None:
        with self.tx() as s:
            row = s.get(Meta, "serving_at")
            if row is None:
                s.add(Meta(key="serving_at", value=time.time() if serving else 0.0))
            else:
                row.value = time.time() if serving else 0.0

    def serving_recently(self, within_s: float = 15.0) -> bool:
        """True when a controller dispatching from this store ticked within ``within_s``: a
        second one must not start (it would take the same client id), whatever the broker's
        retained presence says (an outsider may have overwritten it)."""
        with self.tx() as s:
            row = s.get(Meta, "serving_at")
            return row is not None and time.time() - row.value < within_s

    # -- campaigns ---------------------------------------------------------------------------
    def create_campaign(self, benchmarks: list[str], mode: str, runs: int, agent_ids: list[str],
                        selector: str, params: dict[str, Any], seed_base: int = 1,
                        max_steps: int | None = None,
                        max_seconds: float | None = None,
                        images: dict[str, tuple[str, str]] | None = None,
                        division: str | None = None, retries: int = 1,
                        retry_anywhere: bool = False, runtimes: dict[str, str] | None = None,
                        models: dict[str, str] | None = None, nodes: int = 1,
                        group_timeout_s: float | None = None) -> Campaign:
        """Expand benchmarks x devices x runs into queued jobs, in dispatch order.
        ``images``: agent id -> (container image, its pinned sha256) its jobs run in
        (absent: natively). ``retries``: new attempts a lost or infrastructure-failed run gets
        (controller.attempts), on its own device or, ``retry_anywhere``, any of its profile.
        ``runtimes``: agent id -> torch (absent: torch) or litert: its jobs run in the
        interpreter, on the model ``models`` (benchmark -> artifact sha256) names. ``nodes`` > 1:
        ``agent_ids`` (rank 0 first) train each run together, one group per run and benchmark
        (controller.groups)."""
        now = time.time()
        cid = time.strftime("c%Y%m%d-%H%M%S-", time.gmtime(now)) + secrets.token_hex(2)
        campaign = Campaign(id=cid, created_at=now, benchmarks=benchmarks, mode=mode, runs=runs,
                            devices=selector, params=params, retries=retries,
                            retry_anywhere=retry_anywhere, nodes=nodes)
        with self.tx() as s:
            s.add(campaign)
            n = groups = 0
            for run in range(1, runs + 1):
                for bench in benchmarks:
                    groups += 1
                    for rank, agent_id in enumerate(agent_ids):
                        n += 1
                        group = {} if nodes <= 1 else dict(
                            group_id=f"{cid}-g{groups:04d}", rank=rank, world_size=nodes,
                            group_timeout_s=group_timeout_s)
                        image, digest = (images or {}).get(agent_id, (None, None))
                        runtime = (runtimes or {}).get(agent_id, "torch")
                        model = (models or {}).get(bench) if runtime == "litert" else None
                        s.add(Job(id=f"{cid}-{n:04d}", campaign_id=cid, agent_id=agent_id,
                                  benchmark=bench, mode=mode, run_index=run,
                                  seed=seed_base + run - 1, params=params, max_steps=max_steps,
                                  max_seconds=max_seconds, state=JobState.QUEUED.value,
                                  image=image, image_digest=digest, division=division,
                                  runtime=runtime, model_sha256=model,
                                  log_lines=0, attempt=1, superseded=False, state_since=now,
                                  created_at=now + n * 1e-6, updated_at=now, **group))
        return campaign

    def campaigns(self) -> list[Campaign]:
        with self.tx() as s:
            return list(s.scalars(select(Campaign).order_by(Campaign.created_at)))

    def campaign(self, campaign_id: str) -> Campaign | None:
        with self.tx() as s:
            return s.get(Campaign, campaign_id)

    def progress(self, campaign_id: str) -> Counter[str]:
        """How many of a campaign's runs are in each state (their latest attempts)."""
        with self.tx() as s:
            rows = s.execute(select(Job.state, func.count()).where(
                Job.campaign_id == campaign_id,
                or_(Job.superseded.is_(None), Job.superseded.is_(False))).group_by(Job.state))
            return Counter({state: n for state, n in rows})

    def close_finished_campaigns(self) -> list[str]:
        """Mark active campaigns whose jobs all ended as done; return their ids. (A run that
        will be retried already has its next attempt queued, so it is not ended.)"""
        closed = []
        with self.tx() as s:
            for c in s.scalars(select(Campaign).where(Campaign.state == "active")):
                open_jobs = s.scalar(select(func.count()).where(
                    Job.campaign_id == c.id, Job.state.not_in(FINISHED)))
                # A lost run with retries left is not ended: it is retried once it stays lost
                # past the grace (or comes back).
                # (A group's lost member is retried with its group at once: retry_groups.)
                awaiting = s.scalar(select(func.count()).where(
                    Job.campaign_id == c.id, Job.state == JobState.LOST.value,
                    Job.group_id.is_(None),
                    or_(Job.superseded.is_(None), Job.superseded.is_(False)),
                    func.coalesce(Job.attempt, 1) <= func.coalesce(c.retries, 1)))
                if open_jobs == 0 and awaiting == 0 and not self.groups_to_retry(s, c):
                    c.state, c.finished_at = "done", time.time()
                    closed.append(c.id)
        return closed

    def cancel_campaign(self, campaign_id: str) -> list[Job]:
        """Cancel queued jobs here; return the jobs out on devices (to cancel there)."""
        with self.tx() as s:
            c = s.get(Campaign, campaign_id)
            if c is None:
                raise StoreError(f"no campaign {campaign_id!r} (see `mlperf-controller results`)")
            for job in s.scalars(select(Job).where(Job.campaign_id == campaign_id,
                                                   Job.state == JobState.QUEUED.value)):
                self._move(s, job, JobState.CANCELLED, "controller", "campaign cancelled")
            if c.state == "active":
                c.state = "cancelled"
            return list(s.scalars(select(Job).where(Job.campaign_id == campaign_id,
                                                    Job.state.in_(ACTIVE))))

    # -- jobs --------------------------------------------------------------------------------
    def claim_dispatches(self, window: int | None = None) -> list[Dispatch]:
        """For every online device with nothing active, assign its oldest queued job; a device
        left idle takes a retry of a campaign that allows any device of the same profile whose
        own device is away. One query finds the oldest queued job of every idle online device
        (a scan per device took 2.9 s a tick at 10,000 devices). ``window``: at most this many
        jobs wait assigned and not yet accepted, oldest jobs first (see
        controller.settings.ControllerSettings.dispatch_window)."""
        out: list[Dispatch] = []
        with self.tx() as s:
            if s.scalar(select(Job.id).where(Job.state == JobState.QUEUED.value).limit(1)) \
                    is None:
                return out                 # nothing waits: the fleet need not be read
            room = None
            if window is not None:
                room = window - s.scalar(select(func.count()).select_from(Job).where(
                    Job.state == JobState.ASSIGNED.value))
                if room <= 0:
                    return out
            busy = set(s.scalars(select(Job.agent_id).where(Job.state.in_(ACTIVE))))
            online = set(s.scalars(select(Device.agent_id).where(
                Device.state == "online", Device.key.is_not(None))))
            idle = online - busy
            if not idle:
                return out
            oldest = (select(Job.agent_id, func.min(Job.created_at).label("first"))
                      .where(Job.state == JobState.QUEUED.value).group_by(Job.agent_id)
                      .subquery())
            firsts = s.scalars(select(Job).join(oldest, (Job.agent_id == oldest.c.agent_id)
                                                & (Job.created_at == oldest.c.first))
                               .where(Job.state == JobState.QUEUED.value)
                               .order_by(Job.created_at, Job.id))
            grouped: dict[str, list[Job]] = {}
            for job in firsts:
                if room is not None and len(out) >= room:
                    return out
                if job.agent_id in idle and job.group_id:
                    grouped.setdefault(job.group_id, []).append(job)   # reserved for it
                elif job.agent_id in idle:
                    idle.discard(job.agent_id)
                    self._move(s, job, JobState.ASSIGNED, "controller", None)
                    out.append(Dispatch(job, job.agent_id))
            if grouped:
                out += self._claim_groups(s, grouped, idle,
                                          None if room is None else room - len(out))
                idle -= {j.agent_id for members in grouped.values() for j in members}
            if idle and s.scalar(select(func.count()).select_from(Job).join(
                    Campaign, Campaign.id == Job.campaign_id).where(
                    Job.state == JobState.QUEUED.value, Job.attempt > 1,
                    Campaign.retry_anywhere.is_(True))):
                devices = {d.agent_id: d for d in s.scalars(select(Device).where(
                    Device.agent_id.in_(sorted(online))))}
                out += self._reassign_retries(s, [devices[a] for a in sorted(idle)], devices,
                                              None if room is None else room - len(out))
        return out

    def _reassign_retries(self, s: Session, idle: list[Device], online: dict[str, Device],
                          room: int | None) -> list[Dispatch]:
        out: list[Dispatch] = []
        # A group's retry stays on its own nodes (they were chosen together).
        waiting = s.scalars(select(Job).join(Campaign, Campaign.id == Job.campaign_id).where(
            Job.state == JobState.QUEUED.value, Job.attempt > 1, Job.group_id.is_(None),
            Campaign.retry_anywhere.is_(True)).order_by(Job.created_at))
        for job in waiting:
            if room is not None and len(out) >= room:
                break
            if job.agent_id in online or not idle:
                continue                           # its own device is here: it waits for it
            own = s.get(Device, job.agent_id)
            profile = ((own.capabilities if own else None) or {}).get("profile")
            for dev in idle:
                caps = dev.capabilities or {}
                if caps.get("profile") == profile and job.benchmark in caps.get("benchmarks", []):
                    idle.remove(dev)
                    job.detail = f"attempt {job.attempt}, moved from {job.agent_id}"
                    job.agent_id = dev.agent_id
                    self._move(s, job, JobState.ASSIGNED, "controller", job.detail)
                    out.append(Dispatch(job, dev.agent_id))
                    break
        return out

    def job(self, job_id: str) -> Job | None:
        with self.tx() as s:
            return s.get(Job, job_id)

    def jobs(self, campaign_id: str | None = None) -> list[Job]:
        with self.tx() as s:
            q = select(Job).order_by(Job.created_at)
            if campaign_id:
                q = q.where(Job.campaign_id == campaign_id)
            return list(s.scalars(q))

    def active_jobs(self, agent_id: str) -> list[Job]:
        with self.tx() as s:
            return list(s.scalars(select(Job).where(Job.agent_id == agent_id,
                                                    Job.state.in_(ACTIVE))))

    def fail_assigned(self, job_id: str, agent_id: str, source: str, reason: str,
                      retryable: bool = False) -> bool:
        """An assigned job that will never run: the device refused the assignment (too late,
        wrong clock, over a bound) or it could not be sent. False when the job is not
        assigned to that device. ``retryable``: the campaign may try it again."""
        with self.tx() as s:
            job = s.get(Job, job_id)
            if job is None or job.agent_id != agent_id or job.state != JobState.ASSIGNED.value:
                return False
            self._move(s, job, JobState.FAILED, source, reason)
            if retryable:
                self._maybe_retry(s, job, reason)
            return True

    def mark_lost(self, job_id: str, reason: str) -> bool:
        """The job's device went away: the job is lost. It is retried (if the campaign allows)
        only when it stays lost a while (``retry_lost``): a device cut off by a broker outage
        comes back still on it."""
        with self.tx() as s:
            job = s.get(Job, job_id)
            if job is None or job.state not in ACTIVE:
                return False
            self._move(s, job, JobState.LOST, "controller", reason)
            return True

    def apply_event(self, ev: JobEvent) -> JobState | None:
        """Store an agent's event (state change and/or MLLOG lines) once.

        Returns the new state when the event moved the job, None otherwise (duplicate, stale
        or log-only). Illegal or stale moves are recorded but do not change the job.
        """
        with self.tx() as s:
            job = s.get(Job, ev.job_id)
            if job is None or job.agent_id != ev.agent_id:
                raise StoreError(f"event for job {ev.job_id} from {ev.agent_id}: "
                                 "no such job on that device")
            if job.state == JobState.QUEUED.value:
                raise StoreError(f"event for job {ev.job_id} from {ev.agent_id}: the job was "
                                 "never assigned")
            if self._seen(s, ev.job_id, ev.seq):
                return None
            detail = ev.detail
            stored = job.log_lines or 0
            room = max(0, MAX_LOG_LINES_PER_JOB - stored)
            if len(ev.mllog) > room:
                detail = (f"{len(ev.mllog) - room} MLLOG line(s) dropped: a job keeps at most "
                          f"{MAX_LOG_LINES_PER_JOB:,}")
            s.add_all(LogLine(job_id=ev.job_id, agent_seq=ev.seq, n=i, line=line)
                      for i, line in enumerate(ev.mllog[:room]))
            job.log_lines = stored + min(room, len(ev.mllog))
            moved = None
            current = JobState(job.state)
            if ev.state is not None and ev.state != current:
                try:
                    transition(current, ev.state)
                    moved = ev.state
                except IllegalTransition as exc:
                    detail = f"ignored: {exc}"
            s.add(Transition(job_id=ev.job_id, agent_seq=ev.seq, at=time.time(),
                             from_state=current.value,
                             to_state=ev.state.value if ev.state else None, source="agent",
                             detail=detail))
            if moved is not None:
                now = time.time()
                job.state, job.updated_at, job.state_since = moved.value, now, now
                job.detail = ev.detail or job.detail
                if current is JobState.LOST and job.superseded:
                    self._late_result(s, job)     # back from a cut: withdraw an unsent retry
            return moved

    def store_result(self, result: JobResult) -> bool:
        """Store a result once and finish its job; False if it was already stored.

        Missing intermediate states (events that never arrived) are recorded as the shortest
        legal path to the result's final state, so the history stays a legal one.
        """
        with self.tx() as s:
            job = s.get(Job, result.job_id)
            if job is None or job.agent_id != result.agent_id:
                raise StoreError(f"result for job {result.job_id} from {result.agent_id}: "
                                 "no such job on that device")
            if self._has_result(s, result.job_id):
                return False
            if job.state == JobState.QUEUED.value:
                raise StoreError(f"result for job {result.job_id} from {result.agent_id}: the "
                                 "job was never assigned")
            claimed = (result.campaign_id, result.benchmark, result.mode, result.run_index)
            if claimed != (job.campaign_id, job.benchmark, job.mode, job.run_index):
                raise StoreError(f"result for job {result.job_id} from {result.agent_id} "
                                 "describes another job (campaign, benchmark, mode or run)")
            if (known := self._known(result.job_id)) is not None:
                known.results.add(result.job_id)
            s.add(Result(job_id=result.job_id, result_id=result.result_id,
                         agent_id=result.agent_id, status=result.status,
                         received_at=time.time(),
                         payload=result.model_dump(mode="json", by_alias=True)))
            current = JobState(job.state)
            if not current.terminal:
                for step in path(current, result.final_state):
                    self._move(s, job, step, "result", result.error if step.terminal else None)
            if job.superseded:
                self._late_result(s, job)
            elif result.status != "done" and result.retryable:
                self._maybe_retry(s, job, result.error or result.status)
            return True

    def results(self, campaign_id: str | None = None) -> list[tuple[Job, Result | None, str]]:
        """(job, result or None, device name) for a campaign or for everything."""
        with self.tx() as s:
            q = (select(Job, Result, Device.name)
                 .outerjoin(Result, Result.job_id == Job.id)
                 .outerjoin(Device, Device.agent_id == Job.agent_id)
                 .order_by(Job.created_at))
            if campaign_id:
                q = q.where(Job.campaign_id == campaign_id)
            return [(j, r, name or j.agent_id) for j, r, name in s.execute(q)]

    def log_missing(self, job_id: str) -> int:
        """MLLOG lines the job's stored result says were sent that the store lacks (0: none,
        or no result yet)."""
        with self.tx() as s:
            job, row = s.get(Job, job_id), s.get(Result, job_id)
            if job is None or row is None:
                return 0
            try:
                return log_missing(job, JobResult.model_validate(row.payload))
            except ValidationError:
                return 0

    def log_lines(self, job_id: str) -> list[str]:
        with self.tx() as s:
            return list(s.scalars(select(LogLine.line).where(LogLine.job_id == job_id)
                                  .order_by(LogLine.agent_seq, LogLine.n)))

    def transitions(self, job_id: str) -> list[Transition]:
        with self.tx() as s:
            return list(s.scalars(select(Transition).where(Transition.job_id == job_id)
                                  .order_by(Transition.id)))

    @staticmethod
    def _move(s: Session, job: Job, new: JobState, source: str, detail: str | None) -> None:
        current = JobState(job.state)
        transition(current, new)
        now = time.time()
        s.add(Transition(job_id=job.id, at=now, from_state=current.value,
                         to_state=new.value, source=source, detail=detail))
        job.state, job.updated_at, job.state_since = new.value, now, now
        if detail:
            job.detail = detail


@dataclass
class _Known:
    """Jobs a batch will touch, loaded in a few queries: the Job rows (held here, so the
    session's identity map keeps them and ``get`` needs no query), which have results, and the
    (job, agent seq) messages already stored."""

    job_ids: set[str]
    jobs: list[Job]
    results: set[str]
    seen: set[tuple[str, int]]

    CHUNK = 500                                        # bound parameters per IN (...)

    @classmethod
    def load(cls, s: Session, job_ids: set[str]) -> _Known:
        ids = sorted(job_ids)
        chunks = [ids[i:i + cls.CHUNK] for i in range(0, len(ids), cls.CHUNK)]
        jobs, results, seen = [], set(), set()
        for chunk in chunks:
            # Locked (PostgreSQL; SQLite locks the whole store anyway), in id order: workers
            # sharing the fleet's messages write one job's event and result one at a time.
            jobs += s.scalars(select(Job).where(Job.id.in_(chunk)).order_by(Job.id)
                              .with_for_update())
            results.update(s.scalars(select(Result.job_id).where(Result.job_id.in_(chunk))))
            seen.update(s.execute(select(Transition.job_id, Transition.agent_seq)
                                  .where(Transition.job_id.in_(chunk),
                                         Transition.agent_seq.is_not(None))))
        return cls(set(ids), jobs, results, seen)


def _engine(url: str, create: bool = True) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"invalid store URL {url!r} (examples: sqlite:///results.db, "
                          "postgresql+psycopg://user:pass@host/db)") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database).expanduser()
            if not create and not path.is_file():
                raise StoreError(f"no results store at {path} (check --db / MLPERF_DB; "
                                 "`mlperf-controller serve` or `run` makes one)")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"--db {url}: cannot make the folder {path.parent} "
                                  f"({exc.strerror})") from None
            if path.exists() and not os.access(path, os.R_OK | os.W_OK):
                raise ConfigError(f"--db {url}: {path} is not readable and writable here")
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _wal(dbapi_conn, _record) -> None:
            # WAL lets `run`/`results` read while `serve` writes.
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA foreign_keys=ON")
        return engine
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"store URL {redact(url)} needs the {exc.name} driver: "
                          "pip install 'mlperf-edge[postgres]'") from None
