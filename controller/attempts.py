"""Attempts: how a campaign gets a final answer for every run it asked for.

A job that is lost (its device went away, or its lease ran out), or that failed or was cancelled
for a reason of the device's rather than the job's (the result says ``retryable``), is tried
again as a new job -- attempt + 1, ``retry_of`` the old one -- while the campaign's retry budget
lasts (``--retries``, default 1). The old job is then *superseded*: kept as history, never
counted. A late result of a superseded attempt is stored as history too; when the new attempt
has not been sent yet, the late result answers the run instead and the new attempt is
withdrawn. ``mlperf-controller retry`` starts a new attempt of any failed, lost or cancelled
run, budget or not. Mixed into controller.store.Store (which supplies ``tx()`` and ``_move``).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import or_, select

from agent.protocol import JobState
from controller.errors import CampaignError, StoreError
from controller.leases import ASSIGNED_S, expired
from controller.models import Campaign, Device, Job, Transition

#: Verified refusals of an assignment worth another attempt (it came too late, or the device
#: was full); any other refusal is about the job itself.
RETRYABLE_REFUSALS = frozenset({"expired", "busy"})
RETRYABLE_STATES = (JobState.FAILED.value, JobState.LOST.value, JobState.CANCELLED.value)


def _root(job: Job) -> str:
    """The id of a run's first attempt (``c...-0003`` for ``c...-0003-a2``)."""
    return job.id.rsplit("-a", 1)[0] if (job.attempt or 1) > 1 else job.id


class AttemptRecords:
    """Retry policy, lease expiry and the retry command (see the module docstring)."""

    def _maybe_retry(self, s: Any, job: Job, why: str) -> Job | None:
        """A new attempt of ``job`` if its campaign is active and has retries left."""
        if job.group_id:                  # a group is retried whole, once all its members ended
            job.retryable = True          # (controller.groups.retry_groups)
            return None
        campaign = s.get(Campaign, job.campaign_id)
        if campaign is None or campaign.state != "active" or job.superseded:
            return None
        if (job.attempt or 1) > (campaign.retries if campaign.retries is not None else 1):
            return None
        return self._new_attempt(s, job, why, anywhere=bool(campaign.retry_anywhere))

    def _new_attempt(self, s: Any, job: Job, why: str, anywhere: bool = False) -> Job:
        now, n = time.time(), (job.attempt or 1) + 1
        new = Job(id=f"{_root(job)}-a{n}", campaign_id=job.campaign_id, agent_id=job.agent_id,
                  group_id=job.group_id, rank=job.rank, world_size=job.world_size,
                  group_timeout_s=job.group_timeout_s,
                  benchmark=job.benchmark, mode=job.mode, run_index=job.run_index,
                  seed=job.seed, params=job.params, max_steps=job.max_steps,
                  max_seconds=job.max_seconds, image=job.image, image_digest=job.image_digest,
                  runtime=job.runtime, model_sha256=job.model_sha256, division=job.division,
                  state=JobState.QUEUED.value, attempt=n,
                  retry_of=job.id, superseded=False, log_lines=0, state_since=now,
                  created_at=job.created_at + 1e-7, updated_at=now,
                  detail=f"attempt {n} (any device of its profile)" if anywhere
                  else f"attempt {n}")
        s.add(new)
        job.superseded = True
        s.add(Transition(job_id=job.id, at=now, from_state=job.state, to_state=None,
                         source="controller", detail=f"retried as {new.id}: {why}"[:2000]))
        return new

    def _revive(self, s: Any, job: Job, state: str | None) -> None:
        """A lost job its device names again (it was cut off, not gone): back to the state the
        device reports, and a new attempt that was not sent yet is withdrawn."""
        try:
            target = JobState(state) if state else JobState.RUNNING
        except ValueError:
            return
        if target not in (JobState.ACCEPTED, JobState.PREPARING, JobState.COOLING,
                          JobState.RUNNING, JobState.REPORTING):
            return
        self._move(s, job, target, "agent", "its device is back, still on it")
        if job.superseded:
            self._late_result(s, job)

    def _late_result(self, s: Any, job: Job) -> None:
        """A result came for a superseded attempt: if its successor was not sent yet, this
        result answers the run and the successor is withdrawn; otherwise it is history."""
        if job.group_id:
            return                        # a group's late result is history: it ran as a whole
        successor = s.scalars(select(Job).where(Job.retry_of == job.id)).first()
        if successor is not None and successor.state == JobState.QUEUED.value:
            self._move(s, successor, JobState.CANCELLED, "controller",
                       f"not needed: the result of {job.id} came late")
            successor.superseded, job.superseded = True, False

    def retry_lost(self, grace_s: float, now: float | None = None
                   ) -> list[tuple[str, str]]:
        """New attempts of runs lost for longer than ``grace_s`` with no word from their
        device; returns (lost job id, new attempt id)."""
        now = time.time() if now is None else now
        out = []
        with self.tx() as s:
            for job in s.scalars(select(Job).where(
                    Job.state == JobState.LOST.value, Job.state_since < now - grace_s,
                    or_(Job.superseded.is_(None), Job.superseded.is_(False)))):
                again = self._maybe_retry(s, job, f"lost: {job.detail or 'its device went'}")
                if again is not None:
                    out.append((job.id, again.id))
        return out

    # -- leases ------------------------------------------------------------------------------
    def renew(self, agent_id: str, job_ids: list[str]) -> None:
        """The device named these jobs in a heartbeat: it is on them."""
        if not job_ids:
            return
        with self.tx() as s:
            for job in s.scalars(select(Job).where(Job.id.in_(job_ids),
                                                   Job.agent_id == agent_id)):
                job.renewed_at = time.time()

    def expire_leases(self, now: float | None = None, assigned_s: float = ASSIGNED_S,
                      listening_since: float = 0.0, grace_s: float = 0.0
                      ) -> list[tuple[str, str, str | None]]:
        """Mark lost every active job whose lease ran out (and retry it where the campaign
        allows); returns (job id, why, new attempt id or None). ``assigned_s``: how long a
        device has to take an assignment."""
        from controller.store import ACTIVE

        now = time.time() if now is None else now
        out = []
        with self.tx() as s:
            # The columns a lease is judged by, not whole rows: 10,000 active jobs (a campaign
            # across a fleet) were a third of a second of ORM objects every check.
            jobs = list(s.execute(select(
                Job.id, Job.agent_id, Job.state, Job.state_since, Job.updated_at,
                Job.renewed_at, Job.benchmark, Job.mode, Job.max_seconds)
                .where(Job.state.in_(ACTIVE))))
            ids = sorted({job.agent_id for job in jobs})
            devices: dict[str, tuple[float, dict | None]] = {}
            for lo in range(0, len(ids), 500):       # one query, not one per active job
                devices.update((a, (h, c)) for a, h, c in s.execute(
                    select(Device.agent_id, Device.heartbeat_s, Device.capabilities)
                    .where(Device.agent_id.in_(ids[lo:lo + 500]))))
            for job in jobs:
                heartbeat_s, capabilities = devices.get(job.agent_id, (5.0, None))
                why = expired(job, heartbeat_s, capabilities, now, assigned_s,
                              listening_since, grace_s)
                if why is None:
                    continue
                job = s.get(Job, job.id)
                self._move(s, job, JobState.LOST, "controller", f"lease expired: {why}")
                again = self._maybe_retry(s, job, f"lease expired: {why}")
                out.append((job.id, why, again.id if again else None))
        return out

    # -- the retry command -------------------------------------------------------------------
    def retry(self, target: str) -> list[Job]:
        """New attempts of a failed, lost or cancelled job, or of every such run of a campaign
        (whatever the retry budget); the campaign is active again."""
        with self.tx() as s:
            campaign = s.get(Campaign, target)
            if campaign is not None:
                jobs = list(s.scalars(select(Job).where(
                    Job.campaign_id == target, Job.state.in_(RETRYABLE_STATES),
                    or_(Job.superseded.is_(None), Job.superseded.is_(False)))))
                if not jobs:
                    raise StoreError(f"nothing to retry in campaign {target}: every run is "
                                     "done or still going")
            else:
                job = s.get(Job, target)
                if job is None:
                    raise StoreError(f"no job or campaign {target!r} (see `mlperf-controller "
                                     "results --json`)")
                if job.superseded:
                    raise StoreError(f"job {target} was already retried (see its later "
                                     "attempt)")
                if job.state not in RETRYABLE_STATES:
                    raise StoreError(f"job {target} is {job.state}: only failed, lost or "
                                     "cancelled jobs are retried")
                jobs = [job]
                campaign = s.get(Campaign, job.campaign_id)
            campaign.state, campaign.finished_at = "active", None
            out, groups = [], set()
            for job in jobs:
                if job.group_id:              # a group member: the whole group, once
                    if job.group_id not in groups:
                        groups.add(job.group_id)
                        try:
                            out += self.retry_group_of(s, job, "retried by the operator")
                        except CampaignError as exc:
                            raise StoreError(str(exc)) from None
                    continue
                out.append(self._new_attempt(s, job, "retried by the operator",
                                             anywhere=bool(campaign.retry_anywhere)))
            return out
