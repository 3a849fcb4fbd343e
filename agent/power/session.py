"""Power for one job, around the reference run: open the sources, cool down, take an idle
baseline, sample through the run, then report the MLLOG timed window (run_start -> run_stop,
unix ms mapped onto the sampler's monotonic clock) and write its MLPerf power events."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from agent.power import registry
from agent.power.base import Context, Sensor
from agent.power.config import PowerConfig
from agent.power.cooldown import cool_down
from agent.power.mllog_power import events
from agent.power.report import build, describe_unavailable, nothing
from agent.power.sampler import Sampler
from agent.protocol import Cooldown, PowerReport, TimedWindow
from agent.untrusted import append_text

#: Host CPU use above which an idle baseline is not idle (percent of all cores).
BUSY_BASELINE_CPU_PERCENT = 20.0

NO_SOURCE = ("none measured: no power source found on this device and no power model in its "
             "profile (see `mlperf-agent sensors`)")


class JobPower:
    """Measures one job. ``prepare`` raises SensorError (a MlperfEdgeError) only for a source
    the configuration names that cannot be read; discovered sources that fail are reported."""

    def __init__(self, config: PowerConfig, host: str, root: Path = Path("/"),
                 broker: str | None = None) -> None:
        self.config, self.host = config, host
        self.ctx = Context(Path(root), broker, config.model)
        self.sensors: list[Sensor] = []
        self.unavailable: list[str] = []
        self.sampler: Sampler | None = None
        self.cooldown: Cooldown | None = None
        self.baseline: tuple[float, float] | None = None
        self.baseline_cpu_percent: float | None = None

    def prepare(self, cancel: threading.Event,
                on_cooling: Callable[[str], None] = lambda detail: None) -> None:
        sensors, missing = registry.discover(self.config, self.ctx)
        self.sensors, self.unavailable = sensors, describe_unavailable(missing)
        if sensors:
            self.sampler = Sampler(sensors, self.config.rate_hz).start()
        spec = self.config.cooldown
        if spec.threshold_c is not None:
            on_cooling(f"until the hottest zone is below {spec.threshold_c:g} C "
                       f"(at most {spec.timeout_s:g} s)")
            self.cooldown = cool_down(spec, self.ctx.root, cancel)
        if self.sampler is not None and spec.baseline_s > 0 and not cancel.is_set():
            start, before = time.monotonic(), psutil.cpu_times()
            cancel.wait(spec.baseline_s)
            self.baseline = (start, time.monotonic())
            self.baseline_cpu_percent = busy_percent(before, psutil.cpu_times())

    def stop(self) -> None:
        """Stop sampling and release the sources (idempotent)."""
        if self.sampler is not None:
            self.sampler.stop()
        registry.close_all(self.sensors)
        self.sensors = []

    def finish(self, window: TimedWindow | None) -> tuple[PowerReport, list[str]]:
        """The report for the timed window, and its MLLOG power lines (measured only)."""
        self.stop()
        if self.sampler is None:
            reason = NO_SOURCE + (f"; unreadable: {'; '.join(self.unavailable)}"
                                  if self.unavailable else "")
            return nothing(reason, unavailable=self.unavailable, cooldown=self.cooldown), []
        if window is None:
            return nothing("no timed window: the run logged no run_start/run_stop pair",
                           unavailable=self.unavailable, cooldown=self.cooldown,
                           rate_hz=self.config.rate_hz), []
        s = self.sampler
        a, b = s.to_monotonic(window.run_start_ms), s.to_monotonic(window.run_stop_ms)
        report, traces = build(s, a, b, baseline=self.baseline, unavailable=self.unavailable,
                               cooldown=self.cooldown)
        report = report.model_copy(update={
            "baseline_cpu_percent": self.baseline_cpu_percent,
            "doubts": doubts(report, self.baseline_cpu_percent)})
        if report.status != "measured":
            return report, []
        return report, events(s, traces, a, b, self.host, self.config.log_rate_hz,
                              report.total.scope)


def busy_percent(before, after) -> float:
    """The host's CPU use between two ``psutil.cpu_times()`` readings, percent of all cores
    (idle and iowait count as idle). Read directly: ``psutil.cpu_percent`` keeps one global
    previous reading that a power model may share."""
    def idle(t) -> float:
        return t.idle + getattr(t, "iowait", 0.0)
    total = sum(after) - sum(before)
    if total <= 0:
        return 0.0
    return max(0.0, min(100.0, 100.0 * (1.0 - (idle(after) - idle(before)) / total)))


def doubts(report: PowerReport, baseline_cpu_percent: float | None) -> list[str]:
    """Why a report's figures should not be trusted. An estimate from a power model takes its
    idle level from the baseline: with the host busy then, the model's whole figure is off."""
    out = []
    if baseline_cpu_percent is not None and baseline_cpu_percent > BUSY_BASELINE_CPU_PERCENT:
        what = ("the estimate is unreliable" if report.status == "estimated"
                else "net energy is unreliable (total energy is not affected)")
        out.append(f"busy baseline: the host was {baseline_cpu_percent:.0f}% busy while the "
                   f"idle baseline was taken (over {BUSY_BASELINE_CPU_PERCENT:.0f}%): {what}")
    return out


def log_power(lines: list[str], mllog_file: Path, forward: Callable[[list[str]], None],
              batch: int = 200) -> int:
    """Append the power lines to the job's mllog.txt and forward them like the reference's own
    MLLOG lines (in batches); returns how many."""
    if not lines:
        return 0
    mllog_file.parent.mkdir(parents=True, exist_ok=True)
    append_text(mllog_file, "".join(f"{line}\n" for line in lines))  # a container wrote there
    for i in range(0, len(lines), batch):
        forward(lines[i:i + batch])
    return len(lines)
