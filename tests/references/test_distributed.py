"""One run across several processes with torch.distributed (gloo on loopback), as the agents
start it: ``python -m references run NAME --rank R --world-size N --rendezvous HOST:PORT``.

Tolerances: NCF and the sentiment seq-CNN have no batch norm, so N nodes at global batch B take
exactly the step one node takes at B; only the order of the float sums differs (gloo's
all-reduce): the global loss of each of the first 16 steps agrees within a relative 1e-5.
ResNet's batch norm normalises over each node's slice (model_bn_span), so its first loss (before
any update) differs only by those statistics: within 5 % on the smoke model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for
from tests.references.conftest import MLLOG_PREFIX, WNIDS, env, write_imagenet

pytestmark = pytest.mark.integration


def start(tmp_path: Path, name: str, rank: int, world: int, port: int, *extra: str,
          tag: str = "g", mode: str = "smoke") -> subprocess.Popen:
    out = tmp_path / f"{tag}{rank}"
    return subprocess.Popen(
        [sys.executable, "-m", "references", "run", name, "--mode", mode, "--out", str(out),
         "--rank", str(rank), "--world-size", str(world),
         "--rendezvous", f"127.0.0.1:{port}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())


def group(tmp_path: Path, name: str, world: int, *extra: str, tag: str = "g",
          mode: str = "smoke"):
    """Run ``world`` ranks to the end; [(exit code, stdout, stderr, result.json or None)]."""
    port = free_port()
    procs = [start(tmp_path, name, r, world, port, *extra, tag=tag, mode=mode)
             for r in range(world)]
    out = []
    for r, proc in enumerate(procs):
        stdout, stderr = proc.communicate(timeout=300)
        path = tmp_path / f"{tag}{r}" / "result.json"
        out.append((proc.returncode, stdout, stderr,
                    json.loads(path.read_text()) if path.exists() else None))
    return out


def alone(tmp_path: Path, name: str, *extra: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "references", "run", name, "--mode", "smoke",
                           "--out", str(tmp_path / "one"), *extra],
                          capture_output=True, text=True, env=env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((tmp_path / "one" / "result.json").read_text())


def keys(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    assert all(line.startswith(MLLOG_PREFIX) for line in lines)
    return [json.loads(line[len(MLLOG_PREFIX):])["key"] for line in lines]


def values(stdout: str) -> dict:
    return {e["key"]: e["value"] for e in
            (json.loads(line[len(MLLOG_PREFIX):]) for line in stdout.splitlines())}


def test_ncf_on_two_and_three_nodes_takes_the_single_node_steps(tmp_path):
    one = alone(tmp_path, "ncf")
    for world in (2, 3):
        ranks = group(tmp_path, "ncf", world, tag=f"w{world}-")
        for code, _, stderr, _ in ranks:
            assert code == 0, stderr[-2000:]
        lead = ranks[0][3]
        assert lead["reached_target"] and lead["world_size"] == world and lead["rank"] == 0
        # The same global batches, the same updates: the loss of each step is one node's.
        assert len(lead["first_losses"]) == len(one["first_losses"]) == 16
        for k, (got, want) in enumerate(zip(lead["first_losses"], one["first_losses"])):
            assert got == pytest.approx(want, rel=1e-5), f"step {k + 1} on {world} nodes"
        if lead["epochs"] == one["epochs"]:
            assert lead["samples_trained"] == one["samples_trained"]   # the group's samples
        # Rank 0 logs the run as one node would, with the global batch and the node count.
        stdout0 = ranks[0][1]
        assert keys(stdout0).count("run_start") == 1 and keys(stdout0).count("run_stop") == 1
        assert values(stdout0)["global_batch_size"] == lead["config"]["batch_size"]
        assert values(stdout0)["mlperf_edge_nodes"] == world
        # The others log their node's window and nothing MLPerf would count twice.
        for code, stdout, _, result in ranks[1:]:
            assert keys(stdout) == ["mlperf_edge_node_run_start", "mlperf_edge_node_run_stop"]
            assert result["rank"] > 0 and result["quality"] == lead["quality"]


def test_sentiment_on_two_nodes_takes_the_single_node_steps(tmp_path):
    one = alone(tmp_path, "sentiment")
    ranks = group(tmp_path, "sentiment", 2)
    for code, _, stderr, _ in ranks:
        assert code == 0, stderr[-2000:]
    lead = ranks[0][3]
    assert lead["reached_target"] and lead["world_size"] == 2
    for k, (got, want) in enumerate(zip(lead["first_losses"], one["first_losses"])):
        assert got == pytest.approx(want, rel=1e-5), f"step {k + 1}"
    assert values(ranks[0][1])["mlperf_edge_nodes"] == 2
    assert keys(ranks[1][1]) == ["mlperf_edge_node_run_start", "mlperf_edge_node_run_stop"]


def test_resnet_on_two_nodes_reaches_its_target_with_batch_norm_per_node(tmp_path):
    one = alone(tmp_path, "resnet")
    ranks = group(tmp_path, "resnet", 2)
    for code, _, stderr, _ in ranks:
        assert code == 0, stderr[-2000:]
    lead = ranks[0][3]
    assert lead["reached_target"] and lead["world_size"] == 2
    assert lead["first_losses"][0] == pytest.approx(one["first_losses"][0], rel=0.05)
    logged = values(ranks[0][1])
    batch = lead["config"]["batch_size"]
    assert logged["global_batch_size"] == batch and logged["model_bn_span"] == batch // 2
    # The learning rate scales with the global batch, whatever the nodes: base x B / 256.
    assert logged["opt_base_learning_rate"] == pytest.approx(
        lead["config"]["base_learning_rate"] * batch / 256)
    assert keys(ranks[1][1]) == ["mlperf_edge_node_run_start", "mlperf_edge_node_run_stop"]


def test_resnet_on_imagenet_folders_shares_the_images_between_the_nodes(tmp_path):
    root = write_imagenet(tmp_path / "imagenet", per_class=4)
    n_train = 4 * len(WNIDS)
    ranks = group(tmp_path, "resnet", 2, "--data", str(root), "--division", "open",
                  "--set", "arch=resnet14", "--set", "base_width=8", "--set", "workers=0",
                  "--set", "batch_size=4", "--set", "max_epochs=1", "--set",
                  "epochs_to_converge=3", mode="reduced")
    for code, _, stderr, _ in ranks:
        assert code == 0, stderr[-2000:]
    lead = ranks[0][3]
    # One epoch: every training image once across the group (each rank its half, 2 per step).
    assert lead["epochs"] == 1 and lead["samples_trained"] == n_train
    assert lead["projection"]["kind"] == "projection"
    assert values(ranks[0][1])["model_bn_span"] == 2


def test_a_killed_peer_ends_the_other_rank_in_one_line(tmp_path):
    port = free_port()
    bigger = ("--set", "synthetic_train_images=4096")
    lead = start(tmp_path, "resnet", 0, 2, port, *bigger)
    peer = start(tmp_path, "resnet", 1, 2, port, *bigger)
    started = []

    def peer_training():
        line = peer.stdout.readline()
        started.append(line)
        return "mlperf_edge_node_run_start" in line

    wait_for(peer_training, 120, interval_s=0.0, what="rank 1's window to open")
    time.sleep(1.0)
    peer.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    stdout, stderr = lead.communicate(timeout=120)
    peer.communicate()
    assert lead.returncode == 75, stderr[-2000:]
    assert time.monotonic() - killed < 60
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the group broke mid-run" in errors[0], stderr[-2000:]
    assert "Traceback" not in stderr
    stops = [json.loads(line[len(MLLOG_PREFIX):]) for line in stdout.splitlines()
             if '"run_stop"' in line]
    assert [s["metadata"]["status"] for s in stops] == ["aborted"]
    assert not (tmp_path / "g0" / "result.json").exists()


def test_a_group_that_never_meets_ends_within_its_timeout(tmp_path):
    started = time.monotonic()
    lead = start(tmp_path, "ncf", 0, 2, free_port(), "--group-timeout", "5")
    _, stderr = lead.communicate(timeout=120)
    assert lead.returncode == 75, stderr[-2000:]
    assert time.monotonic() - started < 60
    assert "did not meet" in stderr and "Traceback" not in stderr


def test_a_taken_rendezvous_port_is_one_line_at_once(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        lead = start(tmp_path, "ncf", 0, 2, taken.getsockname()[1], "--group-timeout", "120")
        _, stderr = lead.communicate(timeout=60)
    assert lead.returncode == 75 and "the port is taken" in stderr, stderr[-2000:]
    assert "Traceback" not in stderr


@pytest.mark.parametrize("args, message", [
    (("ncf", "--rank", "2", "--world-size", "2", "--rendezvous", "127.0.0.1:29999"),
     "--rank 2: use 0 to 1"),
    (("ncf", "--world-size", "2"), "needs --rendezvous HOST:PORT"),
    (("ncf", "--world-size", "2", "--rendezvous", "no port"), "expected HOST:PORT"),
    (("ncf", "--world-size", "2", "--rendezvous", "bad_host!:29500"), "not an address"),
    (("transformer", "--world-size", "2", "--rendezvous", "127.0.0.1:29999"),
     "transformer cannot train across several nodes yet (it can: ncf, resnet, sentiment)"),
    (("ncf", "--world-size", "4", "--rendezvous", "127.0.0.1:29999", "--set", "batch_size=2"),
     "4 nodes need at least 4"),
])
def test_group_flags_a_run_cannot_use_are_one_line(tmp_path, args, message):
    proc = subprocess.run([sys.executable, "-m", "references", "run", args[0], "--mode", "smoke",
                           "--out", str(tmp_path / "x"), *args[1:]],
                          capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not proc.stdout
    assert os.path.exists(tmp_path / "x") is False
