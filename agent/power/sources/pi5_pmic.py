"""Raspberry Pi 5 PMIC rails from ``vcgencmd pmic_read_adc``: lines such as
``VDD_CORE_A current(7)=0.74860000A`` and ``VDD_CORE_V volt(15)=0.88168800V``; every rail with
both a current and a voltage becomes a channel (V x A, W). Rails without a pair (``EXT5V_V``)
are skipped. The PMIC does not see USB and other 5 V loads: the sum of rails is not the board.

Option ``command`` replaces ``vcgencmd pmic_read_adc`` (a list or a string split on spaces)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time

from agent.power.base import (
    Channel,
    Context,
    Reading,
    Sensor,
    SensorError,
    SensorKind,
    Unavailable,
    read_text,
)
from agent.power.registry import register_sensor

DEFAULT_COMMAND = ["vcgencmd", "pmic_read_adc"]
_LINE = re.compile(r"^\s*(\S+)_([AV])\s+(?:current|volt)\(\d+\)=([-\d.eE+]+)\s*[AV]\s*$")


def parse(text: str) -> dict[str, float]:
    """rail -> power, W, for every rail with both a current (A) and a voltage (V)."""
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            (amps if m[2] == "A" else volts)[m[1]] = float(m[3])
    return {rail: volts[rail] * amps[rail] for rail in amps if rail in volts}


@register_sensor("pi5-pmic")
class Pi5Pmic(Sensor):
    """The Pi 5 PMIC's rails, one channel each."""

    kind = SensorKind.POWER
    update_period_s = 0.1

    def __init__(self, command: list[str], rails: list[str]) -> None:
        super().__init__("pmic", [Channel(r, "rail", "V x A") for r in rails], " ".join(command))
        self.command = command
        self.rails = rails
        self.note = "sum of PMIC rails: USB and 5 V peripherals are not included"

    @classmethod
    def probe(cls, ctx: Context) -> list[Sensor] | Unavailable | None:
        command = ctx.options.get("command", DEFAULT_COMMAND)
        command = command.split() if isinstance(command, str) else list(command)
        model = read_text(ctx.path("/proc/device-tree/model")) or read_text(
            ctx.path("/sys/firmware/devicetree/base/model"))
        if not ctx.named and "Raspberry Pi 5" not in model:
            return None
        if shutil.which(command[0]) is None:
            return Unavailable("pi5-pmic", f"{command[0]} is not installed",
                               "apt install raspi-utils (it provides vcgencmd)")
        rails = sorted(parse(_run(command)))
        if not rails:
            return Unavailable("pi5-pmic", f"`{' '.join(command)}` printed no rail pairs",
                               "update the Pi 5 firmware (rpi-eeprom-update)")
        return [cls(command, rails)]

    def read(self) -> Reading:
        t0 = time.monotonic()
        rails = parse(_run(self.command))
        missing = [r for r in self.rails if r not in rails]
        if missing:
            raise SensorError(f"{' '.join(self.command)}: rail {missing[0]} missing")
        return Reading((t0 + time.monotonic()) / 2, tuple(rails[r] for r in self.rails))


def _run(command: list[str]) -> str:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SensorError(f"`{' '.join(command)}`: {exc}") from None
    if proc.returncode != 0:
        raise SensorError(f"`{' '.join(command)}` exited {proc.returncode}: "
                          f"{proc.stderr.strip()[:200]}")
    return proc.stdout
