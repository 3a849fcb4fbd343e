"""LibriSpeech as distributed (openslr.org/12), and batches bucketed by length.

    DATA/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    DATA/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   "<utt id> TRANSCRIPT"

``check_data_dir`` walks the configured subsets and reads their transcript files -- no audio --
so a missing transcript, an utterance without audio, audio without a transcript line or an empty
subset is one DatasetError naming the file, before torch is imported or anything is timed.

Torch-free (the agent checks data with it); audio is read in :mod:`references.deepspeech2.audio`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from references.common.errors import DatasetError

LAYOUT = ("<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac with "
          "<speaker>-<chapter>.trans.txt")
UTT_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


@dataclass
class Utterance:
    uid: str
    transcript: str
    path: Path | None = None              # a FLAC file, or None: ``audio`` holds the samples
    seconds: float = 0.0                  # known after probing the file header
    audio: np.ndarray | None = None       # synthetic utterances: float32 mono samples


def check_data_dir(cfg, data_dir: Path | None) -> None:
    """DatasetError unless every configured subset is complete (see module doc)."""
    if cfg.data_folder() is None:
        return
    if data_dir is None:
        raise DatasetError("--data is required for LibriSpeech: the extracted LibriSpeech "
                           f"folder with {LAYOUT}")
    for subset in cfg.subsets("train") + cfg.subsets("eval"):
        scan_subset(Path(data_dir) / subset)


def scan_subset(folder: Path) -> list[Utterance]:
    """Every utterance of a subset, in path order, with its transcript."""
    if not folder.is_dir():
        raise DatasetError(f"{folder} is missing: expected the LibriSpeech layout "
                           f"{folder.name}/{LAYOUT.split('/', 1)[1]}")
    out: list[Utterance] = []
    for speaker in _dirs(folder):
        for chapter in _dirs(speaker):
            out += _chapter(chapter, f"{speaker.name}-{chapter.name}")
    if not out:
        raise DatasetError(f"{folder} holds no utterances: expected {LAYOUT}")
    return out


def _dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir())


def _chapter(chapter: Path, stem: str) -> list[Utterance]:
    flacs = {p.stem: p for p in chapter.glob("*.flac")}
    for uid, path in flacs.items():
        if not uid.startswith(stem + "-") or not UTT_ID.match(uid):
            raise DatasetError(f"{path}: expected a name {stem}-<utt>.flac")
    trans = chapter / f"{stem}.trans.txt"
    if not trans.is_file():
        if flacs:
            raise DatasetError(f"{trans} is missing: the transcripts of the {len(flacs)} "
                               f"utterance(s) in {chapter}")
        return []
    texts = _transcripts(trans, stem)
    for uid, (lineno, _) in texts.items():
        if uid not in flacs:
            raise DatasetError(f"{chapter / (uid + '.flac')} is missing: {trans}:{lineno} "
                               "has a transcript for it")
    for uid, path in flacs.items():
        if uid not in texts:
            raise DatasetError(f"{path} has no transcript: no line '{uid} ...' in {trans}")
    return [Utterance(uid, texts[uid][1], flacs[uid]) for uid in sorted(flacs)]


def _transcripts(trans: Path, stem: str) -> dict[str, tuple[int, str]]:
    try:
        lines = trans.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"unreadable transcript file {trans}: {exc}") from None
    texts: dict[str, tuple[int, str]] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        uid, _, text = line.strip().partition(" ")
        if not uid.startswith(stem + "-") or not UTT_ID.match(uid) or not text.strip():
            raise DatasetError(f"{trans}:{lineno}: expected '{stem}-<utt> TRANSCRIPT', got "
                               f"{line[:60]!r}")
        if uid in texts:
            raise DatasetError(f"{trans}:{lineno}: {uid} is transcribed twice")
        texts[uid] = (lineno, text.strip())
    return texts


# -- batches bucketed by length ------------------------------------------------------------------

def plan_batches(utts: list[Utterance], batch_size: int, max_audio_s: float | None,
                 long_audio: str, rng: np.random.Generator | None = None
                 ) -> tuple[list[list[int]], int]:
    """(batches of indices into ``utts``, utterances skipped).

    As the reference orders its data, utterances are sorted by duration and cut into batches of
    ``batch_size``, so a batch pads little. An utterance longer than ``max_audio_s`` (the memory
    budget) is left out with ``long_audio="skip"``, or gets a batch of its own with "alone";
    never a crash in the middle of an epoch. ``rng`` shuffles the order of the batches (not
    their content); None keeps the sorted order."""
    order = sorted(range(len(utts)), key=lambda i: (utts[i].seconds, utts[i].uid))
    fits = [i for i in order if max_audio_s is None or utts[i].seconds <= max_audio_s]
    long = [i for i in order if max_audio_s is not None and utts[i].seconds > max_audio_s]
    batches = [fits[lo:lo + batch_size] for lo in range(0, len(fits), batch_size)]
    skipped = 0
    if long_audio == "alone":
        batches += [[i] for i in long]
    else:
        skipped = len(long)
    if rng is not None:
        batches = [batches[k] for k in rng.permutation(len(batches))]
    return batches, skipped
