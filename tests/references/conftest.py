"""Helpers for the reference tests: MovieLens files in their exact formats, and the references CLI
as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MLLOG_PREFIX = ":::MLLOG "


def ratings_rows(n_users: int = 60, n_items: int = 150, seed: int = 0, sparse_users: int = 3):
    """(userId, movieId, rating, timestamp) rows: most users with 20-40 ratings, a few with
    fewer than 20 (the filter must drop them), ids 1-based and gappy as in MovieLens."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        count = rng.integers(5, 19) if u < sparse_users else rng.integers(20, 41)
        items = rng.choice(n_items, size=count, replace=False)
        times = rng.integers(900_000_000, 1_400_000_000, size=count)
        stars = rng.integers(1, 11, size=count) / 2
        for item, t, r in zip(items, times, stars):
            rows.append((3 * u + 1, 7 * int(item) + 2, float(r), int(t)))
    return rows


def write_ml20m(folder: Path, rows) -> Path:
    """ratings.csv exactly as ml-20m ships it: header, comma-separated, one decimal rating."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["userId,movieId,rating,timestamp"] + [f"{u},{i},{r:.1f},{t}" for u, i, r, t in rows]
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    return folder


def write_ml1m(folder: Path, rows) -> Path:
    """ratings.dat exactly as ml-1m ships it: no header, '::'-separated, integer ratings."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{u}::{i}::{max(1, round(r))}::{t}" for u, i, r, t in rows]
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    return folder


class Run:
    """A finished ``python -m references ...`` process and what it left in --out."""

    def __init__(self, proc: subprocess.CompletedProcess, out: Path | None) -> None:
        self.proc, self.out = proc, out
        self.code, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr

    @property
    def result(self) -> dict:
        return json.loads((self.out / "result.json").read_text())

    @property
    def events(self) -> list[dict]:
        return [json.loads(line[len(MLLOG_PREFIX):]) for line in self.stdout.splitlines()]

    def keys(self) -> list[str]:
        return [e["key"] for e in self.events]


def env() -> dict[str, str]:
    # This checkout first on the path, whatever is installed; no revision baked in.
    extra = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    base = {k: v for k, v in os.environ.items() if k != "MLPERF_SOURCE_REVISION"}
    return {**base, **extra}


@pytest.fixture
def references_cli(tmp_path):
    """``references_cli(*args, out=True)`` runs the CLI in a subprocess; with ``out`` a fresh
    --out folder is added and returned as ``run.out``."""
    def run(*args: str, out: bool = True, timeout: float = 120) -> Run:
        out_dir = None
        argv = list(args)
        if out:
            out_dir = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}"
            argv += ["--out", str(out_dir)]
        proc = subprocess.run([sys.executable, "-m", "references", *argv], capture_output=True,
                              text=True, timeout=timeout, env=env(), cwd=tmp_path,
                              stdin=subprocess.DEVNULL)
        return Run(proc, out_dir)

    return run
