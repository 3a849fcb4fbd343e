"""The shared English-German subword vocabulary: a sentencepiece model learned from the training
split only (both sides together, as the reference's one vocabulary for both languages), never
downloaded.

The MLPerf reference used tensor2tensor's SubwordTextEncoder with a target size of 32,768
(data_download.py); sentencepiece's unigram model is the well-kept library that does the same
job here, at the same size. Ids follow the reference: 0 is padding (and the decoder's start
symbol), 1 is end of sentence; 2 is unknown. Every sentence is encoded with EOS appended.

The model is cached beside the data as ``spm-<hash>-<size>.model``, the hash covering the
training files' bytes and every training setting, so a changed corpus or setting learns a new
one; where the data folder is read-only it goes to the run's output folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterable
from itertools import chain
from pathlib import Path

import numpy as np
import sentencepiece as spm

PAD, EOS, UNK = 0, 1, 2


def _settings(cfg) -> dict:
    return {"vocab_size": cfg.vocab_size, "model_type": "bpe", "character_coverage": 1.0,
            "input_sentence_size": cfg.vocab_sample_sentences, "shuffle_input_sentence": True,
            "hard_vocab_limit": False, "pad_id": PAD, "eos_id": EOS, "unk_id": UNK,
            "bos_id": -1, "minloglevel": 2}


def vocab_key(cfg, sources: Iterable[Path] | None = None,
              texts: Iterable[str] | None = None) -> str:
    """A hash of the training text (its files' bytes, or the texts) and the settings."""
    digest = hashlib.sha256(repr(sorted(_settings(cfg).items())).encode())
    digest.update(spm.__version__.encode())
    for path in sources or ():
        with open(path, "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    for text in texts or ():
        digest.update(text.encode("utf-8") + b"\n")
    return digest.hexdigest()[:16]


def learn(cfg, sentences: Callable[[], Iterable[str]], threads: int, seed: int) -> bytes:
    """Train the model on ``sentences()`` and return it as bytes."""
    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences()), model_writer=model,
                                   num_threads=max(1, threads), **_settings(cfg))
    return model.getvalue()


def cached_vocab(cfg, key: str, folders: list[Path], sentences: Callable[[], Iterable[str]],
                 threads: int, say: Callable[[str], None]) -> tuple[spm.SentencePieceProcessor,
                                                                     Path | None]:
    """The processor for ``key``: loaded from the first folder that has it, else learned and
    written to the first folder that can take it (atomically: tmp file + rename)."""
    name = f"spm-{key}-{cfg.vocab_size}.model"
    for folder in folders:
        if (folder / name).is_file():
            say(f"vocabulary: {folder / name} (cached)")
            return load(folder / name), folder / name
    proto = learn(cfg, sentences, threads, seed=1)
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".spm-", dir=folder)
            with os.fdopen(fd, "wb") as f:
                f.write(proto)
            os.replace(tmp, folder / name)
        except OSError:
            continue                       # read-only: try the next folder
        say(f"vocabulary: learned {folder / name} from the training split")
        return load(folder / name), folder / name
    return spm.SentencePieceProcessor(model_proto=proto), None


def load(path: Path) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_file=str(path))


class Encoded:
    """Token ids of many sentences, EOS appended, as one flat int32 array and offsets."""

    def __init__(self, ids: list[list[int]]) -> None:
        lengths = np.fromiter((len(s) + 1 for s in ids), dtype=np.int64, count=len(ids))
        self.offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])
        self.ids = np.fromiter(chain.from_iterable(s + [EOS] for s in ids), dtype=np.int32,
                               count=int(self.offsets[-1]))
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]


def encode(sp: spm.SentencePieceProcessor, texts: list[str], threads: int,
           chunk: int = 100_000) -> Encoded:
    ids: list[list[int]] = []
    for lo in range(0, len(texts), chunk):
        ids += sp.encode(texts[lo:lo + chunk], num_threads=max(1, threads))
    return Encoded(ids)


def decode(sp: spm.SentencePieceProcessor, ids: list[int]) -> str:
    """Text of a decoded sequence: up to its first EOS, padding dropped."""
    out = []
    for t in ids:
        if t == EOS:
            break
        if t != PAD:
            out.append(int(t))
    return sp.decode(out)
