"""MovieLens parsing, the reference's filter and split, and negative sampling."""

from __future__ import annotations

import numpy as np
import pytest

from references.common.errors import DatasetError
from references.ncf import data as D
from references.ncf.config import NcfConfig
from tests.references.conftest import ratings_rows, write_ml1m, write_ml20m

# -- parsers -------------------------------------------------------------------------------------


def test_reads_ml20m_csv_with_its_header(tmp_path):
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n"
        "2,3,4.0,974820889\n")
    got = D.read_ratings(tmp_path / "ratings.csv", D.ML20M)
    assert got.users.tolist() == [1, 1, 2]
    assert got.items.tolist() == [2, 29, 3]
    assert got.timestamps.tolist() == [1112486027, 1112484676, 974820889]


def test_reads_ml1m_dat_with_double_colons(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\r\n1::661::3::978302109\r\n")
    got = D.read_ratings(tmp_path / "ratings.dat", D.ML1M)
    assert got.users.tolist() == [1, 1]
    assert got.items.tolist() == [1193, 661]
    assert got.timestamps.tolist() == [978300760, 978302109]


def test_fixture_writers_round_trip_through_both_parsers(tmp_path):
    rows = ratings_rows(n_users=5, sparse_users=0)
    a = D.read_ratings(write_ml20m(tmp_path / "a", rows) / "ratings.csv", D.ML20M)
    b = D.read_ratings(write_ml1m(tmp_path / "b", rows) / "ratings.dat", D.ML1M)
    assert a.users.tolist() == b.users.tolist() == [r[0] for r in rows]
    assert a.items.tolist() == b.items.tolist() == [r[1] for r in rows]


@pytest.mark.parametrize("fmt, text, line, what", [
    (D.ML20M, "userId,movieId,rating,timestamp\n1,2,3.5,100\n1,3,4.0,101,9\n", 3, "5 fields"),
    (D.ML20M, "userId,movieId,rating,timestamp\n1,2,3.5,100\n1,3,4.0\n", 3, "3 fields"),
    (D.ML20M, "userId,movieId,rating,timestamp\n1,2,3.5,100\n1,x,4.0,5\n", 3, "'x' is not"),
    (D.ML20M, "userId,movieId,rating,timestamp\n1,2,3.5,100\n\n1,3,abc,5\n", 4, "'abc' is not"),
    (D.ML20M, "userId,movieId,rating,timestamp\n1,2.5,3.5,100\n", 2, "'2.5' is not an integer"),
    (D.ML1M, "1::2::3::100\n1::2::3\n", 2, "3 fields"),
    (D.ML1M, "1::2::3::100\n1,2,3,4\n", 2, "1 fields"),
])
def test_malformed_line_names_file_and_line(tmp_path, fmt, text, line, what):
    path = tmp_path / fmt.filename
    path.write_text(text)
    with pytest.raises(DatasetError) as err:
        D.read_ratings(path, fmt)
    message = str(err.value)
    assert str(path) in message and f"line {line}" in message and what in message
    assert fmt.layout in message


def test_wrong_header_is_line_1(tmp_path):
    (tmp_path / "ratings.csv").write_text("user,item,rating,ts\n1,2,3,4\n")
    with pytest.raises(DatasetError, match=r"line 1: expected the header 'userId,movieId"):
        D.read_ratings(tmp_path / "ratings.csv", D.ML20M)


@pytest.mark.parametrize("text, match", [("", "is empty"), ("\n\n", "is empty"),
                                         ("userId,movieId,rating,timestamp\n", "has no ratings")])
def test_empty_files(tmp_path, text, match):
    (tmp_path / "ratings.csv").write_text(text)
    with pytest.raises(DatasetError, match=match):
        D.read_ratings(tmp_path / "ratings.csv", D.ML20M)


def test_missing_ratings_name_both_expected_files(tmp_path):
    with pytest.raises(DatasetError) as err:
        D.find_ratings(tmp_path)
    message = str(err.value)
    assert "ratings.csv (ml-20m: userId,movieId,rating,timestamp)" in message
    assert "ratings.dat (ml-1m: UserID::MovieID::Rating::Timestamp)" in message
    with pytest.raises(DatasetError, match="does not exist"):
        D.find_ratings(tmp_path / "nope")


def test_find_ratings_prefers_the_configured_format(tmp_path):
    rows = ratings_rows(n_users=2, sparse_users=0)
    write_ml20m(tmp_path, rows)
    write_ml1m(tmp_path, rows)
    assert D.find_ratings(tmp_path, prefer="ml-1m") is D.ML1M
    assert D.find_ratings(tmp_path, prefer="ml-20m") is D.ML20M


# -- filter and leave-one-out ---------------------------------------------------------------------


def interactions(rows):
    u, i, t = (np.array(c, dtype=np.int64) for c in zip(*rows))
    return D.Interactions(u, i, t)


def test_users_under_min_ratings_are_dropped():
    ratings = interactions([(7, 1, 1), (7, 2, 2), (9, 1, 1), (9, 2, 2), (9, 3, 3), (8, 4, 1)])
    kept, dropped = D.drop_sparse_users(ratings, min_ratings=3)
    assert dropped == 2                                      # users 7 and 8
    assert set(kept.users.tolist()) == {9} and len(kept) == 3


def test_leave_one_out_holds_out_each_users_latest_rating():
    # (user, item, timestamp), users interleaved as a file need not group them.
    ratings = interactions([
        (10, 1, 100), (20, 1, 50), (10, 2, 300), (20, 2, 80), (10, 3, 200),
        (20, 3, 80),          # user 20: items 2 and 3 tie at the latest time
        (40, 5, 1), (40, 6, 5), (40, 5, 9),   # user 40 rated item 5 twice; the later is held out
    ])
    split = D.leave_one_out(ratings)
    # dense ids in sorted order of the originals: users 10,20,40 -> 0,1,2; items 1,2,3,5,6 -> 0..4
    assert (split.n_users, split.n_items) == (3, 5)
    # user 10: latest is item 2 (t=300). user 20: the tie goes to the row that comes last in the
    # file (item 3): a stable sort by time. user 40: item 5 (t=9).
    assert split.test_items.tolist() == [1, 2, 3]
    train = sorted(zip(split.train_users.tolist(), split.train_items.tolist()))
    # user 40's earlier rating of its held-out item is not a training positive (the reference
    # keeps training pairs in a set and removes the held-out pair).
    assert train == [(0, 0), (0, 2), (1, 0), (1, 1), (2, 4)]


def test_a_user_who_rated_everything_is_refused():
    ratings = interactions([(1, 1, 1), (1, 2, 2), (2, 1, 1), (2, 2, 5)])
    with pytest.raises(DatasetError, match="rated every one of the 2 items"):
        D.leave_one_out(ratings)


# -- negatives ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def split():
    ratings = D.synthetic_interactions(80, 120, 4, 20, 60, seed=3)
    return D.leave_one_out(ratings)


def test_training_negatives_are_never_training_positives(split):
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(split.n_users), 500)
    items = D.sample_negatives(split, users, rng)
    assert not split.is_train_positive(users, items).any()
    assert items.min() >= 0 and items.max() < split.n_items
    # ... and cover the rest of the catalogue, not a few favourites.
    assert len(np.unique(items)) > 0.9 * split.n_items


def test_eval_negatives_are_unrated_and_repeats_are_padding(split):
    negs = D.eval_negatives(split, 99, np.random.default_rng(0), users_per_chunk=7)
    assert negs.shape == (split.n_users, 99)
    pad = split.n_items
    for user in range(split.n_users):
        row = negs[user][negs[user] != pad].astype(np.int64)
        assert len(set(row.tolist())) == len(row)            # each distinct item once
        assert not split.is_train_positive(np.full(len(row), user), row).any()
        assert split.test_items[user] not in row
    # the same seed gives the same evaluation set, whatever the run seed
    again = D.eval_negatives(split, 99, np.random.default_rng(0), users_per_chunk=7)
    assert np.array_equal(negs, again)


def test_an_epoch_has_every_positive_once_and_four_negatives_each(split):
    batches = list(D.epoch_batches(split, 4, 64, np.random.default_rng(1),
                                   target_positives_per_shard=300))
    users = np.concatenate([b[0].numpy() for b in batches])
    items = np.concatenate([b[1].numpy() for b in batches])
    labels = np.concatenate([b[2].numpy() for b in batches])
    assert len(labels) == D.samples_per_epoch(split, 4) == 5 * len(split.train_keys)
    assert all(len(b[2]) == 64 for b in batches[:-1])        # only the last batch is short
    pos = labels == 1
    assert np.array_equal(np.sort(users[pos] * split.n_items + items[pos]), split.train_keys)
    assert not split.is_train_positive(users[~pos], items[~pos]).any()
    assert np.array_equal(np.bincount(users[~pos], minlength=split.n_users),
                          4 * np.bincount(users[pos], minlength=split.n_users))


def test_load_synthetic_reports_the_filter(capsys):
    cfg = NcfConfig.smoke()
    messages = []
    data = D.load(cfg, None, messages.append)
    assert data.dataset == D.SYNTHETIC
    assert data.dropped_users > 0 and any("fewer than 20 ratings" in m for m in messages)
    assert data.eval_items.shape == (data.split.n_users, cfg.eval_negatives)
