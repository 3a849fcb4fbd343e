"""`mlperf-agent sensors` and `mlperf-agent measure` as the user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from agent.protocol import PowerReport
from tests.conftest import BIN, cli
from tests.power import sysfs

pytestmark = pytest.mark.integration


def test_sensors_json_lists_every_source_with_a_live_reading(tmp_path):
    sysfs.rapl_laptop(tmp_path)
    sysfs.jetson_nano(tmp_path)
    proc = cli("mlperf-agent", "sensors", "--root", str(tmp_path), "--json",
               env={"HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    rows = {r["source"]: r for r in doc["sources"]}
    assert rows["rapl/package-0"]["kind"] == "energy counter"
    assert rows["rapl/package-0"]["native_unit"] == "µJ" and rows["rapl/package-0"]["unit"] == "J"
    assert rows["rapl/package-0"]["power_w"] == 0.0        # a static counter: no draw
    assert rows["ina3221/POM_5V_IN"] | {"power_w": None} == rows["ina3221/POM_5V_IN"] | {
        "power_w": None, "scope": "board", "method": "measured", "kind": "power reading"}
    assert rows["ina3221/POM_5V_IN"]["power_w"] == pytest.approx(4.0)
    assert doc["unavailable"] == []


def test_sensors_human_output_and_nothing_found(tmp_path):
    sysfs.orin_nano(tmp_path)
    proc = cli("mlperf-agent", "sensors", "--root", str(tmp_path), env={"HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "ina3221/VDD_IN" in proc.stdout and "board" in proc.stdout
    assert "6.01 W" in proc.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cli("mlperf-agent", "sensors", "--root", str(empty), env={"HOME": str(tmp_path)})
    assert proc.returncode == 0 and "No power source found" in proc.stdout
    assert "estimated" in proc.stdout


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root to drop file-access capabilities")
def test_unreadable_rapl_names_the_reason_and_the_fix(tmp_path):
    """Since the PLATYPUS fix energy_uj is 0400 and owned by root: any other user is refused.
    Here the files are 0400 and owned by another user, and the CLI runs without the
    capabilities that let root read anything (setpriv): the kernel refuses it exactly so."""
    sysfs.rapl_laptop(tmp_path)
    for f in tmp_path.glob("sys/class/powercap/*/energy_uj"):
        os.chown(f, 65534, 65534)
        f.chmod(stat.S_IRUSR)
    drop = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search", "--", str(BIN / "mlperf-agent")]
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.run([*drop, "sensors", "--root", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "unavailable rapl" in out and "PLATYPUS" in out and "CVE-2020-8694" in out
    assert "fix: run the agent as root" in out and "chmod o+r" in out
    proc = subprocess.run([*drop, "measure", "--root", str(tmp_path), "--duration", "0.2"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: no power source") and "PLATYPUS" in proc.stderr


def test_measure_around_a_command(tmp_path):
    """The command itself spends 5 J on package-0 (it advances energy_uj by 5,000,000 µJ)."""
    zones = sysfs.rapl_laptop(tmp_path)
    energy = zones["package-0"] / "energy_uj"
    # Quiet 0.3 s either side: the window's edges are interpolated between samples, and a
    # sample late under load (a busy CI machine) once split the first 0.5 J across the edge.
    script = (f"import pathlib, time; p = pathlib.Path({str(energy)!r}); time.sleep(0.3); "
              "[(p.write_text(str(int(p.read_text()) + 500000)), time.sleep(0.02)) "
              "for _ in range(10)]; time.sleep(0.3); raise SystemExit(3)")
    proc = cli("mlperf-agent", "measure", "--root", str(tmp_path), "--rate", "50", "--json",
               "--", sys.executable, "-c", script, env={"HOME": str(tmp_path)})
    assert proc.returncode == 3, proc.stderr                # the command's exit code
    report = PowerReport.model_validate_json(proc.stdout.strip().splitlines()[-1])
    by_source = {s.source: s for s in report.sources}
    assert by_source["rapl/package-0"].energy_j == pytest.approx(5.0)
    assert by_source["rapl/package-0/core"].energy_j == 0.0
    assert report.window == "command" and report.total.scope == "platform"
    assert report.status == "measured" and not report.meets_mlperf_power_rules


def test_measure_duration_human_output(tmp_path):
    sysfs.jetson_nano(tmp_path)
    proc = cli("mlperf-agent", "measure", "--root", str(tmp_path), "--duration", "0.5",
               env={"HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "ina3221/POM_5V_IN" in out and "TOTAL" in out and "measured" in out
    assert "4.00 W average" in out and "NOT met" in out


@pytest.mark.parametrize("args, complaint", [
    (("measure", "--duration", "1"), "no power source to measure with"),
    (("measure",), "give either --duration"),
    (("measure", "--duration", "1", "--", "true"), "give either --duration"),
    (("measure", "--rate", "0", "--duration", "1"), "--rate"),
    (("sensors", "--root", "/no/such/dir"), "no such directory"),
])
def test_user_mistakes_are_one_line_errors(tmp_path, args, complaint):
    proc = cli("mlperf-agent", *args, *(() if "--root" in args else ("--root", str(tmp_path))),
               env={"HOME": str(tmp_path)})
    assert proc.returncode in (1, 2)
    assert complaint in proc.stderr and "Traceback" not in proc.stderr


def test_measure_command_not_found_is_one_line(tmp_path):
    sysfs.jetson_nano(tmp_path)
    proc = cli("mlperf-agent", "measure", "--root", str(tmp_path), "--", "no-such-program-x",
               env={"HOME": str(tmp_path)})
    assert proc.returncode == 1 and "command not found: no-such-program-x" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_teaches():
    proc = cli("mlperf-agent", "measure", "--help")
    assert "perf stat" in proc.stdout and "--duration" in proc.stdout and "Examples" in proc.stdout
    proc = cli("mlperf-agent", "sensors", "--help")
    assert "PLATYPUS" in proc.stdout and "--root" in proc.stdout
