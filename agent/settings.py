"""Agent settings: flags, then environment (``MLPERF_*``), then a YAML config file, then
defaults. The CLI fills flags and environment; this module adds the file and the defaults."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agent.protocol import DEFAULT_PREFIX, ConfigError, ProtocolError, check_id
from agent.settings_file import read_settings_file

#: Config file read when ``--config`` is not given (keys as the long flags, with underscores).
DEFAULT_CONFIG = Path("~/.config/mlperf-edge/agent.yaml")


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / "mlperf-edge"


def default_name() -> str:
    """The host name, made a valid agent id (letters, digits, '.', '_', '-')."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()).strip("-._") or "agent"
    return name[:128]


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
    prefix: str = DEFAULT_PREFIX
    allow: list[str] | None = None
    # Device profile and containers (device_profiles/, containers/).
    profile: str | None = None        # a profile name or YAML path; None: detect it
    profiles_dir: Path | None = None  # None: $MLPERF_PROFILES_DIR, else the checkout's
    containers: bool = True           # run jobs that name an image in it, if an engine answers
    images_dir: Path | None = None    # sideloaded image tarballs; None: WORK_DIR/images
    # Power measurement (agent.power.config.PowerConfig; a mapping in the YAML file). None: the
    # device profile's power section. power_root: where the host's /sys is (default /).
    power: Any = None
    power_root: Path = Path("/")

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
        self.images_dir = Path(self.images_dir or self.work_dir / "images").expanduser()
        if self.profiles_dir is not None:
            self.profiles_dir = Path(self.profiles_dir).expanduser()
        for name in ("heartbeat_s", "resend_s"):
            if not isinstance(getattr(self, name), (int, float)) or getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds")


def resolve(flags: dict[str, Any], config: Path | None = None) -> AgentSettings:
    """Merge explicitly given flags (None = not given) over the config file over defaults."""
    values = read_settings_file(config, DEFAULT_CONFIG, {f.name for f in fields(AgentSettings)})
    values.update({k: v for k, v in flags.items() if v not in (None, [], ())})
    try:
        return AgentSettings(**values)
    except TypeError as exc:  # a wrong type in the YAML file
        raise ConfigError(f"agent settings: {exc}") from None
