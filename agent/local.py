"""``mlperf-agent run``: one benchmark on this device with no broker and no controller.

It goes through exactly the job path the service uses (JobExecution), so what it prints is the
result a job would have produced.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agent import mllog
from agent.display import THROUGHPUT_DEFINITION, quality_text, significant
from agent.envelope import encode
from agent.errors import JobError
from agent.jobs import JobExecution, Workspace, validate
from agent.power.config import PowerConfig
from agent.power.view import summary_rows
from agent.profiles import device
from agent.protocol import JobAssignment, JobResult, Sequence
from agent.settings import AgentSettings


def run_local(settings: AgentSettings, benchmark: str, mode: str, seed: int,
              params: dict[str, str], max_steps: int | None, max_seconds: float | None,
              as_json: bool, division: str | None = None, runtime: str = "torch",
              model_sha256: str | None = None, models_dir: Path | None = None) -> JobResult:
    """Validate, run and print one job; Ctrl-C cancels it (reported as cancelled)."""
    settings.check_work_dir()
    seq = Sequence()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        job = JobAssignment(job_id=f"local-{benchmark}-{mode}-{stamp}", campaign_id="local",
                            benchmark=benchmark, mode=mode, run_index=1, seed=seed,
                            params=params, max_steps=max_steps, max_seconds=max_seconds,
                            division=division, runtime=runtime,
                            model_sha256=model_sha256, **seq())
    except ValueError as exc:                    # pydantic: a bad name or mode
        raise JobError(f"invalid job: {_first_error(exc)}") from None
    validate(job)
    console = Console(stderr=True)
    status = console.status(f"{benchmark} {mode}: starting")
    progress = {"epoch": None, "quality": None}

    def on_mllog(lines: list[str]) -> None:
        for line in lines:
            event = mllog.parse(line) or {}
            if event.get("key") == "epoch_start":
                progress["epoch"] = event.get("metadata", {}).get("epoch_num")
            elif event.get("key") == "eval_accuracy":
                value = event.get("value")    # a number, or Mask R-CNN's {"BBOX": .., "SEGM": ..}
                progress["quality"] = (" ".join(f"{k} {v}" for k, v in value.items())
                                       if isinstance(value, dict) else value)
        last = progress["quality"] if progress["quality"] is not None else "-"
        status.update(f"{benchmark} {mode}: epoch {progress['epoch'] or '-'}, last eval {last}")

    # The same device profile a job on this device gets (power sources, cool-down, model),
    # so a local run measures exactly as `mlperf-agent start` would; always native here.
    found = device.setup(settings.profile, settings.profiles_dir, containers=False)
    fields = device.workspace_fields(found, settings.power)
    fields.setdefault("power", PowerConfig())
    execution = JobExecution(
        job, settings.name, Workspace(settings.data_root, settings.work_dir, settings.name,
                                      power_root=settings.power_root, models_dir=models_dir,
                                      **fields), seq,
        on_state=lambda state, _d: status.update(f"{benchmark} {mode}: {state.value}"),
        on_mllog=on_mllog)
    previous = signal.signal(signal.SIGINT, lambda *_: execution.request_cancel(
        "cancelled by Ctrl-C"))
    try:
        with status:
            result = execution.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    if as_json:
        sys.stdout.write(encode(result).decode() + "\n")
    else:
        print_result(result, settings.work_dir, Console())
    return result


def print_result(result: JobResult, work_dir, console: Console) -> None:
    """A short human card of one result; every figure says what kind of figure it is."""
    out = result.outcome
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("benchmark", f"{result.benchmark} ({result.mode} mode)")
    table.add_row("status", result.status + (f": {result.error}" if result.error else ""))
    if out is not None:
        table.add_row("quality", quality_text(out))
        table.add_row("timed window", f"{out.timed_window_s:.2f} s (MLLOG run_start -> run_stop,"
                                      " measured)")
        if out.time_to_train_s is not None:
            table.add_row("time to train",
                          f"{out.time_to_train_s:.2f} s (MLPerf result, full mode)")
        elif out.time_to_target_s is not None:
            table.add_row("time to target", f"{out.time_to_target_s:.2f} s ({out.mode} target; "
                                            "not an MLPerf result)")
        if out.throughput_samples_per_s is not None:
            table.add_row("throughput", f"{significant(out.throughput_samples_per_s)} samples/s "
                                        f"(measured; {THROUGHPUT_DEFINITION})")
        if out.projection is not None:
            table.add_row("projected time to train",
                          f"{out.projection.time_to_train_s:,.0f} s -- PROJECTION: "
                          f"{out.projection.basis}")
        table.add_row("dataset", out.dataset)
        table.add_row("source", out.source_revision)
    for label, text in summary_rows(result.power):      # energy: measured, estimated or none
        table.add_row(label, text)
    if result.device_state:
        table.add_row("device", "; ".join(state_text(s) for s in result.device_state))
    table.add_row("output", str(work_dir / "jobs" / result.job_id))
    console.print(table)


def state_text(snap) -> str:
    """'start: 1,200-1,800 MHz (allowed 1,800, schedutil), 45.0 °C' (what the device exposes)."""
    parts = []
    if snap.cpu_freq_min_mhz is not None:
        freq = f"{snap.cpu_freq_min_mhz:,.0f}-{snap.cpu_freq_max_mhz:,.0f} MHz"
        extra = [f"allowed {snap.cpu_freq_allowed_mhz:,.0f}"] if snap.cpu_freq_allowed_mhz else []
        extra += [snap.governor] if snap.governor else []
        parts.append(freq + (f" ({', '.join(extra)})" if extra else ""))
    if snap.temperature_c is not None:
        parts.append(f"{snap.temperature_c:.1f} °C")
    return f"{snap.when}: {', '.join(parts) or 'CPU frequency and temperature not exposed'}"


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)
