"""The whole loop through real parts: Mosquitto, `mlperf-controller serve`, two
`mlperf-agent start` processes, and `mlperf-controller run/results/devices/logs` as a user
types them."""

import json

import pytest

from tests.conftest import cli, wait_for
from tests.integration.conftest import devices

pytestmark = pytest.mark.integration




def test_campaign_on_two_devices_then_last_will(env, serve, agents, mosquitto):
    edge_a = agents(mosquitto.url, "edge-a", "--prefix", env["MLPERF_PREFIX"], "--tag", "lab")
    agents(mosquitto.url, "edge-b", "--prefix", env["MLPERF_PREFIX"])
    wait_for(lambda: {n for n, d in devices(env).items() if d["state"] == "online"}
             == {"edge-a", "edge-b"}, 30, interval_s=0.5, what="both agents online")

    run = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "all",
              "--runs", "2", "--mode", "smoke", "--json", env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    campaign = json.loads(run.stdout)
    rows = campaign["results"]
    assert len(rows) == 4 and campaign["state"] == "done"
    assert sorted((r["device"], r["run"]) for r in rows) == [
        ("edge-a", 1), ("edge-a", 2), ("edge-b", 1), ("edge-b", 2)]
    for row in rows:
        assert row["state"] == "done"
        outcome = row["result"]["outcome"]
        assert outcome["mode"] == "smoke" and outcome["reached_target"] is True
        assert outcome["time_to_train_s"] is None and outcome["time_to_target_s"] > 0
        assert row["result"]["timed_window"]["duration_s"] > 0
    assert {r["seed"] for r in rows} == {1, 2}

    stored = json.loads(cli("mlperf-controller", "results", "--campaign",
                            campaign["campaign_id"], "--json", env=env, check=True).stdout)
    assert [r["job_id"] for r in stored] == [r["job_id"] for r in rows]
    # Both agents run on this one host: where their power windows overlapped, each estimate
    # covers both and is doubted; where they did not, it stands.
    windows = {r["job_id"]: r["result"]["power"] for r in stored}
    for r in stored:
        p = windows[r["job_id"]]
        if p["status"] == "none":
            continue
        overlap = any(q["status"] != "none" and o["device"] != r["device"]
                      and q["start_ms"] < p["stop_ms"] and p["start_ms"] < q["stop_ms"]
                      for o in stored for q in [windows[o["job_id"]]])
        assert overlap == any("shared host" in d for d in r["power_doubts"]), r["job_id"]
    table = cli("mlperf-controller", "results", env=env, check=True).stdout
    assert "edge-a" in table and "smoke" in table and "reached" in table

    log = cli("mlperf-controller", "logs", rows[0]["job_id"], env=env, check=True).stdout
    keys = [json.loads(line[len(":::MLLOG "):])["key"] for line in log.splitlines()]
    assert keys.count("run_start") == 1 and keys.count("run_stop") == 1
    assert len(keys) == rows[0]["result"]["mllog_lines"]

    # A tag selects only the tagged device.
    tagged = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "tag:lab",
                 "--json", env=env, timeout=300)
    assert [r["device"] for r in json.loads(tagged.stdout)["results"]] == ["edge-a"]

    edge_a.kill()                                             # SIGKILL: only the will speaks
    wait_for(lambda: devices(env)["edge-a"]["state"] == "offline", 15, interval_s=0.5,
             what="edge-a offline via its Last Will")
    assert "Last Will" in devices(env)["edge-a"]["reason"]
    assert devices(env)["edge-b"]["state"] == "online"


def test_run_without_serve_dispatches_in_process_and_detach_queues(env, agents, mosquitto):
    agents(mosquitto.url, "solo", "--prefix", env["MLPERF_PREFIX"])
    wait_for(lambda: devices(env).get("solo", {}).get("state") == "online", 30,
             interval_s=0.5, what="solo online")
    run = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "solo",
              env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "solo" in run.stdout and "done" in run.stdout      # the results table

    # What the references refuse is refused before anything is queued, in one whole line.
    closed = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "solo",
                 "--division", "closed", "--json", env=env, timeout=300)
    assert closed.returncode == 1 and "open division by definition" in closed.stderr
    typo = cli("mlperf-controller", "run", "--benchmarks", "ncf,sentiment", "--devices", "solo",
               "--set", "batch_sise=64", env=env, timeout=60)
    assert typo.returncode == 1 and "ncf: unknown config key 'batch_sise'" in typo.stderr
    assert "synthetic_max_interactions" in typo.stderr        # the whole list of valid keys
    assert json.loads(cli("mlperf-controller", "campaigns", "--json", env=env,
                          check=True).stdout)[-1]["jobs"] == {"done": 1}   # nothing queued

    detached = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--detach", "--json",
                   env=env, check=True)
    queued = json.loads(detached.stdout)
    assert queued["state"] == "active"
    assert "no controller is serving" in detached.stderr
    campaigns = json.loads(cli("mlperf-controller", "campaigns", "--json", env=env,
                               check=True).stdout)
    assert campaigns[-1]["jobs"] == {"queued": 1}
    cancelled = cli("mlperf-controller", "cancel", queued["campaign_id"], env=env, check=True)
    assert "cancelled" in cancelled.stderr
    assert json.loads(cli("mlperf-controller", "campaigns", "--json", env=env,
                          check=True).stdout)[-1]["jobs"] == {"cancelled": 1}


def test_controller_errors_are_one_line(env, tmp_path):
    settings = tmp_path / "controller.yaml"
    settings.write_text("dispatch_window: lots\n")
    for args, complaint in [
        (("run", "--benchmarks", "ncf", "--devices", "nobody"), "no device named 'nobody'"),
        (("run", "--benchmarks", "ncf", "--mode", "turbo"), "--mode 'turbo'"),
        (("run", "--benchmarks", "ncf", "--set", "oops"), "KEY=VALUE"),
        (("run", "--benchmarks", "ncf,ncf"), "more than once"),
        (("run", "--benchmarks", "ncf,resnet9000"), "unknown benchmark 'resnet9000'"),
        (("run", "--benchmarks", "ncf", "--mode", "full", "--set", "mlp_layers=64,32"),
         "closed division"),
        (("results", "--campaign", "c-none"), "no campaign"),
        (("logs", "no-job"), "no job"),
        (("run", "--benchmarks", "ncf", "--broker", "mqtt://127.0.0.1:9",
          "--connect-timeout", "1"), "cannot reach the broker"),
        (("devices", "--db", "nonsense"), "invalid store URL"),
        (("results", "--db", "sqlite:///tmp/no-such-lab/typo.db"), "no results store at"),
        (("run", "--benchmarks", "ncf", "--db", "sqlite:////etc/hostname/lab.db"),
         "cannot make the folder /etc/hostname"),
        (("serve", "--worker", "a"), "--worker shares one store among processes: use "
                                     "PostgreSQL"),
        (("serve", "--worker", "a/b"), "invalid worker name"),
        (("serve", "--config", str(settings)), "dispatch_window must be a whole number"),
    ]:
        proc = cli("mlperf-controller", *args, env=env, timeout=60)
        assert proc.returncode == 1, (args, proc.stderr)
        assert complaint in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
