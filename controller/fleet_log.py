"""What the serving controller says about a large fleet without flooding its log: heartbeat
statistics every STATS_S, and per-device and per-job lines (enrolled, online, beating again;
assigned, running, result stored) one by one for the first MAX_TOLD of each kind in a window,
then counted."""

from __future__ import annotations

import logging
import threading
import time

from controller.trust import MAX_TOLD

log = logging.getLogger("mlperf.controller")

#: Seconds between the heartbeat statistics lines (and the per-device lines' window).
STATS_S = 30.0


class BeatStats:
    """Heartbeats written since the last report, for one INFO line every ``every_s`` (what an
    operator of a large fleet, and benchmarks/fleet_scale.py, reads the controller's pace by)."""

    def __init__(self, every_s: float = STATS_S) -> None:
        self.every_s = every_s
        self._reset(time.monotonic())

    def _reset(self, now: float) -> None:
        self.since, self.heard, self.applied, self.batches, self.write_s = now, 0, 0, 0, 0.0
        self.superseded = self.results_superseded = 0

    def add(self, heard: int, applied: int, superseded: int, write_s: float) -> None:
        self.heard += heard
        self.applied += applied
        self.superseded += superseded
        self.batches += 1
        self.write_s += write_s

    def due(self) -> bool:
        return self.heard > 0 and time.monotonic() - self.since >= self.every_s

    def line(self, behind_s: float | None = None) -> str:
        span = time.monotonic() - self.since
        text = (f"heartbeats: {self.applied} applied of {self.heard} heard in {span:.0f} s "
                f"({self.superseded} superseded by a newer one of the same device), "
                f"{self.batches} write(s), {self.write_s * 1000:.0f} ms writing"
                + (f", {behind_s:.1f} s behind the fleet" if behind_s is not None else "")
                + (f"; {self.results_superseded} re-sent result(s) superseded unread"
                   if self.results_superseded else ""))
        self._reset(time.monotonic())
        return text


class Lines:
    """``say(kind, fmt, *args)``: one INFO line each for the first MAX_TOLD of a kind in a
    STATS_S window, then one line counting the rest ("9950 more jobs assigned"). 10,000 devices
    coming online at once were 10,000 lines, and a campaign over them 70,000 (assigned, four
    states, result), formatted on the controller's busiest threads. ``kind`` names what is
    counted: "devices enrolled", "jobs running"."""

    def __init__(self, every_s: float = STATS_S) -> None:
        self.every_s = every_s
        self._said: dict[str, int] = {}
        self._since = time.monotonic()
        self._lock = threading.Lock()          # the writer and the dispatcher both say

    def say(self, kind: str, fmt: str, *args: object) -> None:
        self.roll()
        with self._lock:
            n = self._said[kind] = self._said.get(kind, 0) + 1
        if n <= MAX_TOLD:
            log.info(fmt, *args)

    def roll(self, end: bool = False) -> None:
        """At the end of a window (or of serving): count what was not said one by one."""
        now = time.monotonic()
        if not (end or now - self._since > self.every_s):
            return
        with self._lock:
            said, self._said, self._since = self._said, {}, now
        for kind, n in said.items():
            if n > MAX_TOLD:
                log.info("%d more %s", n - MAX_TOLD, kind)
