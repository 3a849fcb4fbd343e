"""Generic hwmon chips, found by their ``name`` file (never by the unstable hwmonN number):
``power*_input``/``power*_average`` (µW), ``energy*_input`` (µJ), and ``in*_input`` (mV) x
``curr*_input`` (mA) where a channel has no power file.

Option ``name`` restricts to one chip; ``scope`` overrides the scope guessed from the driver.
Chips with their own backend (``ina3221``) are left to it."""

from __future__ import annotations

import re
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
    read_number,
    read_text,
)
from agent.power.registry import register_sensor

HWMON = "/sys/class/hwmon"
OWN_BACKEND = {"ina3221"}
_SCOPE_BY_DRIVER = {"amdgpu": "gpu", "nouveau": "gpu", "i915": "gpu", "xe": "gpu",
                    "amd_energy": "package", "zenpower": "package"}
_INDEX = re.compile(r"^(power|energy|in|curr)(\d+)_(input|average)$")


def chips(ctx: Context, name: str | None = None) -> list[tuple[str, Path]]:
    """(driver name, directory) of every hwmon chip under ``ctx.root``, optionally one name."""
    found = []
    for d in sorted(ctx.path(HWMON).glob("hwmon*")):
        driver = read_text(d / "name")
        if driver and (name is None or driver == name):
            found.append((driver, d))
    return found


def _label(d: Path, prefix: str, index: str, driver: str) -> str:
    return read_text(d / f"{prefix}{index}_label") or f"{prefix}{index}"


class _Files(Sensor):
    """A hwmon sensor over a list of (file, scale) or ((v_file, i_file), scale) channels."""

    def __init__(self, label: str, channels: list[Channel], files: list, scales: list[float],
                 where: str, period_s: float) -> None:
        super().__init__(label, channels, where)
        self.files = [tuple(NumberFile(p) for p in (f if isinstance(f, tuple) else (f,)))
                      for f in files]
        self.scales = scales
        self.update_period_s = period_s

    def read(self) -> Reading:
        values = []
        for f, scale in zip(self.files, self.scales):
            v = f[0].read()
            values.append((v * f[1].read() if len(f) == 2 else v) * scale)
        return Reading(time.monotonic(), tuple(values))

    def close(self) -> None:
        for f in self.files:
            for n in f:
                n.close()


@register_sensor("hwmon")
class Hwmon(_Files):
    """Power readings of generic hwmon chips (one sensor per chip)."""

    kind = SensorKind.POWER

    @classmethod
    def probe(cls, ctx: Context) -> list[Sensor] | Unavailable | None:
        sensors: list[Sensor] = []
        for driver, d in chips(ctx, ctx.options.get("name")):
            if driver in OWN_BACKEND and "name" not in ctx.options:
                continue
            scope = ctx.options.get("scope") or _SCOPE_BY_DRIVER.get(driver, "rail")
            period = read_number(d / "update_interval") / 1000 if (d / "update_interval") \
                .exists() else 0.1
            idx = {}
            for f in d.iterdir():
                m = _INDEX.match(f.name)
                if m:
                    idx.setdefault((m[1], m[2]), {})[m[3]] = f
            power_ch, power_files, power_scales = [], [], []
            counter_ch, counter_files, counter_scales = [], [], []
            energy_idx = {i for kind, i in idx if kind == "energy"}
            names = [lb for kind, i in idx if kind == "energy"
                     for lb in [_label(d, "energy", i, driver)]]
            has_socket = any(n.startswith("Esocket") for n in names)
            for kind, i in sorted(idx, key=lambda k: (k[0], int(k[1]))):
                files = idx[(kind, i)]
                if kind == "energy":
                    label = _label(d, "energy", i, driver)
                    if has_socket and label.startswith("Ecore"):
                        continue                  # amd_energy: cores are inside the socket
                    counter_ch.append(Channel(f"{driver}/{label}", scope, "µJ"))
                    counter_files.append(files["input"])
                    counter_scales.append(1e-6)
                elif kind == "power" and i not in energy_idx:
                    power_ch.append(Channel(f"{driver}/{_label(d, 'power', i, driver)}", scope,
                                            "µW"))
                    power_files.append(files.get("input") or files["average"])
                    power_scales.append(1e-6)
                elif kind == "in" and ("curr", i) in idx and ("power", i) not in idx \
                        and i not in energy_idx and "input" in files:
                    power_ch.append(Channel(f"{driver}/{_label(d, 'in', i, driver)}", scope,
                                            "mV x mA"))
                    power_files.append((files["input"], idx[("curr", i)]["input"]))
                    power_scales.append(1e-6)
            if power_ch:
                sensors.append(cls(f"{driver}@{d.name}", power_ch, power_files, power_scales,
                                   str(d), period))
            if counter_ch:
                sensors.append(HwmonEnergy(f"{driver}@{d.name}", counter_ch, counter_files,
                                           counter_scales, str(d), period))
        return sensors or None


class HwmonEnergy(_Files):
    """Energy counters of generic hwmon chips (``energy*_input``, µJ)."""

    name = "hwmon"
    kind = SensorKind.ENERGY_COUNTER
