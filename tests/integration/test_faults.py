"""Faults, through real parts (Mosquitto, `serve`, `mlperf-agent start` processes): what used to
stick or vanish, shown recovered. Every test ends with the campaign's totals: every run it asked
for is stored, or reported failed -- none missing, none counted twice."""

import json
import secrets
import time

import pytest

from tests.conftest import cli, wait_for
from tests.integration.conftest import Serve, devices

pytestmark = pytest.mark.integration
LONG = ("--set", "learning_rate=1e-9", "--set", "max_epochs=40")   # ~10 s, never the target


def results(env, campaign_id):
    return json.loads(cli("mlperf-controller", "results", "--campaign", campaign_id, "--json",
                          env=env, check=True).stdout)


def campaign(env, campaign_id):
    return next(c for c in json.loads(cli("mlperf-controller", "campaigns", "--json", env=env,
                                          check=True).stdout) if c["campaign_id"] == campaign_id)


def assert_totals(env, campaign_id, expected_runs):
    """expected = stored + reported failed, each run once (superseded attempts are history)."""
    rows = [r for r in results(env, campaign_id) if not r.get("superseded")]
    runs = {(r["device"], r["benchmark"], r["run"]) for r in rows}
    assert len(rows) == len(runs) == expected_runs, rows
    assert all(r["state"] in ("done", "failed", "cancelled", "lost") for r in rows), rows
    stored = [r for r in rows if r["state"] == "done" and r["result"]]
    failed = [r for r in rows if r["state"] != "done"]
    assert len(stored) + len(failed) == expected_runs


def detach(env, *args):
    out = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--detach", "--json", *args,
              env=env, check=True)
    return json.loads(out.stdout)["campaign_id"]


def test_a_result_finished_during_a_broker_outage_is_stored_once_both_are_back(
        own_mosquitto, agents, tmp_path):
    env = {"MLPERF_BROKER": own_mosquitto.url, "MLPERF_DB": f"sqlite:///{tmp_path / 'l.db'}",
           "MLPERF_PREFIX": f"t{secrets.token_hex(3)}/v2"}
    serve = Serve(env, tmp_path / "serve.log")
    try:
        # The resend timer is an hour: only the resend on the controller's return can help.
        agent = agents(own_mosquitto.url, "edge-o", "--prefix", env["MLPERF_PREFIX"],
                       "--resend-s", "3600")
        wait_for(lambda: devices(env).get("edge-o", {}).get("state") == "online", 60,
                 interval_s=0.5, what="edge-o online")
        cid = detach(env, "--devices", "edge-o", *LONG)
        wait_for(lambda: results(env, cid)[0]["state"] == "running", 120, interval_s=0.5,
                 what="the job running")
        own_mosquitto.stop()
        wait_for(lambda: "job " in agent.log and f"{cid}-0001 done" in agent.log, 180,
                 interval_s=0.5, what="the job finishing while the broker is down")
        own_mosquitto.start()
        wait_for(lambda: results(env, cid)[0]["state"] == "done", 90, interval_s=0.5,
                 what="the result stored after the outage")
        assert "reconnected to the broker" in agent.log
        assert_totals(env, cid, 1)
    finally:
        serve.stop()
