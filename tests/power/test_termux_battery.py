"""The Termux:API battery source, with a real ``termux-battery-status`` executable on PATH that
prints what the Termux:API app prints (documented JSON: voltage in mV, current in µA, negative
while discharging). Named only: auto-detection never adds it."""

from __future__ import annotations

import json
import os

import pytest

from agent.power import registry
from agent.power.base import Context, SensorError
from agent.power.config import PowerConfig, SourceSpec

NAMED = PowerConfig(sources=[SourceSpec(name="termux_battery")])


@pytest.fixture
def termux(tmp_path, monkeypatch):
    """write(text, code=0): the command prints ``text`` and exits ``code``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def write(text: str, code: int = 0) -> None:
        script = bin_dir / "termux-battery-status"
        script.write_text(f"#!/bin/sh\ncat <<'JSON'\n{text}\nJSON\nexit {code}\n")
        script.chmod(0o755)
    return write


def status(current_ua: int, voltage_mv: int = 4000, state: str = "DISCHARGING") -> str:
    return json.dumps({"present": True, "health": "GOOD", "plugged": "UNPLUGGED",
                       "status": state, "temperature": "31.2", "voltage": voltage_mv,
                       "current": current_ua, "percentage": 80})


def test_draw_is_voltage_times_discharge_current(termux, tmp_path):
    termux(status(-750_000, 4100))
    sensors, _ = registry.discover(NAMED, Context(tmp_path))
    (battery,) = sensors
    assert battery.read().values[0] == pytest.approx(4.1 * 0.75)
    assert "negative = discharging" in battery.note and "CHARGING" not in battery.note
    termux(status(-1_500_000, 3900))                     # read again: a new reading
    assert battery.read().values[0] == pytest.approx(3.9 * 1.5)


def test_charging_is_said(termux, tmp_path):
    termux(status(500_000, state="CHARGING"))
    (battery,), _ = registry.discover(NAMED, Context(tmp_path))
    assert "CHARGING: this is not the device's draw" in battery.note


def test_auto_detection_leaves_it_out(termux, tmp_path):
    termux(status(-750_000))
    sensors, _ = registry.discover(PowerConfig(), Context(tmp_path))
    assert not any(s.name == "termux_battery" for s in sensors)


@pytest.mark.parametrize("text, code, complaint", [
    ("not json", 0, "printed no JSON"),
    ('{"voltage": 4000}', 0, "no numeric 'current'"),
    ('{"voltage": "4000", "current": -1}', 0, "no numeric 'voltage'"),
    ("[]", 0, "not an object"),
    ("Termux:API app not installed", 1, "exited 1"),
])
def test_a_bad_answer_is_one_line(termux, tmp_path, text, code, complaint):
    termux(text, code)
    with pytest.raises(SensorError, match=complaint):
        registry.discover(NAMED, Context(tmp_path))


def test_missing_command_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SensorError, match="pkg install termux-api"):
        registry.discover(NAMED, Context(tmp_path))


FALLBACK = PowerConfig(sources=[SourceSpec(
    name="battery", options={"current_unit": "uA", "discharge": "negative"},
    otherwise=SourceSpec(name="termux_battery"))])


def test_the_phone_reads_termux_where_sysfs_has_no_battery(termux, tmp_path):
    """The android-phone profile's sources: sysfs first, Termux:API otherwise."""
    termux(status(-750_000, 4100))
    (battery,), _ = registry.discover(FALLBACK, Context(tmp_path))
    assert battery.name == "termux_battery"
    assert battery.read().values[0] == pytest.approx(4.1 * 0.75)


def test_neither_source_is_one_error_naming_both(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SensorError, match=r"'battery' is not present .*; otherwise .*"
                                          r"pkg install termux-api"):
        registry.discover(FALLBACK, Context(tmp_path))


def test_the_shipped_phone_profile_falls_back_to_termux():
    from agent.profiles import load_profile
    from agent.profiles.loading import builtin_dir

    (source,) = load_profile(builtin_dir() / "android-phone.yaml").power.sources
    assert source.name == "battery" and source.otherwise.name == "termux_battery"
