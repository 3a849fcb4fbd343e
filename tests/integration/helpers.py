"""A test-side MQTT peer built on the real contract: it plays the controller's part by hand,
signing with the session's controller key (which the agents pin)."""

from __future__ import annotations

import os
import secrets
import threading

from agent.gate import Gate
from agent.identity import Identity
from agent.link import Link
from agent.protocol import (
    AgentStatus,
    JobAssignment,
    JobEvent,
    JobResult,
    JobState,
    Refusal,
    ResultAck,
    Sequence,
    Topics,
)
from tests.conftest import wait_for


class AnySigned(Gate):
    """Admits whatever is validly signed, fresh and not replayed, whoever signed it: the
    peer checks the agents' signatures without playing enrolment."""

    def known_key(self, topic, env) -> bool:
        return True


class Peer:
    """Records every status, event, result and refusal under a prefix; sends jobs and acks."""

    def __init__(self, url: str, prefix: str, identity: Identity | None = None) -> None:
        self.topics = Topics(prefix)
        self.seq = Sequence()
        self.identity = identity or Identity.load(os.environ["MLPERF_CONTROLLER_IDENTITY"])
        self.statuses: list[AgentStatus] = []
        self.events: list[JobEvent] = []
        self.results: list[JobResult] = []
        self.refusals: list[Refusal] = []
        self._lock = threading.Lock()
        self.link = Link(url, f"test-peer-{secrets.token_hex(3)}", self.topics,
                         identity=self.identity, gate=AnySigned())
        self.link.route(self.topics.all_agent_status(), AgentStatus, self._keep(self.statuses))
        self.link.route(self.topics.all_job_events(), JobEvent, self._keep(self.events))
        self.link.route(self.topics.all_job_results(), JobResult, self._keep(self.results))
        self.link.route(self.topics.all_refusals(), Refusal, self._keep(self.refusals))
        self.link.connect(10)

    def _keep(self, into: list):
        def handler(_topic, message):
            with self._lock:
                into.append(message)
        return handler

    def close(self) -> None:
        self.link.close()

    # -- acting ------------------------------------------------------------------------------
    def send_job(self, agent_id: str, job_id: str, benchmark: str = "ncf", mode: str = "smoke",
                 **fields) -> JobAssignment:
        """A signed assignment, as the controller sends it."""
        job = JobAssignment(job_id=job_id, campaign_id="ctest", benchmark=benchmark, mode=mode,
                            run_index=1, seed=fields.pop("seed", 1), **fields, **self.seq())
        self.link.publish(self.topics.agent_jobs(agent_id), job).wait_for_publish(5)
        return job

    def send_raw(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Bytes as they are: no envelope, no signature (a forger's view of the broker)."""
        self.link.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def ack(self, result: JobResult) -> None:
        self.link.publish(self.topics.agent_acks(result.agent_id),
                          ResultAck(job_id=result.job_id, result_id=result.result_id,
                                    **self.seq())).wait_for_publish(5)

    # -- waiting -----------------------------------------------------------------------------
    def status_of(self, agent_id: str) -> AgentStatus | None:
        with self._lock:
            mine = [s for s in self.statuses if s.agent_id == agent_id]
        return mine[-1] if mine else None

    def wait_state(self, agent_id: str, state: str, timeout_s: float = 30) -> AgentStatus:
        return wait_for(lambda: (s := self.status_of(agent_id)) and s.state == state and s,
                        timeout_s, what=f"{agent_id} {state}")

    def results_for(self, job_id: str) -> list[JobResult]:
        with self._lock:
            return [r for r in self.results if r.job_id == job_id]

    def wait_result(self, job_id: str, timeout_s: float = 90, count: int = 1) -> JobResult:
        return wait_for(lambda: len(self.results_for(job_id)) >= count
                        and self.results_for(job_id)[-1], timeout_s, what=f"result of {job_id}")

    def states(self, job_id: str) -> list[JobState]:
        with self._lock:
            return [e.state for e in self.events if e.job_id == job_id and e.state]

    def wait_job_state(self, job_id: str, state: JobState, timeout_s: float = 60) -> None:
        wait_for(lambda: state in self.states(job_id), timeout_s,
                 what=f"job {job_id} {state.value}")

    def mllog(self, job_id: str) -> list[str]:
        with self._lock:
            return [line for e in self.events if e.job_id == job_id for line in e.mllog]


class SilentAgent:
    """A device that enrols (with the session's token) and heartbeats like an agent, but
    never takes a job: what a controller sees when assignments vanish on the way."""

    def __init__(self, url: str, prefix: str, name: str) -> None:
        from agent.identity import enrolment_proof
        from agent.protocol import Capabilities, Heartbeat

        self.topics, self.seq, self.name = Topics(prefix), Sequence(), name
        self.identity = Identity.generate()
        session = secrets.token_hex(8)
        self.link = Link(url, f"silent-{secrets.token_hex(3)}", self.topics,
                         identity=self.identity, gate=AnySigned())
        self.link.connect(10)
        caps = Capabilities(hostname=name, os="Linux", arch="x86_64", cpu_count=2,
                            memory_total_bytes=1 << 30, python="3.11", benchmarks=["ncf"],
                            agent_version="test")
        status = AgentStatus(agent_id=name, name=name, state="online", boot=1, session=session,
                             heartbeat_s=1, capabilities=caps, **self.seq(),
                             enrolment=enrolment_proof(os.environ["MLPERF_ENROL_TOKEN"], name,
                                                       self.identity.public_b64))
        self.link.publish(self.topics.agent_status(name), status, retain=True)
        self._stop = threading.Event()

        def beat() -> None:
            while not self._stop.wait(1.0):
                self.link.publish(self.topics.agent_heartbeat(name), Heartbeat(
                    agent_id=name, boot=1, session=session, cpu_percent=1.0,
                    memory_percent=1.0, **self.seq()))

        self._thread = threading.Thread(target=beat, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self.link.close()
