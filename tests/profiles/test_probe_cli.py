"""``mlperf-agent probe`` as a user runs it: a real subprocess on fixture trees."""

import json

from tests.conftest import cli


def test_probe_says_what_matched_and_why(make_board):
    proc = cli("mlperf-agent", "probe", "--root", str(make_board("rpi5")), check=True)
    out = proc.stdout
    assert "Profile: raspberry-pi-5" in out
    assert "Raspberry Pi 5 Model B Rev 1.0" in out
    assert "+ device-tree model" in out
    assert "raspberry-pi-4       no match" in out
    assert "generic-linux        matches too (lower priority)" in out


def test_probe_json(make_board):
    proc = cli("mlperf-agent", "probe", "--root", str(make_board("orin-nano")), "--json",
               check=True)
    found = json.loads(proc.stdout)
    assert found["profile"] == "jetson-orin-nano"
    assert found["facts"]["tegra_release"].startswith("# R35")
    verdicts = {c["profile"]: c["matches"] for c in found["candidates"]}
    assert verdicts["jetson-nano"] is False and verdicts["generic-linux"] is True


def test_probe_errors_are_one_line(tmp_path, make_board):
    bad = tmp_path / "profiles"
    bad.mkdir()
    (bad / "x.yaml").write_text("name: x\ndescription: x\nplatform: linux/arm64\n"
                                "runtime: torch-cpu\ncontainer: {gpus: maybe}\n")
    proc = cli("mlperf-agent", "probe", "--root", str(make_board("rpi4")), "--profiles-dir",
               str(bad))
    assert proc.returncode == 1
    assert f"device profile {bad / 'x.yaml'}: container.gpus" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_probe_help_teaches():
    out = cli("mlperf-agent", "probe", "--help", check=True).stdout
    assert "--root" in out and "device-tree" in out


def test_probe_of_a_missing_root_is_one_line(tmp_path):
    proc = cli("mlperf-agent", "probe", "--root", str(tmp_path / "nope"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"error: --root {tmp_path / 'nope'}: no such folder (give a "
                                   "copy of a device's /proc, /sys and /etc, or leave it out "
                                   "to probe this device)")
