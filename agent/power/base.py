"""What every power source is: a Sensor with one or more channels, read in SI units.

A backend converts its native units (µJ, mW, µA, µV, Wh) to joules or watts inside its own file
and nowhere else; backends never integrate: the one Sampler does (agent/power/sampler.py).
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from agent.errors import MlperfEdgeError


class SensorError(MlperfEdgeError):
    """A power source cannot be opened or read."""


class SensorKind(str, enum.Enum):
    ENERGY_COUNTER = "energy counter"   # cumulative joules: differenced (wraparound handled)
    POWER = "power reading"             # instantaneous watts: integrated (trapezoid)


@dataclass(frozen=True)
class Channel:
    """One measured quantity of a sensor, e.g. RAPL ``package-0`` or INA3221 ``VDD_IN``.

    ``max_energy_j`` is where an energy counter wraps to zero (None: it does not wrap).
    """

    name: str
    scope: str                          # package, dram, core, uncore, platform, gpu, rail, board, wall
    native_unit: str                    # what the hardware reports, e.g. "µJ" or "mV x mA"
    max_energy_j: float | None = None


@dataclass(frozen=True)
class Reading:
    """Values of every channel (J for counters, W for power), read at monotonic time ``t``.

    ``age_s`` is how old the underlying value already was when read (a plug's last message);
    the sampler reports a source as stale past its ``stale_after_s``.
    """

    t: float
    values: tuple[float, ...]
    age_s: float = 0.0


@dataclass(frozen=True)
class Unavailable:
    """A source that exists (or was asked for) but cannot be read here: why, and the fix."""

    name: str
    reason: str
    fix: str = ""
    where: str = ""


@dataclass(frozen=True)
class Context:
    """What probing needs besides the backend's own options: the filesystem root (``/``, a
    host's root mounted in a container, or a test fixture tree), the agent's broker for smart
    plugs, and the device profile's power model for estimates."""

    root: Path = Path("/")
    broker: str | None = None
    model: Any = None                   # agent.power.config.PowerModel | None
    options: dict[str, Any] = field(default_factory=dict)
    named: bool = False                 # the configuration asked for this source by name

    def path(self, absolute: str) -> Path:
        """``/sys/class/powercap`` under this context's root."""
        return self.root / absolute.lstrip("/")


class Sensor:
    """A power source. Subclasses set the class attributes and implement probe() and read()."""

    name: ClassVar[str] = "?"           # the registered name, set by @register_sensor
    kind: ClassVar[SensorKind]
    method: ClassVar[str] = "measured"  # or "estimated": never passed off as a measurement
    #: How often the hardware refreshes its value, s (reading faster only repeats it).
    update_period_s: float = 0.001
    #: A reading older than this is stale, s (None: never, e.g. a counter read directly).
    stale_after_s: float | None = None

    def __init__(self, label: str, channels: list[Channel], where: str = "") -> None:
        self.label = label              # e.g. "intel-rapl:0" or "ina3221@1-0040"
        self.channels = channels
        self.where = where              # the file or topic it reads, for `sensors`
        self.note = ""                  # a convention used or a caveat, shown with figures

    @classmethod
    def probe(cls, ctx: Context) -> list[Sensor] | Unavailable | None:
        """The instances found under ``ctx``; Unavailable (with the fix) if present but not
        readable; None if this device simply has no such source. Cheap: no sampling."""
        raise NotImplementedError

    def read(self) -> Reading:
        """Every channel now, in J (counters) or W (power); SensorError if it cannot."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (plugs); nothing for files."""

    def source_names(self) -> list[str]:
        return [f"{self.name}/{c.name}" for c in self.channels]


def read_number(path: Path) -> float:
    """A sysfs number file, as float; SensorError naming the file if it is unreadable."""
    try:
        return float(path.read_text().split()[0])
    except PermissionError:
        raise SensorError(f"{path}: permission denied") from None
    except (OSError, ValueError, IndexError) as exc:
        raise SensorError(f"{path}: {exc.__class__.__name__}: {exc}") from None


class NumberFile:
    """A sysfs number file kept open and re-read with pread at offset 0 (how sysfs regenerates
    an attribute): about a tenth of the cost of open/read/close per sample."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def read(self) -> float:
        try:
            if self.fd is None:
                self.fd = os.open(self.path, os.O_RDONLY)
            return float(os.pread(self.fd, 64, 0).split()[0])
        except PermissionError:
            raise SensorError(f"{self.path}: permission denied") from None
        except (OSError, ValueError, IndexError) as exc:
            self.close()
            raise SensorError(f"{self.path}: {exc.__class__.__name__}: {exc}") from None

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            finally:
                self.fd = None


def read_text(path: Path, default: str = "") -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return default
