"""RAPL energy counters through powercap (Intel and AMD): ``/sys/class/powercap/intel-rapl:*``
and ``intel-rapl-mmio:*``. ``energy_uj`` is µJ and wraps at ``max_energy_range_uj``.

Zones nest (``intel-rapl:0`` package-0 holds ``intel-rapl:0:0`` core): each zone keeps its own
scope (package, core, uncore, dram, platform), so a package is never summed with its parts, and
an MMIO zone repeating an MSR zone's name is left out."""

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

POWERCAP = "/sys/class/powercap"
_SCOPES = {"core": "core", "uncore": "uncore", "dram": "dram", "psys": "platform"}
FIX = ("run the agent as root, or grant read access: `sudo chmod o+r "
       "/sys/class/powercap/intel-rapl*/energy_uj /sys/class/powercap/intel-rapl*/*/energy_uj` "
       "(reset at boot; a udev rule or tmpfiles.d entry makes it stick)")


def scope_of(zone_name: str) -> str:
    return "package" if zone_name.startswith("package") else _SCOPES.get(zone_name, zone_name)


@register_sensor("rapl")
class Rapl(Sensor):
    """Every RAPL zone of this machine as one sensor, one channel per zone."""

    kind = SensorKind.ENERGY_COUNTER
    update_period_s = 0.001

    def __init__(self, files: list[Path], channels: list[Channel], where: str) -> None:
        super().__init__("powercap", channels, where)
        self.files = [NumberFile(f) for f in files]

    @classmethod
    def probe(cls, ctx: Context) -> list[Sensor] | Unavailable | None:
        base = ctx.path(POWERCAP)
        zones = sorted(p for p in base.glob("intel-rapl*:*") if (p / "energy_uj").exists())
        if not zones:
            return None
        files, channels, seen = [], [], set()
        parents: dict[str, str] = {}
        for zone in sorted(zones, key=lambda p: (p.name.startswith("intel-rapl-mmio"),
                                                  p.name.count(":"), p.name)):
            name = read_text(zone / "name", zone.name)
            depth = zone.name.count(":")
            family = zone.name.split(":")[0]
            if depth == 1:
                parents[zone.name] = name
                label = name
            else:
                parent = zone.name.rsplit(":", 1)[0]
                label = f"{parents.get(parent, parent)}/{name}"
            if family == "intel-rapl-mmio" and label in seen:
                continue                       # the same package through MMIO: never twice
            seen.add(label)
            try:
                max_j = read_number(zone / "max_energy_range_uj") / 1e6
            except SensorError:
                max_j = None
            files.append(zone / "energy_uj")
            channels.append(Channel(label, scope_of(name), "µJ", max_j))
        denied = [f for f in files if not _readable(f)]
        if denied:
            return Unavailable(
                "rapl", f"{denied[0]} is not readable by this user: RAPL energy_uj is "
                "root-only since the 2020 PLATYPUS fix (CVE-2020-8694)", FIX, str(base))
        return [cls(files, channels, str(base))]

    def read(self) -> Reading:
        values = tuple(f.read() / 1e6 for f in self.files)
        return Reading(time.monotonic(), values)

    def close(self) -> None:
        for f in self.files:
            f.close()


def _readable(path: Path) -> bool:
    try:
        with open(path) as fh:
            fh.read()
        return True
    except PermissionError:
        return False
    except OSError:
        return True                            # another problem: reading reports it
