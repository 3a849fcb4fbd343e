"""``mlperf-controller export``: stored results in a layout other tools read. Thin wiring to
controller.export_mlcommons."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from controller.cli_options import ConfigFile, Db, open_settings

LAYOUTS = ("mlcommons",)


def export(
    out_dir: Annotated[Path, typer.Argument(
        metavar="DIR", help="Folder to write (new or empty; see --force).")],
    layout: Annotated[str, typer.Option(
        "--layout", help="The layout to write; only `mlcommons` so far.")] = "mlcommons",
    campaign: Annotated[list[str] | None, typer.Option(
        "--campaign", help="Only this campaign (repeatable; default: all).")] = None,
    ruleset: Annotated[str, typer.Option(
        "--ruleset", help="MLCommons training ruleset the files are written for. 0.6.0 "
                          "(v0.6 line format) is the only one with ResNet rules a smoke run "
                          "can pass; 0.7.0 and later get the :::MLLOG lines as stored.")
    ] = "0.6.0",
    force: Annotated[bool, typer.Option(
        "--force", help="Write into a non-empty DIR, replacing its results/ and systems/.")
    ] = False,
    db: Db = None, config: ConfigFile = None,
) -> None:
    """Write stored runs as an MLCommons training results folder, the layout MLCommons'
    own tools read: its package checker (`python -m mlperf_logging.package_checker DIR
    training 0.6.0`) and its result summarizer (`python -m mlperf_logging.result_summarizer
    DIR training 0.6.0`, which scores time- and energy-to-train as MLPerf does).

    DIR/systems/SYSTEM.json                       the device (its reported capabilities)
    DIR/results/SYSTEM/BENCHMARK/result_N.txt     each run's MLLOG, N = 0, 1, ...
    DIR/results/SYSTEM/BENCHMARK/power/result_N/node_0.txt   its measured power events

    One SYSTEM per device and mode, so modes never mix: DEVICE (full, closed),
    DEVICE-open (full, open), DEVICE-smoke, DEVICE-reduced. Smoke and reduced runs
    are exported as research entries of the open division, never as results.
    Power goes in only where it was measured (an estimate is never logged).
    Retried, cancelled or unfinished runs and runs without a stored MLLOG are left
    out, each named. MLCommons wants an exact number of runs per benchmark (5 for
    resnet, 10 for ncf): the summary says how many each folder has."""
    from controller.errors import ConfigError
    from controller.export_mlcommons import export_mlcommons

    if layout not in LAYOUTS:
        raise ConfigError(f"--layout {layout}: unknown layout (known: {', '.join(LAYOUTS)})")
    _, store = open_settings(config, db=db, create=False)
    done = export_mlcommons(store, out_dir, campaign, ruleset, force)
    for note in done.notes:
        print(note)
    benchmarks = sorted({f.benchmark for f in done.folders})
    print(f"wrote {done.root}: MLCommons training layout, ruleset {done.ruleset}: "
          f"{len(done.systems)} system(s) ({', '.join(done.systems)}), "
          f"{len(benchmarks)} benchmark(s) ({', '.join(benchmarks)}), {done.files} files")
    for f in done.folders:
        n = len(f.runs)
        verdict = ("as required" if n == f.required else
                   f"{f.required - n} short" if n < f.required else f"{n - f.required} too many")
        print(f"  {f.system}/{f.benchmark}: {n} run(s) written, MLCommons requires "
              f"{f.required} ({verdict}; {f.required_source}); power: "
              f"{'measured, every run' if f.power else 'none'}")
    note = units_note(done.ruleset)
    if note:
        print(note)
    check, summarize = next_commands(done.root, done.ruleset)
    print("next (each writes into the folder it is run from):")
    print(f"  {check}\n    -> package_checker.log ends with PACKAGE CHECKER FOUND NO ERRORS, "
          "or has ERROR lines (it exits 0 either way)")
    print(f"  {summarize}\n    -> summary.json: one row per system with its time and energy "
          "scores")


def next_commands(root: Path, ruleset: str) -> list[str]:
    """What the operator runs next, with this interpreter (it has mlperf_logging)."""
    py, d = shlex.quote(sys.executable), shlex.quote(str(root))
    return [f"{py} -m mlperf_logging.package_checker {d} training {ruleset}",
            f"{py} -m mlperf_logging.result_summarizer {d} training {ruleset}"]


def units_note(ruleset: str) -> str | None:
    """How to read the summarizer's figures: v0.6 timestamps are seconds, but the summarizer
    divides by 60 * 1000 as for milliseconds (later rulesets log milliseconds)."""
    if ruleset != "0.6.0":
        return None
    return ("reading the summarizer's 0.6.0 figures: v0.6 logs time in seconds and it divides "
            "by 60*1000 as for milliseconds, so its time-to-train is seconds / 60,000 "
            "(x 1000 for minutes) and its energy is kJ (x 1000 for J)")
