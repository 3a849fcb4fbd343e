"""Tables and JSON for the controller's commands. Every figure carries its kind: the mode of
the run, measured vs projected, and whether the target was reached."""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table

from agent.protocol import JobResult
from controller.models import Campaign, Device, Job, Result


def _ago(t: float | None) -> str:
    if t is None:
        return "-"
    s = max(0.0, time.time() - t)
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago" if s < 7200 else \
        f"{s / 3600:.0f} h ago"


# -- devices ---------------------------------------------------------------------------------
def device_dict(d: Device) -> dict[str, Any]:
    return {"agent_id": d.agent_id, "name": d.name, "state": d.state, "tags": d.tags,
            "last_seen": d.last_seen, "reason": d.reason, "capabilities": d.capabilities,
            "load": d.load}


def devices_table(devices: list[Device]) -> Table:
    table = Table(title="Devices")
    for col in ("device", "state", "last seen", "profile", "arch", "cpus", "memory",
                "accelerators", "benchmarks", "tags", "load"):
        table.add_column(col)
    for d in devices:
        caps = d.capabilities or {}
        load = d.load or {}
        mem = caps.get("memory_total_bytes")
        state = f"[green]{d.state}[/]" if d.state == "online" else f"[red]{d.state}[/]"
        table.add_row(
            d.name, state + (f" ({d.reason})" if d.state != "online" and d.reason else ""),
            _ago(d.last_seen), caps.get("profile") or "-", caps.get("arch", "-"),
            str(caps.get("cpu_count", "-")),
            f"{mem / 2**30:.1f} GiB" if mem else "-",
            ", ".join(caps.get("accelerators", [])) or "-",
            ", ".join(caps.get("benchmarks", [])) or "-", ", ".join(d.tags or []) or "-",
            (f"cpu {load['cpu_percent']:.0f}% mem {load['memory_percent']:.0f}%"
             + (f" {load['temperature_c']:.0f}°C" if load.get("temperature_c") is not None
                else "")) if load else "-")
    return table


# -- results ---------------------------------------------------------------------------------
def result_dict(job: Job, result: Result | None, device: str) -> dict[str, Any]:
    return {"campaign_id": job.campaign_id, "job_id": job.id, "device": device,
            "agent_id": job.agent_id, "benchmark": job.benchmark, "mode": job.mode,
            "run": job.run_index, "seed": job.seed, "state": job.state, "detail": job.detail,
            "result": result.payload if result else None,
            **power_fields(result.payload if result else None)}


def power_fields(payload: dict[str, Any] | None) -> dict[str, Any]:
    """energy_j/avg_power_w over the timed window (headline scope), with how they were got:
    power_method is measured, estimated or none (nothing to measure with; figures None)."""
    power = (payload or {}).get("power") or {}
    total = power.get("total") or {}
    return {"energy_j": total.get("energy_j"), "avg_power_w": total.get("avg_power_w"),
            "power_method": power.get("status"), "power_scope": total.get("scope"),
            "meets_mlperf_power_rules": power.get("meets_mlperf_power_rules")}


def energy_cells(payload: JobResult | None) -> tuple[str, str]:
    """(energy J, average W) cells: '~' marks an estimate; 'none' says nothing was measured."""
    power = payload.power if payload else None
    if power is None:
        return "-", "-"
    if power.total is None:
        return "none", "-"
    mark = "~" if power.total.method == "estimated" else ""
    return f"{mark}{power.total.energy_j:,.1f}", f"{mark}{power.total.avg_power_w:.2f}"


def time_cell(job: Job, result: Result | None) -> str:
    """time-to-train: a result only in full mode; smoke shows its time to the smoke target;
    reduced shows a projection, always marked as one."""
    if result is None:
        return "-"
    out = JobResult.model_validate(result.payload).outcome
    if out is None:
        return "-"
    if out.time_to_train_s is not None:
        return f"{out.time_to_train_s:.2f}"
    if out.time_to_target_s is not None:
        return f"{out.time_to_target_s:.2f} ({out.mode})"
    if out.projection is not None:
        return f"~{out.projection.time_to_train_s:,.0f} (projection)"
    return f"not reached in {out.timed_window_s:.2f}"


def results_table(rows: list[tuple[Job, Result | None, str]], title: str) -> Table:
    table = Table(title=title, caption="time-to-train: measured, MLLOG run_start -> run_stop. "
                  "smoke: synthetic data, never an MLPerf result. ~: projection, an estimate. "
                  "energy/avg W: same window, widest scope measured (~: estimated; none: "
                  "no sensor).")
    for col, kw in (("device", {}), ("benchmark", {}), ("mode", {}), ("run", {"justify": "right"}),
                    ("status", {}), ("time-to-train s", {"justify": "right", "no_wrap": True}),
                    ("quality", {"justify": "right"}), ("target", {}), ("reached", {}),
                    ("energy J", {"justify": "right"}), ("avg W", {"justify": "right"})):
        table.add_column(col, **kw)
    for job, result, device in rows:
        payload = JobResult.model_validate(result.payload) if result else None
        out = payload.outcome if payload else None
        status = job.state if not payload or not payload.error else \
            f"{job.state}: {payload.error[:60]}"
        color = {"done": "green", "failed": "red", "lost": "red", "cancelled": "yellow"}.get(
            job.state, "cyan")
        table.add_row(device, job.benchmark, job.mode, str(job.run_index),
                      f"[{color}]{status}[/]", time_cell(job, result),
                      "-" if out is None or out.quality is None
                      else f"{out.target.metric} {out.quality:.4f}",
                      "-" if out is None else
                      f"{'>=' if out.target.direction == 'max' else '<='} {out.target.value:g}",
                      "-" if out is None else ("yes" if out.reached_target else "no"),
                      *energy_cells(payload))
    return table


# -- campaigns -------------------------------------------------------------------------------
def campaign_dict(c: Campaign, counts: dict[str, int]) -> dict[str, Any]:
    return {"campaign_id": c.id, "state": c.state, "created_at": c.created_at,
            "finished_at": c.finished_at, "benchmarks": c.benchmarks, "mode": c.mode,
            "runs": c.runs, "devices": c.devices, "params": c.params, "jobs": dict(counts)}


def campaigns_table(items: list[tuple[Campaign, dict[str, int]]]) -> Table:
    table = Table(title="Campaigns")
    for col in ("campaign", "state", "created", "benchmarks", "mode", "runs", "devices", "jobs"):
        table.add_column(col)
    for c, counts in items:
        table.add_row(c.id, c.state, _ago(c.created_at), ",".join(c.benchmarks), c.mode,
                      str(c.runs), c.devices,
                      " ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return table
