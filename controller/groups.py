"""Runs several devices train together (``mlperf-controller run --nodes N``): choosing the
nodes, sending a group all at once, ending it on every node when one fails, and retrying it as
a whole.

A group is N jobs, one per node, with one ``group_id`` and ranks 0..N-1 (rank 0 evaluates,
logs and hosts the rendezvous). The store holds it like any job, with these rules on top:

- **reserved, then sent together**: a node whose oldest queued job is a group member takes
  nothing else, and the group is assigned only when every member's device is online and idle;
  rank 0's announced address and a port are then written into every member's signed job;
- **all or none**: when one member ends without success (failed, cancelled, lost) while others
  are still on it, the others are cancelled (:meth:`GroupRecords.broken_groups` names them;
  the dispatcher sends the cancels). A member that never starts leaves the others waiting at
  the rendezvous at most the group's timeout, and the cancel ends them sooner;
- **retried as a whole**: once every member has ended and any of them ended for its device's
  reason (lost, retryable), the whole group gets a new attempt (new group id, new port) while
  the campaign's retry budget lasts. Single members are never retried alone.

Mixed into controller.store.Store (which supplies ``tx()``, ``_move`` and ``_new_attempt``).
"""

from __future__ import annotations

import ipaddress
import secrets
from collections import defaultdict
from typing import Any

from sqlalchemy import or_, select

from agent.protocol import GroupSpec, JobState
from controller.errors import CampaignError
from controller.models import Campaign, Device, Job

#: Ports a group's rendezvous is given (rank 0's torch.distributed store listens there). The
#: controller cannot see which are free on rank 0's machine: a taken one fails the group's
#: start on that node (retryable), and the retry draws another.
PORTS = range(29500, 30500)
#: How long the members wait for each other by default, s.
DEFAULT_TIMEOUT_S = 300.0
ENDED_BADLY = (JobState.FAILED.value, JobState.CANCELLED.value, JobState.LOST.value)


def _active() -> tuple[str, ...]:
    from controller.store import ACTIVE

    return tuple(ACTIVE)


def choose_nodes(devices: list[Device], nodes: int, busy: set[str], selector: str) -> list[Device]:
    """``nodes`` of the selected devices to train together: online, idle, of one profile, each
    announcing the address its peers reach it at -- rank 0 first (the one named first). Refused
    with the reason (CampaignError) when the selection cannot make such a group."""
    if len(devices) < nodes:
        names = ", ".join(d.name for d in devices[:8]) or "none"
        raise CampaignError(f"--nodes {nodes}: {selector} selects {len(devices)} device(s) "
                            f"({names}); a group needs {nodes}")
    by_profile: dict[str | None, list[Device]] = defaultdict(list)
    named = not selector.strip().startswith(("all", "tag:", "profile:"))
    for d in devices if named else sorted(devices, key=lambda d: d.name):
        by_profile[(d.capabilities or {}).get("profile")].append(d)
    reasons = []
    for profile, members in sorted(by_profile.items(), key=lambda kv: -len(kv[1])):
        idle = [d for d in members if d.agent_id not in busy]
        without = [d.name for d in idle if not (d.capabilities or {}).get("address")]
        ready = [d for d in idle if (d.capabilities or {}).get("address")]
        if len(ready) >= nodes:
            return _reachable_lead(ready[:nodes], nodes)
        why = f"{profile or 'no profile'}: {len(ready)} ready of {len(members)}"
        busy_names = [d.name for d in members if d.agent_id in busy]
        if busy_names:
            why += f" (busy: {', '.join(busy_names[:4])})"
        if without:
            why += (f" (announce no address, an older agent or an unknown route: start them "
                    f"with --address: {', '.join(without[:4])})")
        reasons.append(why)
    raise CampaignError(f"--nodes {nodes}: no {nodes} idle devices of one profile in "
                        f"{selector}: {'; '.join(reasons)}")


def _loopback(device: Device) -> bool:
    address = str((device.capabilities or {}).get("address") or "").strip("[]")
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _reachable_lead(chosen: list[Device], nodes: int) -> list[Device]:
    """Rank 0 hosts the rendezvous: on several hosts it must announce an address the others
    can reach -- an agent whose broker is on its own machine announces a loopback one."""
    hosts = {(d.capabilities or {}).get("host_id") or d.agent_id for d in chosen}
    if len(hosts) == 1 or not _loopback(chosen[0]):
        return chosen
    reachable = [d for d in chosen if not _loopback(d)]
    if not reachable:
        names = ", ".join(d.name for d in chosen)
        raise CampaignError(f"--nodes {nodes}: {names} are on different hosts, and each "
                            "announces a loopback address the others cannot reach (their "
                            "broker is on their own machine): start them with --address "
                            "THEIR_LAN_ADDRESS")
    return [reachable[0]] + [d for d in chosen if d is not reachable[0]]


def rendezvous_for(rank0: Device | None) -> str | None:
    """Rank 0's announced address and a port drawn from PORTS (None: no address known)."""
    address = ((rank0.capabilities if rank0 is not None else None) or {}).get("address")
    if not address:
        return None
    return f"{address}:{PORTS[secrets.randbelow(len(PORTS))]}"


def group_wait_s(members: list[Job], devices: list[Device | None]) -> float:
    """How long the members wait for each other: the campaign's --group-timeout, and never
    less than the longest cool-down (plus idle baseline) a member's profile may take before its
    run starts, plus a minute -- else a node still cooling would break the group's start."""
    from controller.leases import _profile

    asked = members[0].group_timeout_s or DEFAULT_TIMEOUT_S
    cooling = 0.0
    for device in devices:
        profile = _profile(((device.capabilities if device else None) or {}).get("profile"))
        cooldown = profile.power.cooldown if profile is not None else None
        if cooldown is not None:
            waits = cooldown.timeout_s if cooldown.threshold_c is not None else 0.0
            cooling = max(cooling, waits + cooldown.baseline_s + 60.0)
    return min(86_400.0, max(asked, cooling))


def _to_retry(members: list[Job], campaign: Campaign | None) -> bool:
    """Whether a group gets a new attempt now: every member ended, one for its device's
    reason (lost, retryable), rank 0 did not answer the run, and the budget lasts."""
    if campaign is None or campaign.state != "active":
        return False
    if any(m.state not in ENDED_BADLY + (JobState.DONE.value,) for m in members):
        return False                       # someone is still on it: wait for the cancel
    if not any(m.state == JobState.LOST.value or m.retryable for m in members):
        return False                       # the job's own fault: not retried
    if any(m.rank == 0 and m.state == JobState.DONE.value for m in members):
        return False                       # the run has its answer (a node's report lost)
    budget = campaign.retries if campaign.retries is not None else 1
    return not any(m.superseded for m in members) and (members[0].attempt or 1) <= budget


def group_spec(job: Job) -> GroupSpec | None:
    """The GroupSpec a member's signed job carries (None: a single-node job)."""
    if not job.group_id:
        return None
    host, _, port = (job.rendezvous or "").rpartition(":")
    return GroupSpec(group_id=job.group_id, rank=job.rank or 0, world_size=job.world_size or 1,
                     master_addr=host, master_port=int(port or 0),
                     timeout_s=job.group_timeout_s or DEFAULT_TIMEOUT_S)


class GroupRecords:
    """Group dispatch, breaking and retrying (see the module docstring)."""

    def _claim_groups(self, s: Any, candidates: dict[str, list[Job]], idle: set[str],
                      room: int | None) -> list:
        """Assign the groups whose every member is the oldest queued job of an idle online
        device; the others stay queued, their idle devices reserved for them."""
        from controller.store import Dispatch

        out = []
        for group_id, seen in sorted(candidates.items(), key=lambda kv: min(
                j.created_at for j in kv[1])):
            if room is not None and len(out) + len(seen) > room:
                break
            members = list(s.scalars(select(Job).where(Job.group_id == group_id)))
            if len(members) != (members[0].world_size or 0) or len(seen) != len(members) \
                    or any(m.agent_id not in idle for m in members):
                continue
            members.sort(key=lambda m: m.rank or 0)
            where = rendezvous_for(s.get(Device, members[0].agent_id))
            if where is None:
                for m in members:
                    self._move(s, m, JobState.ASSIGNED, "controller", None)
                    self._move(s, m, JobState.FAILED, "controller",
                               "rank 0's device announces no address: start its agent with "
                               "--address")
                continue
            wait_s = group_wait_s(members, [s.get(Device, m.agent_id) for m in members])
            for m in members:
                idle.discard(m.agent_id)
                m.rendezvous, m.group_timeout_s = where, wait_s
                self._move(s, m, JobState.ASSIGNED, "controller",
                           f"rank {m.rank} of {m.world_size}, rendezvous {where}")
                out.append(Dispatch(m, m.agent_id))
        return out

    def broken_groups(self) -> list[tuple[Job, str]]:
        """Members still on a group run that another member ended without success, with why:
        the dispatcher cancels them on their devices. (Read from the active members: a store's
        history of ended groups is never scanned.)"""
        out = []
        with self.tx() as s:
            active = list(s.scalars(select(Job).where(Job.group_id.is_not(None),
                                                      Job.state.in_(_active()))))
            if not active:
                return out
            why: dict[str, str] = {}
            for group_id, state, rank, detail in s.execute(
                    select(Job.group_id, Job.state, Job.rank, Job.detail).where(
                        Job.group_id.in_(sorted({j.group_id for j in active})),
                        Job.state.in_(ENDED_BADLY)).order_by(Job.rank)):
                why.setdefault(group_id, f"rank {rank} of its group {state}"
                               + (f": {detail}" if detail else ""))
            out = [(job, why[job.group_id][:400]) for job in active if job.group_id in why]
        return out

    def retry_groups(self) -> list[tuple[str, str]]:
        """New attempts of groups whose members have all ended, one of them for its device's
        reason (lost, or retryable), while the campaign's budget lasts; (old, new) group ids.
        Only active campaigns' groups are read."""
        out = []
        with self.tx() as s:
            candidates = set(s.scalars(select(Job.group_id).join(
                Campaign, Campaign.id == Job.campaign_id).where(
                Campaign.state == "active", Job.group_id.is_not(None),
                Job.state.in_(ENDED_BADLY),
                or_(Job.superseded.is_(None), Job.superseded.is_(False)))))
            for group_id in sorted(candidates):
                members = list(s.scalars(select(Job).where(Job.group_id == group_id)))
                if not _to_retry(members, s.get(Campaign, members[0].campaign_id)):
                    continue
                new = self._retry_group(s, members, "a node was lost or the group broke")
                out.append((group_id, new))
        return out

    def groups_to_retry(self, s: Any, campaign: Campaign) -> int:
        """How many of the campaign's groups wait for their retry (the campaign is not done)."""
        ids = set(s.scalars(select(Job.group_id).where(
            Job.campaign_id == campaign.id, Job.group_id.is_not(None),
            Job.state.in_(ENDED_BADLY),
            or_(Job.superseded.is_(None), Job.superseded.is_(False)))))
        return sum(_to_retry(list(s.scalars(select(Job).where(Job.group_id == g))), campaign)
                   for g in ids)

    def _retry_group(self, s: Any, members: list[Job], why: str) -> str:
        """A new attempt of every member, under a new group id; the old ones superseded."""
        first = min(members, key=lambda m: m.rank or 0)
        n = (first.attempt or 1) + 1
        base = first.group_id.rsplit("-a", 1)[0] if (first.attempt or 1) > 1 else first.group_id
        new_id = f"{base}-a{n}"
        detail = "; ".join(sorted({f"rank {m.rank} {m.state}" + (f" ({m.detail[:120]})"
                                   if m.detail else "") for m in members
                                   if m.state != JobState.DONE.value}))
        for m in sorted(members, key=lambda m: m.rank or 0):
            again = self._new_attempt(s, m, f"{why}: {detail}")
            again.group_id, again.rendezvous, again.retryable = new_id, None, None
        return new_id

    def retry_group_of(self, s: Any, job: Job, why: str) -> list[Job]:
        """The operator's retry of a group member: every member again, together."""
        members = list(s.scalars(select(Job).where(Job.group_id == job.group_id)))
        if any(m.superseded for m in members):
            raise CampaignError(f"group {job.group_id} was already retried (see its later "
                                "attempt)")
        active = [m.id for m in members if m.state in _active()]
        if active:
            raise CampaignError(f"group {job.group_id} is still running on {len(active)} "
                                "node(s): cancel the campaign first, or wait")
        self._retry_group(s, members, why)
        return list(s.scalars(select(Job).where(Job.retry_of.in_([m.id for m in members]))))
