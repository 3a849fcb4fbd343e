"""The report's figures: matplotlib (no pyplot, no display) to inline SVG strings. Text is
drawn as paths, so a figure needs no font and no network at view time, and every figure says
in itself what it shows: mode, result/smoke/projection, measured or estimated."""

from __future__ import annotations

import html
import io
import math
import re
import textwrap

from controller.report.sections import Group, has_figure
from controller.runs import Run, significant

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
MAX_TRACES = 12
KIND_TEXT = {"result": "time-to-train: MLPerf result",
             "projection": "projected time-to-train: an estimate, never a result",
             "smoke": "smoke: synthetic data, never an MLPerf result"}
METHOD_TEXT = {"measured": "power MEASURED", "estimated": "power ESTIMATED (power model)",
               "none": "no power figure"}
RC = {"svg.fonttype": "path", "svg.hashsalt": "mlperf-edge", "font.size": 8.5,
      "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
      "grid.color": "#e4e7ec", "grid.linewidth": 0.6, "axes.edgecolor": "#98a2b3",
      "axes.titlesize": 8.5, "legend.fontsize": 7.5, "legend.frameon": False}


def colours(devices: list[str]) -> dict[str, str]:
    """One colour per device, the same in every figure of the report."""
    return {d: PALETTE[i % len(PALETTE)] for i, d in enumerate(devices)}


def label(group: Group) -> str:
    """The line every figure of a group carries: mode, kind, power method."""
    methods = " + ".join(METHOD_TEXT.get(m, m) for m in group.methods)
    return f"{group.mode} mode · {KIND_TEXT.get(group.kind, group.kind)} · {methods}"


def _t(text: str, limit: int = 40) -> str:
    """Store text made safe for matplotlib: '$' would start mathtext."""
    text = text if len(text) <= limit else text[:limit - 1] + "…"
    return text.replace("$", r"\$")


def _figure(width: float, height: float, layout: str | None = "constrained"):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout=layout)


def _title(fig, title: str, group: Group) -> None:
    """Title and the group's label, wrapped to the figure's width, in the figure itself."""
    width = int(fig.get_figwidth() * 13)
    text = "\n".join(textwrap.wrap(_t(title, 90), width) + textwrap.wrap(label(group), width))
    top = None if fig.get_layout_engine() else 1 - 0.12 / fig.get_figheight()
    fig.suptitle(text, x=0.01, ha="left", fontsize=9.5, linespacing=1.5,
                 **({"y": top, "va": "top"} if top else {}))


def to_svg(fig, prefix: str) -> str:
    """The figure as an ``<svg>`` element for inline HTML: no XML prolog, DOCTYPE or metadata
    (they name external URLs), ids prefixed so that many figures share one page."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None,
                                             "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    ids = set(re.findall(r'\bid="([^"]+)"', text))

    def fix(m: re.Match) -> str:
        return m.group(1) + (f"{prefix}-{m.group(2)}" if m.group(2) in ids else m.group(2))

    text = re.sub(r'(\bid="|href="#|url\(#)([^")]+)', fix, text)
    # The text is drawn as paths: the title and label, readable by people and tools, go here.
    aria = html.escape(" ".join(fig.get_suptitle().split()))
    return text.replace("<svg", f'<svg role="img" aria-label="{aria}"', 1)


def _timed(runs: list[Run]) -> list[Run]:
    """Runs drawn on a shared axis: with a figure, and not emulated (an emulator's time is
    never set beside a board's)."""
    return [r for r in runs if has_figure(r) and not r.emulated]


def scatter(group: Group, palette: dict[str, str], prefix: str) -> str | None:
    """Time vs energy, one point per run: measured filled, estimated hollow, doubted x."""
    from matplotlib.lines import Line2D

    per_sample = group.mode == "reduced"        # its energy is not to train: per sample
    x_of = (lambda r: r.throughput_sps) if per_sample else (lambda r: r.time_shown_s)
    y_of = (lambda r: r.samples_per_j) if per_sample else (lambda r: r.energy_j)
    points = [r for r in _timed(group.runs) if x_of(r) is not None and y_of(r) is not None]
    if not points:
        return None
    with _rc():
        fig = _figure(6.2, 4.0)
        ax = fig.add_subplot()
        for r in points:
            c = palette.get(r.device, "#444")
            filled = r.power_method == "measured"
            ax.scatter([x_of(r)], [y_of(r)], s=70, linewidths=1.8, zorder=3,
                       facecolors=c if filled else "none", edgecolors=c)
            if r.doubts:
                ax.scatter([x_of(r)], [y_of(r)], s=30, marker="x", zorder=4,
                           color="#b42318", linewidths=1.3)
        handles = [Line2D([], [], ls="", marker="o", color=palette.get(d, "#444"),
                          label=_t(d)) for d in dict.fromkeys(r.device for r in points)]
        kinds = [("measured", "o", "#555", "#555", "measured energy (filled)"),
                 ("estimated", "o", "none", "#555", "estimated energy (hollow)")]
        for method, marker, face, edge, text in kinds:
            if any(r.power_method == method for r in points):
                handles.append(Line2D([], [], ls="", marker=marker, markerfacecolor=face,
                                      markeredgecolor=edge, label=text))
        if any(r.doubts for r in points):
            handles.append(Line2D([], [], ls="", marker="x", color="#b42318",
                                  label="doubted energy (x): never scored"))
        ax.legend(handles=handles, loc="best")
        ax.set_xlabel("training throughput (samples/s)" if per_sample
                      else f"{group.time_name} (s)")
        ax.set_ylabel("samples per joule (samples/J)" if per_sample
                      else "energy over the timed window (J)")
        ax.set_xlim(0, max(x_of(r) for r in points) * 1.08)
        ax.set_ylim(0, max(y_of(r) for r in points) * 1.12)
        what = "samples/s vs samples/J" if per_sample else "time vs energy"
        _title(fig, f"{group.benchmark}: {what}, one point per run", group)
        return to_svg(fig, prefix)


def spread(group: Group, palette: dict[str, str], prefix: str) -> str | None:
    """Run-to-run spread: every run's time against its device's figure (%), so that a 1 s
    and a 1 h benchmark read alike; hollow: dropped by the olympic scoring; a box from five
    runs up."""
    rows = [row for row in group.rows if _timed(row.runs)]
    if not rows:
        return None
    with _rc():
        fig = _figure(6.2, 2.0 + 0.5 * len(rows))
        ax = fig.add_subplot()
        ax.axvline(0, color="#344054", lw=1)
        for y, row in enumerate(rows):
            c = palette.get(row.device, "#444")
            runs = _timed(row.runs)
            ref = row.time_s or sum(r.time_shown_s for r in runs) / len(runs)
            devs = [100 * (r.time_shown_s / ref - 1) for r in runs]
            if len(devs) >= 5:
                ax.boxplot([devs], positions=[y], widths=0.5, showfliers=False, **_sideways(),
                           medianprops={"color": c}, boxprops={"color": "#98a2b3"},
                           whiskerprops={"color": "#98a2b3"}, capprops={"color": "#98a2b3"})
            dropped = set(row.score.dropped) if row.score.status == "scored" else set()
            for i, (r, d) in enumerate(zip(runs, devs)):
                jitter = ((i * 0.37) % 1 - 0.5) * 0.3
                ax.scatter([d], [y + jitter], s=34, zorder=3, linewidths=1.4, edgecolors=c,
                           facecolors="none" if r.job_id in dropped else c)
        names = [f"{_t(r.device)}\n{_figure_text(r)}" for r in rows]
        ax.set_yticks(range(len(rows)), names)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.invert_yaxis()
        far = max(5.0, *(abs(100 * (r.time_shown_s / (row.time_s or r.time_shown_s) - 1))
                         for row in rows for r in _timed(row.runs)))
        ax.set_xlim(-far * 1.15, far * 1.15)
        ax.set_xlabel(f"{group.time_name} per run, % from the device's figure in the table")
        if any(row.score.dropped for row in rows if row.score.status == "scored"):
            ax.text(1, 1.01, "hollow: dropped by the olympic scoring", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=7.5, color="#555")
        _title(fig, f"{group.benchmark}: run-to-run spread", group)
        return to_svg(fig, prefix)


def _figure_text(row) -> str:
    times = [r.time_shown_s for r in _timed(row.runs)]
    return f"{significant(row.time_s)} s, {len(times)} runs" if row.time_s is not None \
        else f"{len(times)} runs"


def traces(group: Group, palette: dict[str, str], prefix: str) -> tuple[str | None, int]:
    """Power over each run's timed window, run_start (t = 0) and run_stop marked; at most
    MAX_TRACES panels. Returns (svg, runs with a trace not drawn)."""
    runs = sorted((r for r in group.runs if r.trace and r.trace[0] and not r.superseded),
                  key=lambda r: (r.device, r.run_index, r.attempt))
    if not runs:
        return None, 0
    shown = _fair_share(runs, MAX_TRACES)
    cols = min(len(shown), 4)
    rows = math.ceil(len(shown) / cols)
    with _rc():
        width, height = max(6.2, 3.1 * cols), 1.0 + 2.3 * rows
        fig = _figure(width, height, layout=None)     # fixed margins: many panels lay out fast
        fig.subplots_adjust(left=0.55 / width, right=1 - 0.1 / width, bottom=0.45 / height,
                            top=1 - 0.95 / height, wspace=0.32, hspace=0.55)
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, r in zip(axes.flat, shown):
            _trace_panel(ax, r, palette.get(r.device, "#444"))
        for ax in list(axes.flat)[len(shown):]:
            ax.set_visible(False)
        _title(fig, f"{group.benchmark}: power over each run's timed window", group)
        return to_svg(fig, prefix), len(runs) - len(shown)


def _fair_share(runs: list[Run], limit: int) -> list[Run]:
    """At most ``limit`` runs, taken device by device in turn, so every device is drawn."""
    queues: dict[str, list[Run]] = {}
    for r in runs:
        queues.setdefault(r.device, []).append(r)
    chosen: list[Run] = []
    while len(chosen) < limit and any(queues.values()):
        for q in queues.values():
            if q and len(chosen) < limit:
                chosen.append(q.pop(0))
    return sorted(chosen, key=lambda r: (r.device, r.run_index, r.attempt))


def _trace_panel(ax, r: Run, colour: str) -> None:
    t, p = list(r.trace[0]), list(r.trace[1])
    xs, ys = [0.0] + t, [p[0]] + p
    stop = (r.window_ms[1] - r.window_ms[0]) / 1000 if r.window_ms else \
        (r.timed_window_s or t[-1])
    ax.fill_between(xs, ys, step="pre", color=colour, alpha=0.15, lw=0)
    ax.plot(xs, ys, drawstyle="steps-pre", color=colour, lw=1.3)
    top = max(ys) * 1.25 or 1.0
    ax.set_ylim(0, top)
    ax.set_xlim(-0.06 * stop, stop * 1.06 or 1.0)
    for x, name in ((0.0, "run_start"), (stop, "run_stop")):
        ax.axvline(x, color="#344054", lw=1, ls="--")
        ax.text(x, top * 0.98, f" {name}", rotation=90, va="top",
                ha="left" if x == 0 else "right", fontsize=7, color="#344054")
    method = r.power_method or "none"
    tag = method + (" · DOUBTED" if r.doubts else "")
    ax.text(0.5, 0.04, tag, transform=ax.transAxes, ha="center", fontsize=7.5,
            color="#b42318" if r.doubts else "#b54708" if method == "estimated" else "#175cd3")
    attempt = f" (attempt {r.attempt})" if r.attempt > 1 else ""
    ax.set_title(f"{_t(r.device, 28)} · run {r.run_index}{attempt}", loc="left")
    ax.set_xlabel("s since run_start")
    ax.set_ylabel("W")


def _sideways() -> dict:
    import matplotlib

    major, minor = (int(x) for x in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def _rc():
    import matplotlib

    return matplotlib.rc_context(RC)
