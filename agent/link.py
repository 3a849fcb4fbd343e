"""The MQTT connection both agents and controllers use: broker URLs, routes that survive
reconnects, a barrier for reading retained state, and a clean close that says goodbye."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from pydantic import BaseModel

from agent.protocol import (
    BrokerUnavailable,
    ConfigError,
    MlperfEdgeError,
    Topics,
    check_id,
    decode,
    encode,
)

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerUrl:
    """``mqtt://[user[:password]@]host[:port]`` (1883) or ``mqtts://...`` (TLS, 8883)."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ConfigError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ConfigError(f"broker URL {url!r} has no host (example: mqtt://lab:1883)")
        tls = parts.scheme in ("mqtts", "ssl")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ConfigError(f"broker URL {url!r}: the port is not a number 1-65535") from None
        return cls(parts.hostname, port, tls,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


Handler = Callable[[str, Any], None]


class Link:
    """One MQTT 3.1.1 connection whose routes survive reconnects.

    Routes are subscribed in ``on_connect`` (so a reconnect resubscribes) and dispatched with
    ``message_callback_add``; a handler gets the topic and the decoded message. A message that
    breaks the contract is logged and dropped; a handler that raises is logged; neither stops
    the link. TCP_NODELAY is set on the socket (paho never does; it halves round trips).
    """

    def __init__(self, url: str | BrokerUrl, client_id: str, topics: Topics, *,
                 persistent: bool = False, will: tuple[str, BaseModel] | None = None,
                 keepalive_s: int = 30) -> None:
        self.url = url if isinstance(url, BrokerUrl) else BrokerUrl.parse(url)
        self.client_id = check_id(client_id, "client id")
        self.topics = topics
        self.keepalive_s = keepalive_s
        self.connected = threading.Event()
        self._routes: list[tuple[str, int]] = [(topics.sync(client_id), 1)]
        self._refused: str | None = None
        self._closing = False
        self._barriers: dict[str, threading.Event] = {}
        #: Called on the network thread after every (re)connect, once routes are subscribed.
        self.on_connected: list[Callable[[], None]] = []
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                        clean_session=not persistent, protocol=mqtt.MQTTv311)
        c.on_socket_open = lambda _c, _u, sock: _nodelay(sock)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.message_callback_add(topics.sync(client_id), self._on_sync)
        c.max_queued_messages_set(0)          # never drop our own outgoing messages
        c.max_inflight_messages_set(100)
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        if self.url.username:
            c.username_pw_set(self.url.username, self.url.password)
        if self.url.tls:
            c.tls_set()
        if will:
            c.will_set(will[0], encode(will[1]), qos=1, retain=True)
        self.client = c

    # -- routing -----------------------------------------------------------------------------
    def route(self, pattern: str, model: type[M], handler: Callable[[str, M], None]) -> None:
        """Subscribe ``pattern`` (QoS 1) and call ``handler(topic, message)`` for each message."""

        def dispatch(_client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
            try:
                handler(msg.topic, decode(model, msg.payload, msg.topic))
            except MlperfEdgeError as exc:
                log.warning("rejected: %s", exc)
            except Exception:  # a bug in a handler must not stop the link
                log.exception("handler for %s failed", msg.topic)

        self.client.message_callback_add(pattern, dispatch)
        self._routes.append((pattern, 1))
        if self.connected.is_set():
            self.client.subscribe(pattern, qos=1)

    def _on_connect(self, client, _userdata, _flags, reason, _props) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            return
        client.subscribe(self._routes)
        self.connected.set()
        log.debug("connected to %s as %s", self.url, self.client_id)
        for hook in self.on_connected:
            try:
                hook()
            except Exception:
                log.exception("on_connected hook failed")

    def _on_disconnect(self, _client, _userdata, _flags, reason, _props) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was and not self._closing:
            log.warning("lost the broker at %s (%s); reconnecting", self.url, reason)

    # -- connection --------------------------------------------------------------------------
    def connect(self, retry_for_s: float | None = None,
                abort: threading.Event | None = None) -> None:
        """Connect, retrying with backoff (1 s doubling to 30 s) and saying so on each try.

        ``retry_for_s=None`` retries forever (an agent is a daemon) unless ``abort`` is set.
        Raises BrokerUnavailable when the time is up, when aborted, or when the broker refuses
        the client (bad credentials).
        """
        abort = abort or threading.Event()
        deadline = None if retry_for_s is None else time.monotonic() + retry_for_s
        delay_s = 1.0
        while True:
            try:
                self.client.connect(self.url.host, self.url.port, keepalive=self.keepalive_s)
                break
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                if deadline is not None and time.monotonic() + delay_s > deadline:
                    raise BrokerUnavailable(f"cannot reach the broker at {self.url}: {reason}")
                log.warning("broker %s unreachable (%s); retrying in %.0f s",
                            self.url, reason, delay_s)
                if abort.wait(delay_s):
                    raise BrokerUnavailable(f"gave up connecting to {self.url}") from None
                delay_s = min(delay_s * 2, 30.0)
        self.client.loop_start()
        wait_until = time.monotonic() + 10.0
        while not self.connected.wait(0.05):
            if self._refused or time.monotonic() > wait_until:
                self.client.loop_stop()
                why = self._refused or "no CONNACK within 10 s"
                raise BrokerUnavailable(f"the broker at {self.url} refused the connection: {why}")

    def publish(self, topic: str, message: BaseModel, *, retain: bool = False,
                qos: int = 1) -> mqtt.MQTTMessageInfo:
        """Publish a message (QoS 1 by default). Queued by paho while disconnected."""
        return self.client.publish(topic, encode(message), qos=qos, retain=retain)

    def barrier(self, timeout_s: float = 5.0) -> bool:
        """Publish to ourselves and wait for it to come back; False on timeout.

        The broker handles one client's packets in order, so once the barrier returns, the
        retained messages of every earlier subscription have been delivered. Used to read the
        fleet's retained presence without guessing a sleep.
        """
        token = f"{self.client_id}-{time.monotonic_ns()}"
        done = self._barriers[token] = threading.Event()
        self.client.publish(self.topics.sync(self.client_id), token.encode(), qos=1)
        return done.wait(timeout_s)

    def _on_sync(self, _client, _userdata, msg: mqtt.MQTTMessage) -> None:
        event = self._barriers.pop(msg.payload.decode(errors="replace"), None)
        if event:
            event.set()

    def close(self, final: tuple[str, BaseModel] | None = None, timeout_s: float = 5.0) -> None:
        """Optionally publish a last retained message (e.g. offline), then disconnect cleanly.

        A clean DISCONNECT suppresses the Last Will, which is why ``final`` exists.
        """
        self._closing = True
        if final and self.connected.is_set():
            info = self.publish(final[0], final[1], retain=True)
            try:
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()



def _nodelay(sock: Any) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. websockets, unix)
        pass
