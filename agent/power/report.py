"""From a sampler's traces to a PowerReport over one window: per source, per scope, and a
headline total from the widest scope measured (wall, then board, battery, platform, the
components package+dram+gpu, then the sum of rails). Also judges MLPerf's training power rules:
at least 1 sample/s over the window and at least 60 samples, measured (never an estimate)."""

from __future__ import annotations

from itertools import pairwise

from agent.power.base import SensorKind
from agent.power.sampler import Sampler, Trace
from agent.protocol import (
    MAX_TRACE_POINTS,
    Cooldown,
    PowerReport,
    PowerTrace,
    ScopePower,
    SourcePower,
)

RULE_MIN_SAMPLES = 60
RULE_MIN_RATE_HZ = 1.0
#: Which scopes make the headline, widest first; a tuple is summed (its scopes are disjoint).
HEADLINE = (("wall",), ("board",), ("battery",), ("platform",), ("package", "dram", "gpu"),
            ("rail",))


def source_figures(tr: Trace, a: float, b: float,
                   baseline: tuple[float, float] | None = None) -> SourcePower:
    """One channel's figures over [a, b] (monotonic s)."""
    dur = b - a
    inside = [i for i, t in enumerate(tr.t) if a <= t <= b]
    times = [a] + [tr.t[i] for i in inside] + [b]
    errors = sum(1 for t in tr.error_t if a <= t <= b)
    stale = sum(1 for t in tr.stale_t if a <= t <= b)
    e_a, e_b = tr.energy_at(a), tr.energy_at(b)
    common = {"source": tr.source, "kind": tr.kind.value, "scope": tr.channel.scope,
              "method": tr.sensor.method, "samples": len(inside),
              "rate_hz": len(inside) / dur if dur > 0 else 0.0,
              "max_gap_s": max(y - x for x, y in pairwise(times)),
              "errors": errors, "stale": stale, "note": tr.sensor.note or None}
    if e_a is None or e_b is None or dur <= 0:
        return SourcePower(energy_j=None, avg_power_w=None, peak_power_w=None,
                           problem=tr.problem or "too few readings in the window", **common)
    energy = e_b - e_a
    if tr.kind is SensorKind.POWER:
        peak_values = [tr.p[i] for i in inside] or [energy / dur]
    else:
        peak_values = [(tr.e[i] - tr.e[i - 1]) / (tr.t[i] - tr.t[i - 1])
                       for i in range(1, len(tr.t)) if tr.t[i] > a and tr.t[i - 1] < b
                       and tr.t[i] > tr.t[i - 1]] or [energy / dur]
    base_w = net = None
    if baseline is not None and baseline[1] > baseline[0]:
        b0, b1 = tr.energy_at(baseline[0]), tr.energy_at(baseline[1])
        if b0 is not None and b1 is not None:
            base_w = (b1 - b0) / (baseline[1] - baseline[0])
            net = energy - base_w * dur
    problem = tr.problem if (errors or stale or not inside) else None
    if not inside and problem is None:
        problem = "no reading inside the window (values held from outside it)"
    return SourcePower(energy_j=energy, avg_power_w=energy / dur, peak_power_w=max(peak_values),
                       baseline_power_w=base_w, net_energy_j=net, problem=problem, **common)


def _combine(scope: str, parts: list[tuple[SourcePower, Trace]], a: float, b: float,
             ticks: list[float]) -> ScopePower:
    figs = [f for f, _ in parts]
    energy = sum(f.energy_j for f in figs)
    dur = b - a
    if len(parts) == 1:
        peak = figs[0].peak_power_w
    else:                                    # peak of the summed power, tick by tick
        grid = [a] + [t for t in ticks if a < t < b] + [b]
        peak = None
        for x, y in pairwise(grid):
            if y - x < 1e-6:
                continue
            p = sum((tr.energy_at(y) - tr.energy_at(x)) / (y - x) for _, tr in parts)
            peak = p if peak is None else max(peak, p)
    bases = [f.baseline_power_w for f in figs]
    base = sum(bases) if all(v is not None for v in bases) else None
    return ScopePower(scope=scope,
                      method="estimated" if any(f.method == "estimated" for f in figs)
                      else "measured",
                      sources=[f.source for f in figs], energy_j=energy,
                      avg_power_w=energy / dur, peak_power_w=peak,
                      samples=min(f.samples for f in figs),
                      rate_hz=min(f.rate_hz for f in figs), baseline_power_w=base,
                      net_energy_j=None if base is None else energy - base * dur)


def build(sampler: Sampler, a: float, b: float, *, window: str = "timed",
          baseline: tuple[float, float] | None = None, unavailable: list[str] | None = None,
          cooldown: Cooldown | None = None) -> tuple[PowerReport, list[Trace]]:
    """The report over [a, b] (monotonic s), and the traces its headline total sums."""
    with sampler.lock:
        traces = sampler.all_traces
        figs = [(source_figures(tr, a, b, baseline), tr) for tr in traces]
        usable = [(f, tr) for f, tr in figs if f.energy_j is not None]
        by_scope: dict[str, list] = {}
        for f, tr in usable:
            by_scope.setdefault(f.scope, []).append((f, tr))
        scopes = [_combine(s, parts, a, b, sampler.ticks) for s, parts in by_scope.items()]
        total, total_traces = None, []
        for group in HEADLINE:
            parts = [p for s in group for p in by_scope.get(s, [])]
            if parts:
                total = _combine("+".join(s for s in group if s in by_scope), parts, a, b,
                                 sampler.ticks)
                total_traces = [tr for _, tr in parts]
                break
    common = {"window": window, "start_ms": sampler.to_unix_ms(a),
              "stop_ms": sampler.to_unix_ms(b), "duration_s": b - a,
              "rate_hz": sampler.rate_hz, "sources": [f for f, _ in figs], "scopes": scopes,
              "baseline_s": None if baseline is None else baseline[1] - baseline[0],
              "cooldown": cooldown, "unavailable": unavailable or []}
    if total is None:
        problems = "; ".join(f"{f.source}: {f.problem}" for f, _ in figs if f.problem)
        return PowerReport(status="none", reason="no source gave a usable reading"
                           + (f" ({problems})" if problems else ""), **common), []
    met, detail = rules(total)
    return PowerReport(status=total.method, total=total, meets_mlperf_power_rules=met,
                       rules_detail=detail, trace=power_trace(total_traces, a, b, sampler),
                       **common), total_traces


def power_trace(traces: list[Trace], a: float, b: float, sampler: Sampler,
                points: int = MAX_TRACE_POINTS) -> PowerTrace | None:
    """The summed power of ``traces`` over [a, b] in at most ``points`` bins, each bin's energy
    over its width (so the trace integrates to the report's energy); no finer than the
    readings themselves."""
    if not traces or b <= a:
        return None
    n = max(1, min(points, max(len(tr.t) for tr in traces) - 1))
    edges = [a + (b - a) * k / n for k in range(n + 1)]
    with sampler.lock:
        energy = [sum(tr.energy_at(x) or 0.0 for tr in traces) for x in edges]
    return PowerTrace(t_s=[round(y - a, 3) for y in edges[1:]],
                      power_w=[float(f"{(e1 - e0) / (y - x):.4g}")
                               for (x, y), (e0, e1) in zip(pairwise(edges), pairwise(energy))])


def rules(total: ScopePower) -> tuple[bool, str]:
    """MLPerf training power rules: >= 1 sample/s over the window and >= 60 samples."""
    why = []
    if total.method != "measured":
        why.append("an estimate is not a measurement")
    if total.samples < RULE_MIN_SAMPLES:
        why.append(f"fewer than {RULE_MIN_SAMPLES} samples")
    if total.rate_hz < RULE_MIN_RATE_HZ:
        why.append(f"under {RULE_MIN_RATE_HZ:g} sample/s")
    head = f"{total.samples} samples at {total.rate_hz:.2f}/s ({total.scope})"
    return (not why), head + (": " + ", ".join(why) if why else ": met")


def nothing(reason: str, *, window: str = "timed", unavailable: list[str] | None = None,
            cooldown: Cooldown | None = None, rate_hz: float | None = None) -> PowerReport:
    """The honest report where nothing was measured or estimated: why, and no figures."""
    return PowerReport(status="none", reason=reason, window=window, rate_hz=rate_hz,
                       unavailable=unavailable or [], cooldown=cooldown)


def describe_unavailable(items) -> list[str]:
    return [f"{u.name}: {u.reason}" + (f" (fix: {u.fix})" if u.fix else "") for u in items]
