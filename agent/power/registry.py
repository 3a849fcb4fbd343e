"""Power sources by name, and discovery: which ones this device has, and which it has but
cannot read (with the reason and the fix)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

from agent.power.base import Context, Sensor, SensorError, Unavailable
from agent.power.config import PowerConfig

log = logging.getLogger(__name__)
_BACKENDS: dict[str, type[Sensor]] = {}
#: Backends that discovery tries, in this order. Plugs need a name (their topic) and the
#: CPU model is an estimate: both only run when the configuration names them.
DISCOVERED = ("rapl", "hwmon", "ina3221", "battery", "nvml", "pi5-pmic")
_MODULES = ("rapl", "hwmon", "ina3221", "battery", "termux_battery", "nvml", "pi5_pmic",
            "shelly", "tasmota", "cpu_model")


def register_sensor(name: str) -> Callable[[type[Sensor]], type[Sensor]]:
    """Class decorator: make a Sensor subclass available as ``name`` in device profiles."""

    def add(cls: type[Sensor]) -> type[Sensor]:
        cls.name = name
        _BACKENDS[name] = cls
        return cls

    return add


def backends() -> dict[str, type[Sensor]]:
    """Every registered backend, importing the built-in ones on first use."""
    for module in _MODULES:                 # cached by Python after the first call
        importlib.import_module(f"agent.power.sources.{module}")
    return dict(_BACKENDS)


def get(name: str) -> type[Sensor]:
    known = backends()
    if name not in known:
        raise SensorError(f"unknown power source {name!r} (known: {', '.join(sorted(known))})")
    return known[name]


def _probe(cls: type[Sensor], ctx: Context) -> list[Sensor] | Unavailable | None:
    try:
        return cls.probe(ctx)
    except SensorError as exc:
        return Unavailable(cls.name, str(exc))


def _named(name: str, ctx: Context) -> list[Sensor]:
    found = _probe(get(name), ctx)
    if isinstance(found, Unavailable):
        raise SensorError(f"power source {name!r}: {found.reason}"
                          + (f"; fix: {found.fix}" if found.fix else ""))
    if not found:
        raise SensorError(f"power source {name!r} is not present under {ctx.root} "
                          "(see `mlperf-agent sensors`)")
    return found


def _named_or_otherwise(spec, config: PowerConfig, ctx: Context) -> list[Sensor]:
    """The source ``spec`` names, else its ``otherwise`` (and so on); SensorError naming why
    each failed when none opens."""
    reasons = []
    while spec is not None:
        try:
            return _named(spec.name, Context(ctx.root, ctx.broker, config.model,
                                             dict(spec.options), named=True))
        except SensorError as exc:
            reasons.append(str(exc))
            spec = spec.otherwise
    raise SensorError("; otherwise ".join(reasons))


def discover(config: PowerConfig, ctx: Context) -> tuple[list[Sensor], list[Unavailable]]:
    """Open the sources ``config`` names (each must work: a named source that fails is a
    SensorError with its fix), or, when it names none, every measured source found here.
    Falls back to the CPU-utilisation model (estimated) only when nothing is measured and the
    configuration has a power model."""
    sensors: list[Sensor] = []
    missing: list[Unavailable] = []
    if config.sources:
        try:
            for spec in config.sources:
                sensors += _named_or_otherwise(spec, config, ctx)
        except SensorError:
            close_all(sensors)                   # e.g. a plug already connected
            raise
        return sensors, missing
    for name in DISCOVERED:
        found = _probe(get(name), Context(ctx.root, ctx.broker, config.model))
        if isinstance(found, Unavailable):
            missing.append(found)
        elif found:
            sensors += found
    if not sensors and config.model is not None:
        found = _probe(get("cpu-model"), Context(ctx.root, ctx.broker, config.model))
        if isinstance(found, list):
            sensors += found
    return sensors, missing


def close_all(sensors: list[Sensor]) -> None:
    for sensor in sensors:
        try:
            sensor.close()
        except Exception as exc:                             # noqa: BLE001 - best effort
            log.debug("closing %s: %s", sensor.label, exc)
