"""Whom the controller listens to. A message from an agent's subtree is admitted only when it is
signed by the key the operator approved for that agent id. A validly signed status from a key
that is not approved is a request to join: approved at once when it proves the lab's
enrolment token (and the id is not already approved with another key), otherwise kept waiting
for ``mlperf-controller devices approve``. Nothing from an unknown sender becomes a device.

Refused messages are counted by claimed sender and reason in memory and folded into the store
every few seconds (``flush``), so a flood of junk costs one small write, not one per message.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.envelope import Envelope
from agent.errors import ProtocolError, Refused
from agent.gate import Gate
from agent.identity import fingerprint, proof_matches
from agent.protocol import AgentStatus, ControllerStatus, Message, Topics
from controller.errors import StoreError

log = logging.getLogger("mlperf.controller")

#: Approved keys are re-read from the store this often (approvals and revocations made by
#: another `mlperf-controller` process), and at most once a second on a miss.
RELOAD_S = 5.0
MISS_RELOAD_S = 1.0
#: An enrolment handed to the writer is trusted this long before the store must show it, s.
PENDING_S = 60.0
#: Requests to join (and old-schema senders) said in the log one by one; the rest are only
#: listed by `mlperf-controller devices pending` (a flood must not flood the log).
MAX_TOLD = 50


class FleetTrust(Gate):
    """The controller's gate (see the module docstring). ``identity`` is this controller's
    own key: the only one trusted on the controller's presence topic."""

    def __init__(self, store: Any, topics: Topics, identity: Any,
                 token: str | None = None) -> None:
        super().__init__()
        self.store, self.topics, self.identity, self.token = store, topics, identity, token
        self._keys: dict[str, str] = {}
        self._loaded = 0.0
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], list[Any]] = {}
        self._told: set[tuple[str, str]] = set()
        #: Where a token enrolment goes: None stores it at once (a command's brief look at the
        #: broker); the serving controller's writer stores them in batches (a commit each held
        #: a fleet of 10,000 connecting at once for a minute) and calls :meth:`unlearn` for
        #: one the store refuses.
        self.enrolments: Callable[[AgentStatus, str], None] | None = None
        #: Keys are re-read by :meth:`refresh`, called from the serving controller's
        #: dispatcher, never on the MQTT thread (a read waited for the writer's store lock,
        #: seconds at 10,000 devices, while the fleet's messages piled up behind it).
        self.background = False
        self._pending: dict[str, tuple[str, float]] = {}   # enrolled, not yet seen stored
        self._want = False

    # -- keys --------------------------------------------------------------------------------
    def _key_for(self, agent_id: str) -> str | None:
        now = time.monotonic()
        with self._lock:
            key = self._keys.get(agent_id)
            stale = now - self._loaded > RELOAD_S or (key is None and
                                                      now - self._loaded > MISS_RELOAD_S)
            if stale and self.background:
                self._want = True
            elif stale:
                self._keys, self._loaded = self.store.approved_keys(), now
                key = self._keys.get(agent_id)
            return key

    def refresh_due(self) -> bool:
        """Whether :meth:`refresh` should run (a miss asked for it, or the keys are old)."""
        return self._want or time.monotonic() - self._loaded > RELOAD_S

    def refresh(self) -> None:
        """Re-read approved keys (approvals and revocations by other processes). Enrolments
        handed to the writer count as approved until the store shows them, for a minute."""
        keys = self.store.approved_keys()
        now = time.monotonic()
        with self._lock:
            self._pending = {a: (k, at) for a, (k, at) in self._pending.items()
                             if keys.get(a) != k and now - at < PENDING_S}
            self._keys = {**keys, **{a: k for a, (k, _) in self._pending.items()}}
            self._loaded, self._want = now, False

    def unlearn(self, agent_id: str, key: str) -> None:
        """The store refused to enrol ``agent_id`` with ``key``: stop admitting it."""
        with self._lock:
            if self._keys.get(agent_id) == key:
                del self._keys[agent_id]
            if self._pending.get(agent_id, ("",))[0] == key:
                del self._pending[agent_id]

    def forget(self) -> None:
        """Re-read approved keys at the next message (after an approval in this process)."""
        with self._lock:
            self._loaded = 0.0

    def known_key(self, topic: str, env: Envelope) -> bool:
        ref = self.topics.parse(topic)
        if ref.side == "controller":
            return env.key == self.identity.public_b64
        return self._key_for(ref.agent_id) == env.key

    def may_enrol(self, topic: str, model: type[Message]) -> bool:
        return model is AgentStatus or model is ControllerStatus

    def enrol(self, topic: str, env: Envelope, message: Message) -> None:
        if isinstance(message, ControllerStatus):          # validly signed, by another key
            raise Refused("foreign-controller",
                          f"a controller with another key ({fingerprint(env.key)}, not this "
                          f"one's {self.identity.fingerprint}) is {message.state} on "
                          f"{topic.rsplit('/', 1)[0]}")
        status: AgentStatus = message
        agent_id = self.topics.parse(topic).agent_id
        if status.agent_id != agent_id:
            raise Refused("invalid", f"status on {topic} claims agent {status.agent_id}")
        fp = fingerprint(env.key)
        approved = self._key_for(agent_id)
        if self.token and approved is None and proof_matches(self.token, agent_id, env.key,
                                                             status.enrolment):
            if self.enrolments is not None:
                self.enrolments(status, env.key)
            else:
                try:
                    self.store.enrol(status, env.key, "token")
                except StoreError as exc:
                    raise Refused("unknown-key", f"{agent_id}: {exc}") from None
                log.info("device %s enrolled with the enrolment token (key %s)", agent_id, fp)
            with self._lock:        # not forget(): a fleet enrolling would re-read every key
                self._keys[agent_id] = env.key      # at each message, O(fleet) per enrolment
                if self.enrolments is not None:
                    self._pending[agent_id] = (env.key, time.monotonic())
            return
        note = None
        if approved is not None:
            note = (f"KEY CHANGED: {agent_id} is approved with {fingerprint(approved)}; this "
                    "is another key (re-installed device, or someone else using its name)")
        elif status.enrolment and self.token:
            note = "presented an enrolment proof that does not match this lab's token"
        try:
            new = self.store.note_enrolment(status, env.key, note)
        except StoreError as exc:
            raise Refused("busy", f"{agent_id} (key {fp}) not recorded: {exc}") from None
        if (new or (agent_id, fp) not in self._told) and len(self._told) < MAX_TOLD:
            self._told.add((agent_id, fp))
            log.warning("device %s (key %s) asks to join%s: `mlperf-controller devices "
                        "approve %s`", agent_id, fp, f" -- {note}" if note else "", agent_id)
        raise Refused("unknown-key", f"{agent_id} (key {fp}) is not approved: "
                                     f"`mlperf-controller devices approve {agent_id}`")

    # -- counting what was refused -----------------------------------------------------------
    def _source(self, topic: str) -> str:
        try:
            ref = self.topics.parse(topic)
            return ref.agent_id or "(controller topic)"
        except ProtocolError:
            return "(unparsable topic)"

    def count(self, exc: ProtocolError) -> None:
        """Count one refused message (a Link ``on_refused`` hook)."""
        self._add(self._source(getattr(exc, "topic", "")), getattr(exc, "code", "malformed"),
                  str(exc))

    def _add(self, source: str, code: str, example: str) -> None:
        now = time.time()
        with self._lock:
            row = self._counts.get((source, code))
            if row is None:
                if len(self._counts) >= 2000:               # bounded between flushes
                    source = "(other)"
                    row = self._counts.get((source, code))
                if row is None:
                    row = self._counts[(source, code)] = [0, now, now, example]
            row[0] += 1
            row[2], row[3] = now, example

    def legacy(self, topic: str, payload: bytes) -> None:
        """A message on the schema-1 status topic: count it, and say once which device it is
        (an agent older than this controller)."""
        if not payload:
            return                                          # a retained status being cleared
        try:
            raw = json.loads(payload[:65536]) if len(payload) <= 65536 else None
            agent = raw.get("agent_id") if isinstance(raw, dict) else None
            agent = agent if isinstance(agent, str) else None
        except (ValueError, RecursionError):
            agent = None
        source = (agent or "(unknown)")[:128]
        self._add(source, "old-schema", f"wire schema 1 on {topic[:200]}")
        if (source, "old-schema") not in self._told and len(self._told) < MAX_TOLD:
            self._told.add((source, "old-schema"))
            log.warning("device %s speaks wire schema 1 (an older mlperf-edge); this controller "
                        "speaks 2: upgrade mlperf-edge on it", source)

    def flush(self) -> int:
        """Fold the counts into the store; returns how many refusals were folded."""
        with self._lock:
            counts, self._counts = self._counts, {}
        if counts:
            try:
                self.store.add_rejections(counts)
            except Exception:                              # never lose the dispatcher to it
                log.exception("could not record refused messages")
        return sum(row[0] for row in counts.values())
