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
# Never the target, and ends 15 s into its timed window however fast or loaded the machine is
# (an epoch count alone took 10 s on a quiet machine and minutes on a busy one).
LONG = ("--set", "learning_rate=1e-9", "--set", "max_epochs=10000", "--set", "max_seconds=15")


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
    serve.ready()
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
        wait_for(lambda: campaign(env, cid)["state"] == "done", 90, interval_s=0.5,
                 what="the result stored after the outage")
        assert [r["job_id"] for r in results(env, cid)] == [f"{cid}-0001"]   # not lost, no retry
        assert "reconnected to the broker" in agent.log
        assert_totals(env, cid, 1)
    finally:
        serve.stop()


def test_an_assignment_that_is_never_taken_expires_and_is_retried(env, mosquitto, tmp_path):
    from tests.integration.helpers import SilentAgent

    serve = Serve({**env, "MLPERF_ASSIGN_TIMEOUT": "3"}, tmp_path / "serve.log")
    serve.ready()
    silent = SilentAgent(mosquitto.url, env["MLPERF_PREFIX"], "silent-1")
    try:
        wait_for(lambda: devices(env).get("silent-1", {}).get("state") == "online", 30,
                 interval_s=0.5, what="the silent device online")
        run = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "silent-1",
                  "--retries", "1", "--json", env=env, timeout=120)
        assert run.returncode == 1                        # it ended: lost, after its retry
        rows = json.loads(run.stdout)["results"]
        assert [(r["attempt"], r["state"], r["superseded"]) for r in rows] == [
            (1, "lost", True), (2, "lost", False)]
        assert "lease expired: assigned for" in rows[1]["detail"]
        assert json.loads(run.stdout)["state"] == "done"
        assert_totals(env, json.loads(run.stdout)["campaign_id"], 1)
        assert "lease expired" in serve.log
    finally:
        silent.close()
        serve.stop()


def reference_processes(job_id: str) -> list:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "references" in cmd and job_id in cmd:
            found.append(proc)
    return found


def test_sigkill_mid_job_the_leftover_run_is_ended_and_the_run_retried(env, serve, agents,
                                                                       mosquitto):
    prefix = env["MLPERF_PREFIX"]
    agent = agents(mosquitto.url, "edge-k", "--prefix", prefix)
    wait_for(lambda: devices(env).get("edge-k", {}).get("state") == "online", 60,
             interval_s=0.5, what="edge-k online")
    cid = detach(env, "--devices", "edge-k", *LONG)
    first = f"{cid}-0001"
    wait_for(lambda: results(env, cid)[0]["state"] == "running", 120, interval_s=0.5,
             what="the job running")
    agent.kill()                                          # SIGKILL: no clean-up at all
    assert reference_processes(first), "the run should outlive its agent"
    wait_for(lambda: any(r["state"] == "lost" for r in results(env, cid)), 30, interval_s=0.5,
             what="the job lost")
    again = agents(mosquitto.url, "edge-k", "--prefix", prefix)
    # Natively the orphan dies at its next print (its stdout pipe is gone) or is ended by the
    # new agent (tests/agent/test_leftovers.py has one that stays silent); either way, gone.
    wait_for(lambda: not reference_processes(first), 60, what="the leftover gone")
    wait_for(lambda: "was running when this agent last stopped" in again.log, 60,
             what="the crashed job reported")
    wait_for(lambda: campaign(env, cid)["state"] == "done", 300, interval_s=1,
             what="the campaign done")
    rows = {r["job_id"]: r for r in results(env, cid)}
    assert rows[first]["superseded"] and rows[f"{first}-a2"]["state"] == "done"
    assert "the agent stopped while this job ran" in rows[first]["result"]["error"]
    assert_totals(env, cid, 1)


def test_sigstop_mid_job_the_run_is_answered_once(env, serve, agents, mosquitto):
    import signal

    prefix = env["MLPERF_PREFIX"]
    agent = agents(mosquitto.url, "edge-s", "--prefix", prefix)
    wait_for(lambda: devices(env).get("edge-s", {}).get("state") == "online", 60,
             interval_s=0.5, what="edge-s online")
    cid = detach(env, "--devices", "edge-s", *LONG)
    wait_for(lambda: results(env, cid)[0]["state"] == "running", 120, interval_s=0.5,
             what="the job running")
    agent.proc.send_signal(signal.SIGSTOP)                # frozen: no heartbeats
    try:
        wait_for(lambda: results(env, cid)[0]["state"] == "lost", 30, interval_s=0.5,
                 what="the job lost while its agent is frozen")
    finally:
        agent.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: campaign(env, cid)["state"] == "done", 300, interval_s=1,
             what="the campaign done")
    assert_totals(env, cid, 1)
    assert [r for r in results(env, cid) if not r["superseded"]][0]["state"] == "done"


def test_a_second_agent_with_a_taken_name_stops_with_one_line(env, serve, agents, mosquitto,
                                                             tmp_path):
    prefix = env["MLPERF_PREFIX"]
    first = agents(mosquitto.url, "raspberrypi", "--prefix", prefix)
    wait_for(lambda: devices(env).get("raspberrypi", {}).get("state") == "online", 60,
             interval_s=0.5, what="the first raspberrypi online")
    second = agents(mosquitto.url, "raspberrypi", "--prefix", prefix,
                    work_dir=tmp_path / "second-pi")
    assert second.proc.wait(60) == 1
    complaint = [line for line in second.log.splitlines() if line.startswith("error:")]
    assert len(complaint) == 1 and "another agent named raspberrypi is online" in complaint[0]
    assert "--name raspberrypi-" in complaint[0]
    time.sleep(3)
    assert first.proc.poll() is None and "lost the broker" not in first.log
    assert devices(env)["raspberrypi"]["state"] == "online"
    cid = detach(env, "--devices", "raspberrypi")
    wait_for(lambda: campaign(env, cid)["state"] == "done", 120, interval_s=1,
             what="a job on the first one")
    assert_totals(env, cid, 1)


def test_a_broken_profile_stops_the_agent_with_file_and_field(mosquitto, tmp_path):
    bad = tmp_path / "profiles"
    bad.mkdir()
    (bad / "jetson-nano.yaml").write_text("name: jetson-nano\ndescription: x\n"
                                          "platform: linux/arm64\nruntime: torch-cpu\n"
                                          "power: {rate_hz: fast}\n")
    proc = cli("mlperf-agent", "start", "--broker", mosquitto.url, "--work-dir",
               str(tmp_path / "w"), "--profiles-dir", str(bad), timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"device profile {bad / 'jetson-nano.yaml'}: power.rate_hz" in proc.stderr
