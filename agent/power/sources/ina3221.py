"""NVIDIA Jetson INA3221 rail monitors, both kernel layouts:

* JetPack 5+ (Orin, Xavier on L4T 35+): a hwmon chip named ``ina3221`` with ``in{1,2,3}_label``,
  ``in{1,2,3}_input`` (bus mV) and ``curr{1,2,3}_input`` (mA); ``in7``/``curr4`` are the
  sum-of-shunts channel and are skipped.
* JetPack 4 (Nano, TX2, Xavier on L4T 32): an ``iio:device`` under the ``ina3221x`` i2c driver
  with ``rail_name_N``, ``in_powerN_input`` (mW), ``in_currentN_input`` (mA), ``in_voltageN_input``
  (mV).

Channels labelled ``NC`` are not connected and are skipped. The board's input rail (``VDD_IN``,
``POM_5V_IN``) is scope ``board``; the others are ``rail`` (where no input rail exists, the report
sums the rails)."""

from __future__ import annotations

import time
from pathlib import Path

from agent.power.base import (
    Channel,
    Context,
    NumberFile,
    Reading,
    Sensor,
    SensorKind,
    Unavailable,
    read_text,
)
from agent.power.registry import register_sensor
from agent.power.sources.hwmon import chips

TOTAL_RAILS = {"VDD_IN", "POM_5V_IN", "VDD_5V_IN", "VIN_SYS_5V0"}
IIO_GLOBS = ("/sys/bus/i2c/drivers/ina3221x/*/iio:device*", "/sys/bus/iio/devices/iio:device*")


def _skip(label: str) -> bool:
    return not label or label.upper() == "NC" or "sum" in label.lower()


def _scope(label: str) -> str:
    return "board" if label.upper() in TOTAL_RAILS else "rail"


@register_sensor("ina3221")
class Ina3221(Sensor):
    """One INA3221 chip: up to three rails, each V x I (or P on JetPack 4), in W."""

    kind = SensorKind.POWER
    update_period_s = 0.01

    def __init__(self, label: str, channels: list[Channel], files: list[tuple[Path, ...]],
                 scale: float, where: str) -> None:
        super().__init__(label, channels, where)
        self.files = [tuple(NumberFile(p) for p in f) for f in files]
        self.scale = scale

    @classmethod
    def probe(cls, ctx: Context) -> list[Sensor] | Unavailable | None:
        sensors: list[Sensor] = []
        for _driver, d in chips(ctx, "ina3221"):
            channels, files = [], []
            for i in (1, 2, 3):
                label = read_text(d / f"in{i}_label")
                if _skip(label) or not (d / f"curr{i}_input").exists():
                    continue
                channels.append(Channel(label, _scope(label), "mV x mA"))
                files.append((d / f"in{i}_input", d / f"curr{i}_input"))
            if channels:
                sensors.append(cls(f"ina3221@{d.resolve().parent.parent.name or d.name}",
                                   channels, files, 1e-6, str(d)))
        seen: set[Path] = set()
        for pattern in IIO_GLOBS:
            for d in sorted(ctx.root.glob(pattern.lstrip("/"))):
                real = d.resolve()
                if real in seen or not list(d.glob("rail_name_*")):
                    continue
                seen.add(real)
                channels, files = [], []
                for n in range(3):
                    label = read_text(d / f"rail_name_{n}")
                    if _skip(label) or not (d / f"in_power{n}_input").exists():
                        continue
                    channels.append(Channel(label, _scope(label), "mW"))
                    files.append((d / f"in_power{n}_input",))
                if channels:
                    sensors.append(cls(f"ina3221x@{d.parent.name}", channels, files, 1e-3,
                                       str(d)))
        return sensors or None

    def read(self) -> Reading:
        values = []
        for f in self.files:
            v = f[0].read() * (f[1].read() if len(f) == 2 else 1.0)
            values.append(v * self.scale)
        return Reading(time.monotonic(), tuple(values))

    def close(self) -> None:
        for f in self.files:
            for n in f:
                n.close()
