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


def test_a_large_fleet_is_listed_as_plain_aligned_lines_with_a_count():
    from controller.views import devices_lines

    now = time.time()
    devs = [Device(agent_id=f"sim-{i}", name=f"sim-{i}", state="online", tags=["rack"],
                   capabilities={"arch": "x86_64", "cpu_count": 2, "profile": "x86"},
                   first_seen=now, last_seen=now) for i in range(3)]
    devs.append(Device(agent_id="odd", name="odd\x1b[31mname", state="offline", tags=[],
                       capabilities=None, first_seen=now, last_seen=now,
                       reason="no heartbeat for 16 s"))
    lines = devices_lines(devs)
    assert lines[0] == "4 devices: 1 offline, 3 online"
    header, rows = lines[1], lines[2:]
    assert header.split()[:3] == ["device", "state", "last"] and len(rows) == 4
    assert all(row.index("online" if "sim" in row else "offline") == header.index("state")
               for row in rows)
    odd = rows[-1]
    assert "\x1b" not in odd and "odd?[31mname (odd)" in odd
    assert "offline (no heartbeat for 16 s)" in odd and "not approved" in odd
