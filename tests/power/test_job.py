"""A real job (NCF smoke, as `mlperf-agent run` and `start` run it) on a fixture RAPL tree:
the result carries the power report for the MLLOG timed window, and the job's mllog.txt and
forwarded MLLOG lines carry the power events MLCommons' tools read."""

from __future__ import annotations

import threading
import time

import pytest

from agent.errors import ConfigError
from agent.jobs import JobExecution, Workspace
from agent.power.config import CooldownSpec, PowerConfig, PowerModel
from agent.power.session import JobPower
from agent.protocol import JobAssignment, JobState, Sequence
from agent.settings import AgentSettings
from tests.power import sysfs

pytestmark = pytest.mark.integration


class Writer(threading.Thread):
    """Advances package-0's energy_uj at ``watts`` (changeable) while the job runs."""

    def __init__(self, zone) -> None:
        super().__init__(daemon=True)
        self.file, self.watts, self.stop = zone / "energy_uj", 3.0, threading.Event()

    def run(self) -> None:
        value, last = int(self.file.read_text()), time.monotonic()
        while not self.stop.wait(0.005):
            now = time.monotonic()
            value += int(self.watts * (now - last) * 1e6)
            last = now
            self.file.write_text(f"{value}\n")


def test_a_job_result_carries_the_power_report_and_the_power_events(tmp_path):
    from mlperf_logging.compliance_checker.mlp_parser import parse_file
    from mlperf_logging.result_summarizer.result_summarizer import _compute_power_node

    root = tmp_path / "host"
    zones = sysfs.rapl_laptop(root)
    sysfs.write(root / "sys/class/thermal/thermal_zone0/temp", 38500)     # m°C
    writer = Writer(zones["package-0"])
    writer.start()
    power = PowerConfig(rate_hz=20, cooldown=CooldownSpec(threshold_c=45, poll_s=0.1,
                                                          baseline_s=0.5))
    states, forwarded = [], []

    def on_state(state, _detail):
        states.append(state)
        if state is JobState.RUNNING:
            writer.watts = 15.0                   # the run draws more than idle

    seq = Sequence()
    job = JobAssignment(job_id="power-job-1", campaign_id="c1", benchmark="ncf", mode="smoke",
                        run_index=1, seed=1, **seq())
    ws = Workspace(tmp_path / "data", tmp_path / "work", "orin-1", power=power, power_root=root)
    try:
        result = JobExecution(job, "orin-1", ws, seq, on_state=on_state,
                              on_mllog=forwarded.extend).run()
    finally:
        writer.stop.set()
    assert result.status == "done", result.error
    assert states[:3] == [JobState.PREPARING, JobState.COOLING, JobState.RUNNING]
    rep = result.power
    assert rep.status == "measured" and rep.window == "timed"
    win = result.timed_window
    assert abs(rep.start_ms - win.run_start_ms) <= 1 and abs(rep.stop_ms - win.run_stop_ms) <= 1
    assert rep.cooldown.reached and rep.cooldown.start_c == 38.5
    total = rep.total
    assert total.scope == "platform"                    # psys is the widest scope here
    package = next(s for s in rep.scopes if s.scope == "package")
    assert package.method == "measured" and package.samples >= 1
    assert package.rate_hz > 5.0                          # configured 20/s
    assert 2.0 < package.baseline_power_w < 6.0          # idle ~3 W
    assert 10.0 < package.avg_power_w < 20.0             # running ~15 W
    assert package.net_energy_j == pytest.approx(
        package.energy_j - package.baseline_power_w * rep.duration_s)
    assert 0.0 <= rep.baseline_cpu_percent <= 100.0       # judged: was the host idle?
    assert rep.trace is not None and rep.trace.t_s[-1] == pytest.approx(rep.duration_s, abs=0.01)
    rules_met = total.samples >= 60 and total.rate_hz >= 1.0
    assert rep.meets_mlperf_power_rules == rules_met
    assert rep.rules_detail.startswith(f"{total.samples} samples at ")

    # platform (psys) stays flat in this fixture: its log says 0 W, and says it
    mllog = ws.job_dir(job.job_id) / "mllog.txt"
    lines = mllog.read_text().splitlines()
    assert len(lines) == result.mllog_lines
    power_lines = [x for x in lines if '"key": "power_' in x]
    assert power_lines and all(x in forwarded for x in power_lines)
    assert '"power_measurement_start"' in power_lines[0]
    assert '"power_measurement_stop"' in power_lines[-1]
    node = tmp_path / "node_orin-1.txt"
    node.write_text("\n".join(power_lines) + "\n")
    loglines, _ = parse_file(str(node), "4.1.0")
    assert _compute_power_node(loglines, rep.stop_ms - rep.start_ms) == pytest.approx(
        total.energy_j, abs=0.01)


def test_no_source_and_no_model_says_none_measured_not_zero(tmp_path):
    power = JobPower(PowerConfig(), "vm-1", root=tmp_path)
    power.prepare(threading.Event())
    report, lines = power.finish(None)
    assert report.status == "none" and report.total is None and lines == []
    assert report.reason.startswith("none measured: no power source found")


def test_estimate_is_labelled_and_never_logged_as_mlperf_power(tmp_path):
    from agent.protocol import TimedWindow

    power = JobPower(PowerConfig(rate_hz=50, model=PowerModel(idle_w=3, max_w=9),
                                 cooldown=CooldownSpec(baseline_s=0)), "vm-1", root=tmp_path)
    power.prepare(threading.Event())
    start = int(time.time() * 1000)
    power.sampler.sample()
    time.sleep(0.2)
    stop = int(time.time() * 1000)
    report, lines = power.finish(TimedWindow(run_start_ms=start, run_stop_ms=stop,
                                             duration_s=(stop - start) / 1000))
    assert report.status == "estimated" and report.total.method == "estimated"
    assert 3.0 <= report.total.avg_power_w <= 9.0
    assert lines == [] and not report.meets_mlperf_power_rules
    assert "an estimate is not a measurement" in report.rules_detail


def test_settings_power_mapping_is_validated(tmp_path):
    s = AgentSettings(work_dir=tmp_path, power={"rate_hz": 20, "sources": [
        {"name": "shelly", "options": {"topic": "shellyplusplugs-1"}}]})
    assert s.power.rate_hz == 20 and s.power.sources[0].name == "shelly"
    with pytest.raises(ConfigError, match="power.rate_hzz: Extra inputs"):
        AgentSettings(work_dir=tmp_path, power={"rate_hzz": 20})
    with pytest.raises(ConfigError, match="power.cooldown.baseline_s"):
        AgentSettings(work_dir=tmp_path, power={"cooldown": {"baseline_s": -1}})


def test_a_named_source_that_fails_fails_the_job_with_the_fix(tmp_path):
    from agent.power.config import SourceSpec

    seq = Sequence()
    job = JobAssignment(job_id="power-job-2", campaign_id="c1", benchmark="ncf", mode="smoke",
                        run_index=1, seed=1, **seq())
    ws = Workspace(tmp_path / "data", tmp_path / "work", "orin-1", power_root=tmp_path,
                   power=PowerConfig(sources=[SourceSpec(name="ina3221")]))
    result = JobExecution(job, "orin-1", ws, seq).run()
    assert result.status == "failed"
    assert result.error.startswith("power measurement: power source 'ina3221' is not present")


def test_a_missing_dataset_fails_before_the_cool_down(tmp_path):
    """Found in preparing, with what the data root holds -- not after up to 600 s of cooling
    and the idle baseline."""
    root = tmp_path / "host"
    sysfs.write(root / "sys/class/thermal/thermal_zone0/temp", 95000)     # hot: would wait
    power = PowerConfig(cooldown=CooldownSpec(threshold_c=45, timeout_s=600, poll_s=0.1,
                                              baseline_s=5))
    (tmp_path / "data" / "ml-1m").mkdir(parents=True)
    (tmp_path / "data" / "ml-1m" / "ratings.dat").write_text("1::1::5::978300760\n")
    states = []
    job = JobAssignment(job_id="no-data", campaign_id="c1", benchmark="ncf", mode="reduced",
                        run_index=1, seed=1, seq=0, sent_at=0.0)
    started = time.monotonic()
    result = JobExecution(job, "pi", Workspace(tmp_path / "data", tmp_path / "work", "pi",
                                               power=power, power_root=root), Sequence(),
                          on_state=lambda s, d: states.append(s)).run()
    assert time.monotonic() - started < 30
    assert result.status == "failed" and states == [JobState.PREPARING, JobState.FAILED]
    assert "--set dataset=ml-1m" in result.error and "holds: ml-1m" in result.error
