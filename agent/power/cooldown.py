"""Before a run: wait until the hottest thermal zone (``/sys/class/thermal/thermal_zone*/temp``,
m°C) is below the profile's threshold, or until the timeout."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from agent.power.config import CooldownSpec
from agent.protocol import Cooldown

THERMAL = "sys/class/thermal"


def hottest_c(root: Path) -> float | None:
    """The hottest readable thermal zone, °C (None: this device exposes none)."""
    temps = []
    for zone in (root / THERMAL).glob("thermal_zone*"):
        try:
            temps.append(float((zone / "temp").read_text().split()[0]) / 1000.0)
        except (OSError, ValueError, IndexError):
            continue
    return max(temps) if temps else None


def cool_down(spec: CooldownSpec, root: Path, cancel: threading.Event) -> Cooldown | None:
    """Wait (polling every ``spec.poll_s``) until below ``spec.threshold_c``; None when the
    profile sets no threshold. ``reached`` is False on timeout, on cancel, or with no sensor."""
    if spec.threshold_c is None:
        return None
    started = time.monotonic()
    first = now = hottest_c(root)
    while now is not None and now >= spec.threshold_c:
        left = spec.timeout_s - (time.monotonic() - started)
        if left <= 0 or cancel.wait(min(spec.poll_s, left)):
            break
        now = hottest_c(root)
    return Cooldown(threshold_c=spec.threshold_c, start_c=first, end_c=now,
                    waited_s=time.monotonic() - started,
                    reached=now is not None and now < spec.threshold_c)
