"""``mlperf-controller results`` and ``mlperf-controller score``: what the lab ran a campaign
for, as a table, JSON or CSV, per run or scored as MLPerf scores. Thin wiring to
controller.runs, controller.scoring and controller.results_view."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console

from controller.cli_options import ConfigFile, Db, Json, open_settings
from controller.errors import StoreError

out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False)

Campaigns = Annotated[Optional[list[str]], typer.Option(
    "--campaign", help="Only this campaign (repeat for several; default: all).")]
RunsRequired = Annotated[Optional[list[str]], typer.Option(
    "--runs-required", metavar="BENCHMARK=N",
    help="Runs a score needs, instead of MLPerf's count (mlperf_logging's table: resnet 5, "
         "ncf 10, ...). Repeatable. A score over fewer runs than MLPerf requires is yours, "
         "not MLPerf's: the source is shown with it.")]


def parse_required(items: list[str] | None) -> dict[str, int]:
    out_: dict[str, int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit() or int(value) < 1:
            raise typer.BadParameter(f"{item!r}: expected BENCHMARK=N with N >= 1, "
                                     "e.g. ncf=3", param_hint="--runs-required")
        out_[name.strip()] = int(value)
    return out_


def _load(config, db, campaigns: list[str] | None):
    from controller import runs

    _, store = open_settings(config, db=db, create=False)
    for c in campaigns or []:
        if store.campaign(c) is None:
            raise StoreError(f"no campaign {c!r} (see `mlperf-controller campaigns`)")
    return runs.load(store, campaigns or None)


def results(campaign: Campaigns = None,
            summary: Annotated[bool, typer.Option(
                "--summary", help="Also the scores per benchmark and device (as `score`).")
            ] = False,
            compare: Annotated[Optional[str], typer.Option(
                "--compare", metavar="DEVICE,DEVICE",
                help="Two devices side by side per benchmark, with the ratio.")] = None,
            as_csv: Annotated[bool, typer.Option(
                "--csv", help="One CSV row per run on stdout (for a spreadsheet).")] = False,
            runs_required: RunsRequired = None,
            db: Db = None, config: ConfigFile = None, as_json: Json = False) -> None:
    """Show stored results, one row per run: campaign, job, start, device, benchmark, mode,
    status, time-to-train (or smoke time / projection, labelled), quality, samples/s, energy.

    `--json` puts time, quality and energy at the top level of each row (the stored result
    is nested under "result"); `--csv` writes the same rows as CSV."""
    from controller import results_view as view
    from controller.scoring import score_all

    if as_csv and as_json:
        raise typer.BadParameter("choose one of --csv and --json")
    pair = None
    if compare is not None:
        pair = [d.strip() for d in compare.split(",")]
        if len(pair) != 2 or not all(pair) or pair[0] == pair[1]:
            raise typer.BadParameter("expected two different device names, e.g. pi-1,orin-1",
                                     param_hint="--compare")
    required = parse_required(runs_required)
    rows = _load(config, db, campaign)
    if pair is not None:
        names = {r.device for r in rows}
        for name in pair:
            if name not in names:
                raise StoreError(f"no results for device {name!r}; devices with results: "
                                 f"{', '.join(sorted(names)) or 'none'}")
        rows = [r for r in rows if r.device in pair]
    scores = score_all(rows, required) if (summary or pair) else []
    if as_csv:
        sys.stdout.write(view.results_csv(rows))
    elif as_json:
        doc = [view.row_dict(r) for r in rows]
        print(json.dumps({"runs": doc, "scores": [s.as_dict() for s in scores]}
                         if (summary or pair) else doc, indent=2))
    elif not rows:
        err.print("no results yet: start one with `mlperf-controller run --benchmarks ncf`")
    else:
        title = f"Campaign {', '.join(campaign)}" if campaign else "Results"
        out.print(view.results_table(rows, title))
        if summary:
            out.print(view.score_table(scores))
        if pair:
            out.print(view.compare_table(scores, *pair))


def score(campaign: Campaigns = None, runs_required: RunsRequired = None,
          db: Db = None, config: ConfigFile = None, as_json: Json = False) -> None:
    """Score stored runs as MLPerf does, per benchmark and device.

    The runs a score needs come from MLCommons' own table (mlperf_logging: resnet 5, ncf 10,
    transformer 10, maskrcnn 5, minigo 10; sentiment and deepspeech2: our stated choice);
    the fastest and the slowest time-to-train are dropped and the rest averaged; a run that
    did not converge counts as the slowest, more than one invalidates the score. Energy is
    scored over the same runs the way the MLCommons result summarizer scores power. Only
    full-mode runs are scored: smoke means and reduced-run projections are shown, labelled."""
    from controller import results_view as view
    from controller.scoring import score_all

    rows = _load(config, db, campaign)
    scores = score_all(rows, parse_required(runs_required))
    if as_json:
        print(json.dumps([s.as_dict() for s in scores], indent=2))
    elif not scores:
        err.print("nothing to score yet: start one with `mlperf-controller run --benchmarks "
                  "ncf --mode full --runs 10`")
    else:
        out.print(view.score_table(scores))
