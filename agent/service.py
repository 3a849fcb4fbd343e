"""``mlperf-agent start``: the long-running agent on a device.

It announces itself (retained status, Last Will offline), takes jobs from its topic, runs them
one at a time (a measurement shared with another job is worthless), forwards events, and
keeps every result in its spool until the controller acknowledges it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from agent import presence
from agent.profiles import device
from agent.errors import JobError
from agent.jobs import JobExecution, Workspace, make_result, validate
from agent.link import Link
from agent.protocol import (
    AgentStatus,
    CancelJob,
    Heartbeat,
    JobAssignment,
    JobEvent,
    JobResult,
    JobState,
    ResultAck,
    Sequence,
    Topics,
    check_id,
)
from agent.runner import KILL_GRACE_S
from agent.settings import AgentSettings
from agent.spool import Spool

log = logging.getLogger("mlperf.agent")

class AgentService:
    """The agent's MQTT side plus its single job worker."""

    def __init__(self, settings: AgentSettings) -> None:
        from references import registry

        self.settings = settings
        self.agent_id = check_id(settings.name, "agent name")
        self.topics = Topics(settings.prefix)
        self.seq = Sequence()
        self.benchmarks = [b for b in registry.names()
                           if settings.allow is None or b in settings.allow]
        self.device = device.setup(settings.profile, settings.profiles_dir, settings.containers)
        self.workspace = Workspace(settings.data_root, settings.work_dir, settings.name,
                                   images_dir=settings.images_dir,
                                   power_root=settings.power_root, broker=settings.broker,
                                   **device.workspace_fields(self.device,
                                                             getattr(settings, "power", None)))
        self.spool = Spool(settings.work_dir / "spool.sqlite")
        self._queue: deque[JobAssignment] = deque()
        self._seen: set[str] = set()
        self._cond = threading.Condition()
        self.current: JobExecution | None = None
        self.stopping = threading.Event()
        self.link = Link(settings.broker, f"mlperf-agent-{self.agent_id}", self.topics,
                         persistent=True,
                         will=(self.topics.agent_status(self.agent_id),
                               self._status("offline", reason="connection lost (Last Will)")))
        self.link.route(self.topics.agent_jobs(self.agent_id), JobAssignment, self._on_job)
        self.link.route(self.topics.agent_control(self.agent_id), CancelJob, self._on_cancel)
        self.link.route(self.topics.agent_acks(self.agent_id), ResultAck, self._on_ack)
        self.link.on_connected.append(self._on_connected)
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, retry_for_s: float | None = None,
              abort: threading.Event | None = None) -> None:
        """Connect (retrying as the link says) and start the worker and heartbeat threads."""
        self.link.connect(retry_for_s, abort)
        log.info("connected to %s as %s; %d benchmark(s) available, %d result(s) spooled",
                 self.link.url, self.agent_id, len(self.benchmarks), len(self.spool))
        log.info("device profile %s (%s); container engine: %s",
                 self.device.profile.name if self.device.profile else "none", self.device.why,
                 self.device.engine or "none (jobs run natively)")
        for target, name in ((self._work, "worker"), (self._beat, "heartbeat")):
            thread = threading.Thread(target=target, name=f"agent-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, reason: str = "agent stopped") -> None:
        """Cancel queued and running jobs (reported as cancelled), then go offline cleanly."""
        self.stopping.set()
        with self._cond:
            queued = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in queued:
            self._deliver(make_result(job, self.agent_id, self.seq, "cancelled", time.time(),
                                      error=reason), JobState.ACCEPTED)
        if self.current is not None:
            log.info("cancelling job %s: %s", self.current.job.job_id, reason)
            self.current.request_cancel(reason)
        for thread in self._threads:
            thread.join(timeout=KILL_GRACE_S + 5)
        self._await_acks(timeout_s=3.0)
        self.link.close(final=(self.topics.agent_status(self.agent_id),
                               self._status("offline", reason=reason)))
        self.spool.close()
        log.info("offline (%s)", reason)

    # -- presence ----------------------------------------------------------------------------
    def _status(self, state: str, reason: str | None = None) -> AgentStatus:
        caps = presence.capabilities(
            self.benchmarks, profile=self.device.profile.name if self.device.profile else None,
            container_engine=self.device.engine) if state == "online" else None
        return AgentStatus(agent_id=self.agent_id, name=self.settings.name, state=state,
                           tags=list(self.settings.tags), heartbeat_s=self.settings.heartbeat_s,
                           capabilities=caps, reason=reason, **self.seq())

    def _on_connected(self) -> None:
        self.link.publish(self.topics.agent_status(self.agent_id), self._status("online"),
                          retain=True)
        for result in self.spool.due():            # whatever waited while we were away
            self._publish_result(result)

    def _beat(self) -> None:
        presence.load()                             # primes psutil's CPU % baseline
        while not self.stopping.wait(self.settings.heartbeat_s):
            if not self.link.connected.is_set():
                continue
            current = self.current
            self.link.publish(self.topics.agent_heartbeat(self.agent_id), Heartbeat(
                agent_id=self.agent_id, job_id=current.job.job_id if current else None,
                job_state=current.state if current else None, queued_jobs=len(self._queue),
                temperature_c=presence.temperature_c(), **presence.load(), **self.seq()))
            for result in self.spool.due(older_than_s=self.settings.resend_s):
                self._publish_result(result)

    # -- incoming ----------------------------------------------------------------------------
    def _on_job(self, _topic: str, job: JobAssignment) -> None:
        if job.job_id in self._seen:                # QoS 1 redelivery
            log.debug("job %s already taken; ignoring the duplicate", job.job_id)
            return
        self._seen.add(job.job_id)
        try:
            if self.stopping.is_set():
                raise JobError("the agent is stopping")
            validate(job, self.settings.allow)
        except JobError as exc:
            log.warning("refused job %s: %s", job.job_id, exc)
            self._deliver(make_result(job, self.agent_id, self.seq, "failed", time.time(),
                                      error=str(exc)), JobState.ASSIGNED)
            return
        # Announce before queueing: the worker's "preparing" must not overtake "accepted".
        self._event(job.job_id, state=JobState.ACCEPTED,
                    detail=f"{job.benchmark} {job.mode} run {job.run_index}")
        with self._cond:
            self._queue.append(job)
            self._cond.notify()
        log.info("accepted job %s: %s %s run %d", job.job_id, job.benchmark, job.mode,
                 job.run_index)

    def _on_cancel(self, _topic: str, cancel: CancelJob) -> None:
        with self._cond:
            queued = next((j for j in self._queue if j.job_id == cancel.job_id), None)
            if queued:
                self._queue.remove(queued)
        if queued:
            self._deliver(make_result(queued, self.agent_id, self.seq, "cancelled", time.time(),
                                      error=cancel.reason), JobState.ACCEPTED)
        elif self.current is not None and self.current.job.job_id == cancel.job_id:
            log.info("cancelling job %s: %s", cancel.job_id, cancel.reason)
            self.current.request_cancel(cancel.reason)
        else:
            log.info("cancel for job %s, which is not queued or running here", cancel.job_id)

    def _on_ack(self, _topic: str, ack: ResultAck) -> None:
        if self.spool.ack(ack.result_id):
            log.info("result of job %s acknowledged", ack.job_id)

    # -- work --------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self.stopping.is_set():
                    self._cond.wait()
                if self.stopping.is_set():
                    return
                job = self._queue.popleft()
            execution = JobExecution(
                job, self.agent_id, self.workspace, self.seq,
                on_state=lambda s, d, j=job.job_id: self._event(j, state=s, detail=d),
                on_mllog=lambda lines, j=job.job_id: self._event(j, mllog=lines))
            self.current = execution
            try:
                result = execution.run()
            except Exception as exc:               # a bug must not lose the job silently
                log.exception("job %s crashed the agent's worker", job.job_id)
                execution.state = JobState.REPORTING
                result = make_result(job, self.agent_id, self.seq, "failed", time.time(),
                                     error=f"agent error: {exc}")
            self._deliver(result, execution.state)
            self.current = None
            log.info("job %s %s%s", job.job_id, result.status,
                     f": {result.error}" if result.error else "")

    def _deliver(self, result: JobResult, state: JobState) -> None:
        """Spool first (durable), then publish, then announce the final state."""
        self.spool.put(result)
        self._publish_result(result)
        if state != result.final_state:
            self._event(result.job_id, state=result.final_state, detail=result.error)

    def _publish_result(self, result: JobResult) -> None:
        if self.link.connected.is_set():
            self.link.publish(self.topics.job_result(result.job_id), result)
            self.spool.mark_sent(result.result_id)

    def _event(self, job_id: str, **fields) -> None:
        self.link.publish(self.topics.job_events(job_id),
                          JobEvent(job_id=job_id, agent_id=self.agent_id, **fields, **self.seq()))

    def _await_acks(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.spool) and self.link.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
