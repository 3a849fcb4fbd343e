"""``mlperf-controller broker-config``: the broker as a second wall (signatures are the first).

Writes a Mosquitto configuration for a lab: one TLS listener; a CA with the broker's server
certificate and a credential per client (a client certificate whose common name is the agent
id, or a password); an ACL by which each device may write only under its own topics and read
only its own controller topics; and, for the controller and every device, a folder holding its
credentials and a config file that points at them. Running it again adds devices and keeps
what exists (the CA, and every device's credentials).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import secrets
import socket
from pathlib import Path

import yaml

from agent.errors import ConfigError, ProtocolError
from agent.protocol import MAX_PAYLOAD_BYTES, Topics, check_id
from controller.tls import Authority, write_cert, write_key

CONTROLLER_USER = "mlperf-controller"
#: Outgoing QoS 1 messages a broker queues per client. Mosquitto's default (1000) silently
#: drops QoS 1 messages to a slow subscriber (measured here: 4 of 5 bursts of 10,000 lost);
#: 0 (unlimited) lets one stuck client take the broker's memory. 100,000 holds ~50 s of a
#: 10,000-device fleet's heartbeats for a busy controller.
MAX_QUEUED_MESSAGES = 100_000
#: Largest packet: the largest envelope the contract allows, plus topic and MQTT headers.
MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + 8192
#: mosquitto_passwd's PBKDF2-SHA512 iterations. The passwords are 32 random characters, so
#: the count adds nothing to their strength, while every connect pays for it.
PBKDF2_ITERATIONS = 101


def password_hash(password: str) -> str:
    """A password-file hash in Mosquitto 2's ``$7$`` format (PBKDF2-SHA512)."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return (f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def _secret_file(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _credentials(folder: Path, user: str, auth: str, ca: Authority) -> str | None:
    """Make ``folder``'s credentials for ``auth`` unless they exist; returns the password."""
    folder.mkdir(parents=True, exist_ok=True)
    write_cert(ca.cert, folder / "ca.crt")
    if auth == "cert" and not (folder / "client.crt").exists():
        cert, key = ca.issue(user)
        write_key(key, folder / "client.key")
        write_cert(cert, folder / "client.crt")
    if auth == "password":
        if not (folder / "password").exists():
            _secret_file(folder / "password", secrets.token_urlsafe(24) + "\n")
        return (folder / "password").read_text().strip()
    return None


def _client_yaml(auth: str, url: str, prefix: str, extra: dict) -> dict:
    settings = {"broker": url, "prefix": prefix, "tls_ca": "ca.crt", **extra}
    if auth == "cert":
        settings.update(tls_cert="client.crt", tls_key="client.key")
    else:
        settings.update(broker_password_file="password")
    return settings


def write_broker_config(out_dir: Path, agents: list[str], *, auth: str = "cert",
                        hosts: list[str] | None = None, port: int = 8883,
                        prefix: str = "mlperf/v2", controller_key: str | None = None
                        ) -> list[str]:
    """Write (or extend) the set-up in ``out_dir``; returns what to tell the operator."""
    if auth not in ("cert", "password"):
        raise ConfigError(f"--auth {auth!r}: use cert or password")
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}: use 1-65535")
    Topics(prefix)                                         # a valid prefix, or ConfigError
    for name in agents:
        try:
            check_id(name, "agent name")
        except ProtocolError as exc:
            raise ConfigError(str(exc)) from None
        if name == CONTROLLER_USER:
            raise ConfigError(f"--agent {name}: that name is the controller's")
    out = Path(out_dir).expanduser().resolve()
    hosts = hosts or [socket.gethostname(), "localhost", "127.0.0.1"]
    ca, made_ca = Authority.load_or_create(out / "ca")
    broker = out / "broker"
    broker.mkdir(parents=True, exist_ok=True)
    (broker / "data").mkdir(exist_ok=True)
    server_cert, server_key = ca.issue(hosts[0], server_names=hosts)
    write_key(server_key, broker / "server.key")
    write_cert(server_cert, broker / "server.crt")
    write_cert(ca.cert, broker / "ca.crt")
    url = f"mqtts://{hosts[0]}:{port}"

    passwords: dict[str, str] = {}
    pw = _credentials(out / "controller", CONTROLLER_USER, auth, ca)
    if pw:
        passwords[CONTROLLER_USER] = pw
    controller_settings = _client_yaml(auth, url, prefix,
                                       {"broker_user": CONTROLLER_USER} if auth == "password"
                                       else {})
    (out / "controller" / "controller.yaml").write_text(
        "# mlperf-controller ... --config controller.yaml (paths are relative to this file)\n"
        + yaml.safe_dump(controller_settings, sort_keys=False))
    agents_dir = out / "agents"
    for name in agents:
        (agents_dir / name).mkdir(parents=True, exist_ok=True)
    every = sorted(p.name for p in agents_dir.iterdir() if p.is_dir()) \
        if agents_dir.exists() else []
    for name in every:
        folder = agents_dir / name
        pw = _credentials(folder, name, auth, ca)
        if pw:
            passwords[name] = pw
        extra = {"name": name}
        if auth == "password":
            extra["broker_user"] = name
        if controller_key:
            extra["controller_key"] = controller_key
        (folder / "agent.yaml").write_text(
            "# copy this folder to the device, then: mlperf-agent start --config agent.yaml\n"
            + yaml.safe_dump(_client_yaml(auth, url, prefix, extra), sort_keys=False))

    (broker / "acl").write_text(acl_text(prefix))
    if auth == "password":
        _secret_file(broker / "passwd",
                     "".join(f"{user}:{password_hash(pw)}\n" for user, pw in passwords.items()))
    elif (broker / "passwd").exists():
        (broker / "passwd").unlink()
    conf = mosquitto_conf(broker, auth, port)
    (out / "mosquitto.conf").write_text(conf)
    owner = _give_to_broker_user(broker)
    lines = [f"{'made' if made_ca else 'kept'} the lab CA in {out / 'ca'} (keep ca.key "
             "offline once every device has its credentials)",
             f"broker: mosquitto -c {out / 'mosquitto.conf'}  (TLS on port {port}, "
             f"{'client certificates' if auth == 'cert' else 'passwords'}; server names: "
             f"{', '.join(hosts)})",
             f"controller: mlperf-controller serve --config {out / 'controller/controller.yaml'}"]
    if owner:
        lines.insert(2, f"{broker}/ belongs to user {owner}: Mosquitto started as root "
                        "drops to that user before it reads its key")
    lines += [f"device {name}: copy {agents_dir / name}/ to it, then `mlperf-agent start "
              "--config agent.yaml`" for name in every]
    return lines


def _give_to_broker_user(broker: Path, user: str = "mosquitto") -> str | None:
    """Mosquitto started as root drops to user ``mosquitto`` before it reads its key, password
    file and data: when we are root and that user exists, the broker's folder becomes its."""
    if os.geteuid() != 0:
        return None
    try:
        import pwd
        entry = pwd.getpwnam(user)
    except (ImportError, KeyError):
        return None
    for path in [broker, *broker.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return user


def acl_text(prefix: str) -> str:
    """Each device writes only under its own topics and reads only its own jobs; the
    controller reads and writes the whole prefix. %u is the client's user name (its
    certificate's common name, or its password-file user): its agent id."""
    return f"""# Written by `mlperf-controller broker-config` {dt.date.today()}.
# The controller: the whole prefix.
user {CONTROLLER_USER}
topic readwrite {prefix}/#

# Every device (pattern lines apply to every user; %u = its agent id, %c = its client id):
# it writes only under its own subtree (status, heartbeat, its jobs' events and results,
# refusals) and reads only what the controller addresses to it, its own retained status (to
# notice a second agent using its name) and the controller's presence (to resend unacknowledged
# results the moment the controller is back). Mosquitto warns that this last pattern names no
# %u or %c; that is expected: every device may read it.
pattern write {prefix}/agents/%u/#
pattern read {prefix}/agents/%u/status
pattern read {prefix}/controller/agents/%u/#
pattern read {prefix}/controller/status
pattern readwrite {prefix}/sync/%c
"""


def mosquitto_conf(broker: Path, auth: str, port: int) -> str:
    creds = ("require_certificate true\nuse_identity_as_username true\n" if auth == "cert"
             else f"require_certificate false\npassword_file {broker / 'passwd'}\n")
    return f"""# Written by `mlperf-controller broker-config` {dt.date.today()}.
# Run: mosquitto -c {broker.parent / 'mosquitto.conf'}
per_listener_settings false
allow_anonymous false
acl_file {broker / 'acl'}

listener {port}
cafile {broker / 'ca.crt'}
certfile {broker / 'server.crt'}
keyfile {broker / 'server.key'}
tls_version tlsv1.2
{creds}
# The default (1000) silently drops QoS 1 messages to a slow subscriber; unlimited (0) lets
# one stuck client take the broker's memory: {MAX_QUEUED_MESSAGES:,} holds ~50 s of a
# 10,000-device fleet's heartbeats.
max_queued_messages {MAX_QUEUED_MESSAGES}
# The largest signed envelope the wire contract allows ({MAX_PAYLOAD_BYTES:,} bytes) plus
# topic and headers: anything larger is refused at the door.
max_packet_size {MAX_PACKET_BYTES}
# paho never sets TCP_NODELAY: with it, round trips take ~1 ms instead of 44-88 ms.
set_tcp_nodelay true
# Persistent sessions and retained presence survive a broker restart.
persistence true
persistence_location {broker / 'data'}/
log_type error
log_type warning
log_type notice
"""
