"""What a power report says about itself: a trace for plots that adds up to its energy, and
doubts where the figures should not be trusted (an idle baseline taken on a busy host)."""

from __future__ import annotations

import time
from collections import namedtuple

import pytest

from agent.power.report import build
from agent.power.sampler import Sampler
from agent.power.session import BUSY_BASELINE_CPU_PERCENT, busy_percent, doubts
from agent.protocol import PowerReport, ScopePower
from tests.power.test_sampler import Trace

Times = namedtuple("Times", "user system idle iowait")


def test_trace_integrates_to_the_reports_energy():
    sampler = Sampler([Trace(lambda t: 5.0 + 4.0 * ((t * 7) % 1.0))], rate_hz=200).start()
    a = time.monotonic()
    time.sleep(0.6)
    b = time.monotonic()
    time.sleep(0.05)
    sampler.stop()
    report, _ = build(sampler, a, b)
    trace = report.trace
    assert trace is not None and 2 <= len(trace.t_s) <= 600
    assert trace.t_s[-1] == pytest.approx(b - a, abs=1e-3)
    widths = [y - x for x, y in zip([0.0, *trace.t_s[:-1]], trace.t_s)]
    energy = sum(w * p for w, p in zip(widths, trace.power_w))
    assert energy == pytest.approx(report.total.energy_j, rel=0.01)
    assert 5.0 <= min(trace.power_w) and max(trace.power_w) <= 9.0


def test_trace_is_bounded_on_a_long_fast_window():
    sampler = Sampler([Trace(lambda t: 3.0)], rate_hz=1000)
    for _ in range(1500):
        sampler.sample()
    a, b = sampler.all_traces[0].t[0], sampler.all_traces[0].t[-1]
    report, _ = build(sampler, a, b)
    assert len(report.trace.t_s) == 600 and set(report.trace.power_w) == {3.0}


def test_busy_percent_from_cpu_times():
    before, after = Times(10, 5, 80, 5), Times(50, 25, 100, 5)
    assert busy_percent(before, after) == pytest.approx(100 * 60 / 80)
    assert busy_percent(before, before) == 0.0


def report(method: str) -> PowerReport:
    total = ScopePower(scope="package", method=method, sources=["x"], energy_j=100.0,
                       avg_power_w=10.0, peak_power_w=12.0, samples=10, rate_hz=1.0)
    return PowerReport(status=method, total=total)


def test_a_busy_baseline_is_doubted():
    busy = BUSY_BASELINE_CPU_PERCENT + 40
    [estimate] = doubts(report("estimated"), busy)
    assert "busy baseline" in estimate and "estimate is unreliable" in estimate
    [measured] = doubts(report("measured"), busy)
    assert "net energy is unreliable" in measured
    assert doubts(report("estimated"), BUSY_BASELINE_CPU_PERCENT / 4) == []
    assert doubts(report("estimated"), None) == []
