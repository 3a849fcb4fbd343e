"""NCF run in the LiteRT interpreter, as a device without torch runs it: the reference CLI with
--runtime litert reaches the smoke target from a built artifact, its log passes the compliance
checker with our NCF rules, and `mlperf-agent run --runtime litert` gives a job's result. Every
run here blocks torch and tensorflow from importing (a sitecustomize on PYTHONPATH), so a
stray import fails the test rather than passing on this workstation. Bad inputs -- a tampered
artifact, an artifact built for another config, missing flags, a reference the interpreter
cannot run yet -- are one line each, before anything is timed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli
from tests.references.conftest import env

pytestmark = pytest.mark.integration

NO_TORCH = '''
import sys
class _Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "tensorflow"):
            raise ImportError(f"{name} is not installed on this device (blocked by the test)")
        return None
sys.meta_path.insert(0, _Refuse())
'''


def references(device_env, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "references", "run", *args],
                          capture_output=True, text=True, timeout=300, env=device_env,
                          cwd=cwd, stdin=subprocess.DEVNULL)


def events(out: Path) -> list[dict]:
    return [json.loads(line[len(":::MLLOG "):])
            for line in (out / "mllog.txt").read_text().splitlines()]


def test_the_blocker_blocks(device_env, tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True,
                          text=True, env=device_env, cwd=tmp_path, timeout=60)
    assert proc.returncode != 0 and "blocked by the test" in proc.stderr


def test_smoke_reaches_its_target_in_the_interpreter_and_passes_the_checker(
        device_env, built_by_cli, ncf_artifact, tmp_path):
    folder, _ = built_by_cli
    out = tmp_path / "out"
    proc = references(device_env, "ncf", "--mode", "smoke", "--runtime", "litert", "--model",
                      str(folder), "--model-sha256", ncf_artifact.sha256, "--out", str(out),
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["reached_target"] and result["quality"] >= result["target"]["value"]
    assert result["stop_reason"] == "target_reached" and result["time_to_train_s"] is None
    assert result["throughput_samples_per_s"] > 0
    assert "LiteRT interpreter (ai-edge-litert 2.3.0)" in proc.stderr
    logged = events(out)
    (ran,) = [e for e in logged if e["key"] == "mlperf_edge_runtime"]
    assert ran["value"]["model_sha256"] == ncf_artifact.sha256
    assert ran["value"]["runtime"] == "litert"
    keys = [e["key"] for e in logged]
    assert keys.index("init_start") < keys.index("mlperf_edge_runtime") < keys.index("init_stop")
    accuracies = [e["value"] for e in logged if e["key"] == "eval_accuracy"]
    assert accuracies[-1] == result["quality"]
    check = subprocess.run(
        [sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "training",
         "--ruleset", "0.7.0", "--config", str(Path.cwd() / "references/compliance/ncf.yaml"),
         "--log_output", str(out / "checker.log"), str(out / "mllog.txt")],
        capture_output=True, text=True, env=env(), cwd=out, timeout=120)
    assert check.returncode == 0 and "SUCCESS" in check.stderr, check.stderr[-3000:]


def test_each_seed_starts_from_its_own_weights(device_env, built_by_cli, ncf_artifact,
                                               tmp_path):
    """The artifact's stored weights never decide a run: the seed does (restore)."""
    folder, _ = built_by_cli
    initial = {}
    for seed in ("1", "2", "1"):
        out = tmp_path / f"out-{len(initial)}-{seed}"
        proc = references(device_env, "ncf", "--mode", "smoke", "--runtime", "litert",
                          "--model", str(folder), "--model-sha256", ncf_artifact.sha256,
                          "--seed", seed, "--max-steps", "1", "--out", str(out), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        value = next(e["value"] for e in events(out)
                     if e["key"] == "mlperf_edge_initial_eval_accuracy")
        initial.setdefault(seed, []).append(value)
    assert initial["1"][0] == initial["1"][1] and initial["1"][0] != initial["2"][0]


def test_a_tampered_model_is_refused_naming_both_hashes(device_env, built_by_cli,
                                                        ncf_artifact, tmp_path):
    folder, _ = built_by_cli
    copy = tmp_path / "models"
    shutil.copytree(folder, copy)
    model = copy / f"{ncf_artifact.sha256}.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    out = tmp_path / "out"
    proc = references(device_env, "ncf", "--mode", "smoke", "--runtime", "litert", "--model",
                      str(copy), "--model-sha256", ncf_artifact.sha256, "--out", str(out),
                      cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
    (line,) = proc.stderr.splitlines()
    import hashlib
    assert ncf_artifact.sha256 in line and hashlib.sha256(data).hexdigest() in line
    assert "tampered" in line and not (out / "result.json").exists()


@pytest.mark.parametrize("args, complaint", [
    (["ncf", "--mode", "smoke", "--set", "learning_rate=0.01"],
     "the model artifact was built with learning_rate=0.02, this run has 0.01"),
    (["ncf", "--mode", "smoke", "--set", "synthetic_users=500"],
     "the model artifact is for 839 users x 992 items"),
    (["minigo", "--mode", "smoke"], "minigo cannot run in the LiteRT interpreter yet"),
    (["resnet", "--mode", "smoke"], "is a ncf model, not resnet"),
])
def test_a_model_that_does_not_fit_the_run_is_one_line(device_env, built_by_cli, ncf_artifact,
                                                      tmp_path, args, complaint):
    folder, _ = built_by_cli
    out = tmp_path / "out"
    proc = references(device_env, *args, "--runtime", "litert", "--model", str(folder),
                      "--model-sha256", ncf_artifact.sha256, "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    # The sizes are known once the data is prepared (init); nothing is ever timed.
    assert proc.stdout == "" or "users x" in complaint
    assert "run_start" not in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and complaint in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not (out / "result.json").exists()


def test_litert_flags_go_together(device_env, tmp_path):
    proc = references(device_env, "ncf", "--mode", "smoke", "--runtime", "litert",
                      cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: --runtime litert needs --model FOLDER_OR_FILE and "
                                   "--model-sha256 HASH (see `mlperf-controller models list`)")


def test_the_agent_runs_a_litert_job_and_reports_it(built_by_cli, ncf_artifact, tmp_path):
    folder, _ = built_by_cli
    proc = cli("mlperf-agent", "run", "ncf", "--mode", "smoke", "--runtime", "litert",
               "--models-dir", str(folder), "--model-sha256", ncf_artifact.sha256, "--json",
               "--name", "phone-1", "--work-dir", str(tmp_path / "work"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["status"] == "done" and result["outcome"]["reached_target"]
    # The device's state at the run's start and end rides with the result (a throttling
    # phone shows it); this VM exposes what it exposes, the keys are always there.
    assert [s["when"] for s in result["device_state"]] == ["start", "end"]
    assert result["device_state"][0]["at_ms"] <= result["device_state"][1]["at_ms"]
    job_dir = tmp_path / "work" / "jobs" / result["job_id"]
    assert ncf_artifact.sha256 in (job_dir / "mllog.txt").read_text()

    missing = cli("mlperf-agent", "run", "ncf", "--mode", "smoke", "--runtime", "litert",
                  "--models-dir", str(tmp_path / "none"), "--model-sha256", "ab" * 32,
                  "--json", "--name", "phone-1", "--work-dir", str(tmp_path / "work"))
    assert missing.returncode == 1
    failed = json.loads(missing.stdout)
    assert failed["status"] == "failed" and f"model {'ab' * 32} not found" in failed["error"]
