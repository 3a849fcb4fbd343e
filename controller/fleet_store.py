"""The fleet part of the results store: approved devices and their presence, devices waiting
for approval, and the messages that were refused. Mixed into controller.store.Store (which
supplies ``tx()``); every method is one short transaction."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from agent.identity import fingerprint
from agent.protocol import AgentStatus, Heartbeat, JobState, Refusal
from controller.errors import StoreError
from controller.models import AgentRefusal, Device, Enrolment, Job, Rejection

#: Devices waiting for approval that are remembered; more are only counted as refused.
MAX_PENDING = 1000
#: Distinct claimed senders whose refused messages are counted one by one.
MAX_REJECTION_SOURCES = 1000
#: Refusals kept per agent (the newest).
KEEP_REFUSALS = 100
OTHER = "(other)"


def _once_more_on_conflict(work):
    """Run ``work`` (one transaction); when another process inserted the same row between our
    read and our insert (``serve`` and a CLI command both hearing a device's first status),
    run it once more: it then finds the row and updates it."""
    try:
        return work()
    except IntegrityError:
        return work()


def _apply_status(dev: Device, status: AgentStatus, now: float) -> None:
    dev.name, dev.state, dev.tags = status.name, status.state, list(status.tags)
    dev.heartbeat_s, dev.last_seen, dev.reason = status.heartbeat_s, now, status.reason
    if not status.last_will:
        dev.boot, dev.status_seq = status.boot, status.seq
    if status.state == "online":
        if dev.session != status.session:
            dev.beat_seq = None
        dev.session, dev.instance = status.session, status.instance
    if status.capabilities is not None:
        dev.capabilities = status.capabilities.model_dump()


class DeviceRecords:
    """Devices, enrolments and refusals (see the module docstring)."""

    # -- approved devices --------------------------------------------------------------------
    def approved_keys(self) -> dict[str, str]:
        """agent id -> approved public key (base64), for every approved device."""
        with self.tx() as s:
            return dict(s.execute(select(Device.agent_id, Device.key)
                                  .where(Device.key.is_not(None))).all())

    def device_status(self, status: AgentStatus) -> tuple[str | None, bool]:
        """Apply an approved agent's presence if it is news: a status newer (by boot, seq)
        than the last applied, or the Last Will of the connection last seen online. Returns
        (previous state, applied); a replayed or superseded one is not applied."""
        now = time.time()
        with self.tx() as s:
            dev = s.get(Device, status.agent_id)
            if dev is None or dev.key is None:
                raise StoreError(f"status from {status.agent_id}, which is not approved")
            previous = dev.state
            if status.last_will:
                if dev.session != status.session or dev.state != "online":
                    return previous, False
            elif dev.status_seq is not None and (status.boot, status.seq) <= (
                    dev.boot or 0, dev.status_seq):
                return previous, False
            _apply_status(dev, status, now)
            return previous, True

    def heartbeat(self, beat: Heartbeat) -> tuple[str | None, bool]:
        """Record a heartbeat of the current connection (newer than the last one); an agent
        that beats is online. Returns (previous state, applied)."""
        return self.heartbeats([beat])[0]

    def heartbeats(self, beats: list[Heartbeat]) -> list[tuple[str | None, bool]]:
        """:meth:`heartbeat` for many, in arrival order, in one transaction (a controller with
        thousands of agents writes them in batches: a commit per beat was 63 % of its MQTT
        thread). Reads the few columns it judges by, writes with one executemany per table
        (the ORM's unit of work was 1 ms a beat at 5,000 agents)."""
        if not beats:
            return []
        now = time.time()
        out: list[tuple[str | None, bool]] = []
        with self.tx() as s:
            known: dict[str, list] = {}                 # agent id -> [key, session, seq, state]
            ids = sorted({b.agent_id for b in beats})
            for lo in range(0, len(ids), 500):
                known.update((a, [k, sess, seq, st]) for a, k, sess, seq, st in s.execute(
                    select(Device.agent_id, Device.key, Device.session, Device.beat_seq,
                           Device.state).where(Device.agent_id.in_(ids[lo:lo + 500]))))
            writes: dict[str, dict[str, Any]] = {}
            renew: dict[str, tuple[str, Heartbeat]] = {}     # job id -> (agent, beat)
            for beat in beats:
                dev = known.get(beat.agent_id)
                if dev is None or dev[0] is None or dev[1] != beat.session:
                    out.append(((dev[3] if dev else None), False))
                    continue
                if dev[2] is not None and beat.seq <= dev[2]:
                    out.append((dev[3], False))
                    continue
                out.append((dev[3], True))
                dev[2], dev[3] = beat.seq, "online"
                writes[beat.agent_id] = {
                    "agent_id": beat.agent_id, "state": "online", "last_seen": now,
                    "beat_seq": beat.seq,
                    "load": beat.model_dump(include={"cpu_percent", "memory_percent",
                                                     "temperature_c", "job_id", "queued_jobs"})}
                for job_id in ([beat.job_id] if beat.job_id else []) + list(beat.queued):
                    renew[job_id] = (beat.agent_id, beat)
            if writes:
                s.execute(update(Device), list(writes.values()))
            self._renew_named(s, renew, now)
        return out

    def _renew_named(self, s: Any, renew: dict[str, tuple[str, Heartbeat]], now: float) -> None:
        """The leases of the jobs heartbeats named, on the device that named them; a lost one
        its device still names was only cut off: it is revived."""
        ids, held, lost = sorted(renew), [], []
        for lo in range(0, len(ids), 500):
            for job_id, agent_id, state in s.execute(
                    select(Job.id, Job.agent_id, Job.state).where(Job.id.in_(ids[lo:lo + 500]))):
                if agent_id == renew[job_id][0]:
                    held.append({"id": job_id, "renewed_at": now})
                    if state == "lost":
                        lost.append(job_id)
        if held:
            s.execute(update(Job), held)
        for job in (s.get(Job, job_id) for job_id in lost):
            beat = renew[job.id][1]
            job.renewed_at = now
            self._revive(s, job, beat.job_state if job.id == beat.job_id else "accepted")

    def device(self, agent_id: str) -> Device | None:
        with self.tx() as s:
            return s.get(Device, agent_id)

    def devices(self, plain: bool = False) -> list[Device]:
        """Every device by name. ``plain``: read-only rows with the same attributes, not ORM
        objects (what `devices` lists: 10,000 read in 0.19 s instead of 0.26 s)."""
        with self.tx() as s:
            if plain:
                return list(s.execute(select(Device.__table__).order_by(Device.name)))
            return list(s.scalars(select(Device).order_by(Device.name)))

    def stale_devices(self, now: float, beats: float = 3.0, listening_since: float = 0.0,
                      grace_s: float = 0.0) -> list[Device]:
        """Online devices silent for more than ``beats`` heartbeat intervals. A device not
        heard since the controller (re)connected at ``listening_since`` gets ``grace_s`` from
        then: after a broker outage, agents come back on their own reconnect backoff, and
        silence while the controller itself was cut off says nothing. Reads three columns of
        the online devices, and whole rows only of the stale ones (the check runs every tick)."""
        with self.tx() as s:
            stale = []
            for agent_id, last_seen, heartbeat_s in s.execute(
                    select(Device.agent_id, Device.last_seen, Device.heartbeat_s)
                    .where(Device.state == "online")):
                limit = beats * min(heartbeat_s, 300.0)
                if last_seen < listening_since:
                    silent, limit = now - listening_since, max(limit, grace_s)
                else:
                    silent = now - last_seen
                if silent > limit:
                    stale.append(agent_id)
            return [s.get(Device, agent_id) for agent_id in stale]

    def set_offline(self, agent_id: str, reason: str) -> None:
        with self.tx() as s:
            s.execute(update(Device).where(Device.agent_id == agent_id)
                      .values(state="offline", reason=reason))

    def mark_silent(self, silent: dict[str, str]) -> list[tuple[str, str]]:
        """Mark these devices offline (agent id -> why) and their active jobs lost, in one
        transaction (a commit per device held the store for seconds when thousands went
        quiet at once); returns (job id, why) of the jobs lost."""
        from controller.store import ACTIVE

        lost: list[tuple[str, str]] = []
        ids = sorted(silent)
        with self.tx() as s:
            for lo in range(0, len(ids), 500):
                chunk = ids[lo:lo + 500]
                for dev in s.scalars(select(Device).where(Device.agent_id.in_(chunk),
                                                          Device.state == "online")):
                    dev.state, dev.reason = "offline", silent[dev.agent_id]
                for job in s.scalars(select(Job).where(Job.agent_id.in_(chunk),
                                                       Job.state.in_(ACTIVE))):
                    self._move(s, job, JobState.LOST, "controller", silent[job.agent_id])
                    lost.append((job.id, silent[job.agent_id]))
        return lost

    # -- enrolment ---------------------------------------------------------------------------
    def note_enrolment(self, status: AgentStatus, key: str, note: str | None = None) -> bool:
        """Remember a validly signed status from a key that is not approved (bounded).
        Returns True when it is a new request (the first from this id and key)."""
        return _once_more_on_conflict(lambda: self._note_enrolment(status, key, note))

    def _note_enrolment(self, status: AgentStatus, key: str, note: str | None) -> bool:
        now, fp = time.time(), fingerprint(key)
        body = json.loads(status.model_dump_json(by_alias=True))
        with self.tx() as s:
            row = s.get(Enrolment, (status.agent_id, fp))
            if row is not None:
                row.last_seen, row.messages, row.name = now, row.messages + 1, status.name
                newer = (status.boot, status.seq) > (row.status.get("boot", 0),
                                                     row.status.get("seq", -1))
                if newer and not status.last_will:
                    row.status = body
                return False
            if s.scalar(select(func.count()).select_from(Enrolment)) >= MAX_PENDING:
                raise StoreError(f"{MAX_PENDING} devices already wait for approval")
            s.add(Enrolment(agent_id=status.agent_id, fingerprint=fp, key=key,
                            name=status.name, first_seen=now, last_seen=now, messages=1,
                            status=body, note=note))
            return True

    def clear_pending(self) -> int:
        with self.tx() as s:
            return s.execute(delete(Enrolment)).rowcount

    def pending(self) -> list[Enrolment]:
        with self.tx() as s:
            return list(s.scalars(select(Enrolment).order_by(Enrolment.first_seen)))

    def approve(self, who: str, fp: str | None = None) -> Device:
        """Approve the device waiting as ``who`` (agent id or name), or re-approve a revoked
        one; ``fp`` picks one key when several wait under that id. StoreError otherwise."""
        with self.tx() as s:
            rows = list(s.scalars(select(Enrolment).where(
                or_(Enrolment.agent_id == who, Enrolment.name == who))))
            if fp is not None:
                rows = [r for r in rows if r.fingerprint == fp]
            if len({r.agent_id for r in rows}) > 1:
                raise StoreError(f"several devices wait under the name {who!r}: approve one by "
                                 f"its agent id ({', '.join(sorted({r.agent_id for r in rows}))})")
            if len(rows) > 1:
                keys = ", ".join(r.fingerprint for r in rows)
                raise StoreError(f"{who!r} waits with {len(rows)} different keys ({keys}): say "
                                 "which with --fingerprint (compare with what `mlperf-agent "
                                 "start` printed on the device)")
            if rows:
                row = rows[0]
                status = AgentStatus.model_validate_json(json.dumps(row.status))
                dev = s.get(Device, row.agent_id)
                if dev is None:
                    dev = Device(agent_id=row.agent_id, first_seen=row.first_seen, name=row.name,
                                 state="offline", last_seen=row.last_seen)
                    s.add(dev)
                dev.key, dev.approved_at, dev.approved_by = row.key, time.time(), "operator"
                dev.boot = dev.status_seq = dev.session = dev.beat_seq = None
                _apply_status(dev, status, row.last_seen)
                s.execute(delete(Enrolment).where(Enrolment.agent_id == row.agent_id))
                return dev
            dev = s.scalars(select(Device).where(
                or_(Device.agent_id == who, Device.name == who))).first()
            if dev is not None and dev.key is not None:
                raise StoreError(f"device {who!r} is already approved (key "
                                 f"{fingerprint(dev.key)})")
            waiting = ", ".join(sorted({r.name for r in s.scalars(select(Enrolment))})) or "none"
            raise StoreError(f"no device {who!r} waits for approval (waiting: {waiting}); "
                             "it asks when `mlperf-agent start` connects")

    def enrol(self, status: AgentStatus, key: str, by: str) -> Device:
        """Approve a device at once (it proved it holds the enrolment token): :meth:`enrol_many`
        for one, its refusal raised."""
        held: dict[str, Device] = {}

        def once() -> str | None:
            held.clear()
            return self.enrol_many([(status, key)], by, held)[0]
        why = _once_more_on_conflict(once)
        if why is not None:
            raise StoreError(why)
        return held[status.agent_id]

    def enrol_many(self, items: list[tuple[AgentStatus, str]], by: str,
                   held: dict[str, Device] | None = None) -> list[str | None]:
        """:meth:`enrol` for many, in order, in one transaction: one read of the devices they
        name, one delete of their waiting requests (a fleet of 10,000 enrolling at once was
        three statements per device). Per item: None (enrolled) or why not. ``held``: the
        devices are added to it (kept in a batch's session, later reads need no query)."""
        out: list[str | None] = []
        with self.tx() as s:
            devices = self.devices_named(s, [st.agent_id for st, _ in items])
            if held is not None:
                held.update(devices)
                devices = held
            done: list[str] = []
            now = time.time()
            for status, key in items:
                dev = devices.get(status.agent_id)
                if dev is not None and dev.key is not None and dev.key != key:
                    out.append(f"device {status.agent_id} is approved with another key")
                    continue
                if dev is None:
                    dev = devices[status.agent_id] = Device(
                        agent_id=status.agent_id, first_seen=now, name=status.name,
                        state=status.state, last_seen=now)
                    s.add(dev)
                dev.key, dev.approved_at, dev.approved_by = key, now, by
                _apply_status(dev, status, now)
                done.append(status.agent_id)
                out.append(None)
            done.sort()
            for lo in range(0, len(done), 500):
                s.execute(delete(Enrolment).where(Enrolment.agent_id.in_(done[lo:lo + 500])))
        return out

    @staticmethod
    def devices_named(s: Any, agent_ids: list[str]) -> dict[str, Device]:
        """The devices of these ids, read in a few queries; held by the caller, they stay in
        the session (later ``get`` calls in it are answered without a query)."""
        ids = sorted(set(agent_ids))
        found: dict[str, Device] = {}
        for lo in range(0, len(ids), 500):
            found.update((d.agent_id, d) for d in s.scalars(
                select(Device).where(Device.agent_id.in_(ids[lo:lo + 500]))))
        return found

    def revoke(self, who: str) -> Device:
        """Withdraw a device's approval: its messages are refused until it is approved again."""
        with self.tx() as s:
            dev = s.scalars(select(Device).where(
                or_(Device.agent_id == who, Device.name == who))).first()
            if dev is None or dev.key is None:
                raise StoreError(f"no approved device {who!r} (see `mlperf-controller devices`)")
            dev.key, dev.state, dev.reason = None, "offline", "approval revoked by the operator"
            dev.session = None
            return dev

    # -- refused messages --------------------------------------------------------------------
    def add_rejections(self, counts: dict[tuple[str, str], list[Any]]) -> None:
        """Fold counted refusals in: (claimed sender, code) -> [n, first, last, example]."""
        if counts:
            _once_more_on_conflict(lambda: self._add_rejections(counts))

    def _add_rejections(self, counts: dict[tuple[str, str], list[Any]]) -> None:
        with self.tx() as s:
            known = s.scalar(select(func.count(func.distinct(Rejection.source))))
            for (source, code), (n, first, last, example) in counts.items():
                row = s.get(Rejection, (source, code))
                if row is None and known >= MAX_REJECTION_SOURCES:
                    source = OTHER
                    row = s.get(Rejection, (source, code))
                if row is None:
                    row = Rejection(source=source[:160], code=code[:32], count=0,
                                    first_at=first, last_at=last)
                    s.add(row)
                    known += 1
                row.count += n
                row.last_at = max(row.last_at, last)
                row.example = (example or "")[:300]

    def rejections(self) -> list[Rejection]:
        with self.tx() as s:
            return list(s.scalars(select(Rejection).order_by(Rejection.last_at.desc())))

    def record_refusal(self, refusal: Refusal) -> None:
        with self.tx() as s:
            s.add(AgentRefusal(agent_id=refusal.agent_id, at=time.time(), topic=refusal.topic,
                               code=refusal.code, reason=refusal.reason,
                               job_id=refusal.claimed_job_id, verified=refusal.verified,
                               suppressed=refusal.suppressed))
            s.flush()
            keep = select(AgentRefusal.id).where(AgentRefusal.agent_id == refusal.agent_id) \
                .order_by(AgentRefusal.id.desc()).limit(KEEP_REFUSALS)
            s.execute(delete(AgentRefusal).where(AgentRefusal.agent_id == refusal.agent_id,
                                                 AgentRefusal.id.not_in(keep.scalar_subquery())))

    def refusals(self, agent_id: str | None = None) -> list[AgentRefusal]:
        with self.tx() as s:
            q = select(AgentRefusal).order_by(AgentRefusal.id)
            if agent_id:
                q = q.where(AgentRefusal.agent_id == agent_id)
            return list(s.scalars(q))
