"""Shelly Gen2/Gen3 plugs over MQTT (scope wall): ``<topic>/status/switch:<n>`` carries
``apower`` (W) and ``aenergy.total`` (Wh). Every ``poll_s`` (default 1 s; 0: never) the agent
asks ``Switch.GetStatus`` on ``<topic>/rpc`` and reads the answer on ``<client>/rpc``.

Options: ``topic`` (the plug's MQTT prefix, e.g. ``shellyplusplugs-a8032ab12345``, required),
``switch`` (0), ``broker`` (default: the agent's), ``energy_counter`` (read ``aenergy.total``
as a counter instead of integrating ``apower``)."""

from __future__ import annotations

import json
import time
from itertools import count

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


def status_topic(topic: str, switch: int) -> str:
    return f"{topic}/status/switch:{switch}"


def parse_status(doc) -> tuple[float, float | None] | None:
    """(W, J) from a Switch status, or from an RPC answer carrying one in ``result``."""
    if "result" in doc:
        doc = doc["result"]
    if "apower" not in doc:
        return None
    total_wh = (doc.get("aenergy") or {}).get("total")
    return float(doc["apower"]), None if total_wh is None else float(total_wh) * 3600.0


@register_sensor("shelly")
class Shelly(Sensor):
    """One Shelly plug's wall power, W (or its energy counter, J)."""

    kind = SensorKind.POWER
    update_period_s = 1.0

    def __init__(self, link: PlugLink, topic: str, native: str) -> None:
        super().__init__(topic, [Channel(topic, "wall", native)], link.topics[0])
        self.link = link
        self.stale_after_s = max(5.0, 3 * link.poll_s)

    @classmethod
    def probe(cls, ctx: Context) -> list[Sensor] | Unavailable | None:
        topic = ctx.options.get("topic")
        if not topic:
            raise SensorError("the shelly source needs option `topic` (the plug's MQTT "
                              "prefix, e.g. shellyplusplugs-a8032ab12345)")
        switch = int(ctx.options.get("switch", 0))
        ids = count(1)

        def request(client_id: str) -> str:
            return json.dumps({"id": next(ids), "src": client_id, "method": "Switch.GetStatus",
                               "params": {"id": switch}})

        # Status notifications, and the answers to our polls (on "<our client id>/rpc").
        link = open_link(ctx, "shelly", [status_topic(topic, switch), "{client}/rpc"],
                         parse_status, (f"{topic}/rpc", request))
        if isinstance(link, Unavailable):
            return link
        if ctx.options.get("energy_counter"):
            if link.value()[1] is None:
                link.close()
                return Unavailable("shelly", f"{topic} reports no aenergy.total",
                                   "drop the energy_counter option")
            return [ShellyEnergy(link, topic, "Wh")]
        return [cls(link, topic, "W")]

    def read(self) -> Reading:
        power_w, _energy, arrived = self.link.value()
        return Reading(arrived, (power_w,), age_s=time.monotonic() - arrived)

    def close(self) -> None:
        self.link.close()


class ShellyEnergy(Shelly):
    """A Shelly plug's ``aenergy.total`` counter, J (resolution 1 mWh = 3.6 J)."""

    kind = SensorKind.ENERGY_COUNTER

    def read(self) -> Reading:
        _power, energy_j, arrived = self.link.value()
        if energy_j is None:
            raise SensorError(f"{self.label}: no aenergy.total in the last status")
        return Reading(arrived, (energy_j,), age_s=time.monotonic() - arrived)

