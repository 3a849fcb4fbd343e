"""An ESTIMATE, never a measurement: power = idle_w + (max_w - idle_w) x CPU utilisation
(psutil, all cores, since the previous reading), from the device profile's power model (or
options ``idle_w``/``max_w``). Used only when nothing on the device is measured."""

from __future__ import annotations

import time

import psutil

from agent.power.base import (
    Channel,
    Context,
    Reading,
    Sensor,
    SensorError,
    SensorKind,
    Unavailable,
)
from agent.power.registry import register_sensor


@register_sensor("cpu-model")
class CpuModel(Sensor):
    """CPU utilisation x a linear power model, W (method: estimated)."""

    kind = SensorKind.POWER
    method = "estimated"
    update_period_s = 0.1

    def __init__(self, idle_w: float, max_w: float, scope: str) -> None:
        super().__init__("cpu-model", [Channel("cpu-utilisation", scope, "% CPU")],
                         "psutil.cpu_times")
        self.idle_w, self.max_w = idle_w, max_w
        self.note = f"ESTIMATE: {idle_w:g} W idle .. {max_w:g} W busy x CPU utilisation"
        self._last = psutil.cpu_times()

    @classmethod
    def probe(cls, ctx: Context) -> list[Sensor] | Unavailable | None:
        o, m = ctx.options, ctx.model
        idle = o.get("idle_w", m.idle_w if m else None)
        busy = o.get("max_w", m.max_w if m else None)
        if idle is None or busy is None:
            raise SensorError("the cpu-model estimate needs a power model (idle_w, max_w) in "
                              "the device profile's power section")
        return [cls(float(idle), float(busy), o.get("scope", m.scope if m else "board"))]

    def read(self) -> Reading:
        now = psutil.cpu_times()
        busy = sum(now) - now.idle - getattr(now, "iowait", 0.0)
        last_busy = sum(self._last) - self._last.idle - getattr(self._last, "iowait", 0.0)
        total = sum(now) - sum(self._last)
        util = min(1.0, max(0.0, (busy - last_busy) / total)) if total > 0 else 0.0
        self._last = now
        return Reading(time.monotonic(),
                       (self.idle_w + (self.max_w - self.idle_w) * util,))
