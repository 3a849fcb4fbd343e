"""Leases: how long a job may stay in each non-final state before the controller calls it lost.

Two limits, whichever comes first:

- a **cap** per state, from the device's profile budgets: an assignment must be taken within
  two minutes; preparing (an image pull) an hour; cooling the profile's cool-down timeout plus
  its idle baseline; running the job's time budget (``--max-seconds``, else the profile's for
  that benchmark, else the mode's) with room for evaluation and set-up; reporting ten minutes;
- **quiet**: in the states the device names in its heartbeats (its running job and its queue),
  three heartbeats without a word about the job -- the agent is alive but no longer on it.

A job in ``reporting`` is not held to quiet: its result sits in the device's spool and is sent
again until acknowledged.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import Any

from agent.protocol import JobState

log = logging.getLogger("mlperf.controller")

ASSIGNED_S = 120.0
PREPARING_S = 3600.0
REPORTING_S = 600.0
#: Training budget by mode when neither the job nor the device's profile gives one, s.
MODE_BUDGET_S = {"smoke": 1800.0, "reduced": 4 * 3600.0, "full": 30 * 24 * 3600.0}
#: A run's cap is its training budget times this, plus RUN_SLACK_S (evaluation, data loading,
#: start-up are outside the training budget).
RUN_FACTOR, RUN_SLACK_S = 1.5, 1800.0
#: Quiet: this many heartbeat intervals (plus QUIET_SLACK_S) without the job named.
QUIET_BEATS, QUIET_SLACK_S = 3.0, 10.0
#: States the device names in its heartbeats.
REPORTED = {JobState.ACCEPTED, JobState.PREPARING, JobState.COOLING, JobState.RUNNING}


@lru_cache(maxsize=64)
def _profile(name: str | None):
    if not name:
        return None
    try:
        from agent.profiles.loading import load_profiles

        return load_profiles().get(name)
    except Exception as exc:                  # a broken lab folder must not stop dispatching
        log.warning("device profile %s unreadable for leases (%s); using defaults", name, exc)
        return None


def cap_s(job: Any, state: JobState, capabilities: dict | None,
          assigned_s: float = ASSIGNED_S) -> float:
    """The longest ``job`` may stay in ``state`` on a device with these capabilities, s."""
    profile = _profile((capabilities or {}).get("profile"))
    if state is JobState.ASSIGNED:
        return assigned_s
    if state is JobState.PREPARING:
        return PREPARING_S
    if state is JobState.COOLING:
        cooldown = profile.power.cooldown if profile is not None else None
        if cooldown is None:
            return 900.0
        return (cooldown.timeout_s or 600.0) + (cooldown.baseline_s or 0.0) + 300.0
    if state is JobState.RUNNING:
        own = profile.benchmarks.get(job.benchmark) if profile is not None else None
        budget = job.max_seconds or (own.max_seconds if own is not None else None) \
            or MODE_BUDGET_S.get(job.mode, MODE_BUDGET_S["full"])
        return budget * RUN_FACTOR + RUN_SLACK_S
    if state is JobState.REPORTING:
        return REPORTING_S
    return float("inf")                           # accepted: held to quiet only


def expired(job: Any, heartbeat_s: float, capabilities: dict | None,
            now: float | None = None, assigned_s: float = ASSIGNED_S,
            listening_since: float = 0.0, grace_s: float = 0.0) -> str | None:
    """Why ``job``'s lease has run out (None while it holds). A job not mentioned since the
    controller (re)connected at ``listening_since`` is held to quiet from then, with at least
    ``grace_s``: the controller hears nothing while it is cut off."""
    now = time.time() if now is None else now
    state = JobState(job.state)
    since = job.state_since or job.updated_at
    limit = cap_s(job, state, capabilities, assigned_s)
    if now - since > limit:
        return f"{state.value} for {now - since:,.0f} s, longer than its lease ({limit:,.0f} s)"
    if state in REPORTED:
        heard = max(since, job.renewed_at or 0.0)
        quiet = QUIET_BEATS * min(heartbeat_s or 5.0, 300.0) + QUIET_SLACK_S
        if heard < listening_since:
            heard, quiet = listening_since, max(quiet, grace_s)
        if now - heard > quiet:
            return (f"its device has not mentioned it for {now - heard:,.0f} s (it heartbeats "
                    f"every {heartbeat_s:g} s)")
    return None
