"""MLPerf scoring of stored runs, per benchmark and device.

As MLCommons' result summarizer does it (mlperf_logging.result_summarizer): a benchmark needs
the number of runs in mlperf_logging's benchmark metadata; the fastest and the slowest
time-to-train are dropped and the rest averaged; a run that did not converge counts as the
slowest (it is the one dropped), and more than one such run invalidates the score. Energy is
scored over the same runs: ordered by their time-to-train, the first and the last dropped, the
rest averaged (the summarizer's ``_index_olympic_average``).

Only full-mode runs are results. Smoke runs show their time to the smoke target and reduced
runs their projection, each labelled, never as a score. An estimated energy the agent or the
controller doubts (busy baseline, shared host) is never scored."""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import mean
from typing import Any

from controller.runs import Run

MAX_NOT_CONVERGED = 1
#: Benchmarks mlperf_logging's table lacks: our choice, and why.
OUR_RUN_COUNTS = {
    "sentiment": (10, "mlperf-edge's choice: MLPerf v0.5 sentiment had no run count in "
                      "mlperf_logging; 10 as for the other small, high-variance benchmarks "
                      "(ncf, transformer)"),
    "deepspeech2": (10, "mlperf-edge's choice: as rnnt, the speech benchmark that replaced "
                        "it in mlperf_logging (10 runs)"),
}
MLPERF_SOURCE = "mlperf_logging.benchmark_meta training result file counts"


def required_runs(benchmark: str, overrides: dict[str, int] | None = None) -> tuple[int, str]:
    """(runs a score needs, where that number comes from)."""
    if overrides and benchmark in overrides:
        return overrides[benchmark], "set by the operator (--runs-required)"
    try:
        from mlperf_logging.benchmark_meta import get_result_file_counts
        counts = get_result_file_counts("training")
    except ImportError:                                  # pragma: no cover - a lean install
        counts = {}
    if benchmark in counts:
        return int(counts[benchmark]), f"{MLPERF_SOURCE} ({benchmark}: {counts[benchmark]})"
    if benchmark in OUR_RUN_COUNTS:
        return OUR_RUN_COUNTS[benchmark]
    return 5, "mlperf-edge's default for a benchmark MLPerf has no count for"


def olympic_kept(ranked: list, not_converged: int) -> list:
    """What olympic scoring averages of runs ranked fastest first: the fastest dropped, and the
    slowest unless a non-converged run (not in ``ranked``) is the one dropped; nothing when
    more than one did not converge."""
    return ranked[1:len(ranked) - (1 - not_converged)] if not_converged <= 1 else []


def olympic(values: list[float], not_converged: int) -> float | None:
    """Drop the fastest and the slowest (a non-converged run is the slowest) and average."""
    kept = olympic_kept(sorted(values), not_converged)
    return mean(kept) if kept else None


def olympic_by(values: list[float], order: list[float], not_converged: int) -> float | None:
    """Olympic average of ``values`` ordered by ``order`` (energy by time-to-train)."""
    ranked = [v for _, v in sorted(zip(order, values), key=lambda p: p[0])]
    kept = olympic_kept(ranked, not_converged)
    return mean(kept) if kept else None


@dataclass
class Score:
    benchmark: str
    device: str
    agent_id: str
    mode: str
    status: str                     # scored | incomplete | invalid | smoke | projection
    explanation: str
    required: int
    required_source: str
    runs: list[Run] = field(default_factory=list)
    converged: int = 0
    not_converged: int = 0
    pending: int = 0
    time_to_train_s: float | None = None      # the score (status scored only)
    energy_j: float | None = None             # the energy score (scored and trusted only)
    energy_method: str | None = None
    energy_note: str | None = None
    shown_s: float | None = None              # smoke: mean time to target; reduced: mean proj.
    spread_s: tuple[float, float] | None = None   # fastest, slowest counted time
    avg_power_w: float | None = None          # mean over the counted runs (labelled)
    peak_power_w: float | None = None
    throughput_sps: float | None = None
    samples_per_j: float | None = None
    quality: float | None = None              # mean quality reached
    metric: str | None = None
    counted: list[str] = field(default_factory=list)   # job ids averaged
    dropped: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return {"scored": "MLPerf score", "incomplete": "incomplete", "invalid": "invalid",
                "smoke": "smoke (never a result)", "projection": "projection (an estimate)",
                "emulated": "emulated (never compared)"}.get(self.status, self.status)

    def as_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "device": self.device, "agent_id": self.agent_id,
                "mode": self.mode, "status": self.status, "label": self.label,
                "explanation": self.explanation, "runs_required": self.required,
                "runs_required_source": self.required_source, "runs": len(self.runs),
                "converged": self.converged, "not_converged": self.not_converged,
                "pending": self.pending, "time_to_train_s": self.time_to_train_s,
                "energy_j": self.energy_j, "energy_method": self.energy_method,
                "energy_note": self.energy_note, "shown_s": self.shown_s,
                "spread_s": list(self.spread_s) if self.spread_s else None,
                "avg_power_w": self.avg_power_w, "peak_power_w": self.peak_power_w,
                "throughput_samples_per_s": self.throughput_sps,
                "samples_per_j": self.samples_per_j, "quality": self.quality,
                "metric": self.metric, "counted_jobs": self.counted,
                "dropped_jobs": self.dropped}


def score_all(runs: list[Run], overrides: dict[str, int] | None = None) -> list[Score]:
    """One Score per (benchmark, device, mode), over the runs that answer their run (retried
    attempts and cancelled runs left out), ordered by benchmark, mode, then best first."""
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for r in runs:
        if r.superseded or r.state == "cancelled":
            continue
        # A group of nodes is its own system, never scored with its rank 0's single runs.
        groups.setdefault((r.benchmark, r.mode, r.system), []).append(r)
    scores = [_score(group, overrides) for group in groups.values()]
    return sorted(scores, key=lambda s: (s.benchmark, s.mode, s.status != "scored",
                                         s.time_to_train_s or s.shown_s or float("inf")))


def _score(group: list[Run], overrides: dict[str, int] | None) -> Score:
    first = group[0]
    required, source = required_runs(first.benchmark, overrides)
    final = [r for r in group if r.final]
    converged = [r for r in final if r.converged and r.time_shown_s is not None]
    failed = [r for r in final if r not in converged]
    sc = Score(benchmark=first.benchmark, device=first.device, agent_id=first.system,
               mode=first.mode, status="", explanation="", required=required,
               required_source=source, runs=group, converged=len(converged),
               not_converged=len(failed), pending=len(group) - len(final),
               metric=first.metric)
    _figures(sc, converged)
    emulated = sorted({r.ran_as or "?" for r in group if r.emulated})
    if emulated:
        sc.status = "emulated"
        sc.shown_s = mean(r.time_shown_s for r in converged) if converged else None
        sc.explanation = (f"ran as {', '.join(emulated)} under qemu emulation on another "
                          "architecture: its times and energy are the emulator's, never a "
                          "board's, and are compared with no device")
        return sc
    if first.mode == "smoke":
        sc.status = "smoke"
        sc.shown_s = mean(r.time_to_target_s for r in converged) if converged else None
        sc.explanation = ("smoke runs train on synthetic data to a smoke target: time to "
                          "that target, never an MLPerf result")
        return sc
    if first.mode == "reduced":
        projected = [r.projection_s for r in final if r.projection_s is not None]
        sc.status = "projection"
        sc.shown_s = mean(projected) if projected else None
        sc.explanation = ("reduced runs stop early: the time-to-train shown is projected "
                          "from the measured epoch time, an estimate, never a result")
        return sc
    times = [r.time_to_train_s for r in converged]
    if sc.pending or len(final) < required:
        sc.status = "incomplete"
        sc.explanation = (f"{len(final)} of the {required} runs a score needs have finished"
                          + (f" ({sc.pending} still running)" if sc.pending else "")
                          + f"; required runs: {source}")
        return sc
    if len(failed) > MAX_NOT_CONVERGED:
        sc.status = "invalid"
        sc.explanation = (f"{len(failed)} runs did not converge; MLPerf's olympic scoring "
                          f"allows at most {MAX_NOT_CONVERGED}")
        return sc
    sc.time_to_train_s = olympic(times, len(failed))
    kept = olympic_kept(sorted(converged, key=lambda r: r.time_to_train_s), len(failed))
    sc.counted = [r.job_id for r in kept]
    sc.dropped = [r.job_id for r in group if r.job_id not in sc.counted]
    sc.status = "scored" if sc.time_to_train_s is not None else "invalid"
    sc.explanation = (f"olympic mean of {len(kept)} runs: fastest and slowest of "
                      f"{len(final)} dropped" + (", the non-converged run counted as the "
                                                  "slowest" if failed else "")
                      + f"; required runs: {source}")
    _energy(sc, converged, len(failed))
    return sc


def _figures(sc: Score, converged: list[Run]) -> None:
    """Means over the converged runs of what describes them (not scores)."""
    def avg(values):
        values = [v for v in values if v is not None]
        return mean(values) if values else None

    sc.throughput_sps = avg(r.throughput_sps for r in converged)
    sc.quality = avg(r.quality for r in converged)
    trusted = [r for r in converged if r.energy_trusted]
    sc.avg_power_w = avg(r.avg_power_w for r in trusted)
    sc.samples_per_j = avg(r.samples_per_j for r in trusted)
    peaks = [r.peak_power_w for r in trusted if r.peak_power_w is not None]
    sc.peak_power_w = max(peaks) if peaks else None
    methods = {r.power_method for r in trusted}
    sc.energy_method = ("estimated" if "estimated" in methods else "measured") \
        if trusted else None
    times = [r.time_shown_s for r in converged if r.time_shown_s is not None]
    sc.spread_s = (min(times), max(times)) if times else None


def _energy(sc: Score, converged: list[Run], not_converged: int) -> None:
    doubted = [r for r in converged if r.energy_j is not None and r.doubts]
    missing = [r for r in converged if r.energy_j is None]
    if doubted:
        sc.energy_note = (f"not scored: {len(doubted)} run(s) with doubted energy "
                          f"({doubted[0].doubts[0]})")
        return
    if missing:
        sc.energy_note = (f"not scored: {len(missing)} run(s) without an energy figure"
                          + (f" ({missing[0].power_note})" if missing[0].power_note else ""))
        return
    methods = {r.power_method for r in converged}
    if len(methods) > 1:
        sc.energy_note = "not scored: measured and estimated runs cannot be averaged"
        return
    sc.energy_j = olympic_by([r.energy_j for r in converged],
                             [r.time_to_train_s for r in converged], not_converged)
    sc.energy_method = methods.pop() if methods else None
    sc.energy_note = ("olympic mean over the same runs, ordered by time-to-train"
                      + ("; ESTIMATED from a power model, not measured"
                         if sc.energy_method == "estimated" else ""))
