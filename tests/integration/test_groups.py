"""Runs several agents train together (`mlperf-controller run --nodes N`), through real parts:
Mosquitto, `mlperf-controller serve`, two or three `mlperf-agent start` processes on this
machine (rendezvous on loopback), torch.distributed with gloo."""

import json
import os
import signal
import subprocess
import time

import pytest

from tests.conftest import cli, wait_for
from tests.integration.conftest import devices

pytestmark = pytest.mark.integration


def _online(env, names):
    wait_for(lambda: {n for n, d in devices(env).items() if d["state"] == "online"}
             >= set(names), 30, interval_s=0.5, what=f"{', '.join(names)} online")


def _start(agents, mosquitto, env, names, tag="rack"):
    for name in names:
        agents(mosquitto.url, name, "--prefix", env["MLPERF_PREFIX"], "--tag", tag,
               "--address", "127.0.0.1")
    _online(env, names)


def _all_jobs(env, campaign_id):
    """Every job of the campaign, group members included (the store's rows, not the view)."""
    import sqlite3

    db = env["MLPERF_DB"].removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(
            "SELECT * FROM jobs WHERE campaign_id = ? ORDER BY created_at", (campaign_id,))]


def _mllog_keys(env, job_id):
    log = cli("mlperf-controller", "logs", job_id, env=env, check=True).stdout
    return [json.loads(line[len(":::MLLOG "):])["key"] for line in log.splitlines()]


def test_two_nodes_train_ncf_and_resnet_smoke_as_one_run_each(env, serve, agents, mosquitto):
    _start(agents, mosquitto, env, ["node-a", "node-b"])
    run = cli("mlperf-controller", "run", "--benchmarks", "ncf,resnet", "--devices", "tag:rack",
              "--nodes", "2", "--json", env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:] + serve.log[-3000:]
    campaign = json.loads(run.stdout)
    rows = campaign["results"]
    # One row per run: the group, not one per node.
    assert sorted(r["benchmark"] for r in rows) == ["ncf", "resnet"], rows
    jobs = _all_jobs(env, campaign["campaign_id"])
    assert len(jobs) == 4 and {j["world_size"] for j in jobs} == {2}
    for row in rows:
        assert row["state"] == "done" and row["nodes"] == 2, row
        assert row["device"].startswith("2 nodes: node-a, node-b")
        outcome = row["result"]["outcome"]
        assert outcome["reached_target"] and outcome["world_size"] == 2 and outcome["rank"] == 0
        # time-to-target is rank 0's own window
        window = row["result"]["timed_window"]
        assert outcome["time_to_target_s"] == pytest.approx(window["duration_s"], abs=2.0)
        ranks = {d["rank"]: d for d in row["node_detail"]}
        assert sorted(ranks) == [0, 1] and ranks[0]["device"] == "node-a"
        assert all(d["state"] == "done" for d in ranks.values())
        # Energy: the sum of what each node's own agent measured over its own window.
        if all(d["energy_j"] is not None for d in ranks.values()):
            assert row["energy_j"] == pytest.approx(sum(d["energy_j"] for d in ranks.values()))
            # both nodes are this host: the sum counts it twice, and says so
            assert any("share a host" in n for n in row["power_doubts"] + row["power_notes"])
        else:
            assert row["energy_j"] is None
        # The signed jobs carried rank, world size and one rendezvous on rank 0's address.
        members = [j for j in jobs if j["group_id"] == jobs[[j["id"] for j in jobs].index(
            row["job_id"])]["group_id"]]
        assert sorted(m["node_rank"] for m in members) == [0, 1]
        assert {m["rendezvous"] for m in members} == {members[0]["rendezvous"]}
        assert members[0]["rendezvous"].startswith("127.0.0.1:")
        # MLLOG on rank 0 only: run_start once there, none on rank 1 (its node window instead).
        rank1 = next(m for m in members if m["node_rank"] == 1)
        keys0, keys1 = _mllog_keys(env, row["job_id"]), _mllog_keys(env, rank1["id"])
        assert keys0.count("run_start") == 1 and keys0.count("eval_accuracy") >= 1
        assert keys0.count("global_batch_size") == 1 and "mlperf_edge_nodes" in keys0
        assert "run_start" not in keys1 and "eval_accuracy" not in keys1
        assert "global_batch_size" not in keys1
        assert keys1.count("mlperf_edge_node_run_start") == 1
    table = cli("mlperf-controller", "results", "--campaign", campaign["campaign_id"],
                env=env, check=True).stdout
    assert "2 nodes" in table


def test_three_nodes_then_scaling_against_one(env, serve, agents, mosquitto, tmp_path):
    _start(agents, mosquitto, env, ["n1", "n2", "n3"])
    group = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "n1,n2,n3",
                "--nodes", "3", "--json", env=env, timeout=600)
    assert group.returncode == 0, group.stderr[-3000:]
    [row] = json.loads(group.stdout)["results"]
    assert row["state"] == "done" and row["nodes"] == 3
    assert row["result"]["outcome"]["reached_target"]
    assert [d["rank"] for d in row["node_detail"]] == [0, 1, 2]
    assert row["scaling_efficiency"] is None           # no single-node run to compare yet
    single = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "n1",
                 "--json", env=env, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    alone = json.loads(single.stdout)["results"][0]
    one = alone["throughput_samples_per_s"]
    # The same global batches, the same steps: each of the first 16 losses of three agents'
    # run is the one agent's within 1e-5 (NCF has no batch norm).
    ours, theirs = (r["result"]["outcome"]["first_losses"] for r in (row, alone))
    assert len(ours) == len(theirs) == 16
    assert ours == pytest.approx(theirs, rel=1e-5)
    stored = json.loads(cli("mlperf-controller", "results", "--json", env=env,
                            check=True).stdout)
    grouped = next(r for r in stored if r["nodes"] == 3)
    assert grouped["scaling_efficiency"] == pytest.approx(
        grouped["throughput_samples_per_s"] / (3 * one))
    assert "mean of 1 single-node run" in grouped["scaling_basis"]
    # The group is scored as its own system, apart from n1 alone; the report says so.
    score = json.loads(cli("mlperf-controller", "score", "--json", env=env,
                           check=True).stdout)
    systems = sorted(s["device"] for s in score if s["benchmark"] == "ncf")
    assert systems == ["3 nodes: n1, n2, n3", "n1"], systems
    page = tmp_path / "report.html"
    cli("mlperf-controller", "report", "--output", str(page), env=env, check=True)
    html = page.read_text()
    assert "3 nodes · " in html and "scaling efficiency" in html
    assert "energy by node, mean per run: rank 0 n1 " in html and "rank 2 n3 " in html


def test_a_group_is_refused_with_the_reason(env, serve, agents, mosquitto):
    _start(agents, mosquitto, env, ["r1", "r2"])
    few = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "tag:rack",
              "--nodes", "3", env=env, timeout=60)
    assert few.returncode != 0 and "Traceback" not in few.stderr
    assert "--nodes 3: tag:rack selects 2 device(s)" in few.stderr
    cannot = cli("mlperf-controller", "run", "--benchmarks", "transformer", "--devices",
                 "tag:rack", "--nodes", "2", env=env, timeout=60)
    assert cannot.returncode != 0 and "transformer cannot train across several nodes" \
        in cannot.stderr
    batch = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "tag:rack",
                "--nodes", "2", "--set", "batch_size=1", env=env, timeout=60)
    assert batch.returncode != 0 and "global batch" in batch.stderr


def test_a_node_that_cannot_start_ends_the_others_at_once(env, serve, agents, mosquitto,
                                                          tmp_path):
    from tests.references.conftest import ratings_rows, write_ml20m

    write_ml20m(tmp_path / "data-a" / "ml-20m", ratings_rows())
    (tmp_path / "data-b").mkdir()
    for name, root in (("fs0", "data-a"), ("fs1", "data-b")):   # fs1 lacks the dataset
        agents(mosquitto.url, name, "--prefix", env["MLPERF_PREFIX"], "--address",
               "127.0.0.1", "--data-root", str(tmp_path / root))
    _online(env, ["fs0", "fs1"])
    started = time.monotonic()
    run = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "fs0,fs1",
              "--nodes", "2", "--mode", "reduced", "--max-steps", "20",
              "--group-timeout", "240", "--json", env=env, timeout=300)
    took = time.monotonic() - started
    assert run.returncode == 1, run.stderr[-3000:]
    [row] = json.loads(run.stdout)["results"]
    jobs = _all_jobs(env, json.loads(run.stdout)["campaign_id"])
    assert len(jobs) == 2 and {j["attempt"] for j in jobs} == {1}  # the job's fault: no retry
    rank1 = next(j for j in jobs if j["node_rank"] == 1)
    assert rank1["state"] == "failed" and "dataset" in rank1["detail"], rank1
    # Rank 0 was waiting for it at the rendezvous: the controller ended it, long before the
    # group's 240 s timeout would have.
    assert row["state"] in ("cancelled", "failed") and took < 120, (row["state"], took)
    assert "group broke" in (row["error"] or "") or "group broke" in (row["detail"] or "")
    assert _reference_pid(0, row["job_id"]) is None


def _reference_pid(rank: int, job_id: str) -> int | None:
    """The reference process training ``job_id`` as ``rank`` (its command line names both)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline").read().split("\0")
        except OSError:
            continue
        if "references" in cmd and any(job_id in part for part in cmd) \
                and f"--rank {rank} " in " ".join(cmd) + " ":
            return int(pid)
    return None


def test_sigkill_of_rank_1_ends_rank_0_and_the_group_is_retried(env, serve, agents, mosquitto):
    _start(agents, mosquitto, env, ["k0", "k1"])
    proc = subprocess.Popen(
        [str(cli.__globals__["BIN"] / "mlperf-controller"), "run", "--benchmarks", "resnet",
         "--devices", "k0,k1", "--nodes", "2", "--group-timeout", "60", "--retries", "1",
         "--set", "synthetic_train_images=4096", "--json"],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def rank1_training():
            for job in _all_jobs(env, _campaign(env)) if _campaign(env) else []:
                if job["node_rank"] == 1 and job["state"] == "running":
                    pid = _reference_pid(1, job["id"])
                    logs = [k for k in _mllog_keys(env, job["id"])]
                    if pid and "mlperf_edge_node_run_start" in logs:
                        return job, pid
            return None

        job, pid = wait_for(rank1_training, 180, interval_s=0.5, what="rank 1 training")
        time.sleep(1.0)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:] + serve.log[-3000:]
    campaign = json.loads(out)
    [row] = [r for r in campaign["results"] if not r["superseded"]]
    assert row["state"] == "done" and row["attempt"] == 2 and row["nodes"] == 2
    jobs = _all_jobs(env, campaign["campaign_id"])
    first = [j for j in jobs if j["attempt"] == 1]
    assert len(first) == 2 and all(j["superseded"] for j in first)
    rank0 = next(j for j in first if j["node_rank"] == 0)
    # Rank 0 ended, not left waiting for its lease: either its run saw the peer go (failed:
    # the group broke) or the controller's cancel came first (cancelled: its group broke).
    assert rank0["state"] in ("failed", "cancelled"), rank0
    assert "group" in (rank0["detail"] or ""), rank0
    ended = [t for t in _transitions(env, rank0["id"]) if t["to_state"] == rank0["state"]]
    assert ended and ended[0]["at"] - killed_at < 120      # far within its running lease
    rank1 = next(j for j in first if j["node_rank"] == 1)
    assert rank1["state"] == "failed" and "signal 9" in (rank1["detail"] or ""), rank1
    again = [j for j in jobs if j["attempt"] == 2]
    assert len(again) == 2 and len({j["group_id"] for j in again}) == 1
    assert again[0]["group_id"] != first[0]["group_id"]
    assert "group" in serve.log and "retrying it as a whole" in serve.log


def _campaign(env):
    import sqlite3

    db = env["MLPERF_DB"].removeprefix("sqlite:///")
    if not os.path.exists(db):
        return None
    with sqlite3.connect(db) as conn:
        try:
            row = conn.execute("SELECT id FROM campaigns ORDER BY created_at DESC").fetchone()
        except sqlite3.OperationalError:
            return None
    return row[0] if row else None


def _transitions(env, job_id):
    import sqlite3

    db = env["MLPERF_DB"].removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(
            "SELECT * FROM transitions WHERE job_id = ? ORDER BY id", (job_id,))]


def test_sigkill_of_rank_1s_agent_ends_rank_0_and_the_group_runs_when_it_is_back(
        env, serve, agents, mosquitto):
    """The node itself lost (its agent killed, its reference orphaned): the controller hears
    the Last Will, ends rank 0 and retries the group once the node is back."""
    _start(agents, mosquitto, env, ["m0"])
    node1 = agents(mosquitto.url, "m1", "--prefix", env["MLPERF_PREFIX"], "--tag", "rack",
                   "--address", "127.0.0.1")
    _online(env, ["m0", "m1"])
    proc = subprocess.Popen(
        [str(cli.__globals__["BIN"] / "mlperf-controller"), "run", "--benchmarks", "resnet",
         "--devices", "m0,m1", "--nodes", "2", "--retries", "1",
         "--set", "synthetic_train_images=4096", "--json"],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def rank1_training():
            cid = _campaign(env)
            for job in _all_jobs(env, cid) if cid else []:
                if job["node_rank"] == 1 and job["state"] == "running" and \
                        "mlperf_edge_node_run_start" in _mllog_keys(env, job["id"]):
                    return job
            return None

        wait_for(rank1_training, 180, interval_s=0.5, what="rank 1 training")
        node1.kill()                                           # SIGKILL: the agent only
        killed = time.monotonic()
        cid = _campaign(env)

        def rank0_ended():
            first = [j for j in _all_jobs(env, cid) if j["attempt"] == 1]
            rank0 = next(j for j in first if j["node_rank"] == 0)
            return rank0 if rank0["state"] in ("failed", "cancelled") else None

        rank0 = wait_for(rank0_ended, 90, interval_s=0.5, what="rank 0 to end")
        assert time.monotonic() - killed < 90
        assert _reference_pid(0, rank0["id"]) is None
        agents(mosquitto.url, "m1", "--prefix", env["MLPERF_PREFIX"], "--tag", "rack",
               "--address", "127.0.0.1")                      # the node comes back
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:] + serve.log[-3000:]
    [row] = [r for r in json.loads(out)["results"] if not r["superseded"]]
    assert row["state"] == "done" and row["attempt"] == 2 and row["nodes"] == 2
    first = [j for j in _all_jobs(env, cid) if j["attempt"] == 1]
    assert {j["node_rank"]: j["state"] for j in first}[1] in ("lost", "failed")
