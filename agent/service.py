"""``mlperf-agent start``: the long-running agent on a device.

It announces itself (retained status, Last Will offline), takes jobs only from the controller
whose key it pinned, runs them one at a time (a measurement shared with another job is
worthless), forwards events, keeps every result in its spool until the controller acknowledges
it, and answers every message it refuses with a Refusal saying why.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque

from agent import presence
from agent.errors import ConfigError, JobError, ProtocolError
from agent.gate import ControllerPin
from agent.identity import Identity, KeyPin, enrolment_proof, instance_id, machine_id
from agent.jobs import JobExecution, Workspace, make_result, validate
from agent.leftovers import reap
from agent.link import Link
from agent.profiles import device
from agent.protocol import (
    AgentStatus,
    CancelJob,
    ControllerStatus,
    Heartbeat,
    JobAssignment,
    JobEvent,
    JobResult,
    JobState,
    Refusal,
    ResultAck,
    Sequence,
    Topics,
    check_id,
)
from agent.runner import KILL_GRACE_S
from agent.settings import AgentSettings
from agent.spool import Spool

log = logging.getLogger("mlperf.agent")


class ReplyBudget:
    """At most ``rate`` refusal replies per second (bursts of ``burst``); the rest are
    counted and reported with the next reply, so a flood of junk never becomes a flood of
    replies."""

    def __init__(self, rate: float = 5.0, burst: int = 20) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = float(burst)
        self._at = time.monotonic()
        self._lock = threading.Lock()
        self.suppressed = 0

    def take(self) -> int | None:
        """None: no budget (the refusal is counted); else how many were suppressed before."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1:
                self.suppressed += 1
                return None
            self._tokens -= 1
            suppressed, self.suppressed = self.suppressed, 0
            return suppressed


class AgentService:
    """The agent's MQTT side plus its single job worker."""

    def __init__(self, settings: AgentSettings) -> None:
        from references import registry

        self.settings = settings
        settings.check_work_dir()
        self.agent_id = check_id(settings.name, "agent name")
        self.topics = Topics(settings.prefix)
        self.seq = Sequence()
        self.benchmarks = [b for b in registry.names()
                           if settings.allow is None or b in settings.allow]
        self.device = device.setup(settings.profile, settings.profiles_dir, settings.containers,
                                   platform=settings.platform)
        self.workspace = Workspace(settings.data_root, settings.work_dir, settings.name,
                                   images_dir=settings.images_dir,
                                   models_dir=settings.models_dir,
                                   models_url=settings.models_url,
                                   power_root=settings.power_root,
                                   broker=settings.broker_connection(),
                                   **device.workspace_fields(self.device,
                                                             getattr(settings, "power", None)))
        self.spool = Spool(settings.work_dir / "spool.sqlite")
        self.boot = self.spool.next_boot()
        self.session = secrets.token_hex(8)
        self.identity, self.new_key = Identity.load_or_create(settings.identity)
        token = settings.enrol_token()
        self.enrolment = enrolment_proof(token, self.agent_id, self.identity.public_b64) \
            if token else None
        explicit = KeyPin.parse(settings.controller_key, "--controller-key") \
            if settings.controller_key else None
        self.instance = instance_id(settings.work_dir)
        self.gate = ControllerPin(settings.work_dir / "identity" / "controller.pin", explicit,
                                  settings.trust_on_first_use,
                                  readable=self.topics.agent_status(self.agent_id))
        if self.gate.pin is None and not settings.trust_on_first_use:
            raise ConfigError("no controller key is pinned and trust on first use is off: "
                              "start with --controller-key SHA256:... (`mlperf-controller key` "
                              "prints it)")
        self.replies = ReplyBudget()
        self._queue: deque[JobAssignment] = deque()
        self._cond = threading.Condition()
        self.current: JobExecution | None = None
        self.stopping = threading.Event()
        # The instance in the client id: two agents given one name both stay connected (the
        # broker would knock one off every few seconds), so the second can be told apart.
        broker = settings.broker_connection()
        # Where the other nodes of a group run reach this one when it is rank 0.
        self.address = settings.address or presence.route_address(broker.url.host,
                                                                   broker.url.port)
        self.link = Link(broker,
                         f"mlperf-agent-{self.instance[:8]}-{self.agent_id}"[:128], self.topics,
                         identity=self.identity, gate=self.gate, persistent=True,
                         will=self._will)
        self.link.route(self.topics.agent_status(self.agent_id), AgentStatus, self._on_own_status)
        self.link.route(self.topics.agent_jobs(self.agent_id), JobAssignment, self._on_job)
        self.link.route(self.topics.agent_control(self.agent_id), CancelJob, self._on_cancel)
        self.link.route(self.topics.agent_acks(self.agent_id), ResultAck, self._on_ack)
        self.link.route(self.topics.controller_status(), ControllerStatus, self._on_controller)
        self.link.on_connected.append(self._on_connected)
        self.link.on_refused.append(self._reply_refusal)
        self._threads: list[threading.Thread] = []
        self._announced = False            # our online status went out (after the name check)
        self._echoed = False               # ... and came back to us through the broker
        self._rival: AgentStatus | None = None
        #: Set when this agent must stop on its own (another agent took its name): ``failure``.
        self.failed = threading.Event()
        self.failure = ""

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, retry_for_s: float | None = None,
              abort: threading.Event | None = None) -> None:
        """Connect (retrying as the link says) and start the worker and heartbeat threads."""
        log.info("agent key %s%s", self.identity.fingerprint,
                 f" (new, in {self.identity.path})" if self.new_key else "")
        if self.enrolment:
            log.info("enrolling with the pre-shared token")
        else:
            log.info("on the controller, approve this device once: "
                     "`mlperf-controller devices approve %s`", self.agent_id)
        log.info("controller key: %s", self.gate.pin.fingerprint if self.gate.pin else
                 "not pinned yet (trust on first use)")
        self._reap()
        self.link.connect(retry_for_s, abort)
        self.link.barrier()                        # our retained status, if any, is in now
        if self._rival is not None:
            self.link.close()                      # clean: no Last Will, nothing announced
            raise ConfigError(self._rival_text(self._rival))
        self._announced = True
        self._on_connected()
        log.info("connected to %s as %s; %d benchmark(s) available, %d result(s) spooled",
                 self.link.broker, self.agent_id, len(self.benchmarks), len(self.spool))
        log.info("device profile %s (%s); container engine: %s",
                 self.device.profile.name if self.device.profile else "none", self.device.why,
                 self.device.engine or "none (jobs run natively)")
        for target, name in ((self._work, "worker"), (self._beat, "heartbeat")):
            thread = threading.Thread(target=target, name=f"agent-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _reap(self) -> None:
        """Before taking any job: stop what an earlier run of this agent left running, and
        report the job it was running as failed (retryable): one job per device, even across
        a crash."""
        crashed = reap(self.settings.work_dir, self.agent_id, self.device.engine)
        if crashed is None or crashed.campaign_id == "local":
            return
        log.warning("job %s was running when this agent last stopped without cleaning up; "
                    "reporting it failed", crashed.job_id)
        self.spool.put(make_result(
            crashed, self.agent_id, self.seq, "failed", time.time(), retryable=True,
            error="the agent stopped while this job ran (crash or kill); its run was ended "
                  "when the agent started again"))

    def stop(self, reason: str = "agent stopped", announce: bool = True) -> None:
        """Cancel queued and running jobs (reported as cancelled), then go offline cleanly.
        ``announce=False``: leave the name's retained presence alone (it is another agent's)."""
        self.stopping.set()
        with self._cond:
            queued = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in queued:
            self._deliver(make_result(job, self.agent_id, self.seq, "cancelled", time.time(),
                                      error=reason, retryable=True), JobState.ACCEPTED)
        if self.current is not None:
            log.info("cancelling job %s: %s", self.current.job.job_id, reason)
            self.current.request_cancel(reason, retryable=True)
        for thread in self._threads:
            thread.join(timeout=KILL_GRACE_S + 5)
        self._await_acks(timeout_s=3.0)
        self.link.close(final=(self.topics.agent_status(self.agent_id),
                               self._status("offline", reason=reason)) if announce else None)
        self.spool.close()
        log.info("offline (%s)", reason)

    # -- presence ----------------------------------------------------------------------------
    def _status(self, state: str, reason: str | None = None,
                last_will: bool = False) -> AgentStatus:
        profile = self.device.profile
        caps = presence.capabilities(
            self.benchmarks, profile=profile.name if profile else None,
            container_engine=self.device.engine,
            training_runtime=profile.training_runtime if profile else None,
            container_platform=self.device.platform, emulated=self.device.emulated,
            address=self.address) \
            if state == "online" else None
        return AgentStatus(agent_id=self.agent_id, name=self.settings.name, state=state,
                           boot=self.boot, session=self.session, instance=self.instance,
                           last_will=last_will,
                           tags=list(self.settings.tags), heartbeat_s=self.settings.heartbeat_s,
                           capabilities=caps, reason=reason, enrolment=self.enrolment,
                           **self.seq())

    def _will(self) -> tuple[str, AgentStatus]:
        """Each connection gets its own session and its own Last Will, so a Last Will kept
        from an earlier connection can never take this one offline."""
        self.session = secrets.token_hex(8)
        return (self.topics.agent_status(self.agent_id),
                self._status("offline", reason="connection lost (Last Will)", last_will=True))

    def _on_connected(self) -> None:
        if not self._announced:                     # start() checks the name first
            return
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
            try:
                beat = Heartbeat(
                    agent_id=self.agent_id, boot=self.boot, session=self.session,
                    job_id=current.job.job_id if current else None,
                    job_state=current.state if current else None,
                    queued_jobs=len(self._queue),
                    queued=[j.job_id for j in list(self._queue)[:64]],
                    temperature_c=presence.temperature_c(),
                    **presence.load(), **self.seq())
            except ValueError as exc:               # a reading out of bounds: say, go on
                log.warning("heartbeat not sent: %s", str(exc).splitlines()[0])
                beat = None
            if beat is not None:
                self.link.publish(self.topics.agent_heartbeat(self.agent_id), beat)
            if self.replies.suppressed:
                self._send_refusal(self.topics.agent_jobs(self.agent_id), "many",
                                   "more messages were refused than are reported one by one")
            for result in self.spool.due(older_than_s=self.settings.resend_s):
                self._publish_result(result)

    # -- incoming ----------------------------------------------------------------------------
    def _on_own_status(self, _topic: str, status: AgentStatus) -> None:
        """Who else announces itself under this agent's name. Before we announce: a rival
        online means we do not start. After: of two agents that announced at once, the one
        whose announcement the broker passed on second gives way."""
        if status.instance == self.instance:
            if status.session == self.session and status.state == "online":
                self._echoed = True
            return
        if status.state != "online" or status.last_will:
            return
        if not self._announced:
            self._rival = status
        elif not self._echoed:
            self.failure = self._rival_text(status)
            log.error("%s", self.failure)
            self.failed.set()
        else:
            log.error("another agent (instance %s, host %s) announced itself as %s after this "
                      "one; the controller refuses it -- give it another --name",
                      status.instance, status.capabilities.hostname if status.capabilities
                      else "?", self.agent_id)

    def _rival_text(self, rival: AgentStatus) -> str:
        host = rival.capabilities.hostname if rival.capabilities else "another machine"
        unique = f"{self.agent_id}-{(machine_id() or self.instance)[:6]}"
        return (f"another agent named {self.agent_id} is online (on {host}, instance "
                f"{rival.instance}): start this one with a name of its own, e.g. --name "
                f"{unique}")

    def _on_controller(self, _topic: str, status: ControllerStatus) -> None:
        """The controller (re)connected: whatever it has not acknowledged goes now, not at the
        next resend tick -- what was sent before it resubscribed (a broker restart) is gone."""
        log.debug("controller %s is %s", status.controller_id, status.state)
        if status.state == "online":
            due = self.spool.due()
            if due:
                log.info("controller online: sending %d unacknowledged result(s) now", len(due))
            for result in due:
                self._publish_result(result)

    def _on_job(self, _topic: str, job: JobAssignment) -> None:
        if not self.spool.take_job(job.job_id):     # QoS 1 redelivery, or a replay
            log.info("job %s already taken here; ignoring it (a redelivery or a replay)",
                     job.job_id)
            return
        try:
            if self.stopping.is_set():
                raise JobError("the agent is stopping")
            if len(self._queue) >= self.settings.max_queued_jobs:
                raise JobError(f"busy: {len(self._queue)} jobs already queued here (at most "
                               f"{self.settings.max_queued_jobs})")
            validate(job, self.settings.allow, self.settings.allow_images)
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

    def _reply_refusal(self, exc: ProtocolError) -> None:
        """Tell the controller why a message addressed to this agent was refused."""
        topic = getattr(exc, "topic", "")
        if topic == self.topics.controller_status():
            return                                  # not addressed to us; nothing to answer
        self._send_refusal(topic, getattr(exc, "code", "malformed"), str(exc),
                           getattr(exc, "claimed_job_id", None), getattr(exc, "verified", False))

    def _send_refusal(self, topic: str, code: str, reason: str, job_id: str | None = None,
                      verified: bool = False) -> None:
        suppressed = self.replies.take()
        if suppressed is None or not self.link.connected.is_set():
            return
        self.link.publish(self.topics.agent_refusals(self.agent_id), Refusal(
            agent_id=self.agent_id, topic=topic[:300], code=code, reason=reason[:500],
            claimed_job_id=job_id, verified=verified, suppressed=suppressed, **self.seq()))

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
                                     error=f"agent error: {exc}"[:4000])
            self._deliver(result, execution.state)
            self.current = None
            log.info("job %s %s%s", job.job_id, result.status,
                     f": {result.error}" if result.error else "")

    def _deliver(self, result: JobResult, state: JobState) -> None:
        """Spool first (durable), then publish, then announce the final state."""
        self.spool.put(result)
        self._publish_result(result)
        if state != result.final_state:
            self._event(result.job_id, state=result.final_state,
                        detail=result.error[:2000] if result.error else None)

    def _publish_result(self, result: JobResult) -> None:
        if self.link.connected.is_set():
            self.link.publish(self.topics.job_result(self.agent_id, result.job_id), result)
            self.spool.mark_sent(result.result_id)

    def _event(self, job_id: str, **fields) -> None:
        if fields.get("detail"):
            fields["detail"] = fields["detail"][:2000]
        self.link.publish(self.topics.job_events(self.agent_id, job_id),
                          JobEvent(job_id=job_id, agent_id=self.agent_id, **fields, **self.seq()))

    def _await_acks(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.spool) and self.link.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
