"""Tasmota plugs over MQTT (scope wall): ``tele/<topic>/SENSOR`` carries ``ENERGY.Power`` (W)
and ``ENERGY.Total`` (kWh), but only every TelePeriod (10 s at the least). So every ``poll_s``
(default 1 s; 0: never) the agent sends ``cmnd/<topic>/STATUS 10`` and reads the answer on
``stat/<topic>/STATUS10`` (``StatusSNS.ENERGY``).

Options: ``topic`` (the device topic, e.g. ``tasmota_A1B2C3``, required), ``broker`` (default:
the agent's)."""

from __future__ import annotations

import time

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
from agent.power.sources._plug import PlugLink, open_link


def topics(topic: str) -> dict[str, str]:
    return {"sensor": f"tele/{topic}/SENSOR", "status": f"stat/{topic}/STATUS10",
            "command": f"cmnd/{topic}/STATUS"}


def parse_energy(doc) -> tuple[float, float | None] | None:
    """(W, J) from a SENSOR telemetry message or a STATUS10 answer."""
    energy = (doc.get("StatusSNS") or doc).get("ENERGY")
    if not energy or "Power" not in energy:
        return None
    power = energy["Power"]
    power = sum(power) if isinstance(power, list) else power     # multi-channel devices
    total = energy.get("Total")
    return float(power), None if total is None else float(total) * 3.6e6


@register_sensor("tasmota")
class Tasmota(Sensor):
    """One Tasmota plug's wall power, W."""

    kind = SensorKind.POWER
    update_period_s = 1.0

    def __init__(self, link: PlugLink, topic: str) -> None:
        super().__init__(topic, [Channel(topic, "wall", "W")], link.topics[0])
        self.link = link
        self.stale_after_s = max(5.0, 3 * link.poll_s)

    @classmethod
    def probe(cls, ctx: Context) -> list[Sensor] | Unavailable | None:
        topic = ctx.options.get("topic")
        if not topic:
            raise SensorError("the tasmota source needs option `topic` (the device topic, "
                              "e.g. tasmota_A1B2C3)")
        t = topics(topic)
        link = open_link(ctx, "tasmota", [t["sensor"], t["status"]], parse_energy,
                         (t["command"], lambda _client: "10"))
        if isinstance(link, Unavailable):
            return link
        return [cls(link, topic)]

    def read(self) -> Reading:
        power_w, _energy, arrived = self.link.value()
        return Reading(arrived, (power_w,), age_s=time.monotonic() - arrived)

    def close(self) -> None:
        self.link.close()
