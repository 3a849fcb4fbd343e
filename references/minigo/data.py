"""Minigo's only data: the holdout of professional 9x9 games whose moves the network must predict
(the reference's reinforcement/tensorflow/minigo/benchmark_sgf/9x9_pro_{YKSH,IYMD,YSIY,IYHN}.sgf;
README: games of the Iyama Yuta 6 Title Celebration). The training data is made by the run.

Is a folder of SGF games the MLPerf holdout? The reference's four files are known by their
SHA-256 (REFERENCE_SGF_SHA256, taken at mlcommons/training 0badcd17; MLCommons publishes no
checksum, these are of the files in its repository, which anyone can recompute): a folder of
exactly four games whose files carry those sums is the MLPerf dataset; anything else -- other
games, extra games, the four re-saved by an editor -- is labelled "NOT the MLPerf dataset" and,
as for every reference, a closed-division full run on it is refused (the target, 40% of these
moves, is defined only on them). --division open runs it, labelled.

``check_data_dir`` is cheap and torch-free (the folder and its .sgf names); ``load_holdout``
reads and replays every game (untimed, before the MLPerf init) and raises DatasetError naming
the first file that is malformed, not 9x9 or breaks the rules.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from references.common import datasets
from references.common.errors import DatasetError
from references.minigo import sgf, smoke

SMOKE = "smoke"                           # cfg.dataset: the committed games of smoke.py
MLPERF = "minigo-benchmark-sgf"           # references/common/datasets.py TABLE
# reinforcement/tensorflow/minigo/benchmark_sgf/ at mlcommons/training
# 0badcd1786fcb007725ed05f1c44e9d80bbeac52 (the MLPerf v0.5 reference): file -> SHA-256.
REFERENCE_SGF_SHA256 = {
    "9x9_pro_IYHN.sgf": "486a6c67885354dfa31bcc16fc4a17e83ada40b9fd43600b4245b04e3df09314",
    "9x9_pro_IYMD.sgf": "654fd67a1cfc0ed7278eed8e766ba8b90b232f418173523c26dc7efffdb7adc9",
    "9x9_pro_YKSH.sgf": "5cb52058e21284b7b0306f29462b9ca09d4da729c7eebf25b88ce9291fbcb571",
    "9x9_pro_YSIY.sgf": "80077ea05c80f8f21208a1dc7bfc563753344ece65ea43fbb9e20a2d6cd09965",
}


@dataclass(frozen=True)
class Holdout:
    games: list[sgf.Game]
    positions: int                        # moves scored (passes are not)
    chance_pct: float                     # expected score of a uniformly random legal move
    verdict: datasets.Verdict
    files: list[Path]


def check_data_dir(cfg, data_dir: Path | None) -> None:
    """DatasetError unless ``data_dir`` is a folder holding .sgf files (smoke needs none)."""
    if cfg.data_folder() is None:
        return
    if data_dir is None:
        raise DatasetError(f"--data is required for {cfg.dataset}: a folder of 9x9 professional "
                           "games as .sgf files (the reference's benchmark_sgf/9x9_pro_*.sgf)")
    folder = Path(data_dir)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder of SGF games")
    if next((p for p in folder.rglob("*.sgf") if p.is_file()), None) is None:
        raise DatasetError(f"{folder}: no .sgf files in the folder or below")


def load_holdout(cfg, data_dir: Path | None, out_dir: Path) -> Holdout:
    """Every game replayed through the rules, the moves a network will be scored on counted."""
    if cfg.dataset == SMOKE:
        folder = smoke.FIXTURE            # committed games, shipped in the package
    else:
        folder = Path(data_dir)
    games = sgf.read_games(folder, cfg.board_size)
    positions = [(p, m) for g in games for p, m in sgf.positions(g) if m != g.size ** 2]
    if not positions:
        raise DatasetError(f"{folder}: its games have no moves to predict (passes only)")
    chance = 100.0 * sum(1.0 / p.legal_moves().sum() for p, _ in positions) / len(positions)
    files = [g.path for g in games]
    described = f"{len(games)} {cfg.board_size}x{cfg.board_size} games, {len(positions):,} moves"
    if cfg.dataset == SMOKE:
        verdict = datasets.synthetic(
            f"smoke evaluation games ({described}) of a fixed player, {smoke.PLAYER} "
            f"(the package's {smoke.FIXTURE.name}/): not professional games")
    else:
        verdict = identify(folder, files, described)
    return Holdout(games, len(positions), chance, verdict, files)


def identify(folder: Path, files: list[Path], described: str) -> datasets.Verdict:
    """The reference's four games, by the SHA-256 of each file, or what else the folder holds."""
    known = set(REFERENCE_SGF_SHA256.values())
    matching = sum(hashlib.sha256(f.read_bytes()).hexdigest() in known for f in files)
    return datasets.identify(
        "minigo", MLPERF, {"games": len(files), "files with the reference's SHA-256": matching},
        where=f"{folder.name}/ ({described})")
