"""Android (and laptop) batteries: ``/sys/class/power_supply/*`` of type ``Battery``, power =
``voltage_now`` (µV) x ``current_now``.

``current_now`` differs by vendor: µA (the kernel ABI) or mA, and discharge negative (the ABI)
or positive. Options ``current_unit`` (``uA``/``mA``) and ``discharge`` (``negative``/
``positive``) state it (the device profile should); otherwise the unit is detected from the
magnitude and the sign from ``status``, and the report says which convention was used. While
charging, the battery figure is not the device's draw: the note says so."""

from __future__ import annotations

import time
from pathlib import Path

from agent.power.base import (
    Channel,
    Context,
    NumberFile,
    Reading,
    Sensor,
    SensorError,
    SensorKind,
    Unavailable,
    read_number,
    read_text,
)
from agent.power.registry import register_sensor

SUPPLIES = "/sys/class/power_supply"
#: |current_now| below this is read as mA when the unit is not stated (20 mA in µA is less
#: than any phone draws while training; 20 A in mA is more than any phone can).
MA_BELOW = 20_000
_UNITS = {"ua": 1e-6, "µa": 1e-6, "microamps": 1e-6, "ma": 1e-3, "milliamps": 1e-3}


@register_sensor("battery")
class Battery(Sensor):
    """One battery: its draw in W, positive while discharging."""

    kind = SensorKind.POWER
    update_period_s = 1.0                       # fuel gauges refresh about once a second

    def __init__(self, d: Path, unit_a: float, discharge_sign: float, note: str) -> None:
        super().__init__(d.name, [Channel(d.name, "battery", "µV x " + (
            "µA" if unit_a == 1e-6 else "mA"))], str(d))
        self.d, self.unit_a, self.sign = d, unit_a, discharge_sign
        self.volts, self.amps = NumberFile(d / "voltage_now"), NumberFile(d / "current_now")
        self.note = note

    @classmethod
    def probe(cls, ctx: Context) -> list[Sensor] | Unavailable | None:
        wanted = ctx.options.get("name")
        sensors: list[Sensor] = []
        for d in sorted(ctx.path(SUPPLIES).glob("*")):
            if read_text(d / "type") != "Battery" or (wanted and d.name != wanted):
                continue
            if not (d / "voltage_now").exists() or not (d / "current_now").exists():
                continue
            raw = read_number(d / "current_now")
            unit_a, unit_how = _unit(ctx.options.get("current_unit"), raw)
            sign, sign_how = _sign(ctx.options.get("discharge"), raw, read_text(d / "status"))
            note = f"current_now in {'µA' if unit_a == 1e-6 else 'mA'} ({unit_how}), " \
                   f"discharge {'negative' if sign < 0 else 'positive'} ({sign_how})"
            if read_text(d / "status") == "Charging":
                note += "; CHARGING: this is not the device's draw (unplug, or measure at the wall)"
            sensors.append(cls(d, unit_a, sign, note))
        return sensors or None

    def read(self) -> Reading:
        volts = self.volts.read() * 1e-6
        amps = self.amps.read() * self.unit_a
        return Reading(time.monotonic(), (volts * amps * self.sign,))

    def close(self) -> None:
        self.volts.close()
        self.amps.close()


def _unit(stated: str | None, raw: float) -> tuple[float, str]:
    if stated:
        key = str(stated).strip().lower()
        if key not in _UNITS:
            raise SensorError(f"battery option current_unit={stated!r}: use uA or mA")
        return _UNITS[key], "stated by the configuration"
    if raw and abs(raw) < MA_BELOW:
        return 1e-3, f"detected: |current_now| {abs(raw):.0f} < {MA_BELOW} read as mA"
    return 1e-6, "kernel ABI unit, consistent with the magnitude"


def _sign(stated: str | None, raw: float, status: str) -> tuple[float, str]:
    if stated:
        if stated not in ("negative", "positive"):
            raise SensorError(f"battery option discharge={stated!r}: use negative or positive")
        return (-1.0 if stated == "negative" else 1.0), "stated by the configuration"
    if raw and status in ("Discharging", "Charging"):
        discharging_negative = (raw < 0) == (status == "Discharging")
        return (-1.0 if discharging_negative else 1.0), f"detected from status {status}"
    return -1.0, "kernel ABI default; state `discharge` to be sure"
