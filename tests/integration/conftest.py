"""What the lab-level integration tests share: the CLI environment of one lab (broker, store,
a prefix of its own) and a `mlperf-controller serve` process for it."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, cli, wait_for


@pytest.fixture
def env(mosquitto, tmp_path) -> dict:
    """MLPERF_BROKER/DB/PREFIX for the CLIs: the session's Mosquitto, a store and a prefix of
    this test's own (retained presence of other tests stays apart)."""
    return {"MLPERF_BROKER": mosquitto.url, "MLPERF_DB": f"sqlite:///{tmp_path / 'lab.db'}",
            "MLPERF_PREFIX": f"t{secrets.token_hex(3)}/v2"}


class Serve:
    """A `mlperf-controller serve` subprocess and its log."""

    def __init__(self, env: dict, log_path: Path, *args: str) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen([str(BIN / "mlperf-controller"), "serve", *args],
                                     env={**os.environ, **env}, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready(self, timeout_s: float = 60.0) -> None:
        """Wait until it serves (its store exists, its presence is out)."""
        wait_for(lambda: "serving " in self.log or self.proc.poll() is not None, timeout_s,
                 interval_s=0.2, what="serve to start")
        assert self.proc.poll() is None, self.log[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(15)
        self._log.close()


@pytest.fixture
def serve(env, tmp_path) -> Iterator[Serve]:
    running = Serve(env, tmp_path / "serve.log")
    running.ready()
    yield running
    running.stop()


def devices(env: dict) -> dict:
    """The store's devices by name, as `mlperf-controller devices --json` shows them."""
    return {d["name"]: d for d in json.loads(cli("mlperf-controller", "devices", "--json",
                                                 env=env, check=True).stdout)}
