"""A group's energy through the real parts: two agents, each measuring its own fixture RAPL
package (10 W and 20 W, driven by a thread) on its own clock over its own node window, train
ResNet smoke together five times (`run --nodes 2`); the group's energy is the sum of the two
nodes' measured windows, with each node's figure kept; the MLCommons export writes one power
file per node, which MLCommons' own package checker accepts and its result summarizer sums to
the energy we report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import cli, wait_for
from tests.integration.conftest import devices
from tests.integration.test_export_mlcommons import Rapl
from tests.power import sysfs

pytestmark = pytest.mark.integration

RUNS = 5
WATTS = {"pw-0": 10.0, "pw-1": 20.0}


@pytest.fixture
def measured_pair(env, serve, agents, tmp_path):
    counters = []
    for name, watts in WATTS.items():
        root = tmp_path / f"{name}-host"
        rapl = Rapl(sysfs.rapl_zone(root, "intel-rapl:0", "package-0", 1_000_000), watts)
        rapl.start()
        counters.append(rapl)
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump({
            "power_root": str(root), "containers": False, "address": "127.0.0.1",
            "power": {"sources": [{"name": "rapl"}], "rate_hz": 20, "log_rate_hz": 10,
                      "cooldown": {"baseline_s": 0}}}))
        agents(env["MLPERF_BROKER"], name, "--prefix", env["MLPERF_PREFIX"], "--config",
               str(config))
    wait_for(lambda: all(devices(env).get(n, {}).get("state") == "online" for n in WATTS),
             30, interval_s=0.5, what="both agents online")
    yield
    for rapl in counters:
        rapl.stop.set()


def test_group_energy_is_the_nodes_measured_windows_summed(env, measured_pair, tmp_path):
    from mlperf_logging.result_summarizer.result_summarizer import (
        _compute_strong_score_standalone,
    )

    run = cli("mlperf-controller", "run", "--benchmarks", "resnet", "--devices", "pw-0,pw-1",
              "--nodes", "2", "--runs", str(RUNS), "--json", env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    rows = sorted(out["results"], key=lambda r: r["run"])
    assert len(rows) == RUNS
    for row in rows:
        assert row["state"] == "done" and row["nodes"] == 2 and row["power_method"] == "measured"
        nodes = {d["device"]: d for d in row["node_detail"]}
        window_s = row["timed_window_s"]
        for name, watts in WATTS.items():      # each node's own counter, its own window
            node = nodes[name]
            assert node["power_method"] == "measured"
            node_s = (node["window_ms"][1] - node["window_ms"][0]) / 1000
            assert abs(node_s - window_s) < 1.0          # opened at the same barrier
            assert 0.7 * watts < node["energy_j"] / node_s < 1.3 * watts, node
        assert row["energy_j"] == pytest.approx(sum(d["energy_j"] for d in nodes.values()))
        assert 0.7 * 30 < row["avg_power_w"] < 1.3 * 30
        assert any("share a host" in d for d in row["power_doubts"])

    export_dir = tmp_path / "mlcommons"
    export = cli("mlperf-controller", "export", "--layout", "mlcommons", str(export_dir),
                 "--campaign", out["campaign_id"], env=env, check=True)
    [system] = [p.name for p in (export_dir / "results").iterdir()]
    bench = export_dir / "results" / system / "resnet"
    for n in range(RUNS):
        assert sorted(p.name for p in (bench / f"power/result_{n}").iterdir()) == [
            "node_0.txt", "node_1.txt"], export.stdout
    desc = json.loads((export_dir / "systems" / f"{system}.json").read_text())
    assert desc["number_of_nodes"] == "2"

    log = tmp_path / "package_checker.log"
    subprocess.run([sys.executable, "-m", "mlperf_logging.package_checker", str(export_dir),
                    "training", "0.6.0", "--log_output", str(log)], cwd=tmp_path,
                   capture_output=True, text=True, timeout=120, check=True)
    checked = log.read_text()
    assert "PACKAGE CHECKER FOUND NO ERRORS" in checked, checked[-3000:]
    _, energies_by_file, _, _, _ = _compute_strong_score_standalone(
        "resnet", system, True, str(bench), "training", "0.6.0", return_full_scores=True)
    for n, row in enumerate(rows):         # the summarizer's kJ (see the single-node test)
        assert energies_by_file[str(bench / f"result_{n}.txt")] * 1000 == pytest.approx(
            row["energy_j"], rel=0.02)
