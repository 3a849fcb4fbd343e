"""What state the device was in when a run began and ended: CPU frequency (the slowest and the
fastest core now, and the fastest allowed), the frequency governor and the hottest thermal
zone. A phone or a fanless board that throttles shows it here (end slower and hotter than
start), beside its time-to-train. Read from sysfs (cpufreq, thermal); what a device does not
expose is None, never a guess."""

from __future__ import annotations

import time
from pathlib import Path

from agent.presence import temperature_c
from agent.protocol import DeviceSnapshot

CPUS = "sys/devices/system/cpu"


def _khz(path: Path) -> float | None:
    try:
        value = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return value / 1000.0 if 0 < value < 100_000_000 else None   # kHz -> MHz, sane range


def snapshot(when: str, root: Path = Path("/")) -> DeviceSnapshot:
    current, allowed, governors = [], [], set()
    for cpufreq in sorted((root / CPUS).glob("cpu[0-9]*/cpufreq")):
        if (mhz := _khz(cpufreq / "scaling_cur_freq")) is not None:
            current.append(mhz)
        if (mhz := _khz(cpufreq / "scaling_max_freq")) is not None:
            allowed.append(mhz)
        try:
            governors.add((cpufreq / "scaling_governor").read_text().strip()[:32])
        except OSError:
            pass
    return DeviceSnapshot(
        when=when, at_ms=int(time.time() * 1000),
        cpu_freq_min_mhz=min(current) if current else None,
        cpu_freq_max_mhz=max(current) if current else None,
        cpu_freq_allowed_mhz=max(allowed) if allowed else None,
        governor=",".join(sorted(g for g in governors if g)) or None,
        temperature_c=temperature_c(root))
