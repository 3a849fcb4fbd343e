"""ResNet, sentiment, Transformer, DeepSpeech2, Mask R-CNN and Minigo through the real system,
as NCF goes: `mlperf-agent run` (a real subprocess) and a controller campaign over Mosquitto
with a real `mlperf-agent start`.

Each reference's own tests run its smoke preset to the smoke target through the checker; here
the runs are bounded to one epoch (the plumbing, not the training, is under test), so the suite
does not train every model to its target three times."""

import json
import secrets

import pytest

from agent.envelope import decode
from agent.protocol import JobResult
from tests.conftest import cli, wait_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("benchmark, metric", [("resnet", "top1"), ("sentiment", "accuracy"),
                                               ("deepspeech2", "wer"),
                                               ("transformer", "bleu_uncased"),
                                               ("maskrcnn",
                                                "min(bbox_map/0.25,segm_map/0.35)"),
                                               ("minigo", "move_prediction_pct")])
def test_agent_run_smoke(tmp_path, benchmark, metric):
    proc = cli("mlperf-agent", "run", benchmark, "--mode", "smoke", "--set", "max_epochs=1",
               "--json", "--name", "bench-pc", "--work-dir", str(tmp_path), timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = decode(JobResult, proc.stdout.strip().encode())
    assert result.status == "done" and result.benchmark == benchmark
    outcome = result.outcome
    assert outcome.mode == "smoke" and outcome.division == "open" and outcome.epochs == 1
    assert outcome.quality is not None and outcome.reached_target == (
        outcome.stop_reason == "target_reached")
    assert outcome.target.metric == metric and outcome.time_to_train_s is None
    assert result.timed_window.duration_s > 0
    job_dir = tmp_path / "jobs" / result.job_id
    assert (job_dir / "mllog.txt").read_text().count("\n") == result.mllog_lines


def test_campaign_runs_the_newer_references(mosquitto, agents, tmp_path):
    env = {"MLPERF_BROKER": mosquitto.url, "MLPERF_DB": f"sqlite:///{tmp_path / 'lab.db'}",
           "MLPERF_PREFIX": f"t{secrets.token_hex(3)}/v1"}
    agents(mosquitto.url, "edge-r", "--prefix", env["MLPERF_PREFIX"])

    def online():
        devices = json.loads(cli("mlperf-controller", "devices", "--json", env=env,
                                 check=True).stdout)
        return any(d["name"] == "edge-r" and d["state"] == "online" for d in devices)

    wait_for(online, 30, interval_s=0.5, what="edge-r online")
    run = cli("mlperf-controller", "run", "--benchmarks",
              "resnet,sentiment,transformer,deepspeech2,maskrcnn,minigo", "--devices", "edge-r",
              "--mode", "smoke", "--set", "max_epochs=1", "--json", env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    campaign = json.loads(run.stdout)
    assert campaign["state"] == "done"
    rows = {r["benchmark"]: r for r in campaign["results"]}
    assert set(rows) == {"resnet", "sentiment", "transformer", "deepspeech2", "maskrcnn",
                         "minigo"}
    for row in rows.values():
        assert row["state"] == "done", row
        outcome = row["result"]["outcome"]
        assert outcome["mode"] == "smoke" and outcome["epochs"] == 1
        assert outcome["quality"] is not None and outcome["timed_window_s"] > 0
        assert outcome["time_to_train_s"] is None
    # Mask R-CNN's one figure is joint: its box and mask AP travel beside it, and show.
    parts = rows["maskrcnn"]["result"]["outcome"]["quality_parts"]
    assert set(parts) == {"bbox_map", "segm_map"}
    stored = json.loads(cli("mlperf-controller", "results", "--json", env=env,
                            check=True).stdout)
    assert [r["quality_parts"] for r in stored if r["benchmark"] == "maskrcnn"] == [parts]
    table = cli("mlperf-controller", "results", env={**env, "COLUMNS": "400"},
                check=True).stdout
    assert f"bbox_map {parts['bbox_map']:.4g}" in table, table
    log = cli("mlperf-controller", "logs", rows["resnet"]["job_id"], env=env, check=True).stdout
    keys = [json.loads(line[len(":::MLLOG "):])["key"] for line in log.splitlines()]
    assert keys.count("run_start") == 1 and "opt_learning_rate_warmup_epochs" in keys
