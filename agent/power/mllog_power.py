"""The power events MLCommons' tools read, written by the agent (the reference knows nothing of
power): ``power_measurement_start`` at ``run_start``, ``power_reading`` (W) at the end of each
interval of 1/``log_rate_hz`` s, ``power_measurement_stop`` at ``run_stop``. Each reading is the
average power of its interval, so ``mlperf_logging``'s result summarizer (which multiplies every
reading by the time since the previous one) adds up to the agent's own energy figure.

Only measured figures are logged: an estimate never enters an MLPerf power log."""

from __future__ import annotations

import json
from itertools import pairwise

from agent.power.sampler import Sampler, Trace

# The keys of mlperf_logging.mllog.constants (kept here so the agent core needs no
# mlperf-logging install; tests check they match the package).
POWER_MEASUREMENT_START = "power_measurement_start"
POWER_READING = "power_reading"
POWER_MEASUREMENT_STOP = "power_measurement_stop"
PREFIX = ":::MLLOG "


def line(time_ms: int, event_type: str, key: str, value, metadata: dict) -> str:
    """One ``:::MLLOG`` line, field for field as ``mlperf_logging.mllog`` writes it."""
    return PREFIX + json.dumps({"namespace": "", "time_ms": time_ms, "event_type": event_type,
                                "key": key, "value": value, "metadata": metadata})


def events(sampler: Sampler, traces: list[Trace], a: float, b: float, host: str,
           log_rate_hz: float = 1.0, scope: str = "") -> list[str]:
    """The power log over [a, b] (monotonic s) of the summed ``traces``."""
    if not traces or b <= a:
        return []
    meta = {"host": host, "scope": scope, "unit": "W",
            "sources": [tr.source for tr in traces]}
    step = 1.0 / log_rate_hz
    n = max(1, round((b - a) / step))
    edges = [a + (b - a) * k / n for k in range(n + 1)]
    ms = [sampler.to_unix_ms(x) for x in edges]
    ms[0], ms[-1] = sampler.to_unix_ms(a), sampler.to_unix_ms(b)
    out = [line(ms[0], "INTERVAL_START", POWER_MEASUREMENT_START, None, meta)]
    with sampler.lock:
        for (x, y), (mx, my) in zip(pairwise(edges), pairwise(ms)):
            if my <= mx:
                continue
            joules = sum(tr.energy_at(y) - tr.energy_at(x) for tr in traces)
            # Divided by the logged (whole-ms) interval, so the summarizer's sum is our energy.
            out.append(line(my, "POINT_IN_TIME", POWER_READING,
                            round(joules / ((my - mx) / 1000.0), 6), {"host": host}))
    out.append(line(ms[-1], "INTERVAL_END", POWER_MEASUREMENT_STOP, None, {"host": host}))
    return out
