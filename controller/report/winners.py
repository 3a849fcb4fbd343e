"""Who trains fastest and who on the least energy, per benchmark and mode -- only among
figures that may be compared: the same mode, never a doubted energy, and a measured energy
never crowned against an estimated one without saying so."""

from __future__ import annotations

from dataclasses import dataclass, replace

from controller.report.sections import Group, Row
from controller.runs import significant


@dataclass(frozen=True)
class Callout:
    """One verdict: ``what`` (fastest, least energy, ...), the device or None (no verdict),
    the figure shown and the sentences that qualify it."""

    what: str
    device: str | None
    figure: str
    detail: str
    caveat: str = ""
    method: str | None = None                  # measured | estimated, energy verdicts only
    agent_id: str | None = None                # names may repeat; agent ids do not


def _ahead(best: float, second: float, lower_is_better: bool = True) -> str:
    if not best:
        return ""
    gap = (second - best) / best if lower_is_better else (best - second) / second
    return f"{gap * 100:.0f}%"


def fastest(group: Group) -> Callout:
    """The lowest time among rows that may be crowned (full mode: MLPerf scores only)."""
    what = f"Fastest ({group.time_name})"
    rows = sorted((r for r in group.rows if r.time_eligible and r.time_s is not None),
                  key=lambda r: r.time_s)
    if not rows:
        why = ("no device has an MLPerf score yet (a score needs every run; see status)"
               if group.mode == "full" else "no run reached its target")
        return Callout(what, None, "-", why)
    best = rows[0]
    figure = f"{significant(best.time_s)} s"
    if len(rows) == 1:
        return Callout(what, best.device, figure, "the only device with a comparable figure",
                       agent_id=best.score.agent_id)
    second = rows[1]
    detail = (f"tied with {second.device}" if second.time_s == best.time_s else
              f"ahead of {second.device} ({significant(second.time_s)} s) by "
              f"{_ahead(best.time_s, second.time_s)}")
    caveat = ""
    if best.spread_s and second.spread_s and best.spread_s[1] >= second.spread_s[0]:
        caveat = ("their run times overlap (slowest of the winner "
                  f"{significant(best.spread_s[1])} s, fastest of the runner-up "
                  f"{significant(second.spread_s[0])} s): the lead is within run-to-run spread")
    return Callout(what, best.device, figure, detail, caveat, agent_id=best.score.agent_id)


def _excluded(group: Group) -> str:
    doubted = [r.device for r in group.rows if r.energy_doubted]
    return (f"doubted energy never wins: {', '.join(doubted)} left out" if doubted else "")


def thriftiest(group: Group) -> list[Callout]:
    """Least energy per method (most samples per joule for reduced runs, whose energy is
    over a bounded run, not to train)."""
    per_sample = group.mode == "reduced"
    what = "Most samples per joule" if per_sample else "Least energy"
    rows = [r for r in group.rows if r.energy_eligible
            and (r.samples_per_j if per_sample else r.energy_j) is not None]
    methods = sorted({r.energy_method for r in rows})
    if not rows:
        return [Callout(what, None, "-", _no_energy_reason(group))]
    out = []
    for method in methods:
        ranked = sorted((r for r in rows if r.energy_method == method),
                        key=lambda r: -r.samples_per_j if per_sample else r.energy_j)
        out.append(_energy_callout(what, method, ranked, per_sample))
    if len(methods) > 1:
        out = [replace(c, caveat="measured and estimated figures are not compared with each "
                       "other" + (f"; {c.caveat}" if c.caveat else "")) for c in out]
    return out


def _energy_callout(what: str, method: str, ranked: list[Row], per_sample: bool) -> Callout:
    best = ranked[0]
    value = (lambda r: r.samples_per_j) if per_sample else (lambda r: r.energy_j)
    unit = "samples/J" if per_sample else "J"
    figure = f"{significant(value(best))} {unit}"
    caveat = ", from a power model, not measured" if method == "estimated" else ""
    label = f"{what} ({method}{caveat})"
    if len(ranked) == 1:
        detail = "the only device with a trusted figure of this kind"
    else:
        second = ranked[1]
        detail = (f"ahead of {second.device} ({significant(value(second))} {unit}) by "
                  f"{_ahead(value(best), value(second), lower_is_better=not per_sample)}")
    return Callout(label, best.device, figure, detail, method=method,
                   agent_id=best.score.agent_id)


def _no_energy_reason(group: Group) -> str:
    doubted = [r for r in group.rows if r.energy_doubted]
    if doubted:
        first = next(d for r in doubted for run in r.runs for d in run.doubts)
        return (f"no device crowned: every energy figure is doubted ({first}); a doubted "
                "energy never wins")
    if any(r.energy_method == "mixed" for r in group.rows):
        return "no device crowned: runs mix measured and estimated energy"
    if group.mode == "full" and not any(r.score.status == "scored" for r in group.rows):
        return "no device crowned: energy is scored with the time, and no device has a score"
    return "no device crowned: no energy figure (no power sensor, no power model)"


def verdicts(group: Group) -> list[Callout]:
    """Fastest first, then least energy per method, each saying who was left out and why."""
    out = [fastest(group), *thriftiest(group)]
    note = _excluded(group)
    if note and any(c.device for c in out[1:]):
        out = out[:1] + [replace(c, caveat="; ".join(x for x in (c.caveat, note) if x))
                         for c in out[1:]]
    return out
