"""Shared fixtures: the real parts (Mosquitto, PostgreSQL) on free loopback ports, and helpers
to run the CLIs as real subprocesses."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def wait_for(predicate, timeout_s: float = 30.0, interval_s: float = 0.1, what: str = ""):
    """Poll ``predicate`` until it returns something truthy; fail the test otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what or predicate}")


# -- the lab's keys -----------------------------------------------------------------------------
class LabKeys:
    """One controller key for every controller command and test peer of the session, pinned
    by every agent (MLPERF_CONTROLLER_KEY), and one enrolment token both sides hold, so agents
    join without a manual approval. Tests of approval itself drop the token."""

    def __init__(self, folder: Path) -> None:
        from agent.identity import Identity

        self.path = folder / "controller_ed25519"
        self.identity, _ = Identity.load_or_create(self.path)
        self.token = secrets.token_urlsafe(24)
        self.env = {"MLPERF_CONTROLLER_IDENTITY": str(self.path),
                    "MLPERF_CONTROLLER_KEY": self.identity.fingerprint,
                    "MLPERF_ENROL_TOKEN": self.token}


@pytest.fixture(scope="session", autouse=True)
def lab_keys(tmp_path_factory) -> Iterator[LabKeys]:
    keys = LabKeys(tmp_path_factory.mktemp("keys"))
    saved = {k: os.environ.get(k) for k in keys.env}
    os.environ.update(keys.env)
    yield keys
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def without_token(env: dict | None = None) -> dict:
    """The environment minus the enrolment token: devices then wait for approval."""
    return {k: v for k, v in {**os.environ, **(env or {})}.items()
            if k != "MLPERF_ENROL_TOKEN"}


# -- Mosquitto ---------------------------------------------------------------------------------
class Mosquitto:
    """A real Mosquitto on a loopback port; stop()/start() simulate a broker restart."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(self.binary):
            pytest.fail("mosquitto is not installed: `make test` installs it "
                        "(apt-get install mosquitto)")
        self.port = port or free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.conf = workdir / f"mosquitto-{self.port}.conf"
        self.log = workdir / f"mosquitto-{self.port}.log"
        # max_queued_messages 0: the default (1000) silently drops QoS 1 messages to a slow
        # subscriber (NOTES.md); set_tcp_nodelay: ~1 ms round trips instead of ~44-88 ms.
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
            "set_tcp_nodelay true\npersistence false\n"
            f"log_dest file {self.log}\nlog_type error\nlog_type warning\nlog_type notice\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def own_mosquitto(tmp_path) -> Iterator[Mosquitto]:
    """A broker of the test's own, for tests that restart or stop it."""
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()


# -- PostgreSQL --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL cluster on a free loopback port (run as user postgres)."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb:
        pytest.fail("PostgreSQL is not installed: `make test` installs it "
                    "(apt-get install postgresql)")
    bindir = Path(initdb[-1]).parent
    # Outside pytest's 0700 tmp tree: the server runs as user postgres and must reach it.
    base = Path(tempfile.mkdtemp(prefix="mlperf-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    port = free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    subprocess.run(as_postgres + [str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                                  "-U", "postgres"], check=True, capture_output=True)
    subprocess.run(as_postgres + [str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l",
                                  str(base / "log"), "-o",
                                  f"-p {port} -k {sock} -c listen_addresses=127.0.0.1",
                                  "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_postgres + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                                      "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


# -- CLIs as real subprocesses -------------------------------------------------------------------
def cli(tool: str, *args: str, env: dict | None = None, timeout: float = 300,
        check: bool = False, replace_env: bool = False) -> subprocess.CompletedProcess:
    """Run ``mlperf-agent``/``mlperf-controller`` as the user would, capturing output.
    ``env`` adds to this process's environment, or is the whole of it with ``replace_env``."""
    proc = subprocess.run([str(BIN / tool), *args], capture_output=True, text=True,
                          timeout=timeout, env=env if replace_env else {**os.environ, **(env or {})},
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        pytest.fail(f"{tool} {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


class Agent:
    """An ``mlperf-agent start`` process with its log file."""

    def __init__(self, broker_url: str, name: str, work_dir: Path, *extra: str,
                 env: dict | None = None, bin_dir: Path | None = None) -> None:
        self.name = name
        self.work_dir = work_dir
        self.log_path = work_dir.parent / f"{work_dir.name}.log"
        work_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [str((bin_dir or BIN) / "mlperf-agent"), "start", "--broker", broker_url,
             "--name", name,
             "--work-dir", str(work_dir), "--heartbeat-s", "1", *extra],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env if env is not None else None)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def interrupt(self, timeout_s: float = 30) -> int:
        """Ctrl-C, as an operator would; returns the exit code."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._log.close()


@pytest.fixture
def agents(tmp_path) -> Iterator[callable]:
    """Factory: ``agents(broker_url, name, *extra_flags, env=None, bin_dir=None)`` -> a started
    Agent (killed after); ``env`` replaces the environment (e.g. ``without_token()``);
    ``bin_dir`` runs another environment's mlperf-agent (e.g. the phone's)."""
    started: list[Agent] = []

    def start(broker_url: str, name: str, *extra: str, env: dict | None = None,
              work_dir: Path | None = None, bin_dir: Path | None = None) -> Agent:
        agent = Agent(broker_url, name, work_dir or tmp_path / "agents" / name, *extra, env=env,
                      bin_dir=bin_dir)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.close()
