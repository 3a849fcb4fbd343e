"""``python -m references`` as a real subprocess: the three modes, the MLLOG stream, result.json,
user errors and signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from references.common.result import KEYS
from tests.references.conftest import (
    MLLOG_PREFIX,
    env,
    ratings_rows,
    write_ml1m,
    write_ml20m,
)

pytestmark = pytest.mark.integration


def check_mllog_structure(run) -> None:
    """The ordering rules of the MLPerf training compliance checker's common.yaml (0.6.0)."""
    lines = run.stdout.splitlines()
    assert lines and all(line.startswith(MLLOG_PREFIX) for line in lines)
    assert (run.out / "mllog.txt").read_text().splitlines() == lines
    events = run.events
    keys = run.keys()
    for key in ("submission_benchmark", "submission_division", "submission_org",
                "submission_platform", "submission_status", "submission_poc_name",
                "submission_entry", "init_stop", "run_start", "run_stop", "seed",
                "global_batch_size", "opt_name", "opt_base_learning_rate", "opt_adam_beta_1",
                "opt_adam_beta_2", "opt_adam_epsilon", "train_samples", "eval_samples"):
        assert keys.count(key) == 1, key
    value = {e["key"]: e["value"] for e in events}
    assert value["submission_benchmark"] == "ncf" and value["submission_org"] == "mlperf-edge"
    assert keys.index("cache_clear") < keys.index("init_start") < keys.index("init_stop") \
        < keys.index("run_start") < keys.index("run_stop") == len(keys) - 1
    # The v0.5 window: the clock starts before the evaluation negatives are drawn and the
    # untrained model is evaluated, both before the first epoch.
    first_epoch = keys.index("epoch_start") if "epoch_start" in keys else len(keys) - 1
    assert keys.index("run_start") < keys.index("input_step_eval_neg_gen") \
        < keys.index("mlperf_edge_initial_eval_accuracy") < first_epoch
    assert keys.count("mlperf_edge_initial_eval_accuracy") == 1
    epoch, in_epoch, in_eval, last_eval = 0, False, False, 0
    for e in events[keys.index("run_start"):]:
        meta = e["metadata"]
        if e["key"] == "epoch_start":
            assert not in_epoch and meta["epoch_num"] == epoch + 1
            epoch, in_epoch = meta["epoch_num"], True
        elif e["key"] == "epoch_stop":
            assert in_epoch and meta["epoch_num"] == epoch
            in_epoch = False
        elif e["key"] == "eval_start":
            assert not in_eval and last_eval < meta["epoch_num"] <= epoch
            in_eval, last_eval = True, meta["epoch_num"]
        elif e["key"] == "eval_stop":
            assert in_eval and meta["epoch_num"] == last_eval
            in_eval = False
        elif e["key"] == "eval_accuracy":
            assert meta["epoch_num"] == last_eval and 0.0 <= e["value"] <= 1.0
    times = [e["time_ms"] for e in events]
    assert times == sorted(times)


def check_result(run, mode: str) -> dict:
    result = run.result
    assert tuple(result) == KEYS
    assert result["mode"] == mode and result["benchmark"] == "ncf" and result["schema"] == 1
    start = next(e for e in run.events if e["key"] == "run_start")["time_ms"]
    stop = next(e for e in run.events if e["key"] == "run_stop")
    assert result["timed_window_s"] == pytest.approx((stop["time_ms"] - start) / 1000)
    assert stop["metadata"]["status"] == result["status"]
    assert result["status"] == ("success" if result["reached_target"] else "aborted")
    assert result["mllog_file"] == "mllog.txt" and result["source_revision"]
    accuracies = [e["value"] for e in run.events if e["key"] == "eval_accuracy"]
    assert result["quality"] == (accuracies[-1] if accuracies else None)
    assert result["epochs"] == len(accuracies)
    return result


@pytest.mark.parametrize("seed", [1, 7])
def test_smoke_reaches_its_target(references_cli, seed):
    run = references_cli("run", "ncf", "--mode", "smoke", "--seed", str(seed),
                         "--platform", "test-box")
    assert run.code == 0, run.stderr
    check_mllog_structure(run)
    result = check_result(run, "smoke")
    assert result["reached_target"] is True and result["status"] == "success"
    assert result["stop_reason"] == "target_reached"
    assert result["time_to_target_s"] == result["timed_window_s"] > 0
    assert result["time_to_train_s"] is None and result["projection"] is None
    assert result["quality"] >= result["target"]["value"] == 0.6
    assert "synthetic" in result["target"]["source"] and result["dataset"].startswith("synthetic")
    assert result["seed"] == seed and result["platform"] == "test-box"
    assert result["throughput_samples_per_s"] > 0 and result["epoch_time_s"] > 0
    assert result["config"]["eval_negatives"] == 99
    assert "HR@10" in run.stderr and "dropped" in run.stderr


def test_reduced_run_reports_a_labelled_projection(references_cli, tmp_path):
    data = write_ml1m(tmp_path / "ml-1m", ratings_rows())
    run = references_cli("run", "ncf", "--mode", "reduced", "--data", str(data),
                         "--max-steps", "3", "--set", "epochs_to_converge=12")
    assert run.code == 0, run.stderr
    check_mllog_structure(run)
    result = check_result(run, "reduced")
    assert result["dataset"].startswith("ratings.dat in ml-1m/ -- NOT the MLPerf dataset")
    assert result["stop_reason"] == "max_steps"
    assert result["samples_trained"] == 3 * 2048 and result["epochs"] == 0
    assert result["time_to_train_s"] is None and result["time_to_target_s"] is None
    projection = result["projection"]
    assert projection["kind"] == "projection" and projection["epochs_to_converge"] == 12.0
    assert projection["time_to_train_s"] == pytest.approx(12.0 * projection["epoch_time_s"])
    assert projection["epoch_time_s"] == result["epoch_time_s"] > 0
    assert "set for this run, NOT the reference's figure (11 epochs" in projection["basis"]
    assert result["config"]["mlp_layers"] == [256, 256, 128, 64]
    assert "dropped 3 user(s)" in run.stderr


def test_reduced_run_on_other_data_has_no_ml20m_projection(references_cli, tmp_path):
    data = write_ml20m(tmp_path / "ml-20m", ratings_rows())
    run = references_cli("run", "ncf", "--mode", "reduced", "--data", str(data),
                         "--max-steps", "2")
    assert run.code == 0, run.stderr
    result = check_result(run, "reduced")
    assert result["projection"] is None and "no projection: 11 epochs" in run.stderr
    assert "NOT the MLPerf dataset" in result["dataset"]


def test_closed_full_run_on_other_data_is_refused_open_runs_it_labelled(references_cli,
                                                                       tmp_path):
    data = write_ml20m(tmp_path / "ml-20m", ratings_rows(seed=1))
    refused = references_cli("run", "ncf", "--mode", "full", "--data", str(data))
    assert refused.code == 2 and not (refused.out / "result.json").exists()
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == refused.stderr.splitlines()[-1]
    assert errors[0].startswith("error: ncf: this is not ml-20m (MovieLens 20M)")
    assert "--division open" in errors[0] and "dropped" not in refused.stderr   # refused first
    assert "run_start" not in refused.keys()

    run = references_cli("run", "ncf", "--mode", "full", "--division", "open",
                         "--data", str(data), "--set", "max_epochs=1")
    assert run.code == 0, run.stderr
    check_mllog_structure(run)
    result = check_result(run, "full")
    assert result["dataset"].startswith("ratings.csv in ml-20m/ -- NOT the MLPerf dataset")
    assert result["epochs"] == 1 and result["projection"] is None
    assert result["target"]["value"] == 0.635 and "v0.5" in result["target"]["source"]
    if result["reached_target"]:
        assert result["time_to_train_s"] == result["time_to_target_s"] == result["timed_window_s"]
    else:
        assert result["time_to_train_s"] is None and result["stop_reason"] == "max_epochs"
    division = next(e for e in run.events if e["key"] == "submission_division")["value"]
    assert division == "open" and result["division"] == "open"


def test_list(references_cli):
    run = references_cli("list", "--json", out=False)
    assert run.code == 0
    listed = json.loads(run.stdout)
    assert [b["name"] for b in listed] == ["ncf", "resnet", "sentiment", "deepspeech2",
                                           "transformer", "maskrcnn", "minigo"]
    for b in listed:
        assert b["modes"] == ["smoke", "reduced", "full"] and b["title"] and b["data_hint"]
    text = references_cli("list", out=False).stdout
    assert "ratings.csv" in text and "train/<wnid>/*.JPEG" in text and "aclImdb" in text


@pytest.mark.parametrize("args, message", [
    (["run", "bert", "--mode", "smoke"],
     "unknown benchmark 'bert'; known: ncf, resnet, sentiment, deepspeech2, transformer, "
     "maskrcnn, minigo"),
    (["run", "ncf", "--mode", "smoke", "--set", "nope=1"], "unknown config key 'nope'"),
    (["run", "ncf", "--mode", "smoke", "--set", "batch_size=lots"],
     "config key 'batch_size' expects int, got 'lots'"),
    (["run", "ncf", "--mode", "smoke", "--set", "batch_size"], "--set expects KEY=VALUE"),
    (["run", "ncf", "--mode", "huge"], "unknown mode 'huge'"),
    (["run", "ncf", "--mode", "full"], "--data is required"),
    (["run", "ncf", "--mode", "full", "--data", "/nonexistent/ml-20m"],
     "expected ratings.csv (ml-20m: userId,movieId,rating,timestamp) or ratings.dat "
     "(ml-1m: UserID::MovieID::Rating::Timestamp)"),
    (["run", "ncf"], "the following arguments are required: --mode"),
    (["run", "ncf", "--mode", "full", "--data", "/x", "--set", "mlp_layers=8,4"],
     "closed division: mlp_layers may not be changed"),
    (["run", "resnet", "--mode", "smoke", "--division", "closed"], "open division by definition"),
    (["run", "ncf", "--mode", "smoke", "--division", "mixed"], "invalid choice: 'mixed'"),
    (["run", "resnet", "--mode", "full", "--data", "/nonexistent"],
     "expected the ILSVRC2012 layout train/<wnid>/*.JPEG and val/"),
    (["run", "sentiment", "--mode", "reduced"], "--data is required for aclImdb"),
])
def test_user_errors_are_one_line_and_exit_2(references_cli, args, message):
    run = references_cli(*args, out=False)
    assert run.code == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: ")
    assert message in run.stderr and "Traceback" not in run.stderr
    assert run.stdout == ""


def test_malformed_dataset_names_file_and_line(references_cli, tmp_path):
    data = write_ml20m(tmp_path / "ml-20m", ratings_rows(n_users=25))
    with open(data / "ratings.csv", "a") as f:
        f.write("5,6,4.0\n")
    run = references_cli("run", "ncf", "--mode", "reduced", "--data", str(data), out=False)
    assert run.code == 2 and "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "ratings.csv" in last and "malformed line" in last

def test_debug_shows_the_traceback_of_a_user_error(references_cli):
    run = references_cli("run", "ncf", "--mode", "smoke", "--set", "nope=1", "--debug", out=False)
    assert run.code == 2 and "Traceback" in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: unknown config key 'nope'")


def test_sigterm_stops_within_the_epoch_without_a_result(tmp_path):
    """SIGTERM mid-epoch: exit 143 at once (not at the end of the epoch), run_stop aborted,
    no result.json. Small batches make the epoch last seconds, so the signal lands inside it."""
    data = write_ml1m(tmp_path / "ml-1m", ratings_rows(n_users=200, n_items=400))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "references", "run", "ncf", "--mode", "full", "--data", str(data),
         "--division", "open", "--set", "batch_size=16", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=tmp_path)
    lines = []
    for line in proc.stdout:                     # read live, as the agent does
        lines.append(line)
        if '"key": "epoch_start"' in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest, stderr = proc.communicate(timeout=60)  # a hang guard, not a measurement
    assert proc.returncode == 143, stderr
    assert not (out / "result.json").exists()
    keys = [json.loads(x[len(MLLOG_PREFIX):])["key"] for x in lines + rest.splitlines(True)]
    assert keys[-2:] == ["epoch_start", "run_stop"]          # stopped inside epoch 1
    assert '"status": "aborted"' in rest.splitlines()[-1]
    assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr
