"""Controller settings: flags, then environment (MLPERF_BROKER, MLPERF_DB, MLPERF_PREFIX),
then a YAML config file (``~/.config/mlperf-edge/controller.yaml`` or MLPERF_CONTROLLER_CONFIG),
then defaults. The CLI reads flags and environment; this module adds the file and defaults."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agent.protocol import DEFAULT_PREFIX
from agent.settings_file import read_settings_file
from controller.store import default_db_url

DEFAULT_CONFIG = Path("~/.config/mlperf-edge/controller.yaml")


@dataclass(frozen=True)
class ControllerSettings:
    """Where the broker and the results store are."""

    broker: str = "mqtt://localhost:1883"
    db: str = field(default_factory=default_db_url)
    prefix: str = DEFAULT_PREFIX


def resolve(flags: dict[str, Any], config: Path | None = None) -> ControllerSettings:
    """Merge given flags (None = not given) over the config file over defaults."""
    values = read_settings_file(config, DEFAULT_CONFIG,
                                {f.name for f in fields(ControllerSettings)})
    values.update({k: v for k, v in flags.items() if v is not None})
    return ControllerSettings(**values)
