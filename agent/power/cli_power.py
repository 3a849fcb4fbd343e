"""``mlperf-agent sensors`` and ``mlperf-agent measure``: plain functions the typer commands in
agent/cli.py call."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agent.power import registry
from agent.power.base import Context, SensorError, SensorKind
from agent.power.config import PowerConfig
from agent.power.report import build, describe_unavailable
from agent.power.sampler import Sampler
from agent.power.view import report_table

LIVE_WINDOW_S = 0.3


def _open(config: PowerConfig, root: Path, broker: str | None):
    if not root.is_dir():
        raise SensorError(f"--root {root}: no such directory")
    return registry.discover(config, Context(root, broker, config.model))


def sensors(config: PowerConfig, root: Path, broker: str | None, as_json: bool,
            watch: bool) -> int:
    """List every source found under ``root`` with a live reading; for each source present but
    unreadable, the reason and the fix. Returns the exit code."""
    found, missing = _open(config, root, broker)
    try:
        while True:
            rows = _live(found)
            if as_json:
                sys.stdout.write(json.dumps({"root": str(root), "sources": rows, "unavailable": [
                    {"name": u.name, "reason": u.reason, "fix": u.fix, "where": u.where}
                    for u in missing]}) + "\n")
            else:
                _print_sensors(rows, missing, root)
            if not watch:
                return 0
            sys.stdout.flush()
            time.sleep(max(0.0, 1.0 - LIVE_WINDOW_S))
    except KeyboardInterrupt:
        return 0
    finally:
        registry.close_all(found)


def _live(found) -> list[dict]:
    """One row per channel, with its power over a short window (counters: differenced)."""
    if not found:
        return []
    sampler = Sampler(found, rate_hz=1 / LIVE_WINDOW_S)
    sampler.sample()
    time.sleep(LIVE_WINDOW_S)
    sampler.sample()
    rows = []
    for tr in sampler.all_traces:
        e0, e1 = tr.energy_at(sampler.ticks[0]), tr.energy_at(sampler.ticks[-1])
        span = sampler.ticks[-1] - sampler.ticks[0]
        if tr.kind is SensorKind.POWER and tr.p:
            live = tr.p[-1]
        elif e0 is not None and e1 is not None and span > 0:
            live = (e1 - e0) / span
        else:
            live = None
        rows.append({"source": tr.source, "kind": tr.kind.value, "scope": tr.channel.scope,
                     "method": tr.sensor.method, "native_unit": tr.channel.native_unit,
                     "unit": "J" if tr.kind is SensorKind.ENERGY_COUNTER else "W",
                     "update_period_s": tr.sensor.update_period_s, "where": tr.sensor.where,
                     "power_w": live, "problem": tr.problem if live is None else None,
                     "note": tr.sensor.note or None})
    return rows


def _print_sensors(rows: list[dict], missing, root: Path) -> None:
    console = Console()
    if rows:
        table = Table(title=f"Power sources under {root}")
        for col in ("source", "kind", "scope", "method", "units", "update", "now"):
            table.add_column(col, justify="right" if col == "now" else "left",
                             overflow="fold", no_wrap=col not in ("source", "units"))
        for r in rows:
            now = "-" if r["power_w"] is None else f"{r['power_w']:.2f} W"
            if r["method"] == "estimated":
                now += " (ESTIMATE)"
            table.add_row(r["source"], r["kind"].split()[0], r["scope"], r["method"],
                          f"{r['native_unit']} -> {r['unit']}",
                          f"{r['update_period_s'] * 1000:g} ms", now)
        console.print(table)
        for r in rows:
            if r["note"] or r["problem"]:
                console.print(f"  {r['source']}: {r['problem'] or r['note']}")
    else:
        console.print(f"No power source found under {root}: energy on this device can only be "
                      "estimated (a power model in its device profile), never measured.")
    for u in missing:
        console.print(f"[yellow]unavailable[/] {u.name}: {u.reason}"
                      + (f"\n  fix: {u.fix}" if u.fix else ""))


def measure(config: PowerConfig, root: Path, broker: str | None, rate_hz: float | None,
            duration_s: float | None, command: list[str] | None, as_json: bool) -> int:
    """Energy over ``duration_s`` or around ``command`` (whose exit code is returned)."""
    if bool(duration_s) == bool(command):
        raise SensorError("give either --duration SECONDS or -- COMMAND ... (one of them)")
    if duration_s is not None and duration_s <= 0:
        raise SensorError("--duration must be a positive number of seconds")
    found, missing = _open(config, root, broker)
    if not found:
        raise SensorError(f"no power source to measure with under {root}"
                          + (f" ({'; '.join(describe_unavailable(missing))})" if missing else "")
                          + "; see `mlperf-agent sensors`")
    sampler = Sampler(found, rate_hz or config.rate_hz).start()
    code = 0
    try:
        a = time.monotonic()
        if command:
            try:
                code = subprocess.run(command, check=False).returncode
            except FileNotFoundError:
                raise SensorError(f"command not found: {command[0]}") from None
            except KeyboardInterrupt:
                code = 130
        else:
            try:
                time.sleep(duration_s)
            except KeyboardInterrupt:
                code = 130
        b = time.monotonic()
    finally:
        sampler.stop()
        registry.close_all(found)
    report, _ = build(sampler, a, b, window="command" if command else "duration",
                      unavailable=describe_unavailable(missing))
    if as_json:
        sys.stdout.write(report.model_dump_json() + "\n")
    else:
        console = Console(stderr=bool(command))      # like `perf stat`: keep stdout the command's
        console.print(report_table(report))
        if report.total is not None:
            console.print(f"total {report.total.scope} ({report.total.method}): "
                          f"{report.total.energy_j:.2f} J, {report.total.avg_power_w:.2f} W "
                          f"average; MLPerf power rules "
                          f"{'met' if report.meets_mlperf_power_rules else 'NOT met'}: "
                          f"{report.rules_detail}")
        else:
            console.print(f"power: none measured ({report.reason})")
    return code
