"""``mlperf-controller report``: thin wiring to controller.report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from controller.cli_options import ConfigFile, Db, open_settings


def report(
    campaign: Annotated[list[str] | None, typer.Option(
        "--campaign", metavar="ID",
        help="Only this campaign (repeatable; default: every campaign in the store). "
             "`mlperf-controller campaigns` lists them.")] = None,
    output: Annotated[Path, typer.Option(
        "--output", "-o", metavar="PATH", help="Where to write the HTML file.")
    ] = Path("report.html"),
    db: Db = None, config: ConfigFile = None,
) -> None:
    """Write one self-contained HTML report: per benchmark, which device trains fastest and
    which on the least energy, with the spread and honest labels.

    Per benchmark and mode: the devices side by side (time, energy, average
    and peak power, samples/s, samples/J, quality reached, runs counted,
    status); who is fastest and who used the least energy, only among
    comparable figures (one mode; a doubted energy never wins; measured and
    estimated energy are crowned apart); the doubts and notes behind the
    figures; plots (time vs energy per run, run-to-run spread, each run's
    power between MLLOG run_start and run_stop); and the runs that failed or
    were lost, with their error.

    Every figure says what it is: result (full mode, MLPerf-scored), smoke
    (never a result) or projection (an estimate); energy measured, estimated
    (a power model) or absent. The file needs no network to view.

    Example: mlperf-controller report --campaign C1 --campaign C2 -o lab.html"""
    from controller.report import write_report

    _, store = open_settings(config, db=db, create=False)
    summary = write_report(store, campaign or None, output)
    shown = ", ".join(summary.benchmarks) or "no benchmarks yet"
    failed = f", {summary.without_figure} without a figure" if summary.without_figure else ""
    print(f"report of {len(summary.campaigns)} campaign(s) ({shown}; {summary.runs} run(s)"
          f"{failed}) written to {summary.path} ({summary.bytes // 1024} KiB); open it in a "
          "browser, it needs no network", file=sys.stderr)
