"""One job, start to finish, on this device: validate, prepare, run the reference, build the
result. Shared by the MQTT service (``mlperf-agent start``) and the local ``mlperf-agent run``,
so both produce the same result."""

from __future__ import annotations

import fnmatch
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.container import choose_process
from agent.errors import InfrastructureError, JobError, MlperfEdgeError
from agent.leftovers import RunningMarker
from agent.power.config import PowerConfig
from agent.protocol import (
    TRANSITIONS,
    JobAssignment,
    JobResult,
    JobState,
    Sequence,
    transition,
)
from agent.runner import PEER_LOST_EXIT, RunRequest


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
    # The platform of the containers jobs run in (None: the host's); another one is emulated.
    container_platform: str | None = None
    # How power is measured (the device profile's ``power:`` section), where /sys is (a
    # host's root mounted in a container), and the broker smart plugs publish to (a URL, or
    # an agent.link.Broker with the agent's credentials).
    power: PowerConfig = field(default_factory=PowerConfig)
    power_root: Path = Path("/")
    broker: object | None = None
    # litert jobs: the model artifacts (<sha256>.tflite + .json), sideloaded or fetched
    models_dir: Path | None = None
    models_url: str | None = None             # the controller's model server, to fetch from

    def models(self) -> Path:
        return self.models_dir or self.work_dir / "models"

    def job_dir(self, job_id: str) -> Path:
        return self.work_dir / "jobs" / job_id


def validate(job: JobAssignment, allowed: list[str] | None = None,
             allow_images: list[str] | None = None) -> None:
    """Refuse a job this device must not run: unknown or disallowed benchmark, an image the
    operator did not allow, a mode the reference lacks, or parameters its config rejects
    (checked without importing torch)."""
    from references import registry
    from references.common.errors import ReferenceError

    if allowed is not None and job.benchmark not in allowed:
        raise JobError(f"benchmark {job.benchmark!r} is not allowed on this agent "
                       f"(allowed: {', '.join(allowed) or 'none'})")
    if job.image is not None and allow_images is not None and not image_allowed(
            job.image, job.image_digest, allow_images):
        raise JobError(f"image {job.image} is not allowed on this agent (allowed: "
                       f"{', '.join(allow_images)}; add it with --allow-image)")
    try:
        spec = registry.get(job.benchmark)
        spec.make_config(job.mode, dict(job.params), job.division)
    except ReferenceError as exc:
        raise JobError(str(exc)) from None
    if problem := spec.job_path_problem(dict(job.params)):
        raise JobError(problem)
    if job.group is not None:
        try:
            spec.check_group(spec.make_config(job.mode, dict(job.params), job.division),
                             job.group.world_size, job.runtime)
        except ReferenceError as exc:
            raise JobError(str(exc)) from None
    if job.runtime == "litert":
        from references.litert import BENCHMARKS
        if job.benchmark not in BENCHMARKS:
            raise JobError(f"{job.benchmark} cannot run in the LiteRT interpreter yet (it can: "
                           f"{', '.join(BENCHMARKS)})")


def image_allowed(ref: str, digest: str | None, patterns: list[str]) -> bool:
    """True when ``ref`` matches one of ``patterns`` (shell patterns over the image reference,
    e.g. ``lab-registry:5000/mlperf-edge/*``) or ``digest`` is one listed (``sha256:...``)."""
    for pattern in patterns:
        if pattern.startswith("sha256:"):
            if digest == pattern:
                return True
        elif fnmatch.fnmatchcase(ref, pattern):
            return True
    return False


def check_dataset(job: JobAssignment, data_dir: Path | None, root: Path) -> None:
    """JobError, with what was found instead, unless the dataset the job reads is in place
    (the reference's own cheap check: folders and files, nothing is read)."""
    from references import registry
    from references.common.errors import ReferenceError

    spec = registry.get(job.benchmark)
    try:
        spec.check_data(spec.make_config(job.mode, dict(job.params), job.division), data_dir)
    except ReferenceError as exc:
        found = ""
        if data_dir is not None and not data_dir.exists():
            held = sorted(p.name for p in root.iterdir() if p.is_dir())[:12] \
                if root.is_dir() else []
            found = (f" (the data root {root} holds: {', '.join(held)})" if held else
                     f" (the data root {root} is empty or missing: --data-root)")
        raise JobError(f"dataset: {exc}{found}") from None


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
        self.cancel_retryable = False

    def move(self, new: JobState, detail: str | None = None) -> None:
        self.state = transition(self.state, new)
        self.on_state(new, detail)

    def request_cancel(self, reason: str, retryable: bool = False) -> None:
        """Stop the job. ``retryable``: the device stopped it (the agent is stopping), not the
        operator -- the campaign may run it again."""
        self.cancel_reason = reason
        self.cancel_retryable = retryable
        self.cancel.set()

    def run(self) -> JobResult:
        """Run the job; never raises for a job that fails: the failure is the result. While it
        runs, ``running.json`` in the work folder names it (see agent.leftovers)."""
        marker = RunningMarker(self.workspace.work_dir)
        marker.begin(self.job)
        try:
            return self._run(marker)
        finally:
            marker.end()

    def _run(self, marker: RunningMarker) -> JobResult:
        job, started = self.job, time.time()
        self.move(JobState.PREPARING)
        try:
            out_dir = self.workspace.job_dir(job.job_id)
            data_dir = data_dir_for(job, self.workspace.data_root)
            check_dataset(job, data_dir, self.workspace.data_root)   # before any cool-down
            if job.runtime == "litert":            # the model here, checked, before any run
                from agent.models_fetch import ensure_model
                ensure_model(job.model_sha256, self.workspace.models(),
                             self.workspace.models_url)
            request = RunRequest(
                benchmark=job.benchmark, mode=job.mode, seed=job.seed, out_dir=out_dir,
                platform=self.workspace.platform, params=dict(job.params),
                data_dir=data_dir,
                max_steps=job.max_steps, max_seconds=job.max_seconds, division=job.division,
                runtime=job.runtime, models_dir=self.workspace.models(),
                model_sha256=job.model_sha256, group=job.group)
            process, placed = choose_process(job, self.workspace, request,
                                             self.on_mllog, self.on_progress)
            process.on_started = marker.started
        except MlperfEdgeError as exc:
            return self._finish("failed", started, error=str(exc),
                                retryable=isinstance(exc, InfrastructureError))
        if self.cancel.is_set():
            return self._finish("cancelled", started, error=self.cancel_reason,
                                retryable=self.cancel_retryable)
        from agent.power.session import JobPower, log_power
        power = JobPower(self.workspace.power, self.agent_id, self.workspace.power_root,
                         self.workspace.broker)
        try:                            # cool down (state cooling) and idle baseline
            power.prepare(self.cancel, lambda detail: self.move(JobState.COOLING, detail))
        except MlperfEdgeError as exc:
            power.stop()
            return self._finish("failed", started, error=f"power measurement: {exc}",
                                retryable=True)
        if self.cancel.is_set():
            power.stop()
            return self._finish("cancelled", started, error=self.cancel_reason,
                                retryable=self.cancel_retryable)
        self.move(JobState.RUNNING, " ".join(request.argv()[1:]))
        from agent.device_state import snapshot
        device_state = [snapshot("start", self.workspace.power_root)]
        try:
            ran = process.run(self.cancel)
        finally:
            power.stop()
            device_state.append(snapshot("end", self.workspace.power_root))
        power_report, power_lines = power.finish(ran.tracker.window)
        try:
            power_count = log_power(power_lines, out_dir / "mllog.txt", self.on_mllog)
        except MlperfEdgeError as exc:
            power_count, ran.error = 0, ran.error or str(exc)
        problem = None if ran.cancelled or ran.tracker.window is None else \
            implausible(job, ran, started, time.time())
        retryable = False
        if ran.cancelled:
            status, error = "cancelled", self.cancel_reason
            retryable = self.cancel_retryable
        elif problem is not None:                  # the run lied about itself: say so first
            status, error = "failed", f"refused the run's own report: {problem}"
            ran.outcome = None
        elif ran.error is not None:
            status, error = "failed", ran.error
            # The engine refused to start it; its group broke or never met (a peer gone); or,
            # in a group, it was killed from outside (the node lost, not the job at fault).
            retryable = ran.exit_code in (125, PEER_LOST_EXIT) or (
                job.group is not None and ran.exit_code is not None and (
                    ran.exit_code < 0 or ran.exit_code in (137, 143)))
        elif ran.tracker.window is None:
            status, error = "failed", "the reference logged no run_start/run_stop pair"
        else:
            status, error = "done", None
        return self._finish(status, started, error=error, exit_code=ran.exit_code,
                            mllog_lines=ran.mllog_lines + power_count,
                            timed_window=ran.tracker.window, power=power_report,
                            outcome=ran.outcome, image_digest=placed.image_digest,
                            platform=placed.platform, emulated=placed.emulated or None,
                            retryable=retryable, device_state=device_state)

    def _finish(self, status: str, started: float, **fields) -> JobResult:
        if JobState.REPORTING in TRANSITIONS[self.state]:
            self.move(JobState.REPORTING, fields.get("error"))
        else:                 # failed or cancelled while preparing/cooling: the end state itself
            self.move(JobState(status), fields.get("error"))
        return make_result(self.job, self.agent_id, self.seq, status, started, **fields)


#: Slack between the agent's clock and the timed window the run logged, s.
WINDOW_SLACK_S = 2.0


def implausible(job: JobAssignment, ran, started: float, ended: float) -> str | None:
    """Why what the run reported cannot be true (None when it can): the MLLOG lines and
    result.json come from the run's own process -- in a container, untrusted -- so the timed
    window must lie inside the time the agent saw it run, and result.json must describe this
    job and agree with the window."""
    window = ran.tracker.window
    if window.run_stop_ms < window.run_start_ms:
        return "run_stop is before run_start"
    if (window.run_start_ms / 1000 < started - WINDOW_SLACK_S
            or window.run_stop_ms / 1000 > ended + WINDOW_SLACK_S):
        return "the timed window lies outside the time the run took on this device"
    out = ran.outcome
    if out is None:
        return None
    if (out.benchmark, out.mode, out.seed) != (job.benchmark, job.mode, job.seed):
        return (f"result.json describes {out.benchmark} {out.mode} seed {out.seed}, not this "
                f"job's {job.benchmark} {job.mode} seed {job.seed}")
    rank, world = (job.group.rank, job.group.world_size) if job.group else (0, 1)
    if (out.rank, out.world_size) != (rank, world):
        return (f"result.json describes rank {out.rank} of {out.world_size} node(s), not this "
                f"job's rank {rank} of {world}")
    if abs(out.timed_window_s - window.duration_s) > WINDOW_SLACK_S:
        return (f"result.json says the timed window was {out.timed_window_s:.3f} s; the MLLOG "
                f"lines say {window.duration_s:.3f} s")
    return None


def make_result(job: JobAssignment, agent_id: str, seq: Sequence, status: str,
                started: float, **fields) -> JobResult:
    """A JobResult with a fresh idempotency key."""
    return JobResult(job_id=job.job_id, result_id=uuid.uuid4().hex, agent_id=agent_id,
                     campaign_id=job.campaign_id, benchmark=job.benchmark, mode=job.mode,
                     run_index=job.run_index, status=status, started_at=started,
                     finished_at=time.time(), **{k: v for k, v in fields.items()
                                                 if v is not None}, **seq())
