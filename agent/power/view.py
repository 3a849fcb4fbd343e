"""How power figures are shown: one table per report and a few labelled lines for a result
card. Every figure says whether it is measured or estimated; 'none' is said, never zeros."""

from __future__ import annotations

from rich.table import Table

from agent.protocol import PowerReport


def _f(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def summary_rows(report: PowerReport | None) -> list[tuple[str, str]]:
    """(label, text) lines for a result card (``mlperf-agent run``)."""
    if report is None:
        return []
    if report.status == "none" or report.total is None:
        return [("power", f"{report.reason or 'none measured'}")]
    t = report.total
    where = {"timed": "MLLOG run_start -> run_stop", "command": "the command",
             "duration": "the duration"}[report.window]
    power = (f"{t.avg_power_w:.2f} W average, {_f(t.peak_power_w)} W peak "
             f"({t.samples} samples, {t.rate_hz:.1f}/s)")
    rows = [("energy", f"{t.energy_j:,.1f} J ({t.method.upper()}, {t.scope}, over {where})"),
            ("power", power)]
    if t.baseline_power_w is not None:
        idle = (f"{t.baseline_power_w:.2f} W over {_f(report.baseline_s, '.1f')} s; "
                f"net energy {t.net_energy_j:,.1f} J")
        rows.append(("idle baseline", idle))
    rows.append(("MLPerf power rules", ("met: " if report.meets_mlperf_power_rules
                                        else "NOT met: ") + (report.rules_detail or "")))
    problems = [f"{s.source}: {s.problem}" for s in report.sources if s.problem]
    if problems:
        rows.append(("power problems", "; ".join(problems)))
    return rows


def report_table(report: PowerReport) -> Table:
    """Per source, per scope and in total: energy, average and peak power, samples, rate.
    Problems and conventions go in the caption, so the figures stay readable at 80 columns."""
    notes = [f"{s.source}: {s.problem or ''}{' ' if s.problem and s.note else ''}"
             f"{s.note or ''}" for s in report.sources if s.problem or s.note]
    table = Table(title=f"Energy over {report.duration_s or 0:.2f} s ({report.window} window, "
                        f"{report.rate_hz or 0:g} Hz)",
                  caption="\n".join(notes) or None, caption_justify="left")
    idle = report.baseline_s is not None
    cols = ["source", "scope", "method", "J", "avg W", "peak W", "n", "/s"] + (
        ["idle W", "net J"] if idle else [])
    for col in cols:
        table.add_column(col, justify="left" if col in ("source", "scope", "method")
                         else "right", overflow="fold", no_wrap=col != "source")
    for s in report.sources:
        table.add_row(s.source, s.scope, s.method, _f(s.energy_j), _f(s.avg_power_w),
                      _f(s.peak_power_w), str(s.samples), f"{s.rate_hz:.1f}",
                      *((_f(s.baseline_power_w), _f(s.net_energy_j)) if idle else ()))
    for sc in report.scopes + ([report.total] if report.total else []):
        label = "[bold]TOTAL[/]" if sc is report.total else "scope"
        table.add_row(label, sc.scope, sc.method, _f(sc.energy_j), _f(sc.avg_power_w),
                      _f(sc.peak_power_w), str(sc.samples), f"{sc.rate_hz:.1f}",
                      *((_f(sc.baseline_power_w), _f(sc.net_energy_j)) if idle else ()))
    return table
