"""What crosses the broker, byte for byte: message bodies as strict JSON (the codec) inside
a signed ``Envelope``. The message models and topics are in ``agent.protocol``; who is trusted
to sign what is decided by ``agent.gate`` and ``controller.trust``.

``sig`` is the Ed25519 signature of ``signed_bytes``: an unambiguous JSON header line
(``["mlperf-edge/2", topic, kind, key, nonce, expires_ms]``), then the body exactly as sent.
So a message cannot be altered, re-addressed to another topic, or replayed after it expires.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from agent.errors import ProtocolError, Refused
from agent.identity import KEY_PATTERN, SIG_PATTERN, verify
from agent.protocol import (
    CLOCK_SKEW_S,
    MAX_BODY_BYTES,
    MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    STRICT,
    Message,
)

M = TypeVar("M", bound=BaseModel)


# --------------------------------------------------------------------------------------------
# Codec: message bodies

def encode(message: BaseModel) -> bytes:
    """Serialise a message body to JSON bytes; refuse one larger than MAX_BODY_BYTES."""
    payload = message.model_dump_json(by_alias=True).encode()
    if len(payload) > MAX_BODY_BYTES:
        raise ProtocolError(f"{type(message).__name__} is {len(payload)} bytes; "
                            f"the limit is {MAX_BODY_BYTES}")
    return payload


def decode(model: type[M], payload: bytes, topic: str = "?") -> M:
    """Parse and strictly validate ``payload`` as ``model``; ProtocolError names what is wrong.
    Never a traceback: deep nesting, bad UTF-8 and oversized input are refused alike."""
    name = model.__name__
    if len(payload) > MAX_BODY_BYTES:
        raise ProtocolError(f"{name} on {topic}: {len(payload)} bytes exceeds the "
                            f"{MAX_BODY_BYTES}-byte limit")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise ProtocolError(_explain(exc, name, topic)) from None


def _explain(exc: ValidationError, name: str, topic: str) -> str:
    """One line from a pydantic error: the schema version first, then the first problem."""
    errors = exc.errors(include_url=False, include_input=True)
    for err in errors:
        if err["loc"] == ("schema",) and err["type"] == "literal_error":
            got = err.get("input")
            shown = got if isinstance(got, int) else repr(str(got)[:20])
            return (f"{name} on {topic}: schema {shown} is not the version this build "
                    f"speaks ({SCHEMA_VERSION}): upgrade mlperf-edge on the sender")
    first = errors[0]
    if first["type"] == "json_invalid":
        return f"{name} on {topic}: not JSON ({first['msg'].removeprefix('Invalid JSON: ')})"
    if first["type"] == "model_type":
        return f"{name} on {topic}: expected a JSON object"
    where = ".".join(str(p) for p in first["loc"]) or "message"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{name} on {topic}: {where}: {first['msg']}{more}"


# --------------------------------------------------------------------------------------------
# The signed envelope

class Envelope(BaseModel):
    """What crosses the broker. ``sig`` is the Ed25519 signature of ``signed_bytes``: the
    topic, ``kind``, ``key``, ``nonce``, ``expires_ms`` and the body exactly as sent."""

    model_config = STRICT

    schema_version: Literal[2] = Field(default=SCHEMA_VERSION, alias="schema")
    kind: str = Field(pattern=r"^[A-Za-z]{1,40}$", description="message type, e.g. JobEvent")
    key: str = Field(pattern=KEY_PATTERN, description="signer's Ed25519 public key, base64")
    nonce: str = Field(pattern=r"^[0-9a-f]{32}$", description="128 random bits, hex")
    expires_ms: int | None = Field(ge=0, le=2 ** 53, description=(
        "unix ms after which the message is refused; None only for presence"))
    body: str = Field(max_length=MAX_BODY_BYTES, description="the message JSON")
    sig: str = Field(pattern=SIG_PATTERN)


def signed_bytes(topic: str, kind: str, key: str, nonce: str, expires_ms: int | None,
                 body: str) -> bytes:
    """The bytes a signature covers: an unambiguous JSON header line, then the body."""
    head = json.dumps(["mlperf-edge/2", topic, kind, key, nonce, expires_ms],
                      separators=(",", ":"), ensure_ascii=True)
    try:
        return head.encode() + b"\n" + body.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(f"{kind} on {topic[:200]}: the body is not valid UTF-8") from None


def seal(message: Message, topic: str, signer: Any, now: float | None = None) -> bytes:
    """The envelope bytes of ``message`` for ``topic``, signed by ``signer`` (an
    ``agent.identity.Identity``), expiring ``TTL_S`` after ``now``."""
    body = encode(message).decode()
    ttl = type(message).TTL_S
    expires_ms = None if ttl is None else int(((now or time.time()) + ttl) * 1000)
    kind, nonce = type(message).__name__, secrets.token_hex(16)
    sig = signer.sign(signed_bytes(topic, kind, signer.public_b64, nonce, expires_ms, body))
    payload = Envelope(kind=kind, key=signer.public_b64, nonce=nonce, expires_ms=expires_ms,
                       body=body, sig=sig).model_dump_json(by_alias=True).encode()
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"{kind} envelope is {len(payload)} bytes; the limit is "
                            f"{MAX_PAYLOAD_BYTES}")
    return payload


def open_envelope(payload: bytes, topic: str) -> Envelope:
    """Parse an envelope (size and shape only: nothing is verified yet)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"message on {topic[:200]}: {len(payload)} bytes exceeds the "
                            f"{MAX_PAYLOAD_BYTES}-byte limit")
    try:
        return Envelope.model_validate_json(payload)
    except ValidationError as exc:
        raise ProtocolError(_explain(exc, "envelope", topic[:200])) from None


def check_signature(env: Envelope, topic: str) -> None:
    """Refused unless ``env.sig`` is ``env.key``'s signature of this topic and envelope."""
    data = signed_bytes(topic, env.kind, env.key, env.nonce, env.expires_ms, env.body)
    if not verify(env.key, env.sig, data):
        raise Refused("signature", f"{env.kind} on {topic[:200]}: the signature does not match "
                                   "(altered, re-addressed or forged)")


def check_fresh(env: Envelope, model: type[Message], topic: str,
                now: float | None = None) -> None:
    """Refused when ``env`` has expired, or claims a send time ahead of this clock by more than
    CLOCK_SKEW_S. Presence (``TTL_S`` None) is judged by sequence instead."""
    ttl = model.TTL_S
    if ttl is None:
        return
    if env.expires_ms is None:
        raise Refused("invalid", f"{env.kind} on {topic[:200]}: carries no expiry")
    now = time.time() if now is None else now
    expires = env.expires_ms / 1000.0
    if now > expires + CLOCK_SKEW_S:
        raise Refused("expired", f"{env.kind} on {topic[:200]}: expired {now - expires:,.0f} s "
                                 "ago (if it was not delayed, the clocks differ: sync them, "
                                 "e.g. with NTP)")
    if expires - ttl > now + CLOCK_SKEW_S:
        raise Refused("clock", f"{env.kind} on {topic[:200]}: sent {expires - ttl - now:,.0f} s "
                               "ahead of this clock: the sender's clock is wrong (sync it, "
                               "e.g. with NTP)")


def open_body(env: Envelope, model: type[M], topic: str) -> M:
    """The message inside ``env``, which must be of ``model``'s kind."""
    if env.kind != model.__name__:
        raise Refused("invalid", f"{env.kind} on {topic[:200]}: this topic carries "
                                 f"{model.__name__}")
    return decode(model, env.body.encode("utf-8", errors="surrogatepass"), topic[:200])
