"""Sentiment run in the LiteRT interpreter, as a device without torch runs it: the reference CLI
with --runtime litert reaches the smoke target from a built artifact and its log passes the
compliance checker with our sentiment rules; `mlperf-agent run` gives a job's result. Torch and
tensorflow are unimportable in every run here (test_ncf_runtime's sitecustomize). An artifact
built for another config or vocabulary is one line, before anything is timed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli
from tests.litert.test_ncf_runtime import events, references
from tests.references.conftest import env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smoke_run(device_env, sentiment_built_by_cli, sentiment_artifact, tmp_path_factory):
    """(out folder, finished process) of one smoke run in the interpreter."""
    folder, _ = sentiment_built_by_cli
    where = tmp_path_factory.mktemp("sentiment-run")
    out = where / "out"
    proc = references(device_env, "sentiment", "--mode", "smoke", "--runtime", "litert",
                      "--model", str(folder), "--model-sha256", sentiment_artifact.sha256,
                      "--out", str(out), cwd=where)
    return out, proc


def test_smoke_reaches_its_target_in_the_interpreter(smoke_run, sentiment_artifact):
    out, proc = smoke_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["reached_target"] and result["quality"] >= result["target"]["value"]
    assert result["stop_reason"] == "target_reached" and result["epochs"] <= 10
    assert result["throughput_samples_per_s"] > 0
    assert "LiteRT interpreter (ai-edge-litert" in proc.stderr
    logged = events(out)
    (ran,) = [e for e in logged if e["key"] == "mlperf_edge_runtime"]
    assert ran["value"]["model_sha256"] == sentiment_artifact.sha256
    keys = [e["key"] for e in logged]
    assert keys.index("init_start") < keys.index("mlperf_edge_runtime") < keys.index("init_stop")
    accuracies = [e["value"] for e in logged if e["key"] == "eval_accuracy"]
    assert accuracies[-1] == result["quality"]


def test_its_log_passes_the_checker_with_our_sentiment_rules(smoke_run):
    out, proc = smoke_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    check = subprocess.run(
        [sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "training",
         "--ruleset", "0.7.0", "--config",
         str(Path.cwd() / "references/compliance/sentiment.yaml"),
         "--log_output", str(out / "checker.log"), str(out / "mllog.txt")],
        capture_output=True, text=True, env=env(), cwd=out, timeout=120)
    assert check.returncode == 0 and "SUCCESS" in check.stderr, check.stderr[-3000:]


@pytest.mark.parametrize("args, complaint", [
    (["--set", "learning_rate=0.01"],
     "the model artifact was built with learning_rate=0.005, this run has 0.01"),
    (["--set", "filters=16"], "the model artifact was built with filters=32, this run has 16"),
    (["--set", "synthetic_vocab=300"], "the model artifact's embedding has 418 rows"),
    (["--set", "synthetic_max_words=90"], "takes reviews of at most 84 words"),
])
def test_a_model_that_does_not_fit_the_run_is_one_line(device_env, sentiment_built_by_cli,
                                                      sentiment_artifact, tmp_path, args,
                                                      complaint):
    folder, _ = sentiment_built_by_cli
    out = tmp_path / "out"
    proc = references(device_env, "sentiment", "--mode", "smoke", *args, "--runtime",
                      "litert", "--model", str(folder), "--model-sha256",
                      sentiment_artifact.sha256, "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "run_start" not in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and complaint in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not (out / "result.json").exists()


def test_the_agent_runs_a_sentiment_litert_job(sentiment_built_by_cli, sentiment_artifact,
                                               tmp_path):
    folder, _ = sentiment_built_by_cli
    proc = cli("mlperf-agent", "run", "sentiment", "--mode", "smoke", "--runtime", "litert",
               "--models-dir", str(folder), "--model-sha256", sentiment_artifact.sha256,
               "--json", "--name", "phone-1", "--work-dir", str(tmp_path / "work"),
               timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["status"] == "done" and result["outcome"]["reached_target"]
