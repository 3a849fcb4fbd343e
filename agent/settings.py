"""Agent settings: flags, then environment (``MLPERF_*``), then a YAML config file, then
defaults. The CLI fills flags and environment; this module adds the file and the defaults."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, ProtocolError
from agent.protocol import DEFAULT_PREFIX, ParamValue, check_id
from agent.settings_file import read_settings_file

#: Config file read when ``--config`` is not given (keys as the long flags, with underscores).
DEFAULT_CONFIG = Path("~/.config/mlperf-edge/agent.yaml")
#: Images an agent runs unless told otherwise: what `mlperf-controller images build` names,
#: from any registry. A job must still pin the image's digest.
DEFAULT_ALLOWED_IMAGES = ("mlperf-edge/*", "*/mlperf-edge/*")
#: Settings that name credential files: relative paths in a config file are taken from its
#: folder (a bundle written by `mlperf-controller broker-config` is copied as it is).
CREDENTIAL_KEYS = frozenset({"broker_password_file", "tls_ca", "tls_cert", "tls_key",
                             "enrol_token_file", "identity"})
#: Shortest pre-shared enrolment token accepted (characters).
MIN_TOKEN_CHARS = 16


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / "mlperf-edge"


def default_name() -> str:
    """The host name, made a valid agent id (letters, digits, '.', '_', '-')."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()).strip("-._") or "agent"
    return name[:128]


def read_token(path: Path | None, env_var: str = "MLPERF_ENROL_TOKEN") -> str | None:
    """The pre-shared enrolment token from ``path`` or the environment (never a flag value:
    it would show in ``ps``); None when neither is set."""
    if path is not None:
        try:
            token = Path(path).expanduser().read_text().strip()
        except OSError as exc:
            raise ConfigError(f"enrolment token file {path}: {exc.strerror}") from None
    else:
        token = os.environ.get(env_var, "").strip()
        if not token:
            return None
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"the enrolment token is {len(token)} characters; use at least "
                          f"{MIN_TOKEN_CHARS} (`mlperf-controller enrol-token` makes one)")
    return token


@dataclass
class AgentSettings:
    """Everything ``mlperf-agent start`` needs. Durations in seconds."""

    broker: str = "mqtt://localhost:1883"
    name: str = field(default_factory=default_name)
    data_root: Path = field(default_factory=lambda: Path.home() / "mlperf-data")
    work_dir: Path = field(default_factory=lambda: _data_home() / "agent")
    tags: list[str] = field(default_factory=list)
    heartbeat_s: float = 5.0
    resend_s: float = 30.0            # an unacknowledged result is published again after this
    #                                 (then after 2x, 4x, ... 8x: agent.spool.MAX_BACKOFF)
    prefix: str = DEFAULT_PREFIX
    allow: list[str] | None = None
    # Device profile and containers (device_profiles/, containers/).
    profile: str | None = None        # a profile name or YAML path; None: detect it
    profiles_dir: Path | None = None  # None: $MLPERF_PROFILES_DIR, else the checkout's
    containers: bool = True           # run jobs that name an image in it, if an engine answers
    images_dir: Path | None = None    # sideloaded image tarballs; None: WORK_DIR/images
    # The platform of the containers this agent runs (linux/amd64, linux/arm64); None: the
    # host's. Another one runs under qemu emulation and every result says so.
    platform: str | None = None
    # Where the other nodes of a group run reach this one (its rendezvous, as rank 0); None:
    # this machine's address on the route to the broker.
    address: str | None = None
    models_dir: Path | None = None    # litert model artifacts; None: WORK_DIR/models
    models_url: str | None = None     # `mlperf-controller models serve`, to fetch missing ones
    # Image refs this agent will run (shell patterns, or sha256:... image ids).
    allow_images: list[str] = field(default_factory=lambda: list(DEFAULT_ALLOWED_IMAGES))
    max_queued_jobs: int = 16         # more is refused ("busy"), never queued without bound
    # Power measurement (agent.power.config.PowerConfig; a mapping in the YAML file). None: the
    # device profile's power section. power_root: where the host's /sys is (default /).
    power: Any = None
    power_root: Path = Path("/")
    # Trust (agent.gate): the controller key jobs must be signed with -- SHA256:fingerprint,
    # base64 public key or a file holding one. None: the pin kept in WORK_DIR/identity, else
    # trust on first use (said loudly) unless trust_on_first_use is off.
    controller_key: str | None = None
    trust_on_first_use: bool = True
    identity: Path | None = None      # this agent's signing key; None: WORK_DIR/identity/
    enrol_token_file: Path | None = None   # the lab's pre-shared enrolment token (or env)
    # Broker login (agent.link.Broker): the password from a file or MLPERF_BROKER_PASSWORD.
    broker_user: str | None = None
    broker_password_file: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def __post_init__(self) -> None:
        try:
            check_id(self.name, "agent name")
            for tag in self.tags:
                check_id(tag, "tag")
        except ProtocolError as exc:
            raise ConfigError(str(exc)) from None
        self.data_root = Path(self.data_root).expanduser()
        self.work_dir = Path(self.work_dir).expanduser()
        self.power_root = Path(self.power_root).expanduser()
        if self.power is not None:
            from agent.power.config import parse_power_config
            self.power = parse_power_config(self.power)
        if self.platform is not None:
            from agent.platforms import UnsupportedPlatform, known
            try:
                known(self.platform if isinstance(self.platform, str) else repr(self.platform))
            except UnsupportedPlatform as exc:
                raise ConfigError(f"--platform: {exc}") from None
        if self.address is not None:
            import re

            from agent.protocol import HOST_PATTERN
            if not isinstance(self.address, str) or not re.match(HOST_PATTERN, self.address):
                raise ConfigError(f"--address {self.address!r}: an IP address or a host name, "
                                  "e.g. 10.0.0.5 or node1.lab")
        self.images_dir = Path(self.images_dir or self.work_dir / "images").expanduser()
        self.models_dir = Path(self.models_dir or self.work_dir / "models").expanduser()
        if self.models_url:
            from agent.models_fetch import check_url
            try:
                self.models_url = check_url(str(self.models_url))
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        self.identity = Path(self.identity or self.work_dir / "identity" / "agent_ed25519"
                             ).expanduser()
        for name in ("profiles_dir", "enrol_token_file", "broker_password_file", "tls_ca",
                     "tls_cert", "tls_key"):
            if getattr(self, name) is not None:
                setattr(self, name, Path(getattr(self, name)).expanduser())
        for name in ("heartbeat_s", "resend_s"):
            if not isinstance(getattr(self, name), (int, float)) or getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds")
        if not 0.5 <= self.heartbeat_s <= 300:
            raise ConfigError("heartbeat_s must be between 0.5 and 300 seconds")
        if not isinstance(self.max_queued_jobs, int) or not 1 <= self.max_queued_jobs <= 1000:
            raise ConfigError("max_queued_jobs must be a whole number from 1 to 1000")
        if not isinstance(self.allow_images, list) or not all(
                isinstance(p, str) and p.strip() for p in self.allow_images):
            raise ConfigError("allow_images must be a list of image patterns")

    def check_work_dir(self) -> None:
        """One clear line when the work folder (spool, job output, keys) cannot be written."""
        try:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            probe = self.work_dir / f".write-test-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"--work-dir {self.work_dir}: cannot write there "
                              f"({exc.strerror}); give a folder this user can write") from None

    def broker_connection(self):
        """The broker with this agent's credentials and TLS files (agent.link.Broker)."""
        from agent.link import Broker

        return Broker.from_settings(self)

    def enrol_token(self) -> str | None:
        return read_token(self.enrol_token_file)


def resolve(flags: dict[str, Any], config: Path | None = None) -> AgentSettings:
    """Merge explicitly given flags (None = not given) over the config file over defaults."""
    values = read_settings_file(config, DEFAULT_CONFIG, {f.name for f in fields(AgentSettings)},
                                relative=CREDENTIAL_KEYS)
    values.update({k: v for k, v in flags.items() if v not in (None, [], ())})
    try:
        return AgentSettings(**values)
    except TypeError as exc:  # a wrong type in the YAML file
        raise ConfigError(f"agent settings: {exc}") from None


def parse_params(items: list[str] | None) -> dict[str, ParamValue]:
    """``["lr=0.1", "layers=256,128"]`` -> job params. Values stay strings: the reference's
    typed config parses them (and rejects an unknown key or a bad type)."""
    params: dict[str, ParamValue] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        params[key.strip()] = value.strip()
    return params
