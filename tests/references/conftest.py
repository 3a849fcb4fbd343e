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


# -- ImageNet (ILSVRC2012) and aclImdb fixtures, in their exact layouts ---------------------------

WNIDS = ("n01440764", "n01443537", "n01484850")


def class_image(label: int, size: tuple[int, int], rng: np.random.Generator):
    """An RGB image whose dominant colour is its class (red, green, blue), with noise, so a
    tiny model can learn the classes from a handful of files."""
    from PIL import Image

    w, h = size
    base = np.zeros((h, w, 3), dtype=np.float32)
    base[..., label % 3] = 200.0
    pixels = np.clip(base + rng.normal(0, 30, size=(h, w, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def write_imagenet(root: Path, per_class: int = 4, val_per_class: int = 2, flat_val: bool = False,
                   labels_file: str = "LOC_val_solution.csv", seed: int = 0) -> Path:
    """train/<wnid>/<wnid>_<n>.JPEG and val/ as class folders, or flat
    ILSVRC2012_val_<8 digits>.JPEG with the Kaggle LOC_val_solution.csv or val_labels.txt."""
    rng = np.random.default_rng(seed)
    for label, wnid in enumerate(WNIDS):
        folder = root / "train" / wnid
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            size = (int(rng.integers(40, 72)), int(rng.integers(40, 72)))
            class_image(label, size, rng).save(folder / f"{wnid}_{n + 1}.JPEG", "JPEG")
    (root / "val").mkdir(parents=True, exist_ok=True)
    rows, index = [], 0
    for label, wnid in enumerate(WNIDS):
        for _ in range(val_per_class):
            index += 1
            name = f"ILSVRC2012_val_{index:08d}"
            folder = root / "val" if flat_val else root / "val" / wnid
            folder.mkdir(parents=True, exist_ok=True)
            class_image(label, (60, 50), rng).save(folder / f"{name}.JPEG", "JPEG")
            rows.append((name, wnid))
    if flat_val:
        if labels_file.endswith(".csv"):
            text = "ImageId,PredictionString\n" + "".join(
                f"{name},{wnid} 10 20 40 50 \n" for name, wnid in rows)
        else:
            text = "".join(f"{name}.JPEG {wnid}\n" for name, wnid in rows)
        (root / labels_file).write_text(text)
    return root


POSITIVE = "a wonderful moving film great acting superb story loved it"
NEGATIVE = "a dull boring film awful acting terrible story hated it"


def write_aclimdb(root: Path, per_class: int = 6, seed: int = 0) -> Path:
    """train|test/pos|neg/<id>_<rating>.txt as aclImdb ships them (ratings 7-10 / 1-4), with
    punctuation and <br /> tags as in the real reviews."""
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for label, words in (("pos", POSITIVE), ("neg", NEGATIVE)):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                rating = int(rng.integers(7, 11) if label == "pos" else rng.integers(1, 5))
                picked = rng.choice(words.split(), size=12)
                text = f"{' '.join(picked).capitalize()}!<br /><br />Really, {picked[0]}."
                (folder / f"{i}_{rating}.txt").write_text(text, encoding="utf-8")
    return root
