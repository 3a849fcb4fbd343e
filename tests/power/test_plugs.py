"""Shelly Gen2 and Tasmota plugs through the real Mosquitto: a fake plug (a paho client that
speaks each vendor's topics and payloads) answers the agent's polls."""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt
import pytest

from agent.link import BrokerUrl
from agent.power import registry
from agent.power.base import Context, SensorError, SensorKind
from agent.power.config import PowerConfig, SourceSpec
from agent.power.report import build
from agent.power.sampler import Sampler
from tests.conftest import wait_for


class FakePlug:
    """Answers polls like the firmware does; ``power_w``/``total`` can change under test."""

    def __init__(self, url: str, vendor: str, topic: str, power_w: float) -> None:
        self.vendor, self.topic, self.power_w, self.total = vendor, topic, power_w, 1.5
        self.polls = 0
        self.lock = threading.Lock()
        u = BrokerUrl.parse(url)
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"plug-{topic}")
        listen = f"{topic}/rpc" if vendor == "shelly" else f"cmnd/{topic}/STATUS"
        self.c.on_connect = lambda cl, *_: cl.subscribe(listen)
        self.c.on_message = self._on_message
        self.c.connect(u.host, u.port)
        self.c.loop_start()

    def status(self) -> dict:
        if self.vendor == "shelly":
            return {"id": 0, "source": "timer", "output": True, "apower": self.power_w,
                    "voltage": 231.4, "current": round(self.power_w / 231.4, 3),
                    "aenergy": {"total": self.total, "by_minute": [0, 0, 0],
                                "minute_ts": 1732860000},
                    "temperature": {"tC": 41.2, "tF": 106.2}}
        return {"Time": "2024-11-29T05:00:00", "ENERGY": {
            "TotalStartTime": "2024-01-01T00:00:00", "Total": self.total / 1000,
            "Yesterday": 0.1, "Today": 0.05, "Power": self.power_w, "ApparentPower": 50,
            "ReactivePower": 10, "Factor": 0.9, "Voltage": 230, "Current": 0.2}}

    def _on_message(self, _c, _u, msg) -> None:
        with self.lock:
            self.polls += 1
            if self.vendor == "shelly":
                req = json.loads(msg.payload)
                assert req["method"] == "Switch.GetStatus"
                self.c.publish(f"{req['src']}/rpc", json.dumps(
                    {"id": req["id"], "src": self.topic, "dst": req["src"],
                     "result": self.status()}))
            else:
                assert msg.payload == b"10"
                self.c.publish(f"stat/{self.topic}/STATUS10",
                               json.dumps({"StatusSNS": self.status()}))

    def notify(self) -> None:
        """A status the plug publishes on its own (Shelly on change; Tasmota telemetry)."""
        topic = f"{self.topic}/status/switch:0" if self.vendor == "shelly" else \
            f"tele/{self.topic}/SENSOR"
        self.c.publish(topic, json.dumps(self.status())).wait_for_publish(5)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def plug(mosquitto):
    made = []

    def make(vendor, topic, power_w):
        p = FakePlug(mosquitto.url, vendor, topic, power_w)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def open_plug(url, name, **options):
    sensors, _ = registry.discover(
        PowerConfig(sources=[SourceSpec(name=name, options={"broker": url, **options})]),
        Context())
    return sensors


@pytest.mark.parametrize("vendor, topic", [("shelly", "shellyplusplugs-a8032ab12345"),
                                           ("tasmota", "tasmota_A1B2C3")])
def test_plug_power_is_polled_and_integrated(mosquitto, plug, vendor, topic):
    fake = plug(vendor, topic, 42.5)
    (sensor,) = open_plug(mosquitto.url, vendor, topic=topic, poll_s=0.05)
    assert sensor.channels[0].scope == "wall" and sensor.kind is SensorKind.POWER
    try:
        sampler = Sampler([sensor], 20).start()
        wait_for(lambda: len(sampler.all_traces[0].t) >= 5, 20, 0.05, "5 plug readings")
        fake.power_w = 100.0
        wait_for(lambda: sampler.all_traces[0].p[-1] == 100.0, 20, 0.05, "the new power")
        wait_for(lambda: len(sampler.all_traces[0].t) >= 12, 20, 0.05, "more readings")
        sampler.stop()
    finally:
        sensor.close()
    tr = sampler.all_traces[0]
    assert set(tr.p) == {42.5, 100.0}
    assert len(set(tr.t)) == len(tr.t)                   # one sample per plug message
    report, _ = build(sampler, tr.t[0], tr.t[-1])
    assert report.total.scope == "wall" and report.status == "measured"
    assert 42.5 < report.total.avg_power_w < 100.0
    assert report.total.peak_power_w == 100.0


def test_shelly_status_notifications_without_polling(mosquitto, plug):
    fake = plug("shelly", "shellyplus1pm-c4d8d5", 12.0)
    opened = {}
    t = threading.Thread(target=lambda: opened.update(s=open_plug(
        mosquitto.url, "shelly", topic="shellyplus1pm-c4d8d5", poll_s=0)))
    t.start()
    wait_for(lambda: fake.c.is_connected(), 10, 0.05, "the plug")
    # publish until the agent's subscription is in place and the probe returns
    wait_for(lambda: fake.notify() or not t.is_alive(), 20, 0.1, "the probe")
    t.join()
    (sensor,) = opened["s"]
    try:
        assert sensor.read().values == (12.0,)
        assert fake.polls == 0
    finally:
        sensor.close()


def test_shelly_energy_counter_option(mosquitto, plug):
    fake = plug("shelly", "shellyplusplugs-e1", 20.0)
    (sensor,) = open_plug(mosquitto.url, "shelly", topic="shellyplusplugs-e1", poll_s=0.05,
                          energy_counter=True)
    try:
        assert sensor.kind is SensorKind.ENERGY_COUNTER
        assert sensor.read().values == (pytest.approx(1.5 * 3600),)    # Wh -> J
        fake.total = 1.6
        wait_for(lambda: sensor.read().values[0] == pytest.approx(1.6 * 3600), 20, 0.05,
                 "the new total")
    finally:
        sensor.close()


def test_a_silent_plug_is_a_clear_error(mosquitto):
    with pytest.raises(SensorError, match="no reading on tele/tasmota_nobody/SENSOR.*fix"):
        open_plug(mosquitto.url, "tasmota", topic="tasmota_nobody", wait_s=0.3)


def test_a_plug_without_a_topic_or_broker_says_what_to_set():
    with pytest.raises(SensorError, match="needs option `topic`"):
        open_plug("mqtt://127.0.0.1:1", "shelly")
    with pytest.raises(SensorError, match="cannot reach the broker"):
        open_plug("mqtt://127.0.0.1:1", "tasmota", topic="x")
