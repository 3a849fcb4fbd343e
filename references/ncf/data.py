"""MovieLens for NCF, prepared as the MLPerf v0.5 reference prepares it, with vectorised numpy.

The steps, in the order load() runs them:

1. read the ratings: ml-20m ``ratings.csv`` (header ``userId,movieId,rating,timestamp``) or
   ml-1m ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``), or planted-factor synthetic
   ratings for smoke runs. Every rating is an interaction; its value is not used (implicit
   feedback, as the reference's ``implicit_load``).
2. drop users with fewer than ``min_ratings`` (20) ratings (convert.py ``MIN_RATINGS``).
3. leave one out: each user's latest rating is held out for evaluation, the rest are training
   positives (convert.py sorts by timestamp and pops each user's last item).
4. evaluation candidates: per user, 999 items the user never rated, drawn with replacement
   (convert.py ``np.random.choice(all_negs, 999)``) from a fixed seed, so that every run is
   evaluated on the same set.
5. per epoch: every training positive plus 4 uniformly drawn negatives, redrawn while the pair
   is a training positive (dataset.py ``CFTrainDataset``), in random order.

The reference does 3-5 with Python loops per row; here each is a handful of array operations,
which keeps ml-20m (20M ratings) to seconds.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from references.common import datasets
from references.common.datasets import Verdict
from references.common.errors import DatasetError

# -- 1. reading ratings ------------------------------------------------------------------------


@dataclass(frozen=True)
class RatingsFormat:
    name: str
    filename: str
    delimiter: str
    header: str | None
    layout: str  # for messages

    def describe(self) -> str:
        return f"{self.filename} ({self.name}: {self.layout})"


ML20M = RatingsFormat("ml-20m", "ratings.csv", ",", "userId,movieId,rating,timestamp",
                      "userId,movieId,rating,timestamp")
ML1M = RatingsFormat("ml-1m", "ratings.dat", "::", None, "UserID::MovieID::Rating::Timestamp")
FORMATS = (ML20M, ML1M)

# One parsed row. Ids and timestamps must be integers; the rating must be a number.
_ROW = np.dtype([("user", np.int64), ("item", np.int64), ("rating", np.float32),
                 ("timestamp", np.int64)])


@dataclass(frozen=True)
class Interactions:
    """One row per rating: who, what, when (original ids)."""

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.users)


def find_ratings(data_dir: Path, prefer: str | None = None) -> RatingsFormat:
    """The MovieLens format present in ``data_dir`` (``prefer`` wins when both are)."""
    present = [f for f in FORMATS if (Path(data_dir) / f.filename).is_file()]
    if not present:
        why = "" if Path(data_dir).is_dir() else " (the folder does not exist)"
        raise DatasetError(f"no MovieLens ratings in {data_dir}{why}: expected "
                           f"{' or '.join(f.describe() for f in FORMATS)}")
    return next((f for f in present if f.name == prefer), present[0])


def read_ratings(path: Path, fmt: RatingsFormat) -> Interactions:
    """Parse a MovieLens ratings file; a DatasetError names the file and the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} not found: expected {fmt.describe()}")
    with open(path, "rb") as f:
        first = f.readline()
    if not first.strip():
        raise DatasetError(f"{path} is empty: expected {fmt.describe()}")
    skip = 0
    if fmt.header is not None:
        header = first.decode("latin-1").lstrip("\ufeff\xef\xbb\xbf").strip()
        if header != fmt.header:
            raise DatasetError(f"{path}: line 1: expected the header {fmt.header!r}, "
                               f"got {header[:80]!r}")
        skip = 1
    if fmt.delimiter == ",":
        source: object = path            # numpy streams it: no copy of a 500 MB file in memory
    else:                                # ml-1m: np.loadtxt takes one-character delimiters only
        text = path.read_bytes().decode("latin-1")
        if "," in text:                  # would pass for a separator once "::" becomes ","
            raise _locate_bad_line(path, fmt, skip) or DatasetError(f"{path}: unexpected ','")
        source = io.StringIO(text.replace(fmt.delimiter, ","))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # "input contained no data"
            rows = np.loadtxt(source, dtype=_ROW, delimiter=",", skiprows=skip, comments=None,
                              ndmin=1, encoding="latin-1")
    except ValueError as exc:
        # The fast parser's message counts data rows, not file lines: find the line ourselves.
        raise _locate_bad_line(path, fmt, skip) or DatasetError(f"{path}: {exc}") from None
    if len(rows) == 0:
        raise DatasetError(f"{path} has no ratings: expected {fmt.describe()}")
    return Interactions(np.ascontiguousarray(rows["user"]), np.ascontiguousarray(rows["item"]),
                        np.ascontiguousarray(rows["timestamp"]))


def _locate_bad_line(path: Path, fmt: RatingsFormat, skip: int) -> DatasetError | None:
    """Slow, only on error: scan the file line by line for the first row that does not parse."""
    convert: tuple[Callable[[str], object], ...] = (int, int, float, int)
    with open(path, encoding="latin-1", newline=None) as f:
        for number, line in enumerate(f, start=1):
            if number <= skip or not line.strip():
                continue
            fields = line.rstrip("\r\n").split(fmt.delimiter)
            problem = None
            if len(fields) != 4:
                problem = f"{len(fields)} fields"
            else:
                for field, conv in zip(fields, convert):
                    try:
                        conv(field)
                    except ValueError:
                        kind = "an integer" if conv is int else "a number"
                        problem = f"{field.strip()[:40]!r} is not {kind}"
                        break
            if problem:
                return DatasetError(f"{path}: malformed line {number} ({problem}): expected "
                                    f"{fmt.layout}, got {line.strip()[:80]!r}")
    return None


def synthetic_interactions(n_users: int, n_items: int, factors: int, min_per_user: int,
                           max_per_user: int, seed: int) -> Interactions:
    """Ratings with a planted signal, for smoke runs.

    Each user and item gets a random latent vector; a user picks items without replacement with
    probability softmax(sharpness * <user, item> + popularity), so the held-out item comes from
    the same preferences as the training items and a factor model can learn to rank it.
    """
    rng = np.random.default_rng(seed)
    user_factors = rng.normal(size=(n_users, factors))
    item_factors = rng.normal(size=(n_items, factors))
    popularity = 0.5 * rng.normal(size=n_items)
    sharpness = 3.0 / math.sqrt(factors)
    logits = sharpness * user_factors @ item_factors.T + popularity
    # Gumbel top-k: the first k items of argsort(logits + Gumbel noise) are a sample of k items
    # without replacement from softmax(logits).
    ranked = np.argsort(-(logits + rng.gumbel(size=logits.shape)), axis=1)
    counts = rng.integers(min_per_user, max_per_user + 1, size=n_users)
    chosen = np.arange(n_items)[None, :] < counts[:, None]
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    items = ranked[chosen].astype(np.int64)
    timestamps = rng.integers(0, 1_000_000_000, size=len(users), dtype=np.int64)
    return Interactions(users + 1, items + 1, timestamps)   # 1-based ids, as MovieLens


# -- 2. the minimum-ratings filter ------------------------------------------------------------


def drop_sparse_users(ratings: Interactions, min_ratings: int) -> tuple[Interactions, int]:
    """Keep users with at least ``min_ratings`` ratings; also return how many users went."""
    user_ids, n_users = dense_ids(ratings.users)
    per_user = np.bincount(user_ids, minlength=n_users)
    keep = per_user[user_ids] >= min_ratings
    dropped = int(np.count_nonzero(per_user < min_ratings))
    kept = Interactions(ratings.users[keep], ratings.items[keep], ratings.timestamps[keep])
    return kept, dropped


def dense_ids(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Ids renumbered 0..n-1 in the sorted order of the originals (what np.unique's inverse
    gives), with an O(n) table lookup when the ids are small non-negative ints (MovieLens)."""
    if len(values) and values.min() >= 0 and values.max() < 4 * len(values) + 1024:
        present = np.zeros(int(values.max()) + 1, dtype=bool)
        present[values] = True
        lookup = np.cumsum(present) - 1
        return lookup[values], int(lookup[-1] + 1)
    unique, inverse = np.unique(values, return_inverse=True)
    return inverse.reshape(-1), len(unique)


# -- 3. leave one out ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Users and items renumbered 0..n-1; training positives and one held-out item per user."""

    n_users: int
    n_items: int
    train_keys: np.ndarray   # sorted, unique user * n_items + item of every training positive
    test_items: np.ndarray   # [n_users]: the held-out item of each user

    @property
    def train_users(self) -> np.ndarray:
        return self.train_keys // self.n_items

    @property
    def train_items(self) -> np.ndarray:
        return self.train_keys % self.n_items

    def is_train_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) pair is a training positive: binary search in the keys.
        The queries are sorted first, so consecutive searches touch nearby memory (4M queries
        into ml-20m's keys: 7.5 s unsorted, 1.2 s with the sort, here)."""
        keys = users * self.n_items + items
        if len(self.train_keys) == 0:
            return np.zeros(len(keys), dtype=bool)
        order = np.argsort(keys)
        at = np.searchsorted(self.train_keys, keys[order])
        at[at == len(self.train_keys)] = 0
        found = np.empty(len(keys), dtype=bool)
        found[order] = self.train_keys[at] == keys[order]
        return found


def leave_one_out(ratings: Interactions) -> Split:
    """Hold out each user's latest rating; the rest are training positives.

    Ties: when several of a user's ratings share the latest timestamp, the one that comes last
    in the file is held out (a stable sort by timestamp). The reference sorts with pandas' default
    quicksort, which leaves the choice unspecified; a stable rule makes ours reproducible.
    Repeated (user, item) pairs count once, and the held-out pair is never trained on: the
    reference keeps its training pairs in a set and removes the held-out pair from it.
    """
    users, n_users = dense_ids(ratings.users)
    items, n_items = dense_ids(ratings.items)
    order = _by_user_then_time(users, n_users, ratings.timestamps)
    by_user = users[order]
    last_of_user = np.flatnonzero(np.r_[by_user[1:] != by_user[:-1], True])
    held_out_rows = order[last_of_user]                  # user 0, 1, ... in order
    test_items = items[held_out_rows]

    train = np.ones(len(users), dtype=bool)
    train[held_out_rows] = False
    keys = _sorted_unique(users[train] * n_items + items[train])
    test_keys = np.arange(n_users, dtype=np.int64) * n_items + test_items
    at = np.searchsorted(keys, test_keys)
    hit = at < len(keys)
    hit[hit] = keys[at[hit]] == test_keys[hit]
    keys = np.delete(keys, at[hit])

    # Negatives are drawn from the items a user has not rated: there must be some.
    rated = np.bincount(keys // n_items, minlength=n_users) + 1
    if (full := np.flatnonzero(rated >= n_items)).size:
        raise DatasetError(f"{full.size} user(s) rated every one of the {n_items} items: no "
                           "negatives can be sampled for them")
    return Split(n_users, n_items, keys, test_items)


def _by_user_then_time(users: np.ndarray, n_users: int, timestamps: np.ndarray) -> np.ndarray:
    """Stable order by (user, timestamp). One stable argsort of a combined int64 key: 1 s for
    ml-20m where np.lexsort of the two keys took 14 s; lexsort when the key would overflow."""
    t0 = int(timestamps.min())
    span = int(timestamps.max()) - t0 + 1
    if n_users * span < 2**62:
        return np.argsort(users * span + (timestamps - t0), kind="stable")
    return np.lexsort((timestamps, users))


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sort and compare (0.5 s on 20M int64 keys here; np.unique took 13 s)."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


# -- 4. evaluation candidates ------------------------------------------------------------------


def eval_negatives(split: Split, n_negatives: int, rng: np.random.Generator,
                   users_per_chunk: int = 1024) -> np.ndarray:
    """[n_users, n_negatives] items each user never rated, drawn with replacement as convert.py
    does. Two details of the reference, kept or not:
    - it scores candidates through a dict keyed by item, so a repeated draw counts once: we mark
      repeats with the padding id ``split.n_items``, which evaluation ignores (kept);
    - it draws from "all items minus the training items", so the held-out item itself can be
      drawn as a negative (then merged with it by the dict): we exclude it, as the README's
      "999 unrated items" says (a difference for ~4% of users, one candidate fewer).
    Stored as uint16 when the ids fit (277 MB instead of 1.1 GB for ml-20m).
    """
    pad = split.n_items
    dtype = np.uint16 if pad <= np.iinfo(np.uint16).max else np.int32
    out = np.empty((split.n_users, n_negatives), dtype=dtype)
    for lo in range(0, split.n_users, users_per_chunk):
        hi = min(lo + users_per_chunk, split.n_users)
        rated = _rated_matrix(split, lo, hi).reshape(-1)     # flat: 1-D lookups are fast
        row_start = np.repeat(np.arange(hi - lo) * split.n_items, n_negatives)
        draws = rng.integers(0, split.n_items, size=(hi - lo) * n_negatives)
        redo = np.flatnonzero(rated[row_start + draws])
        while redo.size:                                 # redraw rated items until none is left
            draws[redo] = rng.integers(0, split.n_items, size=redo.size)
            redo = redo[rated[row_start[redo] + draws[redo]]]
        draws = draws.reshape(hi - lo, n_negatives)
        draws.sort(axis=1)
        repeats = np.zeros_like(draws, dtype=bool)
        repeats[:, 1:] = draws[:, 1:] == draws[:, :-1]
        draws[repeats] = pad
        out[lo:hi] = draws
    return out


def _rated_matrix(split: Split, lo: int, hi: int) -> np.ndarray:
    """[hi - lo, n_items] bool: what users lo..hi-1 rated (training positives and held-out)."""
    rated = np.zeros((hi - lo, split.n_items), dtype=bool)
    a, b = np.searchsorted(split.train_keys, [lo * split.n_items, hi * split.n_items])
    keys = split.train_keys[a:b]
    rated[keys // split.n_items - lo, keys % split.n_items] = True
    rated[np.arange(hi - lo), split.test_items[lo:hi]] = True
    return rated


# -- 5. training samples, per epoch --------------------------------------------------------------


def sample_negatives(split: Split, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly drawn item per entry of ``users`` that is not a training positive of that
    user: draw all, then redraw only the collisions (the reference redraws one at a time)."""
    items = rng.integers(0, split.n_items, size=len(users))
    bad = np.flatnonzero(split.is_train_positive(users, items))
    while bad.size:
        items[bad] = rng.integers(0, split.n_items, size=bad.size)
        bad = bad[split.is_train_positive(users[bad], items[bad])]
    return items


def samples_per_epoch(split: Split, negatives: int) -> int:
    return len(split.train_keys) * (1 + negatives)


def positives_per_shard(batch_size: int, target: int = 1_000_000) -> int:
    """About ``target`` training positives, a whole number of batches with their negatives."""
    return batch_size * max(1, target // batch_size)


def epoch_shards(split: Split, negatives: int, batch_size: int, rng: np.random.Generator,
                 target_positives_per_shard: int = 1_000_000,
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(users, items, labels) of one epoch, a shard at a time: every training positive once
    with ``negatives`` fresh negatives each, in random order.

    Positives are permuted globally, each shard of about a million gets its negatives and is
    shuffled. One shard holds the whole of ml-1m; for ml-20m this keeps 100 MB in memory instead
    of 2 GB, and a shard is a uniform random subset, so batches cut from it are mixed as a
    global shuffle would mix them. Shards are whole batches long, so only the epoch's last
    batch can be short (as the reference's DataLoader, drop_last=False).
    """
    per_shard = positives_per_shard(batch_size, target_positives_per_shard)
    permuted = rng.permutation(split.train_keys)
    for lo in range(0, len(permuted), per_shard):
        keys = permuted[lo:lo + per_shard]
        pos_users, pos_items = keys // split.n_items, keys % split.n_items
        neg_users = np.repeat(pos_users, negatives)
        neg_items = sample_negatives(split, neg_users, rng)
        order = rng.permutation(len(keys) * (1 + negatives))
        yield (np.concatenate([pos_users, neg_users])[order],
               np.concatenate([pos_items, neg_items])[order],
               np.r_[np.ones(len(keys), np.float32), np.zeros(len(neg_users), np.float32)][order])


def epoch_arrays(split: Split, negatives: int, batch_size: int, rng: np.random.Generator,
                 target_positives_per_shard: int = 1_000_000,
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(users, items, labels) numpy batches of one epoch (see epoch_shards)."""
    for users, items, labels in epoch_shards(split, negatives, batch_size, rng,
                                             target_positives_per_shard):
        for b in range(0, len(labels), batch_size):
            yield users[b:b + batch_size], items[b:b + batch_size], labels[b:b + batch_size]


def epoch_batches(split: Split, negatives: int, batch_size: int, rng: np.random.Generator,
                  device: str = "cpu", target_positives_per_shard: int = 1_000_000,
                  ) -> Iterator[tuple[object, object, object]]:
    """epoch_arrays as torch tensors on ``device``: one copy per shard, then slices of it."""
    import torch

    for shard in epoch_shards(split, negatives, batch_size, rng, target_positives_per_shard):
        users, items, labels = (torch.from_numpy(a).to(device) for a in shard)
        for b in range(0, len(labels), batch_size):
            yield users[b:b + batch_size], items[b:b + batch_size], labels[b:b + batch_size]


# -- everything, for one run -------------------------------------------------------------------


@dataclass(frozen=True)
class NcfData:
    dataset: str                  # "ml-20m", "ml-1m" or "synthetic (planted latent factors)"
    split: Split
    eval_items: np.ndarray | None  # [n_users, eval_negatives], padding id = split.n_items;
                                   # None until draw_eval_items (inside the timed window)
    n_ratings: int                # ratings read
    dropped_users: int            # users under min_ratings
    dropped_ratings: int
    verdict: Verdict              # what the ratings turned out to be (result.json's label)


SYNTHETIC = "synthetic (planted latent factors)"


def load(cfg, data_dir: Path | None, say: Callable[[str], None] = lambda s: None) -> NcfData:
    """Read (or generate), filter, split and draw the evaluation set for ``cfg``."""
    return draw_eval_items(prepare(cfg, data_dir, say), cfg)


def draw_eval_items(data: NcfData, cfg) -> NcfData:
    """``data`` with its fixed evaluation candidates (convert.py's 999 negatives per user, from
    ``data_seed``). Separate from prepare(): the v0.5 reference draws them inside the timed
    window (references/ncf/train.py)."""
    rng = np.random.default_rng(cfg.data_seed)
    return replace(data, eval_items=eval_negatives(data.split, cfg.eval_negatives, rng))


def prepare(cfg, data_dir: Path | None, say: Callable[[str], None] = lambda s: None,
            check: Callable[[Verdict], None] = lambda v: None) -> NcfData:
    """Read (or generate) the ratings, identify them by their counts (``check`` sees the
    verdict first: a refused dataset is refused before any more work), filter and split."""
    if cfg.dataset == "synthetic":
        ratings = synthetic_interactions(
            cfg.synthetic_users, cfg.synthetic_items, cfg.synthetic_factors,
            cfg.synthetic_min_interactions, cfg.synthetic_max_interactions, cfg.data_seed)
        name, verdict = SYNTHETIC, datasets.synthetic(SYNTHETIC)
    else:
        check_data_dir(cfg, data_dir)
        fmt = find_ratings(Path(data_dir), prefer=cfg.dataset)
        say(f"reading {Path(data_dir) / fmt.filename}")
        ratings = read_ratings(Path(data_dir) / fmt.filename, fmt)
        name = fmt.name
        # Counted on the arrays already in memory (~0.1 s for ml-20m): no second read.
        counts = {"ratings": len(ratings), "users": _distinct(ratings.users),
                  "items": _distinct(ratings.items)}
        verdict = datasets.identify("ncf", fmt.name, counts,
                                    where=f"{fmt.filename} in {Path(data_dir).name}/")
    check(verdict)
    kept, dropped_users = drop_sparse_users(ratings, cfg.min_ratings)
    if dropped_users:
        say(f"dropped {dropped_users:,} user(s) with fewer than {cfg.min_ratings} ratings "
            f"({len(ratings) - len(kept):,} ratings), as the reference does")
    if len(kept) == 0:
        raise DatasetError(f"no user has at least {cfg.min_ratings} ratings "
                           f"({len(ratings):,} ratings read)")
    split = leave_one_out(kept)
    return NcfData(name, split, None, len(ratings), dropped_users, len(ratings) - len(kept),
                   verdict)


def _distinct(ids: np.ndarray) -> int:
    return dense_ids(ids)[1]


def find_hint() -> str:
    return "extracted MovieLens folder with " + " or ".join(f.describe() for f in FORMATS)


def check_data_dir(cfg, data_dir: Path | None) -> None:
    """DatasetError unless ``data_dir`` holds MovieLens ratings (when ``cfg`` needs data)."""
    if cfg.data_folder() is None:
        return
    if data_dir is None:
        raise DatasetError(f"--data is required for dataset {cfg.dataset}: the {find_hint()}")
    try:
        find_ratings(Path(data_dir), prefer=cfg.dataset)
    except DatasetError as exc:
        raise DatasetError(f"{exc}{sibling_hint(cfg, Path(data_dir))}") from None


def sibling_hint(cfg, data_dir: Path) -> str:
    """'; .../ml-1m holds ratings.dat: ...' when another MovieLens release sits beside the
    folder that was looked in (an ml-1m next to a missing ml-20m is not used silently)."""
    for fmt in FORMATS:
        sibling = data_dir.parent / fmt.name
        if fmt.name != cfg.dataset and (sibling / fmt.filename).is_file():
            return (f"; {sibling} holds {fmt.describe()}: to train on it, "
                    f"--set dataset={fmt.name} (not the MLPerf dataset: open division)")
    return ""


def dataset_files(cfg, data_dir: Path) -> list[Path]:
    """The files a run reads (for the cache clear before it)."""
    return [Path(data_dir) / find_ratings(Path(data_dir), prefer=cfg.dataset).filename]
