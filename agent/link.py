"""The MQTT connection both agents and controllers use: where the broker is and how to log
in (credentials from a file or the environment, TLS), routes that survive reconnects and pass
every message through a gate, signed publishing, a barrier for reading retained state, and a
clean close that says goodbye."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from agent.envelope import seal
from agent.errors import BrokerUnavailable, ConfigError, MlperfEdgeError, ProtocolError
from agent.protocol import Message, Topics, check_id

M = TypeVar("M", bound=Message)
#: Echoes awaited at once (older ones, lost with a connection, are forgotten).
MAX_ECHOES = 64
log = logging.getLogger(__name__)
_WARNED: list[bool] = []          # the URL-password warning, said once per process


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


@dataclass(frozen=True)
class Broker:
    """Where the broker is and how to log in. The password comes from a file or
    ``MLPERF_BROKER_PASSWORD`` (a password in the URL works but shows in ``ps``); TLS files
    (CA, client certificate and key) from settings. ``str()`` never shows the password."""

    url: BrokerUrl
    username: str | None = None
    password: str | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @classmethod
    def resolve(cls, url: str | BrokerUrl, *, username: str | None = None,
                password_file: Path | None = None, tls_ca: Path | None = None,
                tls_cert: Path | None = None, tls_key: Path | None = None,
                environ: dict[str, str] | None = None) -> Broker:
        env = os.environ if environ is None else environ
        parsed = url if isinstance(url, BrokerUrl) else BrokerUrl.parse(url)
        password = parsed.password
        if password_file is not None:
            try:
                password = Path(password_file).expanduser().read_text().strip()
            except OSError as exc:
                raise ConfigError(f"broker password file {password_file}: "
                                  f"{exc.strerror}") from None
        elif env.get("MLPERF_BROKER_PASSWORD"):
            password = env["MLPERF_BROKER_PASSWORD"]
        elif password and not _WARNED:
            _WARNED.append(True)
            log.warning("the broker password is in the URL, which `ps` shows to every user: "
                        "use --broker-password-file or MLPERF_BROKER_PASSWORD instead")
        user = username or env.get("MLPERF_BROKER_USERNAME") or parsed.username
        if password and not user:
            raise ConfigError("a broker password was given without a user name "
                              "(--broker-user or MLPERF_BROKER_USERNAME)")
        files = {name: Path(p).expanduser() if p else None
                 for name, p in (("tls_ca", tls_ca), ("tls_cert", tls_cert),
                                 ("tls_key", tls_key))}
        for name, path in files.items():
            if path is not None and not path.is_file():
                raise ConfigError(f"--{name.replace('_', '-')} {path}: no such file")
        if (files["tls_cert"] is None) != (files["tls_key"] is None):
            raise ConfigError("--tls-cert and --tls-key go together (the client certificate "
                              "and its private key)")
        if any(files.values()) and not parsed.tls:
            raise ConfigError(f"TLS files were given for {parsed}: use an mqtts:// URL")
        return cls(parsed, user, password, **files)

    @classmethod
    def from_settings(cls, settings: Any) -> Broker:
        """From a settings object with ``broker``, ``broker_user``, ``broker_password_file``
        and ``tls_ca``/``tls_cert``/``tls_key`` (the agent's and the controller's)."""
        return cls.resolve(settings.broker, username=settings.broker_user,
                           password_file=settings.broker_password_file, tls_ca=settings.tls_ca,
                           tls_cert=settings.tls_cert, tls_key=settings.tls_key)

    def configure(self, client: mqtt.Client) -> None:
        """Credentials and TLS on a paho client (before connect)."""
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.url.tls:
            try:
                client.tls_set(ca_certs=str(self.tls_ca) if self.tls_ca else None,
                               certfile=str(self.tls_cert) if self.tls_cert else None,
                               keyfile=str(self.tls_key) if self.tls_key else None)
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise ConfigError(f"TLS set-up for {self.url}: {exc}") from None

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.url.tls else 'mqtt'}://{user}{self.url.host}:{self.url.port}"


def as_broker(value: str | BrokerUrl | Broker) -> Broker:
    return value if isinstance(value, Broker) else Broker.resolve(value)


class RefusalLog:
    """Logs refused messages without letting a flood of them flood the log: the first few in
    each window one line each, then one summary line per window with counts by reason."""

    def __init__(self, logger: logging.Logger, window_s: float = 10.0, first: int = 5) -> None:
        self.logger, self.window_s, self.first = logger, window_s, first
        self._start = time.monotonic()
        self._shown = 0
        self._hidden: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.total: Counter[str] = Counter()

    def __call__(self, exc: ProtocolError) -> None:
        code = getattr(exc, "code", "malformed")
        with self._lock:
            self.total[code] += 1
            now = time.monotonic()
            if now - self._start > self.window_s:
                self._summary()
                self._start, self._shown = now, 0
            if self._shown < self.first:
                self._shown += 1
                self.logger.warning("refused (%s): %s", code, exc)
            else:
                self._hidden[code] += 1

    def _summary(self) -> None:
        if self._hidden:
            parts = ", ".join(f"{code} {n}" for code, n in self._hidden.most_common())
            self.logger.warning("refused %d more message(s) in the last %.0f s (%s)",
                                sum(self._hidden.values()), self.window_s, parts)
            self._hidden.clear()

    def flush(self) -> None:
        with self._lock:
            self._summary()


WillFactory = Callable[[], "tuple[str, Message]"]


class Link:
    """One MQTT 3.1.1 connection whose routes survive reconnects.

    Routes are subscribed in ``on_connect`` (so a reconnect resubscribes) and dispatched with
    ``message_callback_add``. Every message passes ``gate.admit`` first (envelope, trusted key,
    signature, expiry, replay, body); a refused one is logged (rate-limited), handed to the
    ``on_refused`` hooks and dropped; a handler that raises is logged; neither stops the link.
    ``publish`` seals with ``identity``. The Last Will comes from ``will()``, called before
    every connection so each connection has its own. TCP_NODELAY is set on the socket (paho
    never does; it halves round trips).
    """

    def __init__(self, broker: str | BrokerUrl | Broker, client_id: str, topics: Topics, *,
                 identity: Any = None, gate: Any = None, persistent: bool = False,
                 will: WillFactory | None = None, keepalive_s: int = 30,
                 max_inflight: int = 100, share: str | None = None) -> None:
        self.broker = as_broker(broker)
        self.url = self.broker.url
        self.client_id = check_id(client_id, "client id")
        self.topics = topics
        self.identity = identity
        self.gate = gate
        self.keepalive_s = keepalive_s
        #: A shared-subscription group: routes added with ``shared=True`` are subscribed as
        #: ``$share/GROUP/pattern``, so the broker hands each message to one member of it.
        self.share = share
        self.connected = threading.Event()
        self._routes: list[tuple[str, int]] = [(topics.sync(client_id), 1)]
        self._refused: str | None = None
        self._closing = False
        self._ever_connected = False
        self._barriers: dict[str, threading.Event] = {}
        self._echoes: dict[str, Callable[[], None]] = {}
        self._will = will
        #: Called on the network thread after every (re)connect, once routes are subscribed.
        self.on_connected: list[Callable[[], None]] = []
        #: Called with every refused message's error (code, topic, claimed_job_id, verified).
        self.on_refused: list[Callable[[ProtocolError], None]] = []
        self.refusals = RefusalLog(logging.getLogger("mlperf.refused"))
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                        clean_session=not persistent, protocol=mqtt.MQTTv311)
        c.on_socket_open = lambda _c, _u, sock: _nodelay(sock)
        c.on_pre_connect = lambda _c, _u: self._arm_will()
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.message_callback_add(topics.sync(client_id), self._on_sync)
        c.max_queued_messages_set(0)          # never drop our own outgoing messages
        c.max_inflight_messages_set(max_inflight)   # QoS 1 sends awaiting the broker's ack
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        self.broker.configure(c)
        self.client = c

    # -- routing -----------------------------------------------------------------------------
    def route(self, pattern: str, model: type[M], handler: Callable[[str, M], None], *,
              shared: bool = False) -> None:
        """Subscribe ``pattern`` (QoS 1) and call ``handler(topic, message)`` for each message
        the gate admits. ``shared``: in the link's share group, if it has one."""

        def dispatch(_client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
            try:
                message = self.gate.admit(msg.topic, msg.payload, model)
            except ProtocolError as exc:
                self._refuse(exc)
                return
            except Exception:  # a bug in a gate must not stop the link
                log.exception("checking a message on %s failed", msg.topic[:200])
                return
            try:
                handler(msg.topic, message)
            except MlperfEdgeError as exc:
                log.warning("rejected: %s", exc)
            except Exception:  # a bug in a handler must not stop the link
                log.exception("handler for %s failed", msg.topic[:200])

        self._subscribe(pattern, dispatch, shared)

    def _subscribe(self, pattern: str, callback: Callable, shared: bool = False) -> None:
        self.client.message_callback_add(pattern, callback)   # matched on the real topic
        wanted = f"$share/{self.share}/{pattern}" if shared and self.share else pattern
        self._routes.append((wanted, 1))
        if self.connected.is_set():
            self.client.subscribe(wanted, qos=1)

    def route_raw(self, pattern: str, handler: Callable[[str, bytes], None]) -> None:
        """Subscribe ``pattern`` and hand raw payloads to ``handler`` (no gate: for telling
        apart senders of another protocol version, never for acting on what they say)."""

        def dispatch(_client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
            try:
                handler(msg.topic, msg.payload)
            except Exception:
                log.exception("handler for %s failed", msg.topic[:200])

        self.client.message_callback_add(pattern, dispatch)
        self._routes.append((pattern, 1))
        if self.connected.is_set():
            self.client.subscribe(pattern, qos=1)

    def route_unopened(self, pattern: str, handler: Callable[[str, bytes], None], *,
                       shared: bool = False) -> None:
        """Subscribe ``pattern`` and hand each raw payload to ``handler`` on the network thread,
        unchecked: the handler must pass what it keeps through :meth:`admit` before acting on
        it (the controller verifies only the newest of a device's heartbeats waiting to be
        written: a signature check is ~130 us here, most of what a heartbeat costs it)."""
        self._subscribe(pattern, lambda _c, _u, msg: handler(msg.topic, msg.payload), shared)

    def admit(self, topic: str, payload: bytes, model: type[M]) -> M | None:
        """What the gate makes of a message kept by a :meth:`route_unopened` handler: the
        message, or None (refused, counted and logged as any refused message is)."""
        try:
            return self.gate.admit(topic, payload, model)
        except ProtocolError as exc:
            self._refuse(exc)
        except Exception:  # a bug in a gate must not stop the caller
            log.exception("checking a message on %s failed", topic[:200])
        return None

    def _refuse(self, exc: ProtocolError) -> None:
        self.refusals(exc)
        for hook in self.on_refused:
            try:
                hook(exc)
            except Exception:
                log.exception("on_refused hook failed")

    def _arm_will(self) -> None:
        if self._will is not None:
            topic, message = self._will()
            self.client.will_set(topic, seal(message, topic, self.identity), qos=1, retain=True)

    def _on_connect(self, client, _userdata, _flags, reason, _props) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            return
        client.subscribe(self._routes)
        self.connected.set()
        if self._ever_connected:
            log.info("reconnected to the broker at %s", self.broker)
        self._ever_connected = True
        log.debug("connected to %s as %s", self.broker, self.client_id)
        for hook in self.on_connected:
            try:
                hook()
            except Exception:
                log.exception("on_connected hook failed")

    def _on_disconnect(self, _client, _userdata, _flags, reason, _props) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was and not self._closing:
            log.warning("lost the broker at %s (%s); reconnecting", self.broker, reason)

    # -- connection --------------------------------------------------------------------------
    def connect(self, retry_for_s: float | None = None,
                abort: threading.Event | None = None) -> None:
        """Connect, retrying with backoff (1 s doubling to 30 s) and saying so on each try.

        ``retry_for_s=None`` retries forever (an agent is a daemon) unless ``abort`` is set.
        Raises BrokerUnavailable when the time is up, when aborted, when the TLS handshake
        fails, or when the broker refuses the client (bad credentials, not authorised).
        """
        abort = abort or threading.Event()
        deadline = None if retry_for_s is None else time.monotonic() + retry_for_s
        delay_s = 1.0
        while True:
            try:
                self.client.connect(self.url.host, self.url.port, keepalive=self.keepalive_s)
                break
            except ssl.SSLError as exc:
                raise BrokerUnavailable(
                    f"TLS handshake with the broker at {self.broker} failed: "
                    f"{getattr(exc, 'verify_message', None) or exc.reason or exc} (check "
                    "--tls-ca, and that the server certificate names this host)") from None
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                if deadline is not None and time.monotonic() + delay_s > deadline:
                    raise BrokerUnavailable(f"cannot reach the broker at {self.broker}: {reason}")
                log.warning("broker %s unreachable (%s); retrying in %.0f s",
                            self.broker, reason, delay_s)
                if abort.wait(delay_s):
                    raise BrokerUnavailable(f"gave up connecting to {self.broker}") from None
                delay_s = min(delay_s * 2, 30.0)
        self.client.loop_start()
        wait_until = time.monotonic() + 10.0
        while not self.connected.wait(0.05):
            if self._refused or time.monotonic() > wait_until:
                self.client.loop_stop()
                why = self._refused or "no CONNACK within 10 s"
                raise BrokerUnavailable(f"the broker at {self.broker} refused the connection: "
                                        f"{why}")

    def publish(self, topic: str, message: Message, *, retain: bool = False,
                qos: int = 1) -> mqtt.MQTTMessageInfo:
        """Seal and publish a message (QoS 1 by default). Queued by paho while disconnected."""
        return self.client.publish(topic, seal(message, topic, self.identity), qos=qos,
                                   retain=retain)

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

    def echo(self, back: Callable[[float], None]) -> None:
        """Publish to ourselves and call ``back(sent_at)`` on the network thread when it comes
        back (not at all if it is lost with the connection). The broker queues it behind
        everything sent to us before it arrived: a controller that handled the echo sent at T
        has heard what the fleet published before T, however far behind it runs. The token is
        unguessable, so nobody else on the broker can answer for it."""
        token = f"echo-{secrets.token_hex(8)}"
        sent_at = time.time()
        self._echoes[token] = lambda: back(sent_at)
        while len(self._echoes) > MAX_ECHOES:           # lost with a connection: forgotten
            self._echoes.pop(next(iter(self._echoes)))
        self.client.publish(self.topics.sync(self.client_id), token.encode(), qos=1)

    def _on_sync(self, _client, _userdata, msg: mqtt.MQTTMessage) -> None:
        token = msg.payload.decode(errors="replace")
        event = self._barriers.pop(token, None)
        if event:
            event.set()
        back = self._echoes.pop(token, None)
        if back is not None:
            try:
                back()
            except Exception:
                log.exception("echo handler failed")

    def close(self, final: tuple[str, Message] | None = None, timeout_s: float = 5.0) -> None:
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
        self.refusals.flush()
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()


def _nodelay(sock: Any) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. websockets, unix)
        pass
