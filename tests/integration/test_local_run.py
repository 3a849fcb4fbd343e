"""`mlperf-agent run`: the first thing a person tries, as a real subprocess."""

import json

import pytest

from agent.envelope import decode
from agent.protocol import JobResult
from tests.conftest import cli

pytestmark = pytest.mark.integration


def test_smoke_run_prints_the_result_a_job_would_give(tmp_path):
    proc = cli("mlperf-agent", "run", "ncf", "--mode", "smoke", "--json", "--name", "bench-pc",
               "--work-dir", str(tmp_path), timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = decode(JobResult, proc.stdout.strip().encode())
    assert result.status == "done" and result.agent_id == "bench-pc"
    assert result.outcome.reached_target and result.outcome.mode == "smoke"
    assert result.outcome.platform == "bench-pc"
    job_dir = tmp_path / "jobs" / result.job_id
    assert (job_dir / "mllog.txt").read_text().count("\n") == result.mllog_lines
    assert json.loads((job_dir / "result.json").read_text())["mode"] == "smoke"


def test_human_output_labels_every_figure(tmp_path):
    proc = cli("mlperf-agent", "run", "ncf", "--work-dir", str(tmp_path), timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "smoke mode" in proc.stdout and "not an MLPerf result" in proc.stdout
    assert "measured" in proc.stdout


@pytest.mark.parametrize("args, complaint", [
    (("run", "resnet9000"), "resnet9000"),
    (("run", "ncf", "--mode", "turbo"), "mode"),
    (("run", "ncf", "--set", "no_such_key=1"), "no_such_key"),
    (("run", "ncf", "--work-dir", "/etc/hostname/work"), "--work-dir /etc/hostname/work: "
                                                           "cannot write there"),
])
def test_user_mistakes_are_one_line_errors(tmp_path, args, complaint):
    if "--work-dir" not in args:
        args = (*args, "--work-dir", str(tmp_path))
    proc = cli("mlperf-agent", *args, timeout=60)
    assert proc.returncode == 1
    assert complaint in proc.stderr and "Traceback" not in proc.stderr


def test_missing_dataset_names_what_was_expected(tmp_path):
    proc = cli("mlperf-agent", "run", "ncf", "--mode", "reduced", "--data-root",
               str(tmp_path / "empty"), "--work-dir", str(tmp_path), "--json", timeout=120)
    assert proc.returncode == 1
    result = decode(JobResult, proc.stdout.strip().encode())
    assert result.status == "failed" and "ratings" in result.error
