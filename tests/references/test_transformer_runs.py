"""Transformer runs through the CLI: one-line user errors, the smoke run checked by the real MLPerf
compliance checker (ruleset 0.6.0), and reduced runs' labelled projections. The WMT fixtures are
test_transformer.py's."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.references.conftest import env
from tests.references.test_transformer import write_wmt

# -- runs through the CLI ------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--mode", "full", "--data", "/x", "--set", "arch=tiny"],
     "closed division: arch may not be changed"),
    (["--mode", "reduced"], "--data is required for wmt_en_de"),
    (["--mode", "reduced", "--data", "WMT", "--set", "train_stems=train,europarl-v7.de-en"],
     "europarl-v7.de-en.en is missing"),
    (["--mode", "full", "--data", "WMT"], "error: transformer: this is not wmt-newstest2014-en-de"),
])
def test_user_errors_are_one_line(references_cli, tmp_path, args, message):
    root = write_wmt(tmp_path / "wmt")
    run = references_cli("run", "transformer", *[str(root) if a == "WMT" else a for a in args])
    assert run.code == 2 and run.stdout == "", run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in run.stderr
    assert not (run.out / "result.json").exists()


@pytest.mark.integration
def test_smoke_reaches_its_target_and_passes_the_0_6_0_checker(references_cli):
    run = references_cli("run", "transformer", "--mode", "smoke", timeout=400)
    assert run.code == 0, run.stderr[-3000:]
    result = run.result
    assert result["reached_target"] and result["quality"] >= result["target"]["value"] == 80.0
    assert result["target"]["metric"] == "bleu_uncased"
    assert "synthetic" in result["target"]["source"]
    assert result["time_to_train_s"] is None and result["time_to_target_s"] > 0
    events = {e["key"]: e for e in run.events}
    assert events["eval_accuracy"]["value"] == result["quality"]
    assert events["mlperf_edge_sacrebleu"]["metadata"]["signature"].startswith("nrefs:1|case:mixed")
    assert events["opt_adam_beta_2"]["value"] == 0.997 and events["opt_name"]["value"] == "adam"
    out = run.out
    proc = subprocess.run([sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage",
                           "training", "--ruleset", "0.6.0", "--log_output",
                           str(out / "checker.log"), str(out / "mllog_v06.txt")],
                          capture_output=True, text=True, env=env(), cwd=out, timeout=120,
                          check=False)
    assert proc.returncode == 0 and "SUCCESS" in proc.stderr, proc.stderr[-3000:]
    assert "training_0.6.0/transformer.yaml" in proc.stderr


@pytest.mark.integration
def test_reduced_runs_label_their_projection(references_cli, tmp_path):
    small = ["--division", "open", "--set", "arch=mini", "--set", "vocab_size=200",
             "--max-steps", "2"]
    mlperf_like = write_wmt(tmp_path / "wmt", n_test=3003)         # newstest2014's count
    run = references_cli("run", "transformer", "--mode", "reduced", "--data", str(mlperf_like),
                         *small, timeout=300)
    assert run.code == 0, run.stderr[-3000:]
    result = run.result
    assert result["stop_reason"] == "max_steps" and result["time_to_train_s"] is None
    assert result["dataset"].startswith("wmt-newstest2014-en-de")
    projection = result["projection"]
    assert projection["kind"] == "projection" and "ASSUMPTION" in projection["basis"]
    assert "DEFAULT_TRAIN_EPOCHS" in projection["basis"]
    assert "Transformer-mini" in projection["basis"]
    assert projection["time_to_train_s"] == pytest.approx(10 * result["epoch_time_s"])
    assert list(mlperf_like.glob("spm-*-200.model"))                # cached beside the data

    other = write_wmt(tmp_path / "other")                          # 20 test sentences
    run = references_cli("run", "transformer", "--mode", "reduced", "--data", str(other), *small)
    assert run.code == 0 and run.result["projection"] is None, run.stderr[-3000:]
    assert "NOT the MLPerf dataset" in run.result["dataset"] and "no projection" in run.stderr
