"""The gate every incoming message passes before a handler sees it: a well-formed envelope,
a key this side trusts for that topic, a valid signature, not expired, not replayed, a body
that validates. Each side says whose key it trusts (``known_key``) and how a new sender may
be admitted (``enrol``); the agent's rules are here, the controller's in controller.trust.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from agent.envelope import (
    Envelope,
    check_fresh,
    check_signature,
    open_body,
    open_envelope,
)
from agent.errors import ProtocolError, Refused
from agent.identity import KeyPin, fingerprint
from agent.protocol import CLOCK_SKEW_S, ControllerStatus, Message

M = TypeVar("M", bound=Message)
log = logging.getLogger("mlperf.trust")


class NonceCache:
    """Nonces of accepted messages, kept until their expiry (plus the allowed clock skew) so a
    replay inside that window is refused. Bounded: when full, the soonest-expiring are
    forgotten first (the expiry check still refuses them once they expire)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def seen(self, nonce: str, expires_s: float, now: float | None = None) -> bool:
        """True if ``nonce`` was already accepted; else remember it and return False."""
        now = time.time() if now is None else now
        with self._lock:
            while self._heap and (self._heap[0][0] < now or len(self._heap) >= self.limit):
                _, old = heapq.heappop(self._heap)
                self._expiry.pop(old, None)
            if nonce in self._expiry:
                return True
            self._expiry[nonce] = expires_s
            heapq.heappush(self._heap, (expires_s, nonce))
            return False

    def __len__(self) -> int:
        return len(self._expiry)


class _JobIdOnly(BaseModel):
    model_config = ConfigDict(extra="ignore")
    job_id: str | None = None


def claimed_job_id(env: Envelope | None) -> str | None:
    """The job id a (possibly refused) envelope's body names, if it names a valid one."""
    if env is None:
        return None
    try:
        job_id = _JobIdOnly.model_validate_json(env.body).job_id
    except Exception:                    # whatever the body is, this is best effort only
        return None
    from agent.protocol import check_id
    try:
        return check_id(job_id) if job_id else None
    except ProtocolError:
        return None


class Gate:
    """Admits or refuses one message. A refusal is a ProtocolError (``Refused`` with a
    ``code`` for the ones that parsed) carrying ``topic``, ``claimed_job_id`` and
    ``verified`` (whether the sender's signature was valid and its key trusted)."""

    def __init__(self, nonces: NonceCache | None = None) -> None:
        self.nonces = nonces or NonceCache()

    # -- the policy a side supplies
    def known_key(self, topic: str, env: Envelope) -> bool:
        """True: ``env.key`` is trusted for ``topic``. False: unknown, ``enrol`` decides.
        Raise Refused for a sender that must not be heard at all."""
        raise NotImplementedError

    def may_enrol(self, topic: str, model: type[Message]) -> bool:
        return False

    def enrol(self, topic: str, env: Envelope, message: Message) -> None:
        """A validly signed message from an unknown key: admit it (return) or refuse."""
        raise Refused("unknown-key", f"{env.kind} on {topic[:200]}: signed by an unknown key "
                                     f"{fingerprint(env.key)}")

    # -- the one path every message takes
    def admit(self, topic: str, payload: bytes, model: type[M], now: float | None = None) -> M:
        env: Envelope | None = None
        verified = False
        try:
            env = open_envelope(payload, topic)
            known = self.known_key(topic, env)
            if not known and not self.may_enrol(topic, model):
                raise Refused("unknown-key", f"{env.kind} on {topic[:200]}: signed by "
                                             f"{fingerprint(env.key)}, which is not trusted here")
            check_signature(env, topic)
            verified = known
            check_fresh(env, model, topic, now)
            message = open_body(env, model, topic)
            if not known:
                self.enrol(topic, env, message)
                verified = True
            if model.TTL_S is not None and env.expires_ms is not None and self.nonces.seen(
                    env.nonce, env.expires_ms / 1000.0 + CLOCK_SKEW_S, now):
                raise Refused("replay", f"{env.kind} on {topic[:200]}: already received "
                                        "(a replay)")
            return message
        except ProtocolError as exc:
            exc.topic = topic
            exc.claimed_job_id = claimed_job_id(env)
            exc.verified = verified
            raise


class ControllerPin(Gate):
    """The agent's gate: only messages signed by the pinned controller key are admitted. The
    pin comes from ``--controller-key`` or, failing that, from the first validly signed
    controller message (trust on first use, said loudly), and is kept in ``pin_file``."""

    def __init__(self, pin_file: Path, explicit: KeyPin | None = None, tofu: bool = True,
                 nonces: NonceCache | None = None, readable: str | None = None) -> None:
        super().__init__(nonces)
        self.pin_file = pin_file
        self.tofu = tofu
        self.readable = readable           # a topic read for what it says, whoever signed it
        stored = self._read()
        if explicit is not None and stored is not None and explicit != stored:
            log.warning("controller key: pinning %s as given (this device had pinned %s)",
                        explicit.fingerprint, stored.fingerprint)
        self.pin = explicit or stored
        if explicit is not None and explicit != stored:
            self._write(explicit)
        self.refused_keys: Counter[str] = Counter()

    def _read(self) -> KeyPin | None:
        try:
            return KeyPin.parse(self.pin_file.read_text(), "pinned controller key")
        except FileNotFoundError:
            return None

    def _write(self, pin: KeyPin) -> None:
        self.pin_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.pin_file.with_suffix(".tmp")
        tmp.write_text(pin.fingerprint + "\n")
        tmp.replace(self.pin_file)

    def known_key(self, topic: str, env: Envelope) -> bool:
        if topic == self.readable:         # our own status topic: who else claims our name
            return True
        if self.pin is None:
            return False
        if self.pin.matches(env.key):
            return True
        self.refused_keys[fingerprint(env.key)] += 1
        raise Refused("unknown-key", f"{env.kind} on {topic[:200]}: signed by "
                                     f"{fingerprint(env.key)}, not by the pinned controller key "
                                     f"{self.pin.fingerprint}")

    def may_enrol(self, topic: str, model: type[Message]) -> bool:
        return self.tofu

    def enrol(self, topic: str, env: Envelope, message: Message) -> None:
        with _TOFU_LOCK:
            if self.pin is not None:                     # pinned meanwhile by another thread
                if not self.pin.matches(env.key):
                    super().enrol(topic, env, message)
                return
            self.pin = KeyPin(fingerprint(env.key))
            self._write(self.pin)
        what = "the controller's presence" if isinstance(message, ControllerStatus) else env.kind
        log.warning("TRUST ON FIRST USE: pinned controller key %s from %s on %s. Compare it with "
                    "`mlperf-controller key` on the workstation; start with --controller-key to "
                    "pin it explicitly instead (pin kept in %s)", self.pin.fingerprint, what,
                    topic, self.pin_file)


_TOFU_LOCK = threading.Lock()
