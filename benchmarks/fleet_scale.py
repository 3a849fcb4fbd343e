"""One controller against a fleet of simulated agents (benchmarks/fleet_sim.py: the real wire
contract, each agent its own MQTT connection), on a real Mosquitto and `mlperf-controller
serve` with SQLite, on this machine.

    python benchmarks/fleet_scale.py [--agents 1000] [--heartbeat-s 5] [--observe-s 60]
                                     [--no-jobs] [--job-s 2] [--jobs-timeout-s 600]

1. Presence: all agents connect; the time until the store shows every one online; then
   ``--observe-s`` of heartbeats. A plain paho subscriber counts what the broker delivers
   (and its lag); the controller's own statistics line says how many it applied; devices the
   controller marks offline while their agent runs are counted as false offline.
2. Jobs: one smoke job per device (`mlperf-controller run --detach`); each simulated agent
   records when its assignment arrived (against the controller's sent_at), when its result's
   ack came, and its re-sends; the store is read for results stored.

Prints a table (N, time to all online, processed/delivered, false offline, dispatch p50/p99,
result->ack p50/p99, stored/expected, controller RSS and CPU per 1,000 agents); the last line
carries ``ratio X`` = heartbeats processed / delivered, where processed = applied, or read and
dropped unverified because a newer heartbeat of the same device was in hand (a controller
behind its fleet writes only each device's newest; both counts are in the table). Measured
figures: issue 15's notes and the README's "Fleet size".
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import paho.mqtt.client as mqtt  # noqa: E402
import psutil  # noqa: E402

from controller.broker_config import MAX_QUEUED_MESSAGES  # noqa: E402  (the lab broker's)

BIN = Path(sys.executable).parent
PER_PROCESS = 1000         # simulated agents per worker process (one thread, epoll)
STATS_RE = re.compile(r"heartbeats: (\d+) applied of (\d+) heard in \d+ s \((\d+) superseded")
OFFLINE_RE = re.compile(r"device (\S+): no heartbeat for .* marking it offline")
MORE_OFFLINE_RE = re.compile(r"(\d+) more devices silent; marking them offline")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mosquitto(work: Path) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(binary):
        sys.exit("mosquitto is not installed (apt-get install mosquitto; `make test` does)")
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    f"max_queued_messages {MAX_QUEUED_MESSAGES}\n"
                    "max_connections -1\nset_tcp_nodelay true\npersistence false\n"
                    f"log_dest file {work / 'mosquitto.log'}\nlog_type error\nlog_type warning\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    sys.exit("mosquitto did not start")


class RawCounter:
    """A plain paho subscriber to every heartbeat: what the broker delivers, and its lag."""

    def __init__(self, port: int, prefix: str) -> None:
        from agent.envelope import open_envelope

        self.count, self.lags = 0, []
        self._open = open_envelope
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fleet-raw-counter")
        c.on_message = self._on_message
        c.connect("127.0.0.1", port)
        c.subscribe(f"{prefix}/agents/+/heartbeat", qos=1)
        c.loop_start()
        self.client = c

    def _on_message(self, client, userdata, msg) -> None:
        import json

        self.count += 1
        if self.count % 20 == 0:                      # lag of a sample: parsing costs
            try:
                body = json.loads(self._open(msg.payload, msg.topic).body)
                self.lags.append(time.time() - body["sent_at"])
            except (ValueError, KeyError):
                pass

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Controller:
    """`mlperf-controller serve`, its stderr read for statistics and offline markings."""

    def __init__(self, env: dict[str, str], source: Path | None, log: Path) -> None:
        self.log = log.open("w")
        self.proc = subprocess.Popen(controller_argv(source) + ["serve"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.applied = self.heard = self.superseded = 0
        self.offline = 0            # markings (every simulated agent is live throughout)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.ps = psutil.Process(self.proc.pid)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.log.write(line)
            if m := STATS_RE.search(line):
                self.applied += int(m.group(1))
                self.heard += int(m.group(2))
                self.superseded += int(m.group(3))
            elif OFFLINE_RE.search(line):
                self.offline += 1
            elif m := MORE_OFFLINE_RE.search(line):
                self.offline += int(m.group(1))

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._reader.join(5)


def controller_argv(source: Path | None) -> list[str]:
    """`mlperf-controller`, or the one in another checkout (``--controller-src``: measure a
    commit before a change with the same fleet)."""
    if source is None:
        return [str(BIN / "mlperf-controller")]
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(source)!r}); "
            "from controller.cli import main; sys.exit(main())"]


def store_counts(db_url: str) -> tuple[int, int]:
    """(devices online, results stored) in the controller's store."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            online = c.execute(text("SELECT count(*) FROM devices WHERE state = 'online'"))
            online = online.scalar() or 0
            try:
                results = c.execute(text("SELECT count(*) FROM results")).scalar() or 0
            except Exception:  # noqa: BLE001  (the table appears with the first result)
                results = 0
        return int(online), int(results)
    finally:
        engine.dispose()


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def fmt(x: float | None, unit: str = "s") -> str:
    return "-" if x is None else f"{x:.2f} {unit}" if x < 10 else f"{x:.0f} {unit}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--heartbeat-s", type=float, default=5.0)
    parser.add_argument("--observe-s", type=float, default=60.0)
    parser.add_argument("--online-timeout-s", type=float, default=600.0)
    parser.add_argument("--no-jobs", action="store_true")
    parser.add_argument("--job-s", type=float, default=2.0)
    parser.add_argument("--jobs-timeout-s", type=float, default=900.0)
    parser.add_argument("--dispatch-window", type=int, default=None,
                        help="the controller's --dispatch-window (default: its own, 512); a "
                             "number past the fleet's size sends a campaign all at once")
    parser.add_argument("--controller-src", type=Path, default=None,
                        help="run the controller of another checkout (e.g. a git worktree)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (controller.log, lab.db, mosquitto.log)")
    args = parser.parse_args()
    n = args.agents
    work = Path(tempfile.mkdtemp(prefix="fleet-scale-"))
    broker, port = start_mosquitto(work)
    prefix = f"fleet{secrets.token_hex(3)}/v1"
    token = secrets.token_urlsafe(24)
    (work / "token").write_text(token)
    db_url = f"sqlite:///{work / 'lab.db'}"
    env = {**os.environ, "MLPERF_BROKER": f"mqtt://127.0.0.1:{port}", "MLPERF_DB": db_url,
           "MLPERF_PREFIX": prefix, "MLPERF_ENROL_TOKEN_FILE": str(work / "token"),
           "MLPERF_CONTROLLER_IDENTITY": str(work / "controller.key")}
    if args.dispatch_window is not None:
        env["MLPERF_DISPATCH_WINDOW"] = str(args.dispatch_window)
    controller = Controller(env, args.controller_src, work / "controller.log")
    raw = RawCounter(port, prefix)
    time.sleep(3)
    cpu0, t0 = controller.cpu_s(), time.monotonic()
    rss0_mb = controller.ps.memory_info().rss / 2 ** 20
    from fleet_sim import run_worker

    ctx = mp.get_context("fork")
    stop, out = ctx.Event(), ctx.Queue()
    names = [f"sim-{i:05d}" for i in range(n)]
    workers = [ctx.Process(target=run_worker, args=(names[lo:lo + PER_PROCESS], "127.0.0.1",
                                                     port, prefix, token, args.heartbeat_s,
                                                     args.job_s, stop, out))
               for lo in range(0, n, PER_PROCESS)]
    for w in workers:
        w.start()
    print(f"{n:,} simulated agents in {len(workers)} process(es); heartbeat {args.heartbeat_s:g} s",
          file=sys.stderr)
    all_online_s = None
    while time.monotonic() - t0 < args.online_timeout_s:
        online, _ = store_counts(db_url)
        if online >= n:
            all_online_s = time.monotonic() - t0
            break
        time.sleep(1)
    print(f"all online after {fmt(all_online_s)}; observing {args.observe_s:g} s",
          file=sys.stderr)
    time.sleep(args.observe_s)
    stored = expected = campaign_s = None
    if not args.no_jobs:
        done = subprocess.run(controller_argv(args.controller_src) + [
                               "run", "--benchmarks", "ncf",
                               "--devices", "tag:sim", "--mode", "smoke", "--detach"], env=env,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            print(f"run --detach failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
        else:
            expected = n
            started = time.monotonic()
            while time.monotonic() - started < args.jobs_timeout_s:
                _, stored = store_counts(db_url)
                if stored >= n:
                    campaign_s = time.monotonic() - started
                    break
                time.sleep(2)
            time.sleep(3)                                 # the last acks
    cpu_s, span_s = controller.cpu_s() - cpu0, time.monotonic() - t0
    rss_mb = controller.ps.memory_info().rss / 2 ** 20
    stop.set()
    summaries = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(30)
    if expected is not None:
        stored = store_counts(db_url)[1]
    controller.stop()
    raw.stop()
    broker.terminate()
    jobs = [j for s in summaries for j in s["jobs"]]
    dispatch = [j["received_at"] - j["sent_at"] for j in jobs]
    acks = [j["acked_at"] - j["result_at"] for j in jobs if j["acked_at"] and j["result_at"]]
    resends = sum(j["resends"] for j in jobs)
    sent = sum(s["heartbeats_sent"] for s in summaries)
    # Processed: applied, or read and dropped unverified because a newer heartbeat of the same
    # device was in hand (a controller behind its fleet writes each device's newest only).
    processed = controller.applied + controller.superseded
    ratio = processed / raw.count if raw.count else 0.0
    false_offline = controller.offline
    rows = [
        ("agents", f"{n:,}"),
        ("time to all online", fmt(all_online_s)),
        ("heartbeats sent / delivered by the broker / applied by the controller",
         f"{sent:,} / {raw.count:,} / {controller.applied:,}"),
        ("... superseded unread by a newer one of the same device", f"{controller.superseded:,}"),
        ("processed (applied + superseded) / delivered", f"{ratio:.2f}"),
        ("broker delivery lag p50 / p99", f"{fmt(pct(raw.lags, .5))} / {fmt(pct(raw.lags, .99))}"),
        ("live devices marked offline", f"{false_offline:,}"),
        ("assignment -> on the device p50 / p99",
         f"{fmt(pct(dispatch, .5))} / {fmt(pct(dispatch, .99))}"),
        ("result -> ack p50 / p99", f"{fmt(pct(acks, .5))} / {fmt(pct(acks, .99))}"),
        ("results re-sent (no ack within 30 s, then 60 s, ...)", f"{resends:,}"),
        ("results stored / expected", "-" if expected is None else f"{stored:,} / {expected:,}"),
        ("campaign: `run` to every result stored (polled every 2 s)",
         "-" if campaign_s is None else fmt(campaign_s)),
        ("controller RSS per 1,000 agents",
         f"+{(rss_mb - rss0_mb) / n * 1000:.0f} MB ({rss0_mb:.0f} MB idle, {rss_mb:.0f} MB)"),
        ("controller CPU per 1,000 agents",
         f"{cpu_s / span_s / n * 1000 * 100:.1f} % of a core ({cpu_s:.0f} s in {span_s:.0f} s)"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    if controller.offline:
        print(f"(the markings are in {work / 'controller.log'}; --keep keeps it)")
    print(f"fleet of {n:,}: heartbeats processed/delivered ratio {ratio:.2f}")
    if args.keep:
        print(f"(kept: {work})")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
