"""`results` and `score` as tables, JSON and CSV. Every figure carries its kind: result,
smoke, projection; measured (plain), estimated (~) or none; doubted energy marked (?)."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from rich.table import Table
from rich.text import Text

from agent.display import parts_text
from controller.runs import SAMPLES_PER_J_DEFINITION, THROUGHPUT_DEFINITION, Run, significant
from controller.scoring import Score

STATE_COLOR = {"done": "green", "failed": "red", "lost": "red", "cancelled": "yellow"}


def when(t: float | None) -> str:
    """Local time; the date only when it is not today."""
    if t is None:
        return "-"
    today = time.strftime("%Y-%m-%d") == time.strftime("%Y-%m-%d", time.localtime(t))
    return time.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M", time.localtime(t))


def time_cell(r: Run) -> str:
    """time-to-train (full, converged), smoke time to the smoke target, or a projection;
    marked when it ran under emulation."""
    cell = _time_cell(r)
    if not r.emulated or cell == "-":
        return cell
    return f"{cell[:-1]}, emulated)" if cell.endswith(")") else f"{cell} (emulated)"


def _time_cell(r: Run) -> str:
    if r.time_to_train_s is not None:
        return significant(r.time_to_train_s, 4)
    if r.time_to_target_s is not None:
        return f"{significant(r.time_to_target_s, 4)} (smoke)"
    if r.projection_s is not None:
        return f"~{significant(r.projection_s)} (projection)"
    if r.timed_window_s is not None:
        return f"not reached in {significant(r.timed_window_s, 4)}"
    return "-"


def energy_cells(r: Run) -> tuple[str, str]:
    """(energy J, average W): '~' an estimate, '?' doubted, 'none' nothing measured."""
    if r.power_method is None:
        return "-", "-"
    if r.energy_j is None:
        return "none", "-"
    mark = ("~" if r.power_method == "estimated" else "") + ("?" if r.doubts else "")
    return f"{mark}{significant(r.energy_j, 4)}", f"{mark}{significant(r.avg_power_w)}"


def row_dict(r: Run) -> dict[str, Any]:
    """A row of `results --json`: the figures at the top level, the stored result nested."""
    return {**r.as_dict(), "result": r.extra.get("result")}


def results_table(runs: list[Run], title: str) -> Table:
    """One row per run. The campaign column appears when the rows span several campaigns
    (a job id starts with its campaign's id); ids are never cut short."""
    several = len({r.campaign_id for r in runs}) > 1
    table = Table(title=title, caption=(
        "time s: time-to-train, MLLOG run_start -> run_stop (full mode, target reached); "
        "(smoke): synthetic data, never a result; ~ (projection): an estimate. samples/s: "
        f"{THROUGHPUT_DEFINITION}; a group's (N nodes) with its scaling efficiency: its "
        "samples/s / (N x one node's). energy/avg W: the same window, widest scope (a "
        "group's: the sum over its nodes) "
        "(~ estimated, ? doubted: see --json power_doubts, none: no sensor)."))
    columns = ((("campaign", {"no_wrap": True}),) if several else ()) + (
        ("job", {"no_wrap": True}), ("started", {"no_wrap": True}), ("device", {}),
        ("benchmark", {}), ("mode", {}), ("run", {"justify": "right"}), ("status", {}),
        ("time s", {"justify": "right", "no_wrap": True}),
        ("quality", {"justify": "right", "no_wrap": True}), ("reached", {"no_wrap": True}),
        ("samples/s", {"justify": "right", "no_wrap": True}),
        ("energy J", {"justify": "right", "no_wrap": True}),
        ("avg W", {"justify": "right", "no_wrap": True}))
    for col, kw in columns:
        table.add_column(col, **kw)
    for r in runs:
        status, color = r.state, STATE_COLOR.get(r.state, "cyan")
        if r.error:
            status = f"{r.state}: {r.error}"          # whole: the fix is often at the end
        if r.superseded:                          # history: a later attempt answers the run
            status, color = f"{status} (retried)", "dim"
        run = str(r.run_index) + (f" (attempt {r.attempt})" if r.attempt > 1 else "")
        quality = "-" if r.quality is None else f"{r.metric} {r.quality:.4f}"
        if r.quality_parts:                       # a joint figure: show what it is made of
            quality += f" ({parts_text(r.quality_parts)})"
        reached = "-" if r.target is None else \
            f"{'yes' if r.converged else 'no'} ({'>=' if r.direction == 'max' else '<='} " \
            f"{r.target:g})"
        ids = ((r.campaign_id,) if several else ()) + (r.job_id, when(r.started_at))
        mode = r.mode if r.runtime == "torch" else f"{r.mode} ({r.runtime})"
        table.add_row(*(Text(str(c)) for c in (*ids, r.device, r.benchmark, mode, run)),
                      Text(status, style=color), time_cell(r), Text(quality), reached,
                      throughput_cell(r), *energy_cells(r))
    return table


def throughput_cell(r: Run) -> str:
    """Samples/s; for a run several nodes trained together, the group's, with its scaling
    efficiency against single nodes of its profile (when the store has such runs)."""
    cell = significant(r.throughput_sps)
    if r.nodes <= 1:
        return cell
    eff = "no single-node run to compare" if r.scaling_efficiency is None \
        else f"{r.scaling_efficiency:.0%} scaling"
    return f"{cell} ({r.nodes} nodes, {eff})"


CSV_FIELDS = ("campaign_id", "job_id", "started_at", "finished_at", "device", "agent_id",
              "benchmark", "mode", "division", "run", "attempt", "superseded", "state", "kind",
              "converged", "time_to_train_s", "time_to_target_s", "projection_s",
              "timed_window_s", "metric", "quality", "target", "samples",
              "throughput_samples_per_s", "energy_j", "avg_power_w", "peak_power_w",
              "samples_per_j", "power_method", "power_scope", "meets_mlperf_power_rules",
              "power_doubts", "profile", "image_digest", "platform", "emulated", "runtime",
              "model_sha256", "nodes", "scaling_efficiency",
              "source_revision", "log_lines_missing", "error")


def results_csv(runs: list[Run]) -> str:
    """One row per run; empty cells for missing figures, doubts joined with ' | '."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for r in runs:
        row = r.as_dict()
        row["power_doubts"] = " | ".join(row["power_doubts"])
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in CSV_FIELDS})
    return buf.getvalue()


def score_time_cell(sc: Score) -> str:
    if sc.status == "scored":
        return significant(sc.time_to_train_s, 4)
    if sc.status == "smoke" and sc.shown_s is not None:
        return f"{significant(sc.shown_s, 4)} (smoke mean)"
    if sc.status == "projection" and sc.shown_s is not None:
        return f"~{significant(sc.shown_s)} (projection)"
    if sc.status == "emulated" and sc.shown_s is not None:
        return f"{significant(sc.shown_s, 4)} (emulated)"
    return "-"


def score_energy_cell(sc: Score) -> str:
    if sc.energy_j is None:
        return "-"
    return ("~" if sc.energy_method == "estimated" else "") + significant(sc.energy_j, 4)


def score_table(scores: list[Score], title: str = "Scores") -> Table:
    table = Table(title=title, caption=(
        "time s: MLPerf olympic mean of time-to-train (fastest and slowest run dropped; a "
        "non-converged run counts as the slowest, more than one invalidates). energy J: the "
        "same runs, ordered by time (as MLCommons' result summarizer scores power); ~ "
        "estimated. spread: fastest..slowest converged run. Smoke means and projections are "
        f"shown, never scored. samples/s: {THROUGHPUT_DEFINITION}. samples/J: "
        f"{SAMPLES_PER_J_DEFINITION}."))
    for col, kw in (("benchmark", {}), ("device", {}), ("mode", {}), ("status", {}),
                    ("runs", {"justify": "right"}), ("time s", {"justify": "right"}),
                    ("spread s", {"justify": "right"}), ("energy J", {"justify": "right"}),
                    ("avg W", {"justify": "right"}), ("samples/s", {"justify": "right"}),
                    ("samples/J", {"justify": "right"}), ("quality", {"justify": "right"}),
                    ("why", {})):
        table.add_column(col, **kw)
    for sc in scores:
        color = {"scored": "green", "invalid": "red", "incomplete": "yellow"}.get(sc.status,
                                                                                  "cyan")
        runs = f"{sc.converged}/{sc.required}" + (f" +{sc.not_converged} not converged"
                                                  if sc.not_converged else "")
        spread = "-" if sc.spread_s is None else \
            f"{significant(sc.spread_s[0])}..{significant(sc.spread_s[1])}"
        why = sc.explanation + (f". Energy: {sc.energy_note}" if sc.energy_note else "")
        table.add_row(sc.benchmark, Text(sc.device), sc.mode, Text(sc.label, style=color),
                      runs, score_time_cell(sc), spread, score_energy_cell(sc),
                      ("~" if sc.energy_method == "estimated" else "")
                      + significant(sc.avg_power_w), significant(sc.throughput_sps),
                      significant(sc.samples_per_j),
                      "-" if sc.quality is None else f"{sc.metric} {sc.quality:.4f}", Text(why))
    return table


def compare_table(scores: list[Score], first: str, second: str) -> Table:
    """Two devices side by side per benchmark and mode, with the ratio second/first."""
    table = Table(title=f"{first} vs {second}", caption=(
        "ratio: second / first (below 1: the second is faster or uses less energy). Only "
        "like with like: the same mode; smoke means and projections are labelled; a figure "
        "from an emulated run is never set against another."))
    for col in ("benchmark", "mode", "figure", first, second, "ratio"):
        table.add_column(col, justify="right" if col == "ratio" else "left")
    by_key: dict[tuple[str, str], dict[str, Score]] = {}
    for sc in scores:
        by_key.setdefault((sc.benchmark, sc.mode), {})[sc.device] = sc
    for (benchmark, mode), pair in sorted(by_key.items()):
        a, b = pair.get(first), pair.get(second)
        if a is None or b is None:
            continue
        for name, get, cell in (
                ("time s", lambda s: s.time_to_train_s if s.status == "scored" else s.shown_s,
                 score_time_cell),
                ("energy J", lambda s: s.energy_j, score_energy_cell),
                ("samples/s", lambda s: s.throughput_sps,
                 lambda s: significant(s.throughput_sps))):
            x, y = get(a), get(b)
            mixed = name == "energy J" and a.energy_method != b.energy_method
            ratio = "-" if x in (None, 0) or y is None else \
                significant(y / x) + (" (measured vs estimated)" if mixed else "")
            if "emulated" in (a.status, b.status):      # an emulator's figure: never a ratio
                ratio = "never compared (emulated)"
            table.add_row(benchmark, mode, name, Text(cell(a)), Text(cell(b)), ratio)
    return table
