"""`mlperf-controller results` and `score` as an operator runs them: the columns, CSV, JSON
with the figures at the top level, --summary, --compare, slow devices never shown as 0, and
one clear line for a wrong campaign, device or option."""

from __future__ import annotations

import csv
import io
import json

import pytest

from controller.runs import significant
from controller.store import Store
from tests.conftest import cli
from tests.controller.results_factory import campaign, device


@pytest.fixture
def lab(tmp_path):
    url = f"sqlite:///{tmp_path / 'results.db'}"
    store = Store(url)
    device(store, "pi-5", profile="raspberry-pi-5")
    device(store, "orin")
    full = campaign(store, "resnet", "full", ["pi-5", "orin"], {
        "pi-5": [(t, True, 10 * t) for t in (4000, 4100, 4200, 4300, 4400)],
        "orin": [(t, True, 5 * t, "estimated") for t in (1000, 1100, 1200, 1300, 1400)]})
    smoke = campaign(store, "ncf", "smoke", ["pi-5"], {"pi-5": [(2.0, True, None)]})
    store.close()
    return url, full, smoke


def test_table_has_campaign_job_start_and_throughput(lab):
    url, full, smoke = lab
    proc = cli("mlperf-controller", "results", "--db", url, check=True)
    out = proc.stdout
    for column in ("campaign", "job", "started", "samples/s", "energy J"):
        assert column in out
    assert f"{full}-0001" in out and smoke in out
    assert "(smoke)" in out and "training throughput" in out


def test_json_puts_figures_at_the_top_level(lab):
    url, full, _ = lab
    rows = json.loads(cli("mlperf-controller", "results", "--db", url, "--campaign", full,
                          "--json", check=True).stdout)
    assert len(rows) == 10
    pi = next(r for r in rows if r["device"] == "pi-5" and r["run"] == 1)
    assert pi["time_to_train_s"] == 4000 and pi["energy_j"] == 40000
    assert pi["quality"] == 0.8 and pi["kind"] == "result"
    assert pi["throughput_samples_per_s"] == pytest.approx(10_000 / 4000)
    assert pi["result"]["outcome"]["time_to_train_s"] == 4000     # nested detail kept
    assert pi["profile"] == "raspberry-pi-5"


def test_csv_one_row_per_run(lab):
    url, _, _ = lab
    text = cli("mlperf-controller", "results", "--db", url, "--csv", check=True).stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 11
    orin = [r for r in rows if r["device"] == "orin"]
    assert {r["power_method"] for r in orin} == {"estimated"}
    smoke = next(r for r in rows if r["mode"] == "smoke")
    assert smoke["time_to_train_s"] == "" and float(smoke["time_to_target_s"]) == 2.0


def test_summary_and_score_agree(lab):
    url, full, _ = lab
    doc = json.loads(cli("mlperf-controller", "results", "--db", url, "--summary", "--json",
                         check=True).stdout)
    scores = json.loads(cli("mlperf-controller", "score", "--db", url, "--json",
                            check=True).stdout)
    assert doc["scores"] == scores
    by = {(s["benchmark"], s["device"]): s for s in scores}
    assert by[("resnet", "pi-5")]["status"] == "scored"
    assert by[("resnet", "pi-5")]["time_to_train_s"] == pytest.approx(4200)
    assert by[("resnet", "orin")]["energy_method"] == "estimated"
    assert by[("ncf", "pi-5")]["status"] == "smoke"
    assert by[("ncf", "pi-5")]["time_to_train_s"] is None
    table = cli("mlperf-controller", "score", "--db", url, check=True).stdout
    assert "MLPerf score" in table and "smoke (never a result)" in table
    assert "mlperf_logging" in table


def test_compare_two_devices(lab):
    url, _, _ = lab
    out = cli("mlperf-controller", "results", "--db", url, "--compare", "pi-5,orin",
              check=True).stdout
    assert "pi-5 vs orin" in out
    line = next(ln for ln in out.splitlines() if "time s" in ln and "resnet" in ln)
    assert "0.286" in line                        # 1200 / 4200
    assert "measured vs estimated" in out


@pytest.mark.parametrize("args, message", [
    (["--campaign", "c-nope"], "no campaign 'c-nope'"),
    (["--compare", "pi-5,ghost"], "no results for device 'ghost'"),
    (["--compare", "pi-5"], "expected two different device names"),
    (["--runs-required", "ncf"], "expected BENCHMARK=N"),
    (["--csv", "--json"], "choose one of --csv and --json"),
])
def test_operator_mistakes_are_one_line(lab, args, message):
    url, _, _ = lab
    proc = cli("mlperf-controller", "results", "--db", url, *args)
    assert proc.returncode != 0
    assert message in " ".join(proc.stderr.split()) and "Traceback" not in proc.stderr


def test_a_slow_device_never_shows_zero():
    assert significant(0.49) == "0.490"
    assert significant(0.000123456) == "0.000123"
    assert significant(89_812.3) == "89,812"
    assert significant(3.14159, 4) == "3.142"
    assert significant(None) == "-" and significant(0) == "0"
