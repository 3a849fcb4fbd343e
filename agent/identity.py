"""Ed25519 identities: the key pair a controller or an agent signs its messages with, kept in
a file only its owner can read, and the fingerprints people compare (``SHA256:...``, printed
the way OpenSSH prints host keys).

A public key travels as 44 characters of base64 (32 raw bytes); a signature as 88 (64 bytes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from agent.errors import ConfigError

KEY_PATTERN = r"^[A-Za-z0-9+/]{43}=$"          # 32 bytes of base64
SIG_PATTERN = r"^[A-Za-z0-9+/]{86}==$"         # 64 bytes of base64
FINGERPRINT_RE = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")
_KEY_RE = re.compile(KEY_PATTERN)


def fingerprint(key_b64: str) -> str:
    """``SHA256:<43 chars>`` of a base64 public key: what operators compare and approve."""
    digest = hashlib.sha256(base64.b64decode(key_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _canonical(text: str) -> bytes:
    """Base64 decoded only if ``text`` is the one canonical spelling of its bytes: the unused
    low bits of the last character are otherwise ignored by decoders, and a signature that
    still verifies after a character changed would let a changed payload through."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise ValueError("not canonical base64")
    return raw


@lru_cache(maxsize=65536)              # a controller verifies every device's key in turn
def _public(key_b64: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_canonical(key_b64))


def verify(key_b64: str, sig_b64: str, data: bytes) -> bool:
    """True when ``sig_b64`` is ``key_b64``'s Ed25519 signature of ``data``; never raises."""
    try:
        _public(key_b64).verify(_canonical(sig_b64), data)
        return True
    except (InvalidSignature, ValueError, binascii.Error):
        return False


class Identity:
    """A private signing key and its public half. ``load_or_create`` keeps it in ``path``
    (PKCS#8 PEM, mode 0600; a key readable by others is refused, as OpenSSH does)."""

    def __init__(self, private: Ed25519PrivateKey, path: Path | None = None) -> None:
        self._private = private
        self.path = path
        raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                serialization.PublicFormat.Raw)
        self.public_b64 = base64.b64encode(raw).decode()
        self.fingerprint = fingerprint(self.public_b64)

    @classmethod
    def generate(cls) -> Identity:
        """A fresh key that lives only in memory (tests, benchmarks)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> Identity:
        path = Path(path).expanduser()
        try:
            mode = path.stat().st_mode
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"no signing key at {path}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read the signing key {path}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"the signing key {path} is readable by other users: "
                              f"`chmod 600 {path}`")
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path} is not an unencrypted PEM private key ({exc})") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise ConfigError(f"{path} holds a {type(private).__name__}, not an Ed25519 key")
        return cls(private, path)

    @classmethod
    def load_or_create(cls, path: Path) -> tuple[Identity, bool]:
        """The key in ``path``, made (with its ``.pub`` beside it) if there is none yet.
        Returns (identity, created). Safe when two processes create it at once."""
        path = Path(path).expanduser()
        if path.exists():
            return cls.load(path), False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(path.parent, os.W_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as exc:
            raise ConfigError(f"cannot make a signing key in {path.parent} "
                              f"({exc.strerror}); give another path with --identity") from None
        fresh = cls.generate()
        pem = fresh._private.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        try:
            os.link(tmp, path)                   # atomic; fails if another process won
        except FileExistsError:
            return cls.load(path), False
        finally:
            tmp.unlink(missing_ok=True)
        path.with_name(path.name + ".pub").write_text(f"ed25519 {fresh.public_b64}\n")
        return cls.load(path), True

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self._private.sign(data)).decode()


@dataclass(frozen=True)
class KeyPin:
    """A trusted key named by its fingerprint (the public key itself travels in each
    envelope). Given as ``SHA256:...``, a base64 public key, or a file holding either
    (``mlperf-controller key`` prints both)."""

    fingerprint: str

    @classmethod
    def parse(cls, spec: str, what: str = "key") -> KeyPin:
        text = spec.strip()
        if not (FINGERPRINT_RE.match(text) or _KEY_RE.match(text)):
            candidate = Path(text).expanduser()
            if candidate.is_file():
                words = candidate.read_text(errors="replace").split()
                found = next((w for w in words if FINGERPRINT_RE.match(w) or _KEY_RE.match(w)),
                             None)
                if found is None:
                    raise ConfigError(f"{what} file {candidate} holds no SHA256: fingerprint "
                                      "or base64 Ed25519 public key")
                text = found
            else:
                raise ConfigError(f"{what} {spec!r}: expected SHA256:<fingerprint>, a base64 "
                                  "Ed25519 public key, or a file holding one "
                                  "(see `mlperf-controller key`)")
        return cls(text if text.startswith("SHA256:") else fingerprint(text))

    def matches(self, key_b64: str) -> bool:
        return fingerprint(key_b64) == self.fingerprint


def machine_id() -> str:
    """This machine's id (systemd's /etc/machine-id), or '' where there is none."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return ""


def instance_id(work_dir: Path) -> str:
    """A stable id of this agent installation -- this machine and this work folder -- that a
    copy of the folder on another machine does not share (16 hex). Without a machine id, a
    random one kept in the work folder."""
    machine = machine_id()
    if not machine:
        keep = Path(work_dir) / "identity" / "instance"
        try:
            machine = keep.read_text().strip()
        except OSError:
            machine = os.urandom(16).hex()
            keep.parent.mkdir(parents=True, exist_ok=True)
            keep.write_text(machine + "\n")
    seed = f"{machine}\n{Path(work_dir).expanduser().resolve()}"
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def enrolment_proof(token: str, agent_id: str, key_b64: str) -> str:
    """Proof that the holder of ``key_b64``, enrolling as ``agent_id``, knows the lab's
    pre-shared token: HMAC-SHA256 over both, 43 characters of url-safe base64. The token
    itself never crosses the wire, and the proof is worthless for any other key or id."""
    mac = hmac.new(token.encode(), f"mlperf-edge enrol 2\n{agent_id}\n{key_b64}".encode(),
                   hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def proof_matches(token: str, agent_id: str, key_b64: str, proof: str | None) -> bool:
    return proof is not None and hmac.compare_digest(
        enrolment_proof(token, agent_id, key_b64), proof)
