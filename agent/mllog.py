"""Reading ``:::MLLOG`` lines: the agent forwards them untouched and takes the timed window
of time-to-train (and, later, energy-to-train) from ``run_start``/``run_stop``, as MLPerf does."""

from __future__ import annotations

import json
from typing import Any

from agent.protocol import TimedWindow

PREFIX = ":::MLLOG "


def parse(line: str) -> dict[str, Any] | None:
    """The event of an MLLOG line, or None for any other line (or a damaged one)."""
    if not line.startswith(PREFIX):
        return None
    try:
        event = json.loads(line[len(PREFIX):])
    except (ValueError, RecursionError):     # damaged, or nested to exhaust the stack
        return None
    return event if isinstance(event, dict) and "key" in event else None


class WindowTracker:
    """Follows a run's MLLOG events: timed window, last evaluated quality, epoch."""

    def __init__(self, node: bool = False) -> None:
        # ``node``: rank > 0 of a group run, whose window is its node's (the run's is rank 0's)
        self.keys = (("mlperf_edge_node_run_start", "mlperf_edge_node_run_stop") if node
                     else ("run_start", "run_stop"))
        self.run_start_ms: int | None = None
        self.run_stop_ms: int | None = None
        self.run_status: str | None = None
        self.epoch: int | None = None
        self.eval_accuracy: float | None = None

    def feed(self, line: str) -> dict[str, Any] | None:
        """Take one line; return its event when it was an MLLOG line."""
        event = parse(line)
        if event is None:
            return None
        key, meta = event.get("key"), event.get("metadata") or {}
        if not isinstance(meta, dict):
            meta = {}
        time_ms = event.get("time_ms")
        start, stop = self.keys
        if key in (start, stop) and not (
                isinstance(time_ms, int) and 0 <= time_ms < 2 ** 53):
            return event                      # a damaged event never sets the window
        if key == start:
            self.run_start_ms = time_ms
        elif key == stop:
            self.run_stop_ms = time_ms
            self.run_status = meta.get("status") if isinstance(meta.get("status"), str) else None
        elif key == "epoch_start" and isinstance(meta.get("epoch_num"), int):
            self.epoch = meta["epoch_num"]
        elif key == "eval_accuracy" and isinstance(event.get("value"), (int, float)):
            self.eval_accuracy = float(event["value"])
        return event

    @property
    def window(self) -> TimedWindow | None:
        """run_start -> run_stop, or None until both were seen."""
        if self.run_start_ms is None or self.run_stop_ms is None:
            return None
        return TimedWindow(run_start_ms=self.run_start_ms, run_stop_ms=self.run_stop_ms,
                           duration_s=(self.run_stop_ms - self.run_start_ms) / 1000.0)
