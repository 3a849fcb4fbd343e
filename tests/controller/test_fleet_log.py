"""The serving controller's bounded lines: the first MAX_TOLD of a kind in a window one by one,
then counted; what a device or a job says is an argument, never part of the format."""

import logging

from controller.fleet_log import Lines
from controller.trust import MAX_TOLD


def test_the_first_of_a_kind_are_said_and_the_rest_counted(caplog):
    lines = Lines(every_s=3600)
    with caplog.at_level(logging.INFO, logger="mlperf.controller"):
        for i in range(MAX_TOLD + 7):
            lines.say("jobs assigned", "job %s assigned to %s", f"j{i}", f"d{i}")
        lines.say("jobs running", "job %s %s", "j0", "running")
        lines.roll(end=True)
    said = [r.getMessage() for r in caplog.records]
    assert said[0] == "job j0 assigned to d0"
    assert sum(m.startswith("job j") and "assigned" in m for m in said) == MAX_TOLD
    assert "job j0 running" in said
    assert said[-1] == "7 more jobs assigned"
    assert not any("more jobs running" in m for m in said)


def test_a_percent_sign_from_a_device_is_text(caplog):
    """A status reason or job detail is the device's text: a '%' in it once made logging
    fail the whole line (a traceback on stderr)."""
    lines = Lines()
    with caplog.at_level(logging.INFO, logger="mlperf.controller"):
        lines.say("devices offline", "device %s is %s%s", "pi-1", "offline", " (100%s %d done)")
    assert [r.getMessage() for r in caplog.records] == ["device pi-1 is offline (100%s %d done)"]


def test_a_new_window_starts_counting_again(caplog, monkeypatch):
    import controller.fleet_log as fleet_log

    clock = [1000.0]
    monkeypatch.setattr(fleet_log.time, "monotonic", lambda: clock[0])
    lines = Lines(every_s=30)
    with caplog.at_level(logging.INFO, logger="mlperf.controller"):
        for i in range(MAX_TOLD + 2):
            lines.say("devices online", "device %s is online", f"d{i}")
        clock[0] += 31
        lines.say("devices online", "device %s is online", "late")
    said = [r.getMessage() for r in caplog.records]
    assert said[-2:] == ["2 more devices online", "device late is online"]
