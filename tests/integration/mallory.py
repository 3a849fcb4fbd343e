"""An outsider on the lab network: reaches the broker, reads what it can, sends what it likes
-- unsigned bytes, messages signed with a key of its own, and replays of genuine traffic."""

from __future__ import annotations

import secrets
import threading

import paho.mqtt.client as mqtt

from agent.envelope import open_envelope, seal
from agent.errors import ProtocolError
from agent.identity import Identity
from agent.link import BrokerUrl
from agent.protocol import Message, Topics
from tests.conftest import wait_for


class Mallory:
    """Sniffs everything under the prefix (on an open test broker) and publishes at will."""

    def __init__(self, url: str, prefix: str) -> None:
        self.topics = Topics(prefix)
        self.key = Identity.generate()
        self.heard: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        broker = BrokerUrl.parse(url)
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                        client_id=f"mallory-{secrets.token_hex(3)}", protocol=mqtt.MQTTv311)
        c.on_message = self._on_message
        c.on_connect = lambda cl, *_: cl.subscribe(f"{prefix}/#", qos=1)
        c.max_queued_messages_set(0)
        c.connect(broker.host, broker.port)
        c.loop_start()
        self.client = c

    def _on_message(self, _client, _userdata, msg) -> None:
        with self._lock:
            self.heard.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def raw(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def signed(self, topic: str, message: Message, retain: bool = False,
               key: Identity | None = None) -> None:
        """A well-formed envelope, validly signed -- by a key nobody trusts."""
        self.raw(topic, seal(message, topic, key or self.key), retain)

    def captured(self, topic: str, kind: str | None = None) -> list[bytes]:
        """Genuine payloads heard on ``topic`` (optionally of one message kind): well-formed
        envelopes that Mallory did not make herself."""
        with self._lock:
            heard = [p for t, p, _ in self.heard if t == topic]
        genuine = []
        for payload in heard:
            try:
                env = open_envelope(payload, topic)
            except ProtocolError:
                continue
            if env.key != self.key.public_b64 and (kind is None or env.kind == kind):
                genuine.append(payload)
        return genuine

    def wait_captured(self, topic: str, kind: str | None = None, timeout_s: float = 60):
        return wait_for(lambda: self.captured(topic, kind), timeout_s,
                        what=f"a genuine {kind or 'message'} on {topic}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
