"""The controller's engine: watches the fleet, dispatches queued jobs one per device, records
every event and result, acknowledges results, and declares jobs lost when their agent goes."""

from __future__ import annotations

import logging
import threading
import time

from agent.link import Link
from agent.protocol import (
    AgentStatus,
    ControllerStatus,
    Heartbeat,
    JobAssignment,
    JobEvent,
    JobResult,
    JobState,
    ResultAck,
    Sequence,
    Topics,
    quality_text,
)
from controller.errors import StoreError
from controller.settings import ControllerSettings
from controller.store import Store, redact

log = logging.getLogger("mlperf.controller")

#: The client id of the dispatching controller. One per broker: its persistent session keeps
#: results published while it was away.
CONTROLLER_ID = "mlperf-controller"
VERSION = "1"


class ControllerService:
    """Subscribes to the fleet, keeps the store current, and dispatches; ``tick_s`` is the
    longest a queued job waits for a free device to be noticed."""

    def __init__(self, settings: ControllerSettings, store: Store, *, tick_s: float = 0.5,
                 heartbeat_beats: float = 3.0) -> None:
        self.store = store
        self.topics = t = Topics(settings.prefix)
        self.seq = Sequence()
        self.tick_s = tick_s
        self.heartbeat_beats = heartbeat_beats
        self.link = Link(settings.broker, CONTROLLER_ID, t, persistent=True,
                         will=(t.controller_status(), self._presence("offline")))
        self.link.route(t.all_agent_status(), AgentStatus, self._on_status)
        self.link.route(t.all_heartbeats(), Heartbeat, self._on_heartbeat)
        self.link.route(t.all_job_events(), JobEvent, self._on_event)
        self.link.route(t.all_job_results(), JobResult, self._on_result)
        self.link.on_connected.append(lambda: self.link.publish(
            t.controller_status(), self._presence("online"), retain=True))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._dispatch_loop, name="dispatcher",
                                        daemon=True)

    def _presence(self, state: str) -> ControllerStatus:
        return ControllerStatus(controller_id=CONTROLLER_ID, state=state,
                                store=redact(self.store.url), version=VERSION, **self.seq())

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, retry_for_s: float | None = 30.0, abort: threading.Event | None = None
              ) -> None:
        """Connect, read the fleet's retained presence, then start dispatching."""
        self.link.connect(retry_for_s, abort)
        self.link.barrier()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.link.close(final=(self.topics.controller_status(), self._presence("offline")))

    def wake(self) -> None:
        """Dispatch now rather than at the next tick (e.g. a campaign was just created)."""
        self._wake.set()

    # -- incoming ----------------------------------------------------------------------------
    def _on_status(self, topic: str, status: AgentStatus) -> None:
        if self.topics.id_in(topic) != status.agent_id:
            log.warning("status on %s claims agent %s; ignored", topic, status.agent_id)
            return
        previous = self.store.device_status(status)
        if previous != status.state:
            log.info("device %s is %s%s", status.name, status.state,
                     f" ({status.reason})" if status.reason else "")
        if status.state == "offline":
            self._lose_jobs(status.agent_id, f"agent went offline: {status.reason or 'no reason'}")
        self._wake.set()

    def _on_heartbeat(self, _topic: str, beat: Heartbeat) -> None:
        if self.store.heartbeat(beat) == "offline":
            log.info("device %s is beating again", beat.agent_id)
            self._wake.set()

    def _on_event(self, topic: str, event: JobEvent) -> None:
        if self.topics.id_in(topic) != event.job_id:
            log.warning("event on %s is for job %s; ignored", topic, event.job_id)
            return
        try:
            moved = self.store.apply_event(event)
        except StoreError as exc:
            log.warning("%s; ignored", exc)
            return
        if moved is not None:
            log.info("job %s %s%s", event.job_id, moved.value,
                     f": {event.detail}" if event.detail and moved != JobState.RUNNING else "")
            if moved.terminal:
                self._wake.set()

    def _on_result(self, topic: str, result: JobResult) -> None:
        if self.topics.id_in(topic) != result.job_id:
            log.warning("result on %s is for job %s; ignored", topic, result.job_id)
            return
        try:
            new = self.store.store_result(result)
        except StoreError as exc:
            # Not ours (another controller's store?): no ack, so the agent keeps it spooled.
            log.warning("%s; not acknowledged", exc)
            return
        # Ack duplicates too: the agent resends until an ack reaches it.
        self.link.publish(self.topics.agent_acks(result.agent_id),
                          ResultAck(job_id=result.job_id, result_id=result.result_id,
                                    **self.seq()))
        if new:
            log.info("result for job %s: %s, %s", result.job_id, result.status,
                     result.error or quality_text(result.outcome))
            self._wake.set()

    # -- dispatch ----------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:                          # keep dispatching whatever happens
                log.exception("dispatcher tick failed")
            self._wake.wait(self.tick_s)
            self._wake.clear()

    def _tick(self) -> None:
        for device in self.store.stale_devices(time.time(), self.heartbeat_beats):
            silent_s = time.time() - device.last_seen
            reason = f"no heartbeat for {silent_s:.0f} s"
            log.warning("device %s: %s; marking it offline", device.name, reason)
            self.store.set_offline(device.agent_id, reason)
            self._lose_jobs(device.agent_id, reason)
        if not self.link.connected.is_set():
            return
        for d in self.store.claim_dispatches():
            job = d.job
            self.link.publish(self.topics.agent_jobs(d.agent_id), JobAssignment(
                job_id=job.id, campaign_id=job.campaign_id, benchmark=job.benchmark,
                mode=job.mode, run_index=job.run_index, seed=job.seed, params=job.params,
                max_steps=job.max_steps, max_seconds=job.max_seconds, image=job.image,
                division=job.division,
                **self.seq()))
            log.info("job %s assigned to %s: %s %s run %d", job.id, d.agent_id, job.benchmark,
                     job.mode, job.run_index)
        for campaign_id in self.store.close_finished_campaigns():
            log.info("campaign %s finished", campaign_id)

    def _lose_jobs(self, agent_id: str, reason: str) -> None:
        for job in self.store.active_jobs(agent_id):
            if self.store.mark_lost(job.id, reason):
                log.warning("job %s lost: %s", job.id, reason)
