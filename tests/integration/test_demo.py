"""`make demo`'s command: embedded broker, agent process, controller, results table."""

import pytest

from tests.conftest import cli

pytestmark = pytest.mark.integration


def test_demo_runs_the_whole_loop_and_prints_the_table(tmp_path):
    proc = cli("mlperf-controller", "demo", "--runs", "2", "--keep", str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "time-to-train" in out and "quality" in out and "reached" in out
    rows = [line for line in out.splitlines() if " ncf " in line]
    assert len(rows) == 2
    for row in rows:
        assert " smoke " in row and " done " in row and "(smoke)" in row and " yes " in row
    assert "embedded MQTT broker" in proc.stderr
    assert (tmp_path / "controller.db").exists() and (tmp_path / "agent.log").exists()
