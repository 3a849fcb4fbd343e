"""One flat record per benchmark run, with every figure labelled: what `results`, `score`,
`report` and `export` read. Built from the stored job, its result and its device; nothing here
is computed that the result did not carry, except the doubts only the controller can see (two
agents on one host measuring the same power at the same time).

Throughput has one definition everywhere (THROUGHPUT_DEFINITION); samples/J divides the
samples trained in the timed window by the energy over that window."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from agent.platforms import UnsupportedPlatform, host_platform
from agent.protocol import JobResult
from controller.models import Device, Job, Result
from controller.store import log_missing

# Re-exported: the controller's views and the report name them from here.
from agent.display import (  # noqa: E402,F401
    SAMPLES_PER_J_DEFINITION,
    THROUGHPUT_DEFINITION,
    significant,
)


@dataclass(frozen=True)
class Run:
    campaign_id: str
    job_id: str
    device: str
    agent_id: str
    benchmark: str
    mode: str
    run_index: int
    attempt: int
    superseded: bool
    state: str
    detail: str | None
    seed: int | None = None
    retry_of: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    division: str | None = None
    converged: bool = False                 # reached its target (the mode's target)
    quality: float | None = None
    quality_parts: dict[str, float] | None = None   # each part of a joint quality (box/mask AP)
    metric: str | None = None
    target: float | None = None
    direction: str | None = None
    time_to_train_s: float | None = None     # full mode and converged: an MLPerf result
    time_to_target_s: float | None = None    # smoke: time to the smoke target, never a result
    projection_s: float | None = None        # reduced: projected time-to-train, an estimate
    projection_basis: str | None = None
    timed_window_s: float | None = None
    samples: int | None = None
    throughput_sps: float | None = None
    energy_j: float | None = None
    avg_power_w: float | None = None
    peak_power_w: float | None = None
    power_method: str | None = None          # measured | estimated | none | None (no report)
    power_scope: str | None = None
    power_note: str | None = None            # why there is no figure
    sensors: tuple[str, ...] = ()
    meets_power_rules: bool = False
    doubts: tuple[str, ...] = ()             # each makes the energy figure unscoreable
    notes: tuple[str, ...] = ()              # worth knowing; the figures still stand
    # MLLOG lines the agent forwarded (its result says how many) that the store lacks: job
    # events lost on the way (a worker killed holding them). The log is not evidence then.
    log_missing: int = 0
    window_ms: tuple[int, int] | None = None
    trace: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    profile: str | None = None
    host_id: str | None = None
    hostname: str | None = None
    cpu_model: str | None = None
    arch: str | None = None
    accelerators: tuple[str, ...] = ()
    image_digest: str | None = None
    # The platform the run's code ran as (its container's), and whether under emulation
    # (qemu on another architecture): such times and energy are never a board's.
    ran_as: str | None = None
    emulated: bool = False
    runtime: str = "torch"                   # litert: the interpreter ran model_sha256
    model_sha256: str | None = None
    source_revision: str | None = None
    dataset: str | None = None
    platform: str | None = None
    # A run several devices trained together (controller.group_runs folds its members into
    # rank 0's row): how many, each node's figures, and throughput against N single nodes.
    group_id: str | None = None
    rank: int = 0
    nodes: int = 1
    node_detail: tuple[dict[str, Any], ...] = ()
    scaling_efficiency: float | None = None
    scaling_basis: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def final(self) -> bool:
        """Answers its run: not superseded by a retry, and in a final state."""
        return not self.superseded and self.state in ("done", "failed", "cancelled", "lost")

    @property
    def kind(self) -> str:
        """result (full mode, converged), smoke, projection (reduced), or not converged."""
        if self.time_to_train_s is not None:
            return "result"
        if self.mode == "smoke":
            return "smoke"
        if self.mode == "reduced":
            return "projection"
        return "not converged"

    @property
    def system(self) -> str:
        """What is scored and compared: a device, or a group of nodes (its devices by rank)."""
        if self.nodes <= 1:
            return self.agent_id
        ids = [d["agent_id"] for d in self.node_detail] or [self.agent_id]
        return f"{self.nodes} nodes: " + ",".join(ids)

    @property
    def energy_trusted(self) -> bool:
        return self.energy_j is not None and not self.doubts

    @property
    def samples_per_j(self) -> float | None:
        if self.samples and self.energy_j and self.energy_j > 0:
            return self.samples / self.energy_j
        return None

    @property
    def time_shown_s(self) -> float | None:
        """The time this run is known by: its time-to-train, its time to the smoke target,
        or its projection (each with its kind)."""
        return self.time_to_train_s if self.time_to_train_s is not None else \
            self.time_to_target_s if self.time_to_target_s is not None else self.projection_s

    def as_dict(self) -> dict[str, Any]:
        """The flat row of `results --json` and `--csv` (the nested result is added there)."""
        return {
            "campaign_id": self.campaign_id, "job_id": self.job_id, "device": self.device,
            "agent_id": self.agent_id, "benchmark": self.benchmark, "mode": self.mode,
            "division": self.division, "run": self.run_index, "attempt": self.attempt,
            "retry_of": self.retry_of, "superseded": self.superseded, "seed": self.seed,
            "state": self.state, "detail": self.detail,
            "error": self.error, "started_at": self.started_at,
            "finished_at": self.finished_at, "kind": self.kind, "converged": self.converged,
            "time_to_train_s": self.time_to_train_s,
            "time_to_target_s": self.time_to_target_s, "projection_s": self.projection_s,
            "timed_window_s": self.timed_window_s, "quality": self.quality,
            "quality_parts": self.quality_parts, "metric": self.metric, "target": self.target,
            "samples": self.samples,
            "throughput_samples_per_s": self.throughput_sps, "energy_j": self.energy_j,
            "avg_power_w": self.avg_power_w, "peak_power_w": self.peak_power_w,
            "samples_per_j": self.samples_per_j, "power_method": self.power_method,
            "power_scope": self.power_scope, "meets_mlperf_power_rules": self.meets_power_rules,
            "power_doubts": list(self.doubts), "power_notes": list(self.notes),
            "profile": self.profile, "image_digest": self.image_digest,
            "platform": self.ran_as, "emulated": self.emulated,
            "runtime": self.runtime, "model_sha256": self.model_sha256,
            "source_revision": self.source_revision, "sensors": list(self.sensors),
            "dataset": self.dataset, "log_lines_missing": self.log_missing,
            "nodes": self.nodes, "group_id": self.group_id,
            "node_detail": [dict(d) for d in self.node_detail],
            "scaling_efficiency": self.scaling_efficiency, "scaling_basis": self.scaling_basis,
        }


def build(job: Job, result: Result | None, device_name: str,
          device: Device | None = None) -> Run:
    caps = (device.capabilities or {}) if device is not None else {}
    base = Run(campaign_id=job.campaign_id, job_id=job.id, device=device_name,
               agent_id=job.agent_id, benchmark=job.benchmark, mode=job.mode,
               run_index=job.run_index, attempt=job.attempt or 1,
               superseded=bool(job.superseded), state=job.state, detail=job.detail,
               seed=job.seed, retry_of=job.retry_of,
               division=job.division, profile=caps.get("profile"),
               host_id=caps.get("host_id"), hostname=caps.get("hostname"),
               cpu_model=caps.get("cpu_model"), arch=caps.get("arch"),
               accelerators=tuple(caps.get("accelerators") or ()),
               image_digest=job.image_digest, runtime=job.runtime or "torch",
               model_sha256=job.model_sha256, group_id=job.group_id, rank=job.rank or 0,
               nodes=job.world_size or 1)
    if result is None:
        return base
    base = replace(base, extra={"result": result.payload})
    try:
        payload = JobResult.model_validate(result.payload)
    except ValidationError:                      # stored by an older version: show the state
        return base
    out, power = payload.outcome, payload.power
    fields: dict[str, Any] = {"started_at": payload.started_at,
                              "finished_at": payload.finished_at, "error": payload.error,
                              "image_digest": payload.image_digest or job.image_digest,
                              "ran_as": payload.platform,
                              "emulated": emulated(payload, caps),
                              "log_missing": log_missing(job, payload)}
    if out is not None:
        fields.update(
            division=out.division or job.division, converged=out.reached_target,
            quality=out.quality, quality_parts=out.quality_parts,
            metric=out.target.metric, target=out.target.value,
            direction=out.target.direction, time_to_train_s=out.time_to_train_s,
            time_to_target_s=out.time_to_target_s if out.mode == "smoke" else None,
            projection_s=out.projection.time_to_train_s if out.projection else None,
            projection_basis=out.projection.basis if out.projection else None,
            timed_window_s=out.timed_window_s, samples=out.samples_trained,
            throughput_sps=out.throughput_samples_per_s,
            source_revision=out.source_revision, dataset=out.dataset, platform=out.platform)
    if power is not None:
        fields.update(power_method=power.status, power_note=power.reason,
                      meets_power_rules=power.meets_mlperf_power_rules,
                      sensors=tuple(sorted({s.source for s in power.sources})))
        if power.start_ms is not None and power.stop_ms is not None:
            fields["window_ms"] = (power.start_ms, power.stop_ms)
        if power.total is not None:
            fields.update(energy_j=power.total.energy_j, avg_power_w=power.total.avg_power_w,
                          peak_power_w=power.total.peak_power_w,
                          power_scope=power.total.scope)
            doubts = tuple(d for d in power.doubts if power.status == "estimated")
            notes = tuple(d for d in power.doubts if power.status != "estimated")
            fields.update(doubts=doubts, notes=notes)
        if power.trace is not None:
            fields["trace"] = (tuple(power.trace.t_s), tuple(power.trace.power_w))
    return replace(base, **fields)


def emulated(payload: JobResult, caps: dict) -> bool:
    """The agent says so, or its run's platform is not its host's architecture (an agent that
    left the flag out is not taken at its word)."""
    if payload.emulated or not payload.platform or not caps.get("arch"):
        return payload.emulated
    try:
        return host_platform(caps["arch"]) != payload.platform
    except UnsupportedPlatform:                  # a host arch that is neither platform's
        return True


def load(store, campaign_ids: list[str] | None = None) -> list[Run]:
    """Every run of these campaigns (all campaigns: None), oldest first, with the shared-host
    doubts judged against every stored run."""
    with store.tx() as s:
        q = (select(Job, Result, Device)
             .outerjoin(Result, Result.job_id == Job.id)
             .outerjoin(Device, Device.agent_id == Job.agent_id)
             .order_by(Job.created_at, Job.id))
        everything = [build(j, r, d.name if d else j.agent_id, d) for j, r, d in s.execute(q)]
    everything = fold_groups(everything)
    chosen = [r for r in everything if campaign_ids is None or r.campaign_id in campaign_ids]
    return shared_host_doubts(chosen, everything)


def fold_groups(runs: list[Run]) -> list[Run]:
    """Runs with a group's members folded into its rank 0 (controller.group_runs)."""
    from controller.group_runs import fold

    return fold(runs)


def shared_host_doubts(runs: list[Run], everything: list[Run]) -> list[Run]:
    """Mark energy that another agent on the same host was measuring at the same time: both
    read the same package or the same model, so neither figure is one device's."""
    # Who measured where and when: single runs, and each node of a group run.
    by_host: dict[str, list[tuple[str, str, tuple[int, int]]]] = {}
    for r in everything:
        if r.nodes == 1 and r.host_id and r.window_ms and r.energy_j is not None:
            by_host.setdefault(r.host_id, []).append((r.agent_id, r.device, r.window_ms))
        for d in r.node_detail:
            if d.get("host_id") and d.get("window_ms") and d.get("energy_j") is not None:
                by_host.setdefault(d["host_id"], []).append(
                    (d["agent_id"], d["device"], tuple(d["window_ms"])))
    out = []
    for r in runs:
        if r.nodes > 1:                  # judged among its nodes when the group was folded
            out.append(r)
            continue
        rivals = [(agent, device) for agent, device, window in by_host.get(r.host_id or "", [])
                  if agent != r.agent_id and r.window_ms and window[0] < r.window_ms[1]
                  and r.window_ms[0] < window[1]]
        if rivals:
            names = ", ".join(sorted({device for _, device in rivals}))
            r = replace(r, doubts=r.doubts + (
                f"shared host: {names} on the same host measured power at the same time; "
                "this figure is not this device's alone",))
        out.append(r)
    return out
