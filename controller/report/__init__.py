"""`mlperf-controller report`: one self-contained HTML page (inline CSS and SVG, nothing
fetched at view time) that answers, per benchmark, which device trains fastest and which on
the least energy, with the spread and honest labels.

    sections.py  what is shown: rows per device, labelled figures (no HTML)
    winners.py   fastest / least energy, only among comparable figures
    plots.py     matplotlib figures as inline SVG strings
    tables.py    the HTML tables;  page.py  the whole page;  style.py  its CSS
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from controller.errors import MlperfEdgeError, StoreError


class ReportError(MlperfEdgeError):
    """The report cannot be made or written (the CLI prints it as one line)."""


@dataclass(frozen=True)
class ReportSummary:
    """What `write_report` wrote: where, how big (bytes), and what it covers."""

    path: Path
    bytes: int
    campaigns: list[str] = field(default_factory=list)
    benchmarks: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    runs: int = 0
    without_figure: int = 0


def build_html(store, campaign_ids: list[str] | None = None,
               now: datetime | None = None) -> tuple[str, ReportSummary]:
    """The page for these campaigns (None or empty: all) and a summary (path unset)."""
    try:
        from controller.report import page, plots
        from controller.report.sections import build_sections
    except ImportError as exc:                      # pragma: no cover - a lean install
        raise ReportError(f"the report needs matplotlib ({exc}): pip install "
                          "'mlperf-edge[controller]'") from None
    from controller.runs import load
    from controller.scoring import score_all
    from controller.store import redact

    chosen = _campaigns(store, campaign_ids)
    runs = load(store, [c.id for c in chosen])
    sections = build_sections(runs, score_all(runs))
    devices = sorted({r.device for r in runs})
    lines = [page.CampaignLine(c.id, c.created_at, c.mode, tuple(c.benchmarks), c.runs,
                               c.devices, c.state) for c in chosen]
    generated = (now or datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M:%S %Z")
    text = page.render(lines, redact(store.url), generated, sections,
                       plots.colours(devices), len(runs))
    summary = ReportSummary(path=Path(), bytes=len(text.encode()),
                            campaigns=[c.id for c in chosen],
                            benchmarks=[s.benchmark for s in sections], devices=devices,
                            runs=len(runs), without_figure=sum(len(s.failed) for s in sections))
    return text, summary


def write_report(store, campaign_ids: list[str] | None, path: Path | str) -> ReportSummary:
    """Write the report of these campaigns (None or empty: all) to ``path``, atomically."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK) or path.is_dir():
        why = ("is a folder" if path.is_dir() else f"no folder {folder}"
               if not folder.is_dir() else f"no write access to {folder}")
        raise ReportError(f"cannot write the report to {path}: {why}")
    text, summary = build_html(store, campaign_ids)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise ReportError(f"cannot write the report to {path}: "
                          f"{exc.strerror or exc}") from None
    return ReportSummary(**{**summary.__dict__, "path": path})


def _campaigns(store, campaign_ids: list[str] | None):
    if not campaign_ids:
        return sorted(store.campaigns(), key=lambda c: c.created_at)
    out = []
    for cid in dict.fromkeys(campaign_ids):
        c = store.campaign(cid)
        if c is None:
            raise StoreError(f"no campaign {cid!r} (see `mlperf-controller campaigns`)")
        out.append(c)
    return out
