"""The report as one self-contained HTML page: header (campaigns, store, when), a verdict card
per benchmark and mode, then per benchmark its verdicts, devices side by side, doubts, plots
and the runs without a figure. Every string from the store is escaped (``e``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape as e

from controller.report import plots
from controller.report.sections import Group, Section
from controller.report.style import CSS
from controller.report.tables import chip, device_table, failed_runs, notes
from controller.report.winners import Callout, verdicts
from controller.runs import SAMPLES_PER_J_DEFINITION, THROUGHPUT_DEFINITION

METHOD_CHIP = {"measured": "measured energy", "estimated": "estimated energy",
               "none": "no power figure"}


@dataclass(frozen=True)
class CampaignLine:
    """What the header shows of a campaign."""

    id: str
    created_at: float
    mode: str
    benchmarks: tuple[str, ...]
    runs: int
    devices: str
    state: str


def when(t: float | None) -> str:
    """Unix seconds as local date and time."""
    return datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M %Z") if t else "-"


def _header(campaigns: list[CampaignLine], store_url: str, generated: str, n_runs: int) -> str:
    rows = "".join(
        f"<tr><td>{e(c.id)}</td><td>{e(when(c.created_at))}</td><td>{e(c.mode)}</td>"
        f"<td>{e(', '.join(c.benchmarks))}</td><td>{c.runs}</td><td>{e(c.devices)}</td>"
        f"<td>{e(c.state)}</td></tr>" for c in campaigns)
    table = (f"<table><thead><tr><th>campaign</th><th>created</th><th>mode</th>"
             f"<th>benchmarks</th><th>runs per device</th><th>devices</th><th>state</th>"
             f"</tr></thead><tbody>{rows}</tbody></table>" if campaigns
             else '<p class="lede">No campaigns in this store yet.</p>')
    return (f'<header class="top"><div><h1>mlperf-edge report</h1>'
            f'<p class="lede">Per benchmark: which device trains fastest and which on the '
            f"least energy, with the spread and honest labels.</p>"
            f"<dl><div><dt>generated</dt><dd>{e(generated)}</dd></div>"
            f"<div><dt>store</dt><dd>{e(store_url)}</dd></div>"
            f"<div><dt>campaigns</dt><dd>{len(campaigns)}</dd></div>"
            f"<div><dt>runs</dt><dd>{n_runs}</dd></div></dl>{table}</div></header>")


def _who(c: Callout) -> str:
    return e(c.device) if c.device else "none crowned"


def _glance(groups: list[tuple[Group, list[Callout]]]) -> str:
    cards = []
    for g, calls in groups:
        lines = "".join(
            f'<div class="callout {"none" if not c.device else c.method or ""}">'
            f'<div class="what">{e(c.what)}</div><div class="who">{_who(c)}</div>'
            f'<div class="fig">{e(c.figure) if c.device else ""}</div></div>' for c in calls)
        cards.append(f'<a class="card" href="#b-{e(g.benchmark)}-{e(g.mode)}" '
                     f'style="text-decoration:none;color:inherit">'
                     f'<div class="bench">{e(g.benchmark)} {chip(g.mode, g.kind)}</div>'
                     f'<div class="callouts">{lines}</div></a>')
    return f'<div class="glance">{"".join(cards)}</div>' if cards else ""


def _callouts(calls: list[Callout]) -> str:
    out = []
    for c in calls:
        figure = f'<div class="fig">{e(c.figure)}</div>' if c.device else ""
        caveat = f'<div class="caveat">{e(c.caveat)}</div>' if c.caveat else ""
        out.append(f'<div class="callout {"none" if not c.device else c.method or ""}">'
                   f'<div class="what">{e(c.what)}</div><div class="who">{_who(c)}</div>'
                   f'{figure}<div class="detail">{e(c.detail)}</div>{caveat}</div>')
    return f'<div class="callouts">{"".join(out)}</div>'


def _figure(svg: str | None, caption: str, empty: str, wide: bool = False) -> str:
    body = svg if svg else f'<p class="empty">{e(empty)}</p>'
    return (f'<figure class="{"wide" if wide else ""}">{body}'
            f"<figcaption>{e(caption)}</figcaption></figure>")


def _plots(g: Group, palette: dict[str, str], n: int) -> str:
    prefix = f"f{n}"
    scatter = plots.scatter(g, palette, f"{prefix}a")
    spread = plots.spread(g, palette, f"{prefix}b")
    trace, hidden = plots.traces(g, palette, f"{prefix}c")
    more = f"; {hidden} more run(s) with a trace not drawn" if hidden else ""
    return ('<div class="plots">'
            + _figure(scatter, "One point per run. Filled: measured energy; hollow: estimated "
                      "from a power model; x: doubted (never scored).",
                      "No run has both a time and an energy figure.")
            + _figure(spread, "Each dot a run, placed by its time against its device's figure "
                      "(0: the figure in the table); hollow: dropped by the olympic scoring.",
                      "No run reached its target, so there is no time to show.")
            + _figure(trace, "Power over the timed window: t = 0 is run_start (MLLOG), the "
                      f"dashed line at the end run_stop{more}.",
                      "No run carries a power trace (no power sensor or model).", wide=True)
            + "</div>")


def _group(g: Group, calls: list[Callout], palette: dict[str, str], n: int) -> str:
    explain = " ".join(dict.fromkeys(e(r.score.explanation) for r in g.rows))
    label = e(plots.label(g))
    return (f'<div class="group" id="b-{e(g.benchmark)}-{e(g.mode)}">'
            f"<h3>{e(g.benchmark)} · {e(g.mode)} mode {chip(g.kind)}"
            + "".join(" " + chip(METHOD_CHIP.get(m, m), m) for m in g.methods) + "</h3>"
            f'<p class="explain"><b>{label}</b>. {explain}</p>'
            + _callouts(calls) + (device_table(g, calls) if g.rows else
                                  '<p class="empty">No run of this mode answers yet.</p>')
            + notes(g) + _plots(g, palette, n) + "</div>")


def _footer() -> str:
    items = [
        ("time", ("wall-clock seconds between the MLLOG run_start and run_stop events, as in "
                  "MLPerf; the energy, power and trace cover the same timed window.")),
        ("time-to-train (MLPerf score)", (
            "full mode only: the olympic mean, the fastest and slowest of the runs MLPerf "
            "requires dropped (mlperf_logging's result summarizer).")),
        ("smoke", ("a tiny model on synthetic data to a smoke target: tests and demos, never "
                   "an MLPerf result.")),
        ("projection", ("reduced mode: a bounded number of steps; the time-to-train is "
                        "projected from the measured epoch time, an estimate.")),
        ("estimated", ("energy from a power model of the device profile (e.g. CPU utilisation "
                       "x the CPU's power range), not a sensor; never crowned against a "
                       "measured figure.")),
        ("doubted", ("an energy the agent or controller distrusts (busy baseline, shared "
                     "host): shown, never scored, never crowned.")),
        ("throughput (samples/s)", THROUGHPUT_DEFINITION),
        ("samples/J", SAMPLES_PER_J_DEFINITION),
    ]
    dl = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in items)
    return f"<footer><h4>Definitions</h4><dl>{dl}</dl></footer>"


def render(campaigns: list[CampaignLine], store_url: str, generated: str,
           sections: list[Section], palette: dict[str, str], n_runs: int) -> str:
    """The whole page as a string."""
    judged = [(g, verdicts(g)) for s in sections for g in s.groups]
    by_group = {(g.benchmark, g.mode): calls for g, calls in judged}
    body, n = [], 0
    for s in sections:
        parts = []
        for g in s.groups:
            n += 1
            parts.append(_group(g, by_group[(g.benchmark, g.mode)], palette, n))
        body.append(f'<section class="bench" id="b-{e(s.benchmark)}"><h2>{e(s.benchmark)}'
                    f"</h2>{''.join(parts)}{failed_runs(s.failed)}</section>")
    if not sections:
        body.append('<p class="empty">No runs yet: start one with `mlperf-controller run '
                    '--benchmarks ncf --mode smoke`.</p>')
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>mlperf-edge report</title><style>{CSS}</style></head><body>"
            + _header(campaigns, store_url, generated, n_runs)
            + f"<main>{_glance(judged)}{''.join(body)}</main>{_footer()}</body></html>\n")
