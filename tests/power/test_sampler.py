"""The one sampler: counters differenced across wraparounds, power integrated, failures
reported, windows mapped from MLLOG wall-clock ms, and power events MLCommons' tools read."""

from __future__ import annotations

import math
import threading
import time

import pytest

from agent.power import registry
from agent.power.base import Channel, Context, Reading, Sensor, SensorError, SensorKind
from agent.power.config import PowerConfig
from agent.power.mllog_power import events
from agent.power.report import build
from agent.power.sampler import Sampler
from tests.conftest import wait_for
from tests.power import sysfs


class Trace(Sensor):
    """A power reading that follows a known function of the monotonic clock."""

    name = "trace"
    kind = SensorKind.POWER

    def __init__(self, fn, scope: str = "board") -> None:
        super().__init__("trace", [Channel("trace", scope, "W")])
        self.fn = fn

    def read(self) -> Reading:
        t = time.monotonic()
        return Reading(t, (self.fn(t),))


def test_rapl_wraparound_during_a_measurement(tmp_path):
    """A writer thread advances energy_uj across several wraps while the sampler runs."""
    max_uj = 3_000_000                                   # wraps every 3 J
    zone = sysfs.rapl_zone(tmp_path, "intel-rapl:0", "package-0", max_uj - 400_000, max_uj)
    (rapl,), _ = registry.discover(PowerConfig(), Context(tmp_path))
    sampler = Sampler([rapl], rate_hz=100).start()       # first reading taken in start()
    step_uj, steps, value = 50_000, 0, max_uj - 400_000
    wraps = 0
    stop = threading.Event()

    def writer():
        nonlocal steps, value, wraps
        while not stop.is_set() and steps < 300:        # 15 J: five wraps
            value += step_uj
            if value >= max_uj:
                value -= max_uj
                wraps += 1
            (zone / "energy_uj").write_text(f"{value}\n")
            steps += 1
            time.sleep(0.002)

    w = threading.Thread(target=writer)
    w.start()
    w.join()
    sampler.stop()                                       # last reading after the writer ended
    tr = sampler.all_traces[0]
    assert wraps >= 4
    assert tr.e[-1] - tr.e[0] == pytest.approx(steps * step_uj / 1e6, abs=1e-9)
    report, _ = build(sampler, tr.t[0], tr.t[-1])
    assert report.total.energy_j == pytest.approx(15.0, abs=1e-9)
    assert report.total.scope == "package" and report.status == "measured"


def test_energy_from_a_known_power_trace_within_1_percent():
    t0 = time.monotonic()
    fn = lambda t: 10.0 + 6.0 * math.sin(2 * math.pi * (t - t0) / 0.8)
    sampler = Sampler([Trace(fn)], rate_hz=50).start()
    wait_for(lambda: len(sampler.ticks) >= 80, 30, 0.05, "80 samples")
    sampler.stop()
    tr = sampler.all_traces[0]
    a, b = tr.t[3] + 0.004, tr.t[-3] - 0.004             # a window between readings
    exact = 10.0 * (b - a) - 6.0 * 0.8 / (2 * math.pi) * (
        math.cos(2 * math.pi * (b - t0) / 0.8) - math.cos(2 * math.pi * (a - t0) / 0.8))
    report, _ = build(sampler, a, b)
    assert report.total.energy_j == pytest.approx(exact, rel=0.01)
    assert report.total.peak_power_w == pytest.approx(16.0, abs=0.5)
    assert report.total.avg_power_w == pytest.approx(exact / (b - a), rel=0.01)


def test_baseline_and_net_energy():
    sampler = Sampler([Trace(lambda t: 4.0)], rate_hz=10)
    level = {"w": 4.0}
    sampler.sensors[0].fn = lambda t: level["w"]
    for _ in range(3):
        sampler.sample()
    base = (sampler.all_traces[0].t[0], sampler.all_traces[0].t[-1])
    level["w"] = 10.0
    for _ in range(3):
        sampler.sample()
    tr = sampler.all_traces[0]
    report, _ = build(sampler, tr.t[3], tr.t[5], baseline=base)
    total = report.total
    assert total.baseline_power_w == pytest.approx(4.0)
    assert total.avg_power_w == pytest.approx(10.0)
    assert total.net_energy_j == pytest.approx(6.0 * (tr.t[5] - tr.t[3]))


class Flaky(Sensor):
    name = "flaky"
    kind = SensorKind.POWER

    def __init__(self) -> None:
        super().__init__("flaky", [Channel("rail0", "rail", "W")])
        self.fail = False

    def read(self) -> Reading:
        if self.fail:
            raise SensorError("/sys/class/hwmon/hwmon2/power1_input: OSError: [Errno 5] EIO")
        return Reading(time.monotonic(), (3.0,))


def test_a_failing_source_is_reported_not_zero():
    flaky = Flaky()
    sampler = Sampler([flaky], 10)
    sampler.sample()
    sampler.sample()
    flaky.fail = True
    for _ in range(3):
        sampler.sample()
    tr = sampler.all_traces[0]
    report, _ = build(sampler, tr.t[0], sampler.ticks[-1])
    (src,) = report.sources
    assert src.errors == 3 and "EIO" in src.problem
    assert src.avg_power_w == pytest.approx(3.0)       # held, and flagged
    assert src.samples == 2


def test_a_source_that_never_read_gives_none_and_the_reason():
    flaky = Flaky()
    flaky.fail = True
    sampler = Sampler([flaky], 10)
    sampler.sample()
    sampler.sample()
    report, _ = build(sampler, sampler.ticks[0], sampler.ticks[-1])
    assert report.status == "none" and report.total is None
    assert report.sources[0].energy_j is None and "EIO" in report.reason


def test_mlperf_rules_flag():
    sampler = Sampler([Trace(lambda t: 5.0)], 10)
    base = time.monotonic()
    tr = sampler.all_traces[0]
    for i in range(70):                                 # 70 readings over 69 s, by hand
        tr.add(base + i, 5.0, 0.0)
    ok, _ = build(sampler, base, base + 69)
    assert ok.meets_mlperf_power_rules and ok.rules_detail.endswith(": met")
    short, _ = build(sampler, base, base + 30)
    assert not short.meets_mlperf_power_rules and "fewer than 60" in short.rules_detail
    sparse = Sampler([Trace(lambda t: 5.0)], 10)
    for i in range(70):
        sparse.all_traces[0].add(base + 2 * i, 5.0, 0.0)
    slow, _ = build(sparse, base, base + 138)
    assert not slow.meets_mlperf_power_rules and "under 1 sample/s" in slow.rules_detail


def test_power_events_read_by_mlperf_logging_give_the_same_energy(tmp_path):
    from mlperf_logging.compliance_checker.mlp_parser import parse_file
    from mlperf_logging.mllog import constants
    from mlperf_logging.result_summarizer.result_summarizer import _compute_power_node

    sampler = Sampler([Trace(lambda t: 7.0 + 3.0 * math.sin(t))], 10)
    base = time.monotonic()
    tr = sampler.all_traces[0]
    for i in range(200):                                # 20 s at 10 Hz, by hand
        tr.add(base + i * 0.1, 7.0 + 3.0 * math.sin(i * 0.1), 0.0)
    a, b = base + 0.35, base + 19.52
    report, traces = build(sampler, a, b)
    lines = events(sampler, traces, a, b, host="orin-1", log_rate_hz=1.0,
                   scope=report.total.scope)
    keys = [line.split('"key": "')[1].split('"')[0] for line in lines]
    assert keys[0] == constants.POWER_MEASUREMENT_START
    assert keys[-1] == constants.POWER_MEASUREMENT_STOP
    assert set(keys[1:-1]) == {constants.POWER_READING} and len(keys) == 21
    log = tmp_path / "node_orin-1.txt"
    log.write_text("\n".join(lines) + "\n")
    loglines, errors = parse_file(str(log), "4.1.0")
    assert not errors
    start = next(x.timestamp for x in loglines if x.key == "power_measurement_start")
    stop = next(x.timestamp for x in loglines if x.key == "power_measurement_stop")
    assert (start, stop) == (sampler.to_unix_ms(a), sampler.to_unix_ms(b))
    joules = _compute_power_node(loglines, stop - start)
    assert joules == pytest.approx(report.total.energy_j, rel=1e-4)


def test_wall_clock_mapping_round_trips():
    sampler = Sampler([], 10)
    now_ms = time.time() * 1000
    mono = sampler.to_monotonic(now_ms)
    assert abs(mono - time.monotonic()) < 1.0
    assert sampler.to_unix_ms(mono) == round(now_ms)
