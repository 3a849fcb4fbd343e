"""Controller settings: flags, then environment (MLPERF_BROKER, MLPERF_DB, MLPERF_PREFIX, ...),
then a YAML config file (``~/.config/mlperf-edge/controller.yaml`` or MLPERF_CONTROLLER_CONFIG),
then defaults. The CLI reads flags and environment; this module adds the file and defaults."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.protocol import DEFAULT_PREFIX
from agent.settings import read_token
from agent.settings_file import read_settings_file
from controller.store import default_db_url

DEFAULT_CONFIG = Path("~/.config/mlperf-edge/controller.yaml")
#: The controller's signing key (made on first use, mode 0600) and the lab's enrolment token.
DEFAULT_IDENTITY = Path("~/.config/mlperf-edge/controller_ed25519")
DEFAULT_TOKEN_FILE = Path("~/.config/mlperf-edge/enrol-token")
_PATHS = ("identity", "enrol_token_file", "broker_password_file", "tls_ca", "tls_cert",
          "tls_key")


@dataclass(frozen=True)
class ControllerSettings:
    """Where the broker and the results store are, how to log in to the broker, and the keys
    this controller signs with and enrols devices by."""

    broker: str = "mqtt://localhost:1883"
    db: str = field(default_factory=default_db_url)
    prefix: str = DEFAULT_PREFIX
    identity: Path = DEFAULT_IDENTITY
    # Devices presenting this pre-shared token are approved without `devices approve`; used
    # when the file exists (or MLPERF_ENROL_TOKEN is set).
    enrol_token_file: Path | None = None
    broker_user: str | None = None
    broker_password_file: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # How long a device has to take an assignment before it is lost (and retried), s.
    assign_timeout_s: float = 120.0
    # At most this many jobs wait assigned and not yet accepted by their device: a campaign
    # over thousands of devices goes out as fast as acceptances come back, not all at once.
    # All at once (10,000 agents), assignments reached devices 38 s late at p99, acks came 45 s
    # after results and every result was re-sent; with 512: 0.39 s, 6 s and none, the campaign
    # 97 s instead of 73 (1,024: 91 s, acks 11 s at p99; 256: 135 s, 4 s). A device
    # that never accepts holds its place until assign_timeout_s.
    dispatch_window: int = 512

    def __post_init__(self) -> None:
        if not isinstance(self.assign_timeout_s, (int, float)) or not \
                1 <= self.assign_timeout_s <= 86_400:
            raise ConfigError("assign_timeout_s must be 1 to 86,400 seconds")
        if isinstance(self.dispatch_window, bool) or not isinstance(self.dispatch_window, int) \
                or not 1 <= self.dispatch_window <= 1_000_000:
            raise ConfigError("dispatch_window must be a whole number of jobs, 1 to 1,000,000")
        for name in _PATHS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value).expanduser())

    def broker_connection(self):
        """The broker with the controller's credentials and TLS files (agent.link.Broker)."""
        from agent.link import Broker

        return Broker.from_settings(self)

    def load_identity(self):
        """The controller's signing key, made on first use (agent.identity.Identity)."""
        from agent.identity import Identity

        identity, created = Identity.load_or_create(self.identity)
        if created:
            import logging
            logging.getLogger("mlperf.controller").info(
                "made the controller's signing key %s (%s); agents pin it with "
                "--controller-key %s", self.identity, identity.fingerprint, identity.fingerprint)
        return identity

    def enrol_token(self) -> str | None:
        """The enrolment token: ``enrol_token_file``, else MLPERF_ENROL_TOKEN, else the default
        file when it exists; None: every device needs `devices approve`."""
        if self.enrol_token_file is not None:
            return read_token(self.enrol_token_file)
        token = read_token(None)
        if token is None and DEFAULT_TOKEN_FILE.expanduser().is_file():
            return read_token(DEFAULT_TOKEN_FILE.expanduser())
        return token


def resolve(flags: dict[str, Any], config: Path | None = None) -> ControllerSettings:
    """Merge given flags (None = not given) over the config file over defaults."""
    values = read_settings_file(config, DEFAULT_CONFIG,
                                {f.name for f in fields(ControllerSettings)},
                                relative=frozenset(_PATHS))
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        return ControllerSettings(**values)
    except TypeError as exc:
        raise ConfigError(f"controller settings: {exc}") from None


def make_token(path: Path, rotate: bool = False) -> tuple[Path, bool]:
    """Write a new random enrolment token to ``path`` (mode 0600) unless one is there and
    ``rotate`` is off. Returns (path, made)."""
    import os
    import secrets

    path = Path(path).expanduser()
    if path.exists() and not rotate:
        read_token(path)                                  # still check it is usable
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(24) + "\n")
    tmp.replace(path)
    return path, True
