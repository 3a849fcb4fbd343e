"""`mlperf-agent run` on this VM (no power sensors, no power model): the result says so."""

from __future__ import annotations

import json

import pytest

from agent.power.view import summary_rows
from agent.protocol import PowerReport, ScopePower
from tests.conftest import cli

pytestmark = pytest.mark.integration


def test_run_on_a_machine_without_sensors_says_none_measured(tmp_path):
    # A profile with no power model, so nothing may be estimated either.
    profile = tmp_path / "bare.yaml"
    profile.write_text("name: bare\ndescription: no sensors, no model\nplatform: auto\n"
                       "runtime: native\npower: {sources: []}\n")
    proc = cli("mlperf-agent", "run", "ncf", "--work-dir", str(tmp_path), "--profile",
               str(profile), timeout=300, env={"HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = " ".join(proc.stdout.split())
    assert "power none measured: no power source found" in text
    assert " J " not in text and "0.00 W" not in text          # no figures pretending


def test_run_uses_the_device_profile_like_a_job(tmp_path):
    """This VM has no sensors; the generic profile's model gives an estimate, labelled so."""
    proc = cli("mlperf-agent", "run", "ncf", "--work-dir", str(tmp_path), "--profile",
               "generic-linux", "--json", timeout=300, env={"HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["power"]["status"] == "estimated"
    assert result["power"]["total"]["method"] == "estimated"
    assert result["power"]["total"]["energy_j"] > 0


def test_summary_rows_label_every_figure():
    total = ScopePower(scope="board", method="estimated", sources=["cpu-model/cpu-utilisation"],
                       energy_j=50.0, avg_power_w=5.0, peak_power_w=6.5, samples=100,
                       rate_hz=10.0, baseline_power_w=3.0, net_energy_j=20.0)
    rows = dict(summary_rows(PowerReport(status="estimated", total=total, baseline_s=5.0,
                                         rules_detail="100 samples at 10.00/s (board): an "
                                                      "estimate is not a measurement")))
    assert rows["energy"].startswith("50.0 J (ESTIMATED, board")
    assert "5.00 W average, 6.50 W peak (100 samples, 10.0/s)" == rows["power"]
    assert rows["idle baseline"] == "3.00 W over 5.0 s; net energy 20.0 J"
    assert rows["MLPerf power rules"].startswith("NOT met")
    assert summary_rows(None) == []
