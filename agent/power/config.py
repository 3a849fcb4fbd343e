"""How a device is measured: which power sources to read, how often, how to cool down and take
an idle baseline before a run, and the power model to fall back on when nothing is measured.

This is the ``power:`` section of a device profile (``device_profiles/*.yaml``) and the agent's
own override; both are validated by these models, so an unknown key or a wrong type is an
error that names the field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    """One power source to read, by its registered name (``rapl``, ``hwmon``, ``ina3221``,
    ``battery``, ``nvml``, ``pi5-pmic``, ``shelly``, ``tasmota``, ``cpu-model``), with the
    options that backend documents (e.g. ``{"topic": "shellyplus1pm-a8032ab12345"}`` for a plug,
    ``{"current_unit": "mA", "discharge": "negative"}`` for a battery)."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    otherwise: SourceSpec | None = Field(default=None, description=(
        "the source to read where this one is absent or unreadable, e.g. a phone's sysfs "
        "battery, otherwise Termux:API's"))


class CooldownSpec(_Strict):
    """Before each run, wait until the hottest thermal zone is below ``threshold_c`` (giving up
    after ``timeout_s``), then take an idle baseline of ``baseline_s``."""

    threshold_c: float | None = Field(default=None, description="None: do not wait")
    timeout_s: float = Field(default=300.0, ge=0)
    poll_s: float = Field(default=2.0, gt=0)
    baseline_s: float = Field(default=5.0, ge=0)


class PowerModel(_Strict):
    """Estimated power when nothing is measured: idle_w + (max_w - idle_w) * cpu_utilisation.
    Always reported as method ``estimated``."""

    idle_w: float = Field(ge=0)
    max_w: float = Field(gt=0)
    scope: Literal["package", "board", "wall"] = "board"


class PowerConfig(_Strict):
    """``sources`` empty means: discover every measured source this device has."""

    sources: list[SourceSpec] = Field(default_factory=list)
    rate_hz: float = Field(default=10.0, gt=0, le=1000)
    cooldown: CooldownSpec = Field(default_factory=CooldownSpec)
    model: PowerModel | None = None
    log_rate_hz: float = Field(default=1.0, gt=0, le=100,
                               description="power_reading MLLOG events per second (each the "
                                           "average of the samples in its interval)")


def parse_power_config(value: Any, where: str = "power") -> PowerConfig:
    """A PowerConfig from a mapping (YAML) or a PowerConfig; ConfigError naming the field."""
    from agent.protocol import ConfigError

    if isinstance(value, PowerConfig):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping (sources, rate_hz, cooldown, model)")
    try:
        return PowerConfig.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where}.{field}: {first['msg']}") from None
