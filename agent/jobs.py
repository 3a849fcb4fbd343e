"""One job, start to finish, on this device: validate, prepare, run the reference, build the
result. Shared by the MQTT service (``mlperf-agent start``) and the local ``mlperf-agent run``,
so both produce the same result."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import JobError
from agent.power.config import PowerConfig
from agent.protocol import (
    JobAssignment,
    JobResult,
    JobState,
    MlperfEdgeError,
    TRANSITIONS,
    Sequence,
    transition,
)
from agent.container import choose_process
from agent.runner import RunRequest


@dataclass(frozen=True)
class Workspace:
    """Where this agent finds datasets and keeps per-job output."""

    data_root: Path
    work_dir: Path
    platform: str
    # Device profile (agent.profiles.DeviceProfile) and container engine: with no engine,
    # or a native profile, every job runs natively. images_dir holds sideloaded tarballs.
    profile: object | None = None
    engine: str | None = None
    images_dir: Path | None = None
    # How power is measured (the device profile's ``power:`` section), where /sys is (a
    # host's root mounted in a container), and the broker smart plugs publish to.
    power: PowerConfig = field(default_factory=PowerConfig)
    power_root: Path = Path("/")
    broker: str | None = None

    def job_dir(self, job_id: str) -> Path:
        return self.work_dir / "jobs" / job_id


def validate(job: JobAssignment, allowed: list[str] | None = None) -> None:
    """Refuse a job this device must not run: unknown or disallowed benchmark, a mode the
    reference lacks, or parameters its config rejects (checked without importing torch)."""
    from references import registry
    from references.common.errors import ReferenceError

    if allowed is not None and job.benchmark not in allowed:
        raise JobError(f"benchmark {job.benchmark!r} is not allowed on this agent "
                       f"(allowed: {', '.join(allowed) or 'none'})")
    try:
        spec = registry.get(job.benchmark)
        spec.make_config(job.mode, dict(job.params), job.division)
    except ReferenceError as exc:
        raise JobError(str(exc)) from None


def data_dir_for(job: JobAssignment, root: Path) -> Path | None:
    """The dataset folder the reference reads, under the agent's data root (None for smoke)."""
    from references import registry

    spec = registry.get(job.benchmark)
    return spec.data_dir(spec.make_config(job.mode, dict(job.params)), root)


class JobExecution:
    """Drives one job through preparing -> running -> reporting and returns its JobResult.

    ``on_state(state, detail)`` is called for every transition and ``on_mllog(lines)`` for
    every batch of raw MLLOG lines; the caller decides where they go (MQTT or a terminal).
    """

    def __init__(self, job: JobAssignment, agent_id: str, workspace: Workspace,
                 seq: Sequence, *,
                 on_state: Callable[[JobState, str | None], None] = lambda s, d: None,
                 on_mllog: Callable[[list[str]], None] = lambda lines: None,
                 on_progress: Callable[[str], None] = lambda line: None) -> None:
        self.job = job
        self.agent_id = agent_id
        self.workspace = workspace
        self.seq = seq
        self.on_state = on_state
        self.on_mllog = on_mllog
        self.on_progress = on_progress
        self.state = JobState.ACCEPTED
        self.cancel = threading.Event()
        self.cancel_reason = "cancelled"

    def move(self, new: JobState, detail: str | None = None) -> None:
        self.state = transition(self.state, new)
        self.on_state(new, detail)

    def request_cancel(self, reason: str) -> None:
        self.cancel_reason = reason
        self.cancel.set()

    def run(self) -> JobResult:
        """Run the job; never raises for a job that fails: the failure is the result."""
        job, started = self.job, time.time()
        self.move(JobState.PREPARING)
        try:
            out_dir = self.workspace.job_dir(job.job_id)
            request = RunRequest(
                benchmark=job.benchmark, mode=job.mode, seed=job.seed, out_dir=out_dir,
                platform=self.workspace.platform, params=dict(job.params),
                data_dir=data_dir_for(job, self.workspace.data_root),
                max_steps=job.max_steps, max_seconds=job.max_seconds, division=job.division)
            process, image_digest = choose_process(job, self.workspace, request,
                                                   self.on_mllog, self.on_progress)
        except MlperfEdgeError as exc:
            return self._finish("failed", started, error=str(exc))
        if self.cancel.is_set():
            return self._finish("cancelled", started, error=self.cancel_reason)
        from agent.power.session import JobPower, log_power
        power = JobPower(self.workspace.power, self.agent_id, self.workspace.power_root,
                         self.workspace.broker)
        try:                            # cool down (state cooling) and idle baseline
            power.prepare(self.cancel, lambda detail: self.move(JobState.COOLING, detail))
        except MlperfEdgeError as exc:
            power.stop()
            return self._finish("failed", started, error=f"power measurement: {exc}")
        if self.cancel.is_set():
            power.stop()
            return self._finish("cancelled", started, error=self.cancel_reason)
        self.move(JobState.RUNNING, " ".join(request.argv()[1:]))
        try:
            ran = process.run(self.cancel)
        finally:
            power.stop()
        power_report, power_lines = power.finish(ran.tracker.window)
        power_count = log_power(power_lines, out_dir / "mllog.txt", self.on_mllog)
        if ran.cancelled:
            status, error = "cancelled", self.cancel_reason
        elif ran.error is not None:
            status, error = "failed", ran.error
        elif ran.tracker.window is None:
            status, error = "failed", "the reference logged no run_start/run_stop pair"
        else:
            status, error = "done", None
        return self._finish(status, started, error=error, exit_code=ran.exit_code,
                            mllog_lines=ran.mllog_lines + power_count,
                            timed_window=ran.tracker.window, power=power_report,
                            outcome=ran.outcome, image_digest=image_digest)

    def _finish(self, status: str, started: float, **fields) -> JobResult:
        if JobState.REPORTING in TRANSITIONS[self.state]:
            self.move(JobState.REPORTING, fields.get("error"))
        else:                 # failed or cancelled while preparing/cooling: the end state itself
            self.move(JobState(status), fields.get("error"))
        return make_result(self.job, self.agent_id, self.seq, status, started, **fields)


def make_result(job: JobAssignment, agent_id: str, seq: Sequence, status: str,
                started: float, **fields) -> JobResult:
    """A JobResult with a fresh idempotency key."""
    return JobResult(job_id=job.job_id, result_id=uuid.uuid4().hex, agent_id=agent_id,
                     campaign_id=job.campaign_id, benchmark=job.benchmark, mode=job.mode,
                     run_index=job.run_index, status=status, started_at=started,
                     finished_at=time.time(), **{k: v for k, v in fields.items()
                                                 if v is not None}, **seq())
