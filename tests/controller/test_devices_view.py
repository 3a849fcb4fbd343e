"""The devices table shows what an operator selects by: profile, tags, state."""

from __future__ import annotations

import time

from rich.console import Console

from controller.models import Device
from controller.views import devices_table


def render(devices) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(devices_table(devices))
    return console.export_text()


def test_profile_column_shows_the_matched_profile_or_a_dash():
    now = time.time()
    pi = Device(agent_id="pi-5", name="pi-5", state="online", tags=["shelf-1"],
                capabilities={"arch": "aarch64", "cpu_count": 4, "profile": "raspberry-pi-5"},
                first_seen=now, last_seen=now)
    old = Device(agent_id="old", name="old", state="offline", tags=[],
                 capabilities={"arch": "x86_64", "cpu_count": 2}, first_seen=now,
                 last_seen=now, reason="Last Will")
    text = render([pi, old])
    assert "profile" in text.splitlines()[2]
    row_pi = next(line for line in text.splitlines() if "pi-5" in line)
    row_old = next(line for line in text.splitlines() if " old " in line)
    assert "raspberry-pi-5" in row_pi and "shelf-1" in row_pi
    assert "raspberry-pi-5" not in row_old
