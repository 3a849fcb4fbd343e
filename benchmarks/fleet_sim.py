"""Simulated agents for benchmarks/fleet_scale.py: each its own MQTT connection speaking the
real wire contract (agent.protocol messages, sealed by agent.envelope with the agent's own
Ed25519 key, enrolled with the lab's pre-shared token): a retained online status with a Last
Will, heartbeats every ``heartbeat_s``, and for each job assigned the events and result an
agent sends (accepted, preparing, running, reporting, then the result, re-sent every 30 s until
acknowledged, as agent.spool does).

What they skip, and so what the figures leave out: verifying the controller's signature on an
assignment (agent-side CPU, not the controller's), training (a job "runs" ``job_s`` seconds),
and power sampling. A worker process drives its agents from one thread (see Worker)."""

from __future__ import annotations

import secrets
import selectors
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from agent.envelope import open_body, open_envelope, seal
from agent.identity import Identity, enrolment_proof
from agent.protocol import (
    AgentStatus,
    Capabilities,
    Heartbeat,
    JobAssignment,
    JobEvent,
    JobResult,
    JobState,
    ResultAck,
    Sequence,
    Topics,
)
from agent.spool import MAX_BACKOFF

RESEND_S = 30.0                      # agent.settings' resend interval for unacknowledged results


@dataclass
class JobTimes:
    """One job as its simulated agent saw it (seconds, time.time())."""

    job_id: str
    sent_at: float                   # the controller's sent_at on the assignment
    received_at: float
    result_at: float | None = None
    acked_at: float | None = None
    resends: int = 0


@dataclass
class SimStats:
    heartbeats_sent: int = 0
    connects: int = 0
    jobs: dict[str, JobTimes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SimAgent:
    """One simulated agent (see the module docstring)."""

    def __init__(self, name: str, host: str, port: int, prefix: str, token: str,
                 heartbeat_s: float, job_s: float, stats: SimStats) -> None:
        self.name, self.agent_id = name, name
        self.topics = Topics(prefix)
        self.identity = Identity.generate()
        self.session, self.instance = secrets.token_hex(8), secrets.token_hex(8)
        self.seq = Sequence()
        self.heartbeat_s, self.job_s, self.stats = heartbeat_s, job_s, stats
        self.enrolment = enrolment_proof(token, self.agent_id, self.identity.public_b64)
        self.lock = threading.Lock()        # job and pending: the paho thread and tick() share
        self.job: tuple[JobAssignment, float] | None = None
        self.announced = False
        self.pending: dict[str, tuple[JobResult, float, int]] = {}  # result id -> (result, sent, n)
        self.next_beat = time.monotonic() + heartbeat_s * (0.2 + 0.8 * secrets.randbelow(1000)
                                                           / 1000)
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{name}",
                        clean_session=True, protocol=mqtt.MQTTv311)
        c.will_set(self.topics.agent_status(self.agent_id),
                   self._sealed(self._status("offline", last_will=True),
                                self.topics.agent_status(self.agent_id)), qos=1, retain=True)
        c.on_connect, c.on_message = self._on_connect, self._on_message
        self.client, self.address = c, (host, port)
        self.sock = None                    # registered with the worker's selector
        self.retry_at = 0.0                 # when to reconnect after a lost connection
        self.writing = False                # registered for EVENT_WRITE too
        self.stats_connected = False        # connected once: later, reconnect()

    # -- the wire ----------------------------------------------------------------------------
    def _sealed(self, message, topic: str) -> bytes:
        return seal(message, topic, self.identity)

    def _publish(self, topic: str, message, retain: bool = False) -> None:
        self.client.publish(topic, self._sealed(message, topic), qos=1, retain=retain)

    def _status(self, state: str, last_will: bool = False) -> AgentStatus:
        caps = Capabilities(hostname=self.name, os="Linux 6.1", arch="aarch64", cpu_count=4,
                            memory_total_bytes=8 * 2 ** 30, python="3.11.2", torch="2.13.0",
                            benchmarks=["ncf", "resnet", "sentiment"], agent_version="0.1.0",
                            profile="raspberry-pi-5") \
            if state == "online" else None
        return AgentStatus(agent_id=self.agent_id, name=self.name, state=state, boot=1,
                           session=self.session, instance=self.instance, last_will=last_will,
                           tags=["sim"], heartbeat_s=self.heartbeat_s, capabilities=caps,
                           enrolment=self.enrolment, **self.seq())

    def _on_connect(self, client, userdata, flags, reason, properties=None) -> None:
        if reason.is_failure:
            return
        with self.stats.lock:
            self.stats.connects += 1
        client.subscribe([(self.topics.agent_jobs(self.agent_id), 1),
                          (self.topics.agent_acks(self.agent_id), 1)])
        self._publish(self.topics.agent_status(self.agent_id), self._status("online"),
                      retain=True)
        self.announced = True          # as a real agent: heartbeats only after the status

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self._handle(msg)

    def _handle(self, msg) -> None:
        now = time.time()
        try:
            env = open_envelope(msg.payload, msg.topic)
            if msg.topic == self.topics.agent_jobs(self.agent_id):
                job = open_body(env, JobAssignment, msg.topic)
                with self.stats.lock:
                    if job.job_id in self.stats.jobs:
                        return                            # a duplicate delivery
                    self.stats.jobs[job.job_id] = JobTimes(job.job_id, job.sent_at, now)
                self._event(job, JobState.ACCEPTED)
                self.job = (job, time.monotonic())
            elif msg.topic == self.topics.agent_acks(self.agent_id):
                ack = open_body(env, ResultAck, msg.topic)
                if self.pending.pop(ack.result_id, None) is not None:
                    with self.stats.lock:
                        self.stats.jobs[ack.job_id].acked_at = now
        except Exception:  # noqa: BLE001  (a simulated agent ignores what it cannot read)
            return

    def _event(self, job: JobAssignment, state: JobState) -> None:
        self._publish(self.topics.job_events(self.agent_id, job.job_id),
                      JobEvent(job_id=job.job_id, agent_id=self.agent_id, state=state,
                               **self.seq()))

    # -- driven by the worker's clock ------------------------------------------------------------
    def tick(self, now: float) -> None:
        with self.lock:
            self._tick(now)

    def _tick(self, now: float) -> None:
        if not self.announced:
            return                     # a beat queued before the status would go first
        if now >= self.next_beat:
            self.next_beat += self.heartbeat_s
            job = self.job[0] if self.job else None
            self._publish(self.topics.agent_heartbeat(self.agent_id), Heartbeat(
                agent_id=self.agent_id, boot=1, session=self.session,
                job_id=job.job_id if job else None,
                job_state=JobState.RUNNING if job else None, cpu_percent=12.5,
                memory_percent=31.0, temperature_c=48.0, **self.seq()))
            with self.stats.lock:
                self.stats.heartbeats_sent += 1
        if self.job is not None and now - self.job[1] >= self.job_s:
            job, started = self.job
            for state in (JobState.PREPARING, JobState.RUNNING, JobState.REPORTING):
                self._event(job, state)
            finished = time.time()
            result = JobResult(job_id=job.job_id, result_id=f"r-{job.job_id}",
                               agent_id=self.agent_id, campaign_id=job.campaign_id,
                               benchmark=job.benchmark, mode=job.mode, run_index=job.run_index,
                               status="done", started_at=finished - self.job_s,
                               finished_at=finished, exit_code=0, **self.seq())
            self.pending[result.result_id] = (result, now, 1)
            self._publish(self.topics.job_result(self.agent_id, job.job_id), result)
            with self.stats.lock:
                self.stats.jobs[job.job_id].result_at = finished
            self.job = None
        for result_id, (result, sent, sends) in list(self.pending.items()):
            if now - sent >= RESEND_S * min(2 ** (sends - 1), MAX_BACKOFF):   # as agent.spool
                self.pending[result_id] = (result, now, sends + 1)
                self._publish(self.topics.job_result(self.agent_id, result.job_id), result)
                with self.stats.lock:
                    self.stats.jobs[result.job_id].resends += 1

    def stop(self) -> None:
        if self.sock is not None:
            self.client.disconnect()                   # clean: the will is not sent


class Worker:
    """Many simulated agents in one thread: paho's external-loop API (``loop_read``,
    ``loop_write``, ``loop_misc``) over one epoll selector. A thread per agent (paho's
    ``loop_start``) spent the 2 cores on scheduling past ~1,000 agents, and paho's own
    ``select()`` cannot watch a descriptor past 1024."""

    def __init__(self, agents: list[SimAgent]) -> None:
        self.agents = agents
        self.selector = selectors.DefaultSelector()

    def connect(self, agent: SimAgent, now: float) -> None:
        try:
            if agent.stats_connected:
                agent.client.reconnect()
            else:
                agent.client.connect(*agent.address, keepalive=60)
                agent.stats_connected = True
        except OSError:
            agent.retry_at = now + 1.0
            return
        agent.sock = agent.client.socket()
        agent.writing = False
        self.selector.register(agent.sock, selectors.EVENT_READ, agent)

    def drop(self, agent: SimAgent, now: float) -> None:
        if agent.sock is not None:
            try:
                self.selector.unregister(agent.sock)
            except (KeyError, ValueError):
                pass
        agent.sock, agent.retry_at = None, now + 1.0

    def run(self, stop) -> None:
        start = time.monotonic()
        for agent in self.agents:
            self.connect(agent, start)
        last_misc = start
        while not stop.is_set():
            for key, mask in self.selector.select(timeout=0.05):
                agent = key.data
                rc = 0
                if mask & selectors.EVENT_READ:
                    rc = agent.client.loop_read(10)
                if not rc and mask & selectors.EVENT_WRITE:
                    rc = agent.client.loop_write()
                if rc:
                    self.drop(agent, time.monotonic())
            now = time.monotonic()
            misc = now - last_misc >= 1.0
            for agent in self.agents:
                if agent.sock is None:
                    if now >= agent.retry_at:
                        self.connect(agent, now)
                    continue
                agent.tick(now)
                if misc and agent.client.loop_misc():
                    self.drop(agent, now)
                    continue
                wants = agent.client.want_write()
                if wants != agent.writing:
                    agent.writing = wants
                    self.selector.modify(agent.sock, selectors.EVENT_READ
                                         | (selectors.EVENT_WRITE if wants else 0), agent)
            if misc:
                last_misc = now
        for agent in self.agents:
            agent.stop()
            if agent.sock is not None:
                agent.client.loop_write()


def run_worker(names: list[str], host: str, port: int, prefix: str, token: str,
               heartbeat_s: float, job_s: float, stop: threading.Event | None, out) -> None:
    """A worker process: start ``names`` as agents, drive them until ``stop`` (a
    multiprocessing Event), then put a summary of its SimStats on ``out``."""
    stats = SimStats()
    agents = [SimAgent(n, host, port, prefix, token, heartbeat_s, job_s, stats) for n in names]
    Worker(agents).run(stop)
    with stats.lock:
        out.put({"heartbeats_sent": stats.heartbeats_sent, "connects": stats.connects,
                 "jobs": [vars(j) for j in stats.jobs.values()]})
