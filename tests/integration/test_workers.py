"""Past one controller process: `serve --worker a` and `serve --worker b` on one real PostgreSQL
store and a real Mosquitto share the fleet's messages (MQTT shared subscriptions); one of them
dispatches. Killing the one that dispatches mid-campaign loses nothing: the other takes the
lead, every run is stored once, and no live device is called silent."""

import json
import re
import secrets
import signal

import pytest

from controller.models import Base
from controller.store import Store
from tests.conftest import cli, wait_for
from tests.integration.conftest import Serve, devices

pytestmark = pytest.mark.integration
RUNS = 3


def results(env, campaign_id):
    return json.loads(cli("mlperf-controller", "results", "--campaign", campaign_id, "--json",
                          env=env, check=True).stdout)


@pytest.fixture
def pg_env(mosquitto, postgres_url):
    env = {"MLPERF_BROKER": mosquitto.url, "MLPERF_DB": postgres_url,
           "MLPERF_PREFIX": f"t{secrets.token_hex(3)}/v2"}
    yield env
    store = Store(postgres_url)
    Base.metadata.drop_all(store.engine)
    store.close()


def stored_by(log: str) -> list[str]:
    return re.findall(r"result for job (\S+): ", log)


def test_two_workers_share_the_fleet_and_losing_the_dispatching_one_loses_nothing(
        pg_env, agents, mosquitto, tmp_path):
    env = pg_env
    workers = {w: Serve(env, tmp_path / f"{w}.log", "--worker", w) for w in ("a", "b")}
    try:
        for w in workers.values():
            w.ready()
        names = [f"edge-{i}" for i in range(3)]
        for name in names:
            agents(mosquitto.url, name, "--prefix", env["MLPERF_PREFIX"], "--heartbeat-s", "1")
        wait_for(lambda: sorted(n for n, d in devices(env).items() if d["state"] == "online")
                 == names, 90, interval_s=0.5, what="three agents online")
        out = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "all",
                  "--runs", str(RUNS), "--detach", "--json", env=env, check=True)
        cid = json.loads(out.stdout)["campaign_id"]
        wait_for(lambda: sum(r["state"] == "done" for r in results(env, cid)) >= 4, 300,
                 interval_s=0.5, what="four runs stored")
        store = Store(env["MLPERF_DB"], create=False)
        leader = store.lead_holder()
        store.close()
        assert leader in ("mlperf-controller-a", "mlperf-controller-b")
        dead, alive = ("a", "b") if leader.endswith("-a") else ("b", "a")
        # Both heard results before the kill: the broker shared them.
        assert stored_by(workers["a"].log) and stored_by(workers["b"].log)
        workers[dead].proc.send_signal(signal.SIGKILL)
        workers[dead].proc.wait(10)
        wait_for(lambda: all(r["state"] in ("done", "failed", "lost", "cancelled")
                             for r in results(env, cid))
                 and len(results(env, cid)) >= len(names) * RUNS, 300, interval_s=1,
                 what="the campaign's runs all ended")
        rows = [r for r in results(env, cid) if not r.get("superseded")]
        assert len(rows) == len(names) * RUNS
        assert {(r["device"], r["run"]) for r in rows} == {
            (n, k) for n in names for k in range(1, RUNS + 1)}
        assert all(r["state"] == "done" and r["result"] for r in rows), rows
        # Each result stored once, by one worker or the other.
        said = stored_by(workers["a"].log) + stored_by(workers["b"].log)
        assert sorted(said) == sorted(set(said)) and set(said) >= {r["job_id"] for r in rows}
        # A log is whole or says it is not: events the killed worker held are lost (the
        # result is re-sent, its events are not), and the result counts what was sent.
        for r in rows:
            got = cli("mlperf-controller", "logs", r["job_id"], env=env, check=True)
            missing = r["log_lines_missing"]
            assert got.stdout.count("\n") == r["result"]["mllog_lines"] - missing
            assert ("incomplete: " in got.stderr) == (missing > 0), (r, got.stderr)
        survivor = workers[alive].log
        assert f"worker {alive} is now dispatching" in survivor or leader.endswith(alive)
        assert "marking it offline" not in survivor
        assert all(d["state"] == "online" for d in devices(env).values())
        assert "this worker still serves" in survivor        # presence said online again
    finally:
        for w in workers.values():
            if w.proc.poll() is None:
                w.stop()
