"""Stored runs with chosen figures, for tests of what the controller makes of results
(scoring, the results views, the report, the export): a campaign in the store, each of its
jobs finished with a JobResult carrying the outcome and power report given."""

from __future__ import annotations

from agent.protocol import (
    JobResult,
    PowerReport,
    PowerTrace,
    Projection,
    ReferenceOutcome,
    ScopePower,
    Sequence,
    Target,
)
from controller.store import Store
from tests.controller.test_store import KEY, status

seq = Sequence()
TARGET = Target(metric="top1", value=0.75, direction="max", source="test")


def outcome(benchmark: str, mode: str, seconds: float, converged: bool = True,
            quality: float = 0.8, samples: int = 10_000) -> ReferenceOutcome:
    return ReferenceOutcome(
        benchmark=benchmark, mode=mode, division="open", status="success" if converged
        else "aborted", reached_target=converged, target=TARGET, quality=quality, epochs=3,
        samples_trained=samples, timed_window_s=seconds,
        time_to_target_s=seconds if converged and mode != "reduced" else None,
        time_to_train_s=seconds if converged and mode == "full" else None,
        throughput_samples_per_s=samples / seconds, epoch_time_s=seconds / 3,
        projection=Projection(kind="projection", time_to_train_s=seconds * 40,
                              epochs_to_converge=40, epoch_time_s=seconds, basis="test")
        if mode == "reduced" else None,
        stop_reason="target_reached" if converged else "max_epochs", dataset="fixture",
        config={}, source_revision="abc123", seed=1, platform="test", mllog_file="mllog.txt")


def power(energy_j: float | None, seconds: float, method: str = "measured",
          doubts: tuple[str, ...] = (), start_ms: int = 1_000_000) -> PowerReport:
    if energy_j is None:
        return PowerReport(status="none", reason="none measured: no power source found")
    total = ScopePower(scope="package", method=method, sources=["rapl/package-0"],
                       energy_j=energy_j, avg_power_w=energy_j / seconds,
                       peak_power_w=1.5 * energy_j / seconds, samples=100, rate_hz=10.0)
    return PowerReport(status=method, total=total, scopes=[total],
                       start_ms=start_ms, stop_ms=start_ms + int(seconds * 1000),
                       duration_s=seconds, meets_mlperf_power_rules=method == "measured",
                       doubts=list(doubts),
                       trace=PowerTrace(t_s=[seconds / 2, seconds],
                                        power_w=[energy_j / seconds] * 2))


def device(store: Store, agent_id: str, host_id: str | None = None,
           profile: str | None = None) -> None:
    """An approved device, online; ``host_id`` as its agent would report it."""
    st = status(agent_id, benchmarks=("ncf", "resnet"))
    caps = st.capabilities.model_copy(update={"host_id": host_id, "profile": profile,
                                              "cpu_model": "Test CPU"})
    store.enrol(st.model_copy(update={"capabilities": caps}), KEY, "test")


def campaign(store: Store, benchmark: str, mode: str, devices: list[str],
             figures: dict[str, list[tuple]], emulated: frozenset[str] = frozenset()) -> str:
    """A campaign of len(figures[device]) runs per device; each figure is
    (seconds, converged, energy_j or None[, method[, doubts[, start_ms]]]); the devices in
    ``emulated`` ran linux/arm64 containers under qemu. Returns its id."""
    runs = max(len(v) for v in figures.values())
    c = store.create_campaign([benchmark], mode, runs, devices, "all", {})
    while True:
        dispatches = store.claim_dispatches()
        if not dispatches:
            break
        for d in dispatches:
            job = d.job
            fig = figures[job.agent_id][job.run_index - 1]
            seconds, converged, energy = fig[:3]
            method = fig[3] if len(fig) > 3 else "measured"
            doubts = fig[4] if len(fig) > 4 else ()
            start_ms = fig[5] if len(fig) > 5 else 1_000_000 + 100_000 * job.run_index
            store.store_result(JobResult(
                job_id=job.id, result_id=f"r-{job.id}", agent_id=job.agent_id,
                campaign_id=job.campaign_id, benchmark=job.benchmark, mode=job.mode,
                run_index=job.run_index, status="done", started_at=1.0 + job.run_index,
                finished_at=2.0 + job.run_index,
                outcome=outcome(benchmark, mode, seconds, converged),
                power=power(energy, seconds, method, doubts, start_ms),
                **({"platform": "linux/arm64", "emulated": True}
                   if job.agent_id in emulated else {}), **seq()))
    return c.id
