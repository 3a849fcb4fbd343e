"""The broker as a second wall: `mlperf-controller broker-config` writes a Mosquitto set-up,
a real Mosquitto runs it, the controller and agents connect with the credentials it made and
run a campaign; foreign clients are refused at the door and a device cannot write into another
device's topics or read another device's jobs."""

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from controller.tls import Authority, write_cert, write_key
from tests.conftest import BIN, cli, free_port, wait_for, wait_port

pytestmark = pytest.mark.integration
PREFIX = "lab/v2"


class Lab:
    """A folder written by broker-config and the Mosquitto running it."""

    def __init__(self, auth: str, agents: list[str]) -> None:
        # Outside pytest's 0700 tree: Mosquitto started as root reads its files as `mosquitto`.
        self.dir = Path(tempfile.mkdtemp(prefix="mlperf-lab-"))
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.url = f"mqtts://127.0.0.1:{self.port}"
        args = [a for name in agents for a in ("--agent", name)]
        cli("mlperf-controller", "broker-config", str(self.dir / "lab"), *args, "--auth", auth,
            "--host", "127.0.0.1", "--port", str(self.port), "--prefix", PREFIX, check=True)
        self.root = self.dir / "lab"
        self.log = open(self.dir / "mosquitto.log", "w")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.root / "mosquitto.conf")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port)

    def env(self, db: Path) -> dict:
        return {"MLPERF_DB": f"sqlite:///{db}", "MLPERF_CONTROLLER_CONFIG":
                str(self.root / "controller" / "controller.yaml")}

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cert_lab():
    lab = Lab("cert", ["pi-a", "pi-b"])
    yield lab
    lab.close()


def client(lab: Lab, who: str | None, *, ca: bool = True, cert: tuple | None = None,
           user: str | None = None, password: str | None = None) -> tuple[mqtt.Client, list]:
    """A raw paho client: ``who`` picks a credential folder (agents/NAME or controller)."""
    folder = lab.root / who if who else None
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{time.monotonic_ns()}",
                    protocol=mqtt.MQTTv311)
    got: list = []
    c.on_message = lambda _c, _u, msg: got.append((msg.topic, msg.payload))
    if cert is None and folder is not None and (folder / "client.crt").exists():
        cert = (folder / "client.crt", folder / "client.key")
    c.tls_set(ca_certs=str(lab.root / "broker" / "ca.crt") if ca else None,
              certfile=str(cert[0]) if cert else None, keyfile=str(cert[1]) if cert else None,
              cert_reqs=ssl.CERT_REQUIRED if ca else ssl.CERT_NONE)
    if user:
        c.username_pw_set(user, password)
    return c, got


def refused(lab: Lab, **kwargs) -> bool:
    """True when the broker will not let this client in (handshake fails or CONNACK says no)."""
    c, _ = client(lab, None, **kwargs)
    result: dict = {}
    c.on_connect = lambda _c, _u, _f, reason, _p: result.setdefault("reason", reason)
    try:
        c.connect("127.0.0.1", lab.port)
    except (ssl.SSLError, OSError):
        return True
    c.loop_start()
    deadline = time.monotonic() + 5
    while "reason" not in result and time.monotonic() < deadline:
        time.sleep(0.05)
    c.loop_stop()
    c.disconnect()
    return "reason" not in result or result["reason"].is_failure


def devices(env):
    return {d["name"]: d for d in json.loads(cli("mlperf-controller", "devices", "--json",
                                                 env=env, check=True).stdout)}


def test_a_lab_behind_tls_certificates_and_an_acl(cert_lab, agents, tmp_path):
    lab = cert_lab
    env = lab.env(tmp_path / "lab.db")
    serve_log = open(tmp_path / "serve.log", "w")
    serve = subprocess.Popen([str(BIN / "mlperf-controller"), "serve"], env={**os.environ, **env},
                             stdout=serve_log, stderr=subprocess.STDOUT)
    try:
        for name in ("pi-a", "pi-b"):
            agents(lab.url, name, "--config", str(lab.root / "agents" / name / "agent.yaml"),
                   "--prefix", PREFIX)
        wait_for(lambda: {n for n, d in devices(env).items() if d["state"] == "online"}
                 == {"pi-a", "pi-b"}, 60, interval_s=0.5, what="both agents online over TLS")

        # Foreign clients are refused at the door.
        assert refused(lab, ca=True)                                  # no client certificate
        stranger = Authority.load_or_create(tmp_path / "other-ca")[0]
        cert, key = stranger.issue("pi-a")                            # right name, wrong CA
        write_cert(cert, tmp_path / "x.crt")
        write_key(key, tmp_path / "x.key")
        assert refused(lab, cert=(tmp_path / "x.crt", tmp_path / "x.key"))
        plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        plain.connect("127.0.0.1", lab.port)                          # TCP, but no TLS
        plain.loop_start()
        time.sleep(1)
        assert not plain.is_connected()
        plain.loop_stop()

        # pi-a's own credentials cannot speak for pi-b nor read pi-b's jobs.
        controller, heard = client(lab, "controller")
        controller.connect("127.0.0.1", lab.port)
        controller.subscribe(f"{PREFIX}/agents/pi-b/#", qos=1)
        controller.loop_start()
        snoop, stolen = client(lab, "agents/pi-a")
        snoop.connect("127.0.0.1", lab.port)
        snoop.subscribe([(f"{PREFIX}/controller/agents/pi-b/#", 1), (f"{PREFIX}/agents/#", 1),
                         (f"{PREFIX}/controller/agents/pi-a/#", 1)])      # its own: allowed
        snoop.loop_start()
        time.sleep(1)
        heard.clear()
        snoop.publish(f"{PREFIX}/agents/pi-b/status", b"forged offline", qos=1,
                      retain=True).wait_for_publish(5)
        snoop.publish(f"{PREFIX}/agents/pi-b/jobs/j1/result", b"forged", qos=1
                      ).wait_for_publish(5)
        run = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "pi-a,pi-b",
                  "--json", env=env, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        rows = json.loads(run.stdout)["results"]
        assert sorted(r["device"] for r in rows) == ["pi-a", "pi-b"]
        assert all(r["state"] == "done" for r in rows)
        assert not [p for _, p in heard if p.startswith(b"forged")]    # dropped by the ACL
        assert any(t.endswith("/result") for t, _ in heard)            # ... pi-b's own pass
        assert not [t for t, _ in stolen if "/pi-b/" in t]             # nothing of pi-b's
        assert any(t == f"{PREFIX}/controller/agents/pi-a/jobs" for t, _ in stolen)
        assert devices(env)["pi-b"]["state"] == "online"
        snoop.loop_stop()
        controller.loop_stop()
    finally:
        serve.terminate()
        serve.wait(15)
        serve_log.close()


def test_a_lab_with_passwords(agents, tmp_path):
    lab = Lab("password", ["pi-c"])
    try:
        env = lab.env(tmp_path / "lab.db")
        password = (lab.root / "agents" / "pi-c" / "password").read_text().strip()
        assert refused(lab, user="pi-c", password="not-" + password)
        assert refused(lab, user="nobody", password=password)
        assert not refused(lab, user="pi-c", password=password)
        assert password not in (lab.root / "broker" / "passwd").read_text()  # only its hash
        agent = agents(lab.url, "pi-c", "--config",
                       str(lab.root / "agents" / "pi-c" / "agent.yaml"), "--prefix", PREFIX)
        run = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "pi-c",
                  "--json", env=env, timeout=300)
        if run.returncode != 0:                                       # came online late?
            wait_for(lambda: devices(env).get("pi-c", {}).get("state") == "online", 60,
                     interval_s=0.5, what="pi-c online")
            run = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "pi-c",
                      "--json", env=env, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:] + agent.log[-2000:]
        assert json.loads(run.stdout)["results"][0]["state"] == "done"
        assert password not in " ".join(agent.proc.args)               # never on the command line
    finally:
        lab.close()


def test_broker_config_mistakes_are_one_line(tmp_path):
    for args, complaint in [(("--auth", "magic"), "--auth 'magic'"),
                            (("--agent", "pi/5"), "invalid agent name"),
                            (("--agent", "mlperf-controller"), "the controller's"),
                            (("--port", "0"), "--port 0")]:
        proc = cli("mlperf-controller", "broker-config", str(tmp_path / "x"), *args)
        assert proc.returncode == 1 and complaint in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
