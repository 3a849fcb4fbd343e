"""An embedded MQTT broker (amqtt, in-process) for the one-machine demo.

Speaks MQTT 3.1.1 only, which is all the protocol needs. A lab uses Mosquitto, EMQX or HiveMQ.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

from controller.errors import MlperfEdgeError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """``with EmbeddedBroker() as b: b.url`` -- an amqtt broker on a free loopback port."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.url = f"mqtt://{host}:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="amqtt",
                                        daemon=True)
        self._broker = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        from amqtt.broker import Broker

        # amqtt logs every connection at INFO; keep the demo's terminal readable.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.ERROR)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                        {"allow_anonymous": True}},
        }
        self._thread.start()

        async def boot():
            self._broker = Broker(config, loop=self._loop)
            await self._broker.start()

        try:
            asyncio.run_coroutine_threadsafe(boot(), self._loop).result(timeout=15)
        except Exception as exc:
            raise MlperfEdgeError(f"the embedded broker did not start on {self.url}: "
                                  f"{exc}") from None

    def stop(self) -> None:
        if self._broker is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(10)
            except Exception:                       # shutting down anyway
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
