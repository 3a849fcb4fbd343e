"""IMDB reviews (Maas et al. 2011) from the real ``aclImdb/`` layout, tokenised as the MLPerf
reference's reader (paddle.dataset.imdb) does.

    DATA/train/pos/<id>_<rating>.txt     ratings 7-10
    DATA/train/neg/<id>_<rating>.txt     ratings 1-4
    DATA/test/pos|neg/...                the same, 25,000 reviews per split

Tokens: the review lower-cased, punctuation removed, split on whitespace (paddle's tokenize).
Vocabulary: from the training split only, words seen at least ``min_word_count`` times, most
frequent first, then <unk> for the rest (paddle built it from train and test; see below). Ids
start at 1: id 0 is padding, never a word (paddle's sequences were unpadded).
Batches are bucketed by length (see batches()). Smoke runs use synthetic reviews: filler words
plus a few words that carry the sentiment.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from references.common import datasets
from references.common.datasets import Verdict
from references.common.errors import DatasetError

SPLITS = ("train", "test")
LABELS = {"neg": 0, "pos": 1}
RATINGS = {"neg": range(1, 5), "pos": range(7, 11)}
NAME = re.compile(r"^(\d+)_(\d+)\.txt$")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
UNK = "<unk>"
PAD = 0                                   # the padding id; words are 1..len(vocab)
BUCKET_BATCHES = 50                       # batches per length-sorted pool (see batches())


def tokenize(text: str) -> list[str]:
    """paddle.dataset.imdb.tokenize: strip punctuation, lower-case, split on whitespace."""
    return text.rstrip("\n\r").translate(_PUNCTUATION).lower().split()


# -- the folder layout (torch-free) ------------------------------------------------------------

def check_data_dir(cfg, data_dir: Path | None) -> None:
    """DatasetError unless ``data_dir`` has train|test/pos|neg folders (no file is read)."""
    if cfg.data_folder() is None:
        return
    if data_dir is None:
        raise DatasetError("--data is required for aclImdb: the extracted folder with "
                           "train|test/pos|neg/<id>_<rating>.txt")
    for split in SPLITS:
        for label in LABELS:
            folder = Path(data_dir) / split / label
            if not folder.is_dir():
                raise DatasetError(f"{folder} is missing: expected the aclImdb layout "
                                   "train|test/pos|neg/<id>_<rating>.txt")


def review_files(data_dir: Path, split: str) -> list[tuple[Path, int]]:
    """(file, label) of a split, checking each name against <id>_<rating>.txt."""
    out = []
    for label, y in LABELS.items():
        folder = Path(data_dir) / split / label
        for path in sorted(folder.iterdir()):
            if path.suffix != ".txt":
                continue
            m = NAME.match(path.name)
            if m is None or int(m.group(2)) not in RATINGS[label]:
                lo, hi = RATINGS[label][0], RATINGS[label][-1]
                raise DatasetError(f"{path}: expected a file named <id>_<rating>.txt with a "
                                   f"rating of {lo}-{hi} in {label}/")
            out.append((path, y))
    if not out:
        raise DatasetError(f"{Path(data_dir) / split} holds no reviews: expected "
                           f"{split}/pos/*.txt and {split}/neg/*.txt")
    return out


# -- vocabulary and encoding ---------------------------------------------------------------------

def build_vocab(token_lists, min_count: int) -> dict[str, int]:
    """word -> id for words seen at least ``min_count`` times, most frequent first (ties by
    word), from 1; <unk> last. Id 0 (PAD) is no word: the model needs len(vocab) + 1 rows."""
    counts = Counter(t for tokens in token_lists for t in tokens)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    vocab = {w: i for i, w in enumerate(words, start=PAD + 1)}
    vocab[UNK] = len(vocab) + 1
    return vocab


def identify(data_dir: Path, splits: dict[str, list[tuple[Path, int]]]) -> Verdict:
    """What the review files are, by their counts (the listing is already made; nothing is
    read for it)."""
    counts = {f"{split} reviews": len(files) for split, files in splits.items()}
    for split, files in splits.items():
        for label, y in LABELS.items():
            counts[f"{split} {label}"] = sum(1 for _, got in files if got == y)
    return datasets.identify("sentiment", "aclImdb", counts,
                             where=f"review folders in {Path(data_dir).name}/")


def encode(tokens: list[str], vocab: dict[str, int]) -> np.ndarray:
    unk = vocab[UNK]
    return np.fromiter((vocab.get(t, unk) for t in tokens), dtype=np.int64, count=len(tokens))


@dataclass
class Reviews:
    """Encoded reviews of one split."""

    tokens: list[np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class SentimentData:
    train: Reviews
    test: Reviews
    vocab: dict[str, int]
    dataset: str
    files: list[Path] | None          # what was read (None: synthetic)
    verdict: Verdict                  # what the reviews turned out to be (result.json's label)


def load(cfg, data_dir: Path | None, seed: int,
         say: Callable[[str], None] = lambda s: None) -> SentimentData:
    """The two splits, tokenised, and the vocabulary of the training split."""
    if cfg.dataset == "synthetic":
        train_text, train_y = synthetic_reviews(cfg, seed)
        test_text, test_y = synthetic_reviews(cfg, seed + 10_000)
        files = None
        name = f"synthetic ({cfg.synthetic_markers} planted words per polarity)"
        verdict = datasets.synthetic(name)
    else:
        check_data_dir(cfg, data_dir)
        splits = {s: review_files(data_dir, s) for s in SPLITS}
        verdict = identify(data_dir, splits)
        train_text, train_y = _read(splits["train"])
        test_text, test_y = _read(splits["test"])
        files = [p for s in SPLITS for p, _ in splits[s]]
        name = "aclImdb"
    train_tokens = [tokenize(t) for t in train_text]
    vocab = build_vocab(train_tokens, cfg.min_word_count)

    def reviews(token_lists, labels) -> Reviews:
        encoded = [encode(t[:cfg.max_tokens] if cfg.max_tokens else t, vocab)
                   for t in token_lists]
        return Reviews(encoded, np.asarray(labels, dtype=np.int64))

    data = SentimentData(reviews(train_tokens, train_y),
                         reviews([tokenize(t) for t in test_text], test_y), vocab, name, files,
                         verdict)
    say(f"vocabulary: {len(vocab):,} words (count >= {cfg.min_word_count} in the training "
        f"split, plus {UNK})")
    return data


def _read(files: list[tuple[Path, int]]) -> tuple[list[str], list[int]]:
    texts = []
    for path, _ in files:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"unreadable review {path}: {exc}") from None
    return texts, [y for _, y in files]


def batches(reviews: Reviews, batch_size: int, rng: np.random.Generator | None,
            device: str = "cpu", pool_batches: int = BUCKET_BATCHES) -> Iterator[tuple]:
    """(tokens [b, time], lengths [b], labels [b]) torch batches, 0-padded to the longest review
    of the batch, bucketed by length so that padding (convolution over zeros) stays small.

    Training (``rng`` given): the reviews are shuffled, cut into pools of ``pool_batches``
    batches, each pool sorted by length and cut into batches, and the batches of the epoch
    shuffled -- random, deterministic for a seed, and every batch of similar lengths.
    Evaluation (no ``rng``): all reviews by length (accuracy does not depend on the order).
    """
    import torch

    for tokens, lengths, labels in array_batches(reviews, batch_size, rng, pool_batches):
        yield (torch.from_numpy(tokens).to(device), torch.from_numpy(lengths).to(device),
               torch.from_numpy(labels).to(device))


def array_batches(reviews: Reviews, batch_size: int, rng: np.random.Generator | None,
                  pool_batches: int = BUCKET_BATCHES, length: int | None = None
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """batches() in numpy (int64 arrays), torch-free: the same batches in the same order for
    the same ``rng``. ``length``: pad every batch to it (a static-shape model, e.g. the LiteRT
    interpreter's) instead of to the batch's longest review."""
    lengths = np.fromiter((len(t) for t in reviews.tokens), dtype=np.int64, count=len(reviews))
    for idx in batch_order(lengths, batch_size, rng, pool_batches):
        seqs = [reviews.tokens[i] for i in idx]
        width = max(1, int(lengths[idx].max())) if length is None else length
        padded = np.full((len(seqs), width), PAD, dtype=np.int64)
        for row, s in enumerate(seqs):
            padded[row, :len(s)] = s
        yield padded, lengths[idx], reviews.labels[idx]


def longest(reviews: Reviews) -> int:
    """The most words of any review (0 for none)."""
    return max((len(t) for t in reviews.tokens), default=0)


def batch_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None,
                pool_batches: int = BUCKET_BATCHES) -> list[np.ndarray]:
    """The review indices of each batch, bucketed as batches() describes."""
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[lo:lo + batch_size] for lo in range(0, len(order), batch_size)]
    shuffled, pool = rng.permutation(len(lengths)), batch_size * pool_batches
    out = []
    for lo in range(0, len(shuffled), pool):
        chunk = shuffled[lo:lo + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out += [chunk[b:b + batch_size] for b in range(0, len(chunk), batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


def conv_work(lengths: np.ndarray, order: list[np.ndarray]) -> tuple[int, int]:
    """(positions convolved, positions that are words) for batches ``order``: the first is
    batch size x longest review summed over batches; their ratio is the padding overhead."""
    return (sum(len(idx) * max(1, int(lengths[idx].max())) for idx in order),
            int(lengths.sum()))


# -- synthetic reviews for smoke runs ------------------------------------------------------------

def synthetic_reviews(cfg, seed: int) -> tuple[list[str], list[int]]:
    """Reviews of filler words ("w12 w7 ...") with 1-3 words of their polarity ("good3") and,
    a third of the time, one of the other polarity, so one word never decides alone."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(cfg.synthetic_reviews):
        y = i % 2
        n = int(rng.integers(cfg.synthetic_min_words, cfg.synthetic_max_words + 1))
        words = [f"w{k}" for k in rng.integers(0, cfg.synthetic_vocab, size=n)]
        own, other = ("good", "bad") if y else ("bad", "good")
        planted = [f"{own}{k}" for k in rng.integers(0, cfg.synthetic_markers,
                                                     size=int(rng.integers(1, 4)))]
        if rng.random() < 1 / 3:
            planted.append(f"{other}{int(rng.integers(0, cfg.synthetic_markers))}")
        for word in planted:
            words.insert(int(rng.integers(0, len(words) + 1)), word)
        texts.append(" ".join(words) + ".")
        labels.append(y)
    return texts, labels
