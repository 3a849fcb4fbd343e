"""The one sampler: a thread that reads every sensor at a fixed rate on the monotonic clock and
keeps, per channel, the cumulative energy in J -- energy counters differenced (wraparound at the
counter's range handled), power readings integrated with the trapezoid rule. Any window's energy
is then E(b) - E(a), interpolated between readings. A failing or stale source is counted and its
last problem kept: never a silent zero."""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field

from agent.power.base import Channel, Sensor, SensorError, SensorKind


@dataclass
class Trace:
    """One channel's readings: times (monotonic s), cumulative energy (J), power (W)."""

    sensor: Sensor
    channel: Channel
    t: list[float] = field(default_factory=list)
    e: list[float] = field(default_factory=list)
    p: list[float] = field(default_factory=list)      # power readings only
    raw: float | None = None                          # last counter value, J
    errors: int = 0
    stale: int = 0
    error_t: list[float] = field(default_factory=list)
    stale_t: list[float] = field(default_factory=list)
    problem: str | None = None

    @property
    def kind(self) -> SensorKind:
        return self.sensor.kind

    @property
    def source(self) -> str:
        return f"{self.sensor.name}/{self.channel.name}"

    def add(self, t: float, value: float, age_s: float) -> None:
        if self.t and t <= self.t[-1]:               # the same reading again (a plug between
            limit = self.sensor.stale_after_s        # messages): no new information
            if limit is not None and age_s > limit:
                self.stale += 1
                self.stale_t.append(t + age_s)
                self.problem = f"no new reading for {age_s:.1f} s (stale)"
            return
        if self.kind is SensorKind.ENERGY_COUNTER:
            if self.raw is None:
                energy = 0.0
            else:
                delta = value - self.raw
                if delta < 0:                            # wrapped (or the counter was reset)
                    wrap = self.channel.max_energy_j
                    delta = value + (wrap - self.raw) if wrap else value
                energy = self.e[-1] + delta
            self.raw = value
        else:
            energy = 0.0 if not self.t else \
                self.e[-1] + (self.p[-1] + value) / 2.0 * (t - self.t[-1])
            self.p.append(value)
        self.t.append(t)
        self.e.append(energy)

    def energy_at(self, x: float) -> float | None:
        """Cumulative J at monotonic time ``x`` (linear between readings; beyond the ends, the
        nearest reading's power held). None with fewer than two readings of a counter."""
        t, e = self.t, self.e
        if not t:
            return None
        if len(t) == 1:
            return None if self.kind is SensorKind.ENERGY_COUNTER else self.p[0] * (x - t[0])
        if x <= t[0]:
            return e[0] - self._edge_power(0) * (t[0] - x)
        if x >= t[-1]:
            return e[-1] + self._edge_power(-1) * (x - t[-1])
        i = bisect.bisect_right(t, x)
        frac = (x - t[i - 1]) / (t[i] - t[i - 1])
        return e[i - 1] + frac * (e[i] - e[i - 1])

    def _edge_power(self, end: int) -> float:
        if self.kind is SensorKind.POWER:
            return self.p[end]
        i = 1 if end == 0 else len(self.t) - 1
        return (self.e[i] - self.e[i - 1]) / (self.t[i] - self.t[i - 1])


class Sampler:
    """Reads ``sensors`` every 1/``rate_hz`` s on a thread (``start``/``stop``), or by hand
    (``sample``). ``wall_offset_s`` maps its monotonic clock to unix time."""

    def __init__(self, sensors: list[Sensor], rate_hz: float = 10.0) -> None:
        self.sensors = sensors
        self.period_s = 1.0 / rate_hz
        self.rate_hz = rate_hz
        self.traces: list[list[Trace]] = [[Trace(s, c) for c in s.channels] for s in sensors]
        self.ticks: list[float] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.wall_offset_s = wall_offset()

    @property
    def all_traces(self) -> list[Trace]:
        return [tr for group in self.traces for tr in group]

    def sample(self) -> None:
        """Read every sensor once."""
        tick = time.monotonic()
        for sensor, group in zip(self.sensors, self.traces):
            try:
                reading = sensor.read()
            except SensorError as exc:
                with self.lock:
                    for tr in group:
                        tr.errors += 1
                        tr.error_t.append(tick)
                        tr.problem = str(exc)
                continue
            with self.lock:
                for tr, value in zip(group, reading.values):
                    tr.add(reading.t, value, reading.age_s)
        with self.lock:
            self.ticks.append(tick)

    def start(self) -> Sampler:
        """Take a first reading now (so a window opening now is covered), then sample on a
        thread every period."""
        self._stop.clear()
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="mlperf-power-sampler",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, then take one last reading so a window ending now is covered."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample()

    def _loop(self) -> None:
        next_t = time.monotonic()
        while True:
            next_t += self.period_s
            now = time.monotonic()
            if next_t < now:                          # fell behind: skip, do not burst
                next_t = now + self.period_s - (now - next_t) % self.period_s
            if self._stop.wait(next_t - now):
                return
            self.sample()

    # -- clocks ------------------------------------------------------------------------------
    def to_monotonic(self, unix_ms: float) -> float:
        return unix_ms / 1000.0 - self.wall_offset_s

    def to_unix_ms(self, t: float) -> int:
        return round((t + self.wall_offset_s) * 1000.0)


def wall_offset(tries: int = 5) -> float:
    """unix time - monotonic time, from the tightest of a few bracketed reads."""
    best = None
    for _ in range(tries):
        m0 = time.monotonic()
        w = time.time()
        m1 = time.monotonic()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, w - (m0 + m1) / 2)
    return best[1]
