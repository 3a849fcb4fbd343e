"""What the serving controller's writer does with each batch of what it heard: store it in
arrival order (heartbeats and token enrolments a group at a time) inside one transaction, and
return the effects -- acks, log lines, wakes -- to run once it is committed. Mixed into
controller.service.ControllerService, whose store, link, trust and log lines it uses."""

from __future__ import annotations

import logging

from agent.display import quality_text
from agent.identity import fingerprint
from agent.protocol import AgentStatus, JobEvent, JobResult, JobState, Message, ResultAck
from controller.errors import StoreError

log = logging.getLogger("mlperf.controller")


class Writes:
    """The store side of the writer (see the module docstring)."""

    def _store_all(self, batch: list[tuple[str, Message]]) -> tuple[list, int]:
        """Store ``batch`` in arrival order (consecutive heartbeats with one call); returns
        the effects to run once it is committed and the heartbeats applied."""
        effects: list = []
        applied = i = 0
        # Token enrolments first, as one group (each comes before its device's status and
        # beats; interleaved with them, they were groups of one), then the rest in order.
        enrols = [m for kind, m in batch if kind == "enrol"]
        batch = [item for item in batch if item[0] != "enrol"]
        with self.store.tx() as s:                     # the batch's session: kept in it
            held = self.store.devices_named(s, [m.agent_id for kind, m in batch
                                                if kind == "status"])
        if enrols:
            for item, why in zip(enrols, self.store.enrol_many(enrols, "token", held)):
                effects.append(self._enrolled(item, why))
        while i < len(batch):
            kind, message = batch[i]
            if kind == "beat":
                j = i
                while j < len(batch) and batch[j][0] == "beat":
                    j += 1
                beats = [m for _, m in batch[i:j]]
                for beat, (previous, ok) in zip(beats, self.store.heartbeats(beats)):
                    applied += ok
                    if ok and previous == "offline":
                        effects.append(lambda a=beat.agent_id: self._back(a))
                i = j
                continue
            effects.append(self._stores[kind](message))
            i += 1
        del held
        return effects, applied

    def _enrolled(self, item: tuple[AgentStatus, str], why: str | None):
        status, key = item
        if why is not None:
            self.trust.unlearn(status.agent_id, key)
            return lambda: log.warning("device %s not enrolled: %s", status.agent_id, why)
        return lambda: self._lines.say("devices enrolled", "device %s enrolled with the "
                                       "enrolment token (key %s)", status.agent_id,
                                       fingerprint(key))

    def _store_status(self, status: AgentStatus):
        before = self.store.device(status.agent_id)
        was = (before.state, before.instance) if before is not None else (None, None)
        try:
            previous, applied = self.store.device_status(status)
        except StoreError as exc:
            return lambda why=str(exc): log.warning("%s; ignored", why)
        if not applied:
            return lambda: log.debug("status of %s (boot %d, seq %d) is not news; ignored",
                                     status.agent_id, status.boot, status.seq)
        lost = []
        if status.state == "offline":
            why = f"agent went offline: {status.reason or 'no reason'}"
            lost = [job.id for job in self.store.active_jobs(status.agent_id)
                    if self.store.mark_lost(job.id, why)]

        def after() -> None:
            if was[0] == "online" and was[1] and was[1] != status.instance \
                    and not status.last_will:
                log.warning("device %s now answers from another installation (instance %s, "
                            "was %s): if both still run, one must take another --name",
                            status.agent_id, status.instance, was[1])
            if previous != status.state:
                self._lines.say(f"devices {status.state}", "device %s is %s%s",
                                status.agent_id, status.state,
                                f" ({status.reason})" if status.reason else "")
            for job_id in lost:
                log.warning("job %s lost: %s", job_id, why)
            self._wake.set()
        return after

    def _back(self, agent_id: str) -> None:
        self._lines.say("devices beating again", "device %s is beating again", agent_id)
        self._wake.set()

    def _store_event(self, event: JobEvent):
        try:
            moved = self.store.apply_event(event)
        except StoreError as exc:
            return lambda why=str(exc): log.warning("%s; ignored", why)

        def after() -> None:
            if moved is not None:
                self._lines.say(f"jobs {moved.value}", "job %s %s%s", event.job_id, moved.value,
                                f": {event.detail}" if event.detail and moved != JobState.RUNNING
                                else "")
                if moved.terminal or moved == JobState.ACCEPTED:
                    self._wake.set()           # a device free, or room in the dispatch window
        return after

    def _store_result(self, result: JobResult):
        try:
            new = self.store.store_result(result)
        except StoreError as exc:
            # Not ours (another controller's store?): no ack, so the agent keeps it spooled.
            return lambda why=str(exc): log.warning("%s; not acknowledged", why)

        def after() -> None:
            # Ack duplicates too: the agent resends until an ack reaches it. Only once
            # committed: an acknowledged result is one the store holds.
            self.link.publish(self.topics.agent_acks(result.agent_id),
                              ResultAck(job_id=result.job_id, result_id=result.result_id,
                                        **self.seq()))
            if new:
                self._lines.say(f"results {result.status} stored", "result for job %s: %s, %s",
                                result.job_id, result.status,
                                result.error or quality_text(result.outcome))
                self._wake.set()
        return after
