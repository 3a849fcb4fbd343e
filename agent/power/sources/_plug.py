"""What the MQTT smart-plug backends share: one paho connection that keeps the plug's latest
value and when it arrived, and optionally asks the plug for a fresh status every ``poll_s``
(plugs publish on change or every few minutes, too rarely for MLPerf's 1 sample/s)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from agent.link import _nodelay, as_broker
from agent.power.base import Context, SensorError, Unavailable

#: Parse a plug payload into (power W, energy J or None), or None if it carries no reading.
Parser = Callable[[Any], "tuple[float, float | None] | None"]


class PlugLink:
    """Subscribe to ``topics``; keep the latest (power_w, energy_j, monotonic arrival)."""

    def __init__(self, url, topics: list[str], parse: Parser,
                 poll: tuple[str, Callable[[str], str]] | None, poll_s: float) -> None:
        self.broker = as_broker(url)            # a URL, or the agent's Broker (credentials)
        self.url = self.broker.url
        self.client_id = f"mlperf-power-{uuid.uuid4().hex[:10]}"
        # "{client}" in a topic is this connection's client id (where RPC answers come back).
        self.topics = [t.replace("{client}", self.client_id) for t in topics]
        self.parse, self.poll, self.poll_s = parse, poll, poll_s
        self.latest: tuple[float, float | None, float] | None = None
        self.arrived = threading.Condition()
        self.stop = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=mqtt.MQTTv311)
        c.on_socket_open = lambda _c, _u, sock: _nodelay(sock)
        c.on_connect = lambda cl, *_: [cl.subscribe(t, qos=0) for t in self.topics]
        c.on_message = self._on_message
        self.broker.configure(c)
        self.client = c
        self.poller: threading.Thread | None = None

    def open(self, wait_s: float) -> str | None:
        """Connect and wait for a first reading; None, or why it failed."""
        try:
            self.client.connect(self.url.host, self.url.port, keepalive=30)
        except OSError as exc:
            return f"cannot reach the broker {self.broker}: {exc}"
        self.client.loop_start()
        if self.poll is not None:
            self.poller = threading.Thread(target=self._poll, daemon=True,
                                           name="mlperf-plug-poll")
            self.poller.start()
        with self.arrived:
            if not self.arrived.wait_for(lambda: self.latest is not None, wait_s):
                self.close()
                return f"no reading on {' or '.join(self.topics)} within {wait_s:g} s"
        return None

    def _poll(self) -> None:
        topic, payload = self.poll
        while not self.stop.is_set():
            self.client.publish(topic, payload(self.client_id), qos=0)
            self.stop.wait(self.poll_s)

    def _on_message(self, _c, _u, msg: mqtt.MQTTMessage) -> None:
        try:
            got = self.parse(json.loads(msg.payload))
        except (ValueError, TypeError, KeyError, AttributeError):
            return                                 # not a reading: the plug says other things
        if got is not None:
            with self.arrived:
                self.latest = (float(got[0]), None if got[1] is None else float(got[1]),
                               time.monotonic())
                self.arrived.notify_all()

    def value(self) -> tuple[float, float | None, float]:
        if self.latest is None:
            raise SensorError(f"no reading yet on {self.topics[0]}")
        return self.latest

    def close(self) -> None:
        self.stop.set()
        self.client.disconnect()
        self.client.loop_stop()


def open_link(ctx: Context, backend: str, topics: list[str], parse: Parser,
              poll: tuple[str, Callable[[str], str]] | None) -> PlugLink | Unavailable:
    """A connected PlugLink, or Unavailable naming what to fix."""
    url = ctx.options.get("broker") or ctx.broker
    if not url:
        return Unavailable(backend, "no MQTT broker to read the plug from",
                           f"give the {backend} source a `broker` option or run the agent with "
                           "--broker")
    poll_s = float(ctx.options.get("poll_s", 1.0))
    link = PlugLink(url, topics, parse, poll if poll_s > 0 else None, poll_s)
    why = link.open(float(ctx.options.get("wait_s", 5.0)))
    if why:
        return Unavailable(backend, why, "check the plug's MQTT settings and its topic "
                           "(option `topic`)", ", ".join(topics))
    return link
