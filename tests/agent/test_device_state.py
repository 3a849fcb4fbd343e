"""The device's state at a run's start and end, read from a sysfs tree in the kernel's layout:
per-core cpufreq (kHz) and thermal zones (millidegrees); absent files are None, never a guess."""

from __future__ import annotations

from agent.device_state import snapshot
from agent.local import state_text


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_frequencies_governor_and_the_hottest_zone(tmp_path):
    cpus = tmp_path / "sys/devices/system/cpu"
    for n, (cur, top, gov) in enumerate([(1_200_000, 1_800_000, "schedutil"),
                                         (1_800_000, 2_400_000, "schedutil")]):
        write(cpus / f"cpu{n}/cpufreq/scaling_cur_freq", f"{cur}\n")
        write(cpus / f"cpu{n}/cpufreq/scaling_max_freq", f"{top}\n")
        write(cpus / f"cpu{n}/cpufreq/scaling_governor", f"{gov}\n")
    write(cpus / "cpufreq/policy0/scaling_cur_freq", "1\n")          # not a cpuN: ignored
    write(tmp_path / "sys/class/thermal/thermal_zone0/temp", "45000\n")
    write(tmp_path / "sys/class/thermal/thermal_zone1/temp", "61200\n")
    write(tmp_path / "sys/class/thermal/thermal_zone2/temp", "-274000\n")   # a placeholder
    snap = snapshot("end", tmp_path)
    assert (snap.cpu_freq_min_mhz, snap.cpu_freq_max_mhz, snap.cpu_freq_allowed_mhz) == (
        1200.0, 1800.0, 2400.0)
    assert snap.governor == "schedutil" and snap.temperature_c == 61.2
    assert state_text(snap) == "end: 1,200-1,800 MHz (allowed 2,400, schedutil), 61.2 °C"


def test_nothing_exposed_is_none(tmp_path):
    write(tmp_path / "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "garbage\n")
    snap = snapshot("start", tmp_path)
    assert snap.cpu_freq_min_mhz is None and snap.temperature_c is None and snap.governor is None
    assert state_text(snap) == "start: CPU frequency and temperature not exposed"
