"""`mlperf-controller export --layout mlcommons` through the real parts, judged by MLCommons'
own tools: a real Mosquitto, `mlperf-controller serve`, one real `mlperf-agent start` whose
power comes from a fixture RAPL tree a thread drives at 10 W (so the power is MEASURED and
logged as MLPerf power events), a five-run ResNet smoke campaign (five: what mlperf_logging
requires for resnet), the export, then mlperf_logging's package checker and result
summarizer -- whose time and energy scores must be ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import yaml

from controller.runs import load
from controller.scoring import olympic, olympic_by
from controller.store import Store
from tests.conftest import cli, wait_for
from tests.integration.conftest import devices
from tests.power import sysfs

pytestmark = pytest.mark.integration

WATTS = 10.0
RUNS = 5


class Rapl(threading.Thread):
    """package-0's energy_uj advancing at WATTS (every 50 ms, by the time that passed) while
    the campaign runs. Rewritten in place with a fixed width: the agent keeps the file open
    and re-reads it at offset 0, as sysfs is read."""

    def __init__(self, zone, watts: float = WATTS) -> None:
        super().__init__(daemon=True)
        self.path, self.stop, self.watts = zone / "energy_uj", threading.Event(), watts
        self.path.write_text(f"{1_000_000:020d}\n")

    def run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        value, last = 1_000_000.0, time.monotonic()
        try:
            while not self.stop.wait(0.05):
                now = time.monotonic()
                value, last = value + self.watts * (now - last) * 1e6, now
                os.pwrite(fd, f"{int(value):020d}\n".encode(), 0)
        finally:
            os.close(fd)


@pytest.fixture
def measured_agent(env, serve, agents, tmp_path):
    """One agent, edge-x, measuring RAPL under a fixture root (no idle baseline: the runs are
    short and the test is about the window's energy)."""
    root = tmp_path / "host"
    rapl = Rapl(sysfs.rapl_zone(root, "intel-rapl:0", "package-0", 1_000_000))
    rapl.start()
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "power_root": str(root), "containers": False,
        "power": {"sources": [{"name": "rapl"}], "rate_hz": 20, "log_rate_hz": 10,
                  "cooldown": {"baseline_s": 0}}}))
    agent = agents(env["MLPERF_BROKER"], "edge-x", "--prefix", env["MLPERF_PREFIX"],
                   "--config", str(config))
    wait_for(lambda: devices(env).get("edge-x", {}).get("state") == "online", 30,
             interval_s=0.5, what="edge-x online")
    yield agent
    rapl.stop.set()


def test_export_is_accepted_and_scored_as_we_score_it(env, measured_agent, tmp_path):
    from mlperf_logging.result_summarizer.result_summarizer import (
        _compute_strong_score_standalone,
    )

    run = cli("mlperf-controller", "run", "--benchmarks", "resnet", "--devices", "edge-x",
              "--mode", "smoke", "--runs", str(RUNS), "--json", env=env, timeout=400)
    assert run.returncode == 0, run.stderr[-3000:] + measured_agent.log[-3000:]
    campaign = json.loads(run.stdout)["campaign_id"]

    out = tmp_path / "mlcommons"
    export = cli("mlperf-controller", "export", "--layout", "mlcommons", str(out), "--campaign",
                 campaign, env=env, check=True)
    assert f"edge-x-smoke/resnet: {RUNS} run(s) written, MLCommons requires {RUNS} " \
           "(as required" in export.stdout, export.stdout
    assert "power: measured, every run" in export.stdout
    bench = out / "results/edge-x-smoke/resnet"
    assert sorted(p.name for p in bench.glob("result_*.txt")) == [
        f"result_{n}.txt" for n in range(RUNS)]
    assert all((bench / f"power/result_{n}/node_0.txt").stat().st_size for n in range(RUNS))

    # MLCommons' package checker: its exit code is always 0, its log says
    log = tmp_path / "package_checker.log"
    subprocess.run([sys.executable, "-m", "mlperf_logging.package_checker", str(out),
                    "training", "0.6.0", "--log_output", str(log)], cwd=tmp_path,
                   capture_output=True, text=True, timeout=120, check=True)
    checked = log.read_text()
    assert "PACKAGE CHECKER FOUND NO ERRORS" in checked, checked[-3000:]
    assert not [x for x in checked.splitlines() if x.startswith("ERROR")], checked[-3000:]
    assert checked.count("Compliance checks: training_0.6.0/resnet.yaml") == RUNS

    # ... and its result summarizer, as a command (it writes summary.json where it runs)
    summary = subprocess.run([sys.executable, "-m", "mlperf_logging.result_summarizer",
                              str(out), "training", "0.6.0"], cwd=tmp_path, check=False,
                             capture_output=True, text=True, timeout=120)
    assert summary.returncode == 0, summary.stderr[-3000:]
    rows = json.loads((tmp_path / "summary.json").read_text())
    row = next(r for r in rows if r["system"] == "edge-x-smoke")
    assert (row["division"], row["availability"]) == ("open", "research")
    assert row["resnet:time_to_train"] > 0 and row["resnet:Energy"] > 0

    # ... and its scoring, against ours
    files, energies_by_file, time_score, energy_score, scaling = \
        _compute_strong_score_standalone("resnet", "edge-x-smoke", True, str(bench),
                                         "training", "0.6.0", return_full_scores=True)
    store = Store(env["MLPERF_DB"], create=False)
    runs = sorted((r for r in load(store, [campaign]) if r.final), key=lambda r: r.run_index)
    store.close()
    assert len(runs) == RUNS and all(r.converged and r.power_method == "measured"
                                     for r in runs)
    times = [r.time_to_target_s for r in runs]
    energies = [r.energy_j for r in runs]
    for r in runs:                     # the counter thread's 10 W, as the agent measured it
        assert 0.5 * WATTS < r.energy_j / r.timed_window_s < 1.5 * WATTS, r
    # Ruleset 0.6.0 logs seconds (v0.6 lines), but the summarizer divides by 60 * 1000 as
    # for the milliseconds of later rulesets: its "minutes" are seconds / 60,000, and its
    # energy (sum of W x s, then / 1000 as for ms) is kJ. Hence the x 60,000 and x 1000.
    assert scaling == 1.0
    for n, r in enumerate(runs):       # result_N is run N + 1
        name = str(bench / f"result_{n}.txt")
        assert files[name] * 60_000 == pytest.approx(r.time_to_target_s, abs=0.0005)
        assert energies_by_file[name] * 1000 == pytest.approx(r.energy_j, rel=0.01)
    ours_s, ours_j = olympic(times, 0), olympic_by(energies, times, 0)
    print(f"time score: summarizer {time_score * 60_000:.3f} s, ours {ours_s:.3f} s; "
          f"energy score: summarizer {energy_score * 1000:.4f} J, ours {ours_j:.4f} J")
    assert time_score * 60_000 == pytest.approx(ours_s, abs=0.0005)   # whole ms
    assert energy_score * 1000 == pytest.approx(ours_j, rel=0.01)
    # summary.json keeps five significant digits of the same scores
    assert row["resnet:time_to_train"] == pytest.approx(time_score, rel=1e-4)
    assert row["resnet:Energy"] == pytest.approx(energy_score, rel=1e-4)
