"""The controller's engine: watches the fleet, dispatches queued jobs one per device, records
every event and result, acknowledges results, and declares jobs lost when their agent goes.
Everything it sends is signed with its key; everything it hears passes controller.trust."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from agent.link import Link
from agent.protocol import (
    DEFAULT_PREFIX,
    LEGACY_PREFIX,
    AgentStatus,
    ControllerStatus,
    Heartbeat,
    CancelJob,
    JobAssignment,
    Message,
    JobEvent,
    JobResult,
    Refusal,
    Sequence,
    Topics,
)
from controller.attempts import RETRYABLE_REFUSALS
from controller.fleet_log import STATS_S, BeatStats, Lines
from controller.groups import group_spec
from controller.settings import ControllerSettings
from controller.store import Store, redact
from controller.trust import MAX_TOLD, FleetTrust
from controller.writes import Writes

log = logging.getLogger("mlperf.controller")

#: The client id of the dispatching controller. One per broker: its persistent session keeps
#: results published while it was away.
CONTROLLER_ID = "mlperf-controller"
VERSION = "2"
#: How often refused-message counts are folded into the store, s.
FLUSH_S = 2.0
#: An echo not back after this long is sent again (lost with a connection), s.
ECHO_AGAIN_S = 30.0
#: Behind the fleet by more than this, the controller says so (at most every STATS_S), s.
BEHIND_S = 10.0
#: Workers (`serve --worker`): the shared-subscription group, how often each says how far it
#: has written and renews the lead, how long the lead holds unrenewed, and how long a worker
#: counts as alive after its last word (silence waits for every live worker's writes), s.
SHARE_GROUP = "mlperf-controller"
LEAD_EVERY_S, LEAD_TTL_S, WORKER_ALIVE_S = 1.0, 10.0, 10.0
#: Leases are checked this often (every active job is read), s.
LEASES_S = 2.0
#: Silence is judged this often (every online device's last word is read), s.
SILENCE_S = 1.0
#: After the controller (re)connects, devices it has not heard from since get this long to
#: come back (an agent's reconnect backoff reaches 30 s) before they count as gone, s.
RECONNECT_GRACE_S = 45.0
#: The writer waits this long after the first message of a batch for more to join it: one
#: SQLite commit (an fsync, ~4 ms here) per batch instead of one per heartbeat, s.
GATHER_S = 0.05
#: Unopened heartbeats (or copies of a result) kept per topic between writes (the newest is
#: verified first; older ones only if it is refused), and topics with some waiting, at most.
CANDIDATES = 4
MAX_WAITING_TOPICS = 200_000
#: ... and their bytes, at most (a heartbeat is ~1 KB; one sender flooding 200,000 topics with
#: payloads at the broker's size limit would otherwise be held in full until the next write).
MAX_WAITING_BYTES = 256 * 2 ** 20
#: QoS 1 sends awaiting the broker's ack: at paho's 20 (or the agent's 100), a campaign's
#: thousand assignments went out a hundred per round trip behind the incoming traffic.
MAX_INFLIGHT = 2000


class ControllerService(Writes):
    """Subscribes to the fleet, keeps the store current, and dispatches; ``tick_s`` is the
    longest a queued job waits for a free device to be noticed."""

    def __init__(self, settings: ControllerSettings, store: Store, *, tick_s: float = 0.5,
                 heartbeat_beats: float = 3.0, worker: str | None = None) -> None:
        self.store = store
        # One of several workers (`serve --worker NAME`): the broker shares the fleet's
        # messages among them; one at a time dispatches (see controller.workers). A worker's
        # session is clean: Mosquitto keeps handing a stopped member of a share group with a
        # persistent session its share (measured), so agents' re-sends make up instead.
        self.worker = worker
        self.client_id = CONTROLLER_ID if worker is None else f"{CONTROLLER_ID}-{worker}"
        self._leading = worker is None
        self._lead_at = 0.0
        self.topics = t = Topics(settings.prefix)
        self.seq = Sequence()
        self.tick_s = tick_s
        self.heartbeat_beats = heartbeat_beats
        self.assign_timeout_s = settings.assign_timeout_s
        self.dispatch_window = settings.dispatch_window
        self.identity = settings.load_identity()
        self.trust = FleetTrust(store, t, self.identity, settings.enrol_token())
        self.link = Link(settings.broker_connection(), self.client_id, t,
                         identity=self.identity, gate=self.trust, persistent=worker is None,
                         max_inflight=MAX_INFLIGHT, share=SHARE_GROUP if worker else None,
                         will=lambda: (t.controller_status(), self._presence("offline")))
        # Presence goes to every worker (it is state: applied once by its sequence, and the
        # retained statuses are not sent to shared subscriptions); the rest is shared.
        self.link.route(t.all_agent_status(), AgentStatus, self._on_status)
        self.link.route_unopened(t.all_heartbeats(), self._on_beat_bytes, shared=True)
        self.link.route(t.all_job_events(), JobEvent, self._on_event, shared=True)
        self.link.route_unopened(t.all_job_results(), self._on_result_bytes, shared=True)
        self.link.route(t.all_refusals(), Refusal, self._on_refusal, shared=True)
        if worker is not None:
            self.link.route(t.controller_status(), ControllerStatus, self._on_presence)
        if settings.prefix == DEFAULT_PREFIX:          # agents older than schema 2
            self.link.route_raw(f"{LEGACY_PREFIX}/agents/+/status", self.trust.legacy)
        self.link.on_refused.append(self.trust.count)
        self.trust.enrolments = lambda status, key: self._enqueue("enrol", (status, key))
        self.trust.background = True                   # keys re-read by the dispatcher
        self.link.on_connected.append(self._on_connected)
        self._listening_since = time.time()
        self._wake = threading.Event()
        self._group_cancels: dict[str, float] = {}     # job id -> when its cancel was sent
        self._stop = threading.Event()
        # What the MQTT thread hears, in arrival order, for the writer thread to store in one
        # transaction per batch (the MQTT thread itself never waits on the store).
        self._inbox: list[tuple[str, Message]] = []
        self._inbox_lock = threading.Lock()
        self._inbox_ready = threading.Event()
        # heartbeat topic -> [heard since the last write, the newest unopened payloads]
        self._beats: dict[str, list] = {}
        self._results: dict[str, list] = {}              # result topic -> the same, results
        self._beats_heard = self._dropped = self._waiting_bytes = 0
        # Silence is judged against what has been heard, not against the clock: the wall time
        # of the newest echo of ourselves the writer stored behind the fleet's messages (a
        # controller running behind must not call the devices whose beats it has not yet
        # read silent, which put more work on it: the collapse past 250 agents).
        self._heard_through: float | None = None
        self._echo_out: float | None = None              # monotonic time the echo went
        self._told_behind = 0.0
        self._leases_at = self._silence_at = 0.0
        self._lines = Lines()
        self._stores = {"event": self._store_event, "result": self._store_result,
                        "status": self._store_status}
        self._beat_stats = BeatStats()
        self._writer = threading.Thread(target=self._write_loop, name="writer", daemon=True)
        self._flushed = time.monotonic()
        self._thread = threading.Thread(target=self._dispatch_loop, name="dispatcher",
                                        daemon=True)

    def _on_connected(self) -> None:
        self._listening_since = time.time()      # what came before (un)heard is not silence
        self._echo_out = None
        self.link.publish(self.topics.controller_status(), self._presence("online"),
                          retain=True)

    def _on_presence(self, _topic: str, status: ControllerStatus) -> None:
        """A worker that stopped left "offline" as the controller's presence (its Last Will):
        the workers still serving say "online" again (agents then re-send what waits)."""
        if status.state == "offline" and self.link.connected.is_set() \
                and not self._stop.is_set():
            log.info("%s is offline; this worker still serves", status.controller_id)
            self.link.publish(self.topics.controller_status(), self._presence("online"),
                              retain=True)

    def _presence(self, state: str) -> ControllerStatus:
        return ControllerStatus(controller_id=self.client_id, state=state,
                                store=redact(self.store.url), version=VERSION, **self.seq())

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, retry_for_s: float | None = 30.0, abort: threading.Event | None = None
              ) -> None:
        """Connect, read the fleet's retained presence, then start dispatching."""
        log.info("controller key %s", self.identity.fingerprint)
        self.trust.refresh()                 # approved keys, before the first status arrives
        self.link.connect(retry_for_s, abort)
        self.link.barrier()
        self.store.mark_serving()
        self._writer.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._inbox_ready.set()
        for thread in (self._thread, self._writer):
            if thread.is_alive():
                thread.join(timeout=10)
        if self._beat_stats.heard:
            log.info("%s", self._beat_stats.line(self.behind_s()))
        self._lines.roll(end=True)
        if self.worker is not None:
            self.store.drop_lead(self.client_id)
        self.trust.flush()
        self.store.mark_serving(False)
        self.link.close(final=(self.topics.controller_status(), self._presence("offline")))

    def wake(self) -> None:
        """Dispatch now rather than at the next tick (e.g. a campaign was just created)."""
        self._wake.set()

    # -- incoming ----------------------------------------------------------------------------
    def _on_status(self, topic: str, status: AgentStatus) -> None:
        if self.topics.parse(topic).agent_id != status.agent_id:
            log.warning("status on %s claims agent %s; ignored", topic, status.agent_id)
            return
        self._enqueue("status", status)

    def _on_beat_bytes(self, topic: str, payload: bytes) -> None:
        """A heartbeat, kept unopened with the device's others not yet written: only the
        newest that the gate admits is written (see _open_newest)."""
        with self._inbox_lock:
            if self._keep(self._beats, topic, payload):
                self._beats_heard += 1
        self._inbox_ready.set()

    def _on_result_bytes(self, topic: str, payload: bytes) -> None:
        """A job's result, kept unopened with copies of it not yet written: an agent re-sends
        its result until acknowledged, and a controller behind its fleet had them pile up (a
        verification, a store check and an ack each)."""
        with self._inbox_lock:
            self._keep(self._results, topic, payload)
        self._inbox_ready.set()

    def _keep(self, waiting: dict[str, list], topic: str, payload: bytes) -> bool:
        """Under the inbox lock: ``payload`` joins the newest ones kept for ``topic`` (False:
        dropped unread, the bounds are reached)."""
        kept = waiting.get(topic)
        freed = len(kept[1][0]) if kept is not None and len(kept[1]) == CANDIDATES else 0
        if self._waiting_bytes + len(payload) - freed > MAX_WAITING_BYTES or \
                (kept is None and len(waiting) >= MAX_WAITING_TOPICS):
            self._dropped += 1                        # a result is re-sent, a beat comes again
            return False
        if kept is None:
            kept = waiting[topic] = [0, deque(maxlen=CANDIDATES)]
        kept[0] += 1
        kept[1].append(payload)                       # the oldest falls out when full
        self._waiting_bytes += len(payload) - freed
        return True

    def _open_newest(self, waiting: dict[str, list], model: type, fits) -> tuple[list, int]:
        """The newest message of each topic the gate admits (and ``fits(topic, message)``),
        newest first: older ones on the same topic are superseded (a device's earlier beat, an
        earlier copy of a result) and never verified. A controller behind its fleet thus
        verifies one per topic per batch, not every one sent while it was behind. Returns
        (messages, superseded)."""
        opened, superseded = [], 0
        for topic, (heard, payloads) in waiting.items():
            tried = 0
            while payloads:
                tried += 1
                message = self.link.admit(topic, payloads.pop(), model)
                if message is not None and fits(topic, message):
                    opened.append(message)
                    superseded += heard - tried          # older, never opened
                    break
        return opened, superseded

    def _on_event(self, topic: str, event: JobEvent) -> None:
        if self._job_topic_matches(topic, event.agent_id, event.job_id):
            self._enqueue("event", event)

    def _job_topic_matches(self, topic: str, agent_id: str, job_id: str) -> bool:
        ref = self.topics.parse(topic)
        if (ref.agent_id, ref.job_id) != (agent_id, job_id):
            log.warning("message on %s is about job %s of %s; ignored", topic, job_id, agent_id)
            return False
        return True

    def _enqueue(self, kind: str, message: Any) -> None:
        with self._inbox_lock:
            self._inbox.append((kind, message))
        self._inbox_ready.set()

    def _send_echo(self) -> None:
        """Keep one echo of ourselves on its way through the broker (see _heard_through)."""
        now = time.monotonic()
        if self._echo_out is None or now - self._echo_out > ECHO_AGAIN_S:
            self._echo_out = now
            self.link.echo(lambda sent_at: self._enqueue("echo", sent_at))

    def behind_s(self) -> float | None:
        """How far behind what the fleet publishes the store is, s (None: not known yet)."""
        through = self._heard_through
        return None if through is None else max(0.0, time.time() - through)

    # -- the writer: what was heard, stored in batches -----------------------------------------
    def _write_loop(self) -> None:
        while not self._stop.is_set():
            if self._inbox_ready.wait(0.5):
                self._stop.wait(GATHER_S)
            try:
                self._write_inbox()
            except Exception:                          # keep writing whatever happens
                log.exception("writing what was heard failed")
        self._write_inbox()

    def _write_inbox(self) -> None:
        """Store everything heard so far in one transaction, then (committed) send its acks,
        log it and wake the dispatcher where it changed something."""
        with self._inbox_lock:
            batch, self._inbox = self._inbox, []
            waiting, self._beats = self._beats, {}
            results, self._results = self._results, {}
            self._waiting_bytes = 0
            dropped, self._dropped = self._dropped, 0
            heard, self._beats_heard = self._beats_heard, 0
            self._inbox_ready.clear()
        echoes = [sent_at for kind, sent_at in batch if kind == "echo"]
        beats, superseded = self._open_newest(
            waiting, Heartbeat, lambda topic, b: self.topics.parse(topic).agent_id == b.agent_id)
        done, copies = self._open_newest(
            results, JobResult, lambda topic, r: self._job_topic_matches(topic, r.agent_id,
                                                                         r.job_id))
        self._beat_stats.results_superseded += copies
        # Heartbeats first: a beat of an older connection then meets the session it belongs to
        # (a Last Will after it in this batch still ends that session); one of a newer
        # connection is only not applied (the next is). Results last: a job's result is the
        # last word about it.
        batch = ([("beat", b) for b in beats] + [item for item in batch if item[0] != "echo"]
                 + [("result", r) for r in done])
        if batch or heard:
            started = time.monotonic()
            try:
                with self.store.batch({m.job_id for kind, m in batch
                                       if kind in ("event", "result")}):
                    effects, applied = self._store_all(batch)
            except Exception as exc:  # noqa: BLE001 (one bad row must not lose the others)
                log.warning("storing %d message(s) together failed (%s); storing them one by "
                            "one", len(batch), exc.__class__.__name__)
                effects, applied = [], 0
                for item in batch:
                    try:
                        more, n = self._store_all([item])
                        effects, applied = effects + more, applied + n
                    except Exception:                  # noqa: BLE001
                        log.exception("could not store a %s; dropped", item[0])
            self._beat_stats.add(heard, applied, superseded, time.monotonic() - started)
            for effect in effects:                     # after the commit: acks, logs, wakes
                effect()
        if dropped:
            log.warning("%d heartbeat(s) or result(s) dropped unread: more than %d topics or "
                        "%d MiB waited to be written (results are re-sent until acknowledged)",
                        dropped, MAX_WAITING_TOPICS, MAX_WAITING_BYTES // 2 ** 20)
        if echoes:                                     # all heard before them is stored
            self._heard_through = max(echoes)
            self._echo_out = None
        if self._beat_stats.due():
            log.info("%s", self._beat_stats.line(self.behind_s()))
        self._lines.roll()

    def _on_refusal(self, topic: str, refusal: Refusal) -> None:
        if self.topics.parse(topic).agent_id != refusal.agent_id:
            return
        self.store.record_refusal(refusal)
        log.warning("device %s refused a message on %s (%s): %s%s", refusal.agent_id,
                    refusal.topic, refusal.code, refusal.reason,
                    f" (+{refusal.suppressed} more)" if refusal.suppressed else "")
        if refusal.verified and refusal.claimed_job_id and self.store.fail_assigned(
                refusal.claimed_job_id, refusal.agent_id, "agent",
                f"refused by the device: {refusal.reason}",
                retryable=refusal.code in RETRYABLE_REFUSALS):
            log.warning("job %s failed: its device refused it", refusal.claimed_job_id)
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
        if self.trust.refresh_due():
            self.trust.refresh()
        if time.monotonic() - self._flushed > FLUSH_S:
            self.trust.flush()
            self.store.mark_serving()
            self._flushed = time.monotonic()
        if not self.link.connected.is_set():
            return                     # cut off: silence says nothing, nothing can be sent
        self._send_echo()
        if self.worker is not None:
            self._worker_tick()
        if not self._leading:
            return                     # another worker dispatches and judges silence
        through = self._heard_through if self.worker is None else \
            self.store.heard_through_all(WORKER_ALIVE_S)
        if through is not None:
            self._judge_silence(through)
        self._end_broken_groups()
        for d in self.store.claim_dispatches(self.dispatch_window):
            job = d.job
            try:
                assignment = JobAssignment(
                    job_id=job.id, campaign_id=job.campaign_id, benchmark=job.benchmark,
                    mode=job.mode, run_index=job.run_index, seed=job.seed, params=job.params,
                    max_steps=job.max_steps, max_seconds=job.max_seconds, image=job.image,
                    image_digest=job.image_digest, division=job.division,
                    runtime=job.runtime or "torch", model_sha256=job.model_sha256,
                    group=group_spec(job), **self.seq())
            except ValueError as exc:              # a row the contract cannot carry
                self.store.fail_assigned(job.id, d.agent_id, "controller",
                                         f"cannot be sent: {str(exc).splitlines()[0]}")
                continue
            self.link.publish(self.topics.agent_jobs(d.agent_id), assignment)
            self._lines.say("jobs assigned", "job %s assigned to %s: %s %s run %d", job.id,
                            d.agent_id, job.benchmark, job.mode, job.run_index)
        for campaign_id in self.store.close_finished_campaigns():
            log.info("campaign %s finished", campaign_id)

    def _end_broken_groups(self) -> None:
        """A group run one member ended without success: cancel it on the others (again every
        ECHO_AGAIN_S while they hold it), then retry the group once all have ended."""
        now = time.monotonic()
        for job, why in self.store.broken_groups():
            if now - self._group_cancels.get(job.id, -ECHO_AGAIN_S) < ECHO_AGAIN_S:
                continue
            self._group_cancels[job.id] = now
            log.warning("job %s (rank %s of group %s): cancelling it: %s", job.id, job.rank,
                        job.group_id, why)
            self.link.publish(self.topics.agent_control(job.agent_id),
                              CancelJob(job_id=job.id, reason=f"its group broke: {why}",
                                        **self.seq()))
        for old, new in self.store.retry_groups():
            log.warning("group %s broke: retrying it as a whole as %s", old, new)
            self._wake.set()
        if len(self._group_cancels) > 10_000:
            self._group_cancels = {k: v for k, v in self._group_cancels.items()
                                   if now - v < ECHO_AGAIN_S}

    def _worker_tick(self) -> None:
        """Say how far this worker has written, and take (or keep) the lead if nobody else
        holds it, once a second."""
        if time.monotonic() - self._lead_at < LEAD_EVERY_S:
            return
        self._lead_at = time.monotonic()
        self.store.worker_heard(self.client_id, self._heard_through)
        was, self._leading = self._leading, self.store.take_lead(self.client_id, LEAD_TTL_S)
        if self._leading != was:
            log.info("worker %s %s dispatching", self.worker,
                     "is now" if self._leading else "stopped")

    def _judge_silence(self, through: float) -> None:
        """Leases and heartbeats, judged as of ``through`` (what has been heard), not now."""
        listening = self._listening_since
        behind_s = time.time() - through
        if behind_s > BEHIND_S and time.monotonic() - self._told_behind > STATS_S:
            self._told_behind = time.monotonic()
            log.warning("%.0f s behind what the fleet sends: silence is judged against what "
                        "has been heard", behind_s)
        if time.monotonic() - self._leases_at > LEASES_S:
            self._leases_at = time.monotonic()
            for job_id, why, again in self.store.expire_leases(
                    now=through, assigned_s=self.assign_timeout_s, listening_since=listening,
                    grace_s=RECONNECT_GRACE_S):
                log.warning("job %s lost: lease expired: %s%s", job_id, why,
                            f"; retrying it as {again}" if again else "")
            for lost, again in self.store.retry_lost(RECONNECT_GRACE_S, now=through):
                log.warning("job %s still lost after %.0f s: retrying it as %s", lost,
                            RECONNECT_GRACE_S, again)
        if time.monotonic() - self._silence_at < SILENCE_S:
            return
        self._silence_at = time.monotonic()
        stale = self.store.stale_devices(through, self.heartbeat_beats, listening,
                                         RECONNECT_GRACE_S)
        if not stale:
            return
        silent = {d.agent_id: f"no heartbeat for {through - d.last_seen:.0f} s" for d in stale}
        for agent_id, why in list(silent.items())[:MAX_TOLD]:
            log.warning("device %s: %s; marking it offline", agent_id, why)
        if len(silent) > MAX_TOLD:
            log.warning("%d more devices silent; marking them offline (`mlperf-controller "
                        "devices` lists them)", len(silent) - MAX_TOLD)
        for job_id, why in self.store.mark_silent(silent):
            log.warning("job %s lost: %s", job_id, why)
