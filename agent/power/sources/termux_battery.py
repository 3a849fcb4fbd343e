"""A phone's battery through Termux:API, where /sys/class/power_supply is not readable (most
Android phones without root): ``termux-battery-status`` prints JSON with ``voltage`` (mV) and
``current`` (µA; Android's BatteryManager sign: negative while discharging), so the draw is
voltage x -current, positive while the phone runs on its battery.

Named only (``--power termux_battery`` or a profile's ``sources``): auto-detection keeps to
the sysfs ``battery`` source, so a phone is never counted twice. Each reading runs the command
(Termux:API answers in ~0.1-0.5 s), so the fuel gauge's ~1 s refresh is the real rate; while
charging the figure is not the device's draw, and the note says so."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

from agent.power.base import Channel, Context, Reading, Sensor, SensorError, SensorKind
from agent.power.registry import register_sensor

COMMAND = "termux-battery-status"
TIMEOUT_S = 5.0
MAX_OUTPUT = 64 * 1024


def status(command: str) -> dict:
    """The command's JSON (SensorError, one line, if it fails or says something else)."""
    try:
        done = subprocess.run([command], capture_output=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SensorError(f"{COMMAND}: {exc}") from None
    if done.returncode != 0:
        raise SensorError(f"{COMMAND} exited {done.returncode}: "
                          f"{done.stderr[:200].decode(errors='replace').strip()}")
    try:
        data = json.loads(done.stdout[:MAX_OUTPUT])
    except ValueError:
        raise SensorError(f"{COMMAND} printed no JSON (is the Termux:API app installed?)") \
            from None
    if not isinstance(data, dict):
        raise SensorError(f"{COMMAND} printed JSON that is not an object")
    return data


def _number(data: dict, key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SensorError(f"{COMMAND} gave no numeric {key!r} (got {value!r}); Termux:API "
                          "0.50 or later reports voltage and current")
    return float(value)


@register_sensor("termux_battery")
class TermuxBattery(Sensor):
    """The battery's draw in W, from Termux:API."""

    kind = SensorKind.POWER
    update_period_s = 1.0

    def __init__(self, command: str, note: str) -> None:
        super().__init__("termux-battery", [Channel("battery", "battery", "mV x µA")], command)
        self.command, self.note = command, note

    @classmethod
    def probe(cls, ctx: Context) -> list[Sensor] | None:
        if not ctx.named:
            return None
        command = shutil.which(COMMAND)
        if command is None:
            raise SensorError(f"{COMMAND} is not installed: `pkg install termux-api` and the "
                              "Termux:API app")
        data = status(command)
        _number(data, "voltage"), _number(data, "current")
        note = "Termux:API, current sign as Android's BatteryManager (negative = discharging)"
        if str(data.get("status", "")).upper() == "CHARGING":
            note += "; CHARGING: this is not the device's draw (unplug it)"
        return [cls(command, note)]

    def read(self) -> Reading:
        data = status(self.command)
        volts = _number(data, "voltage") * 1e-3
        amps = _number(data, "current") * 1e-6
        return Reading(time.monotonic(), (volts * -amps,))
