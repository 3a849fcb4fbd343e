"""Dataset identity by what the loaders read: the table's published figures, the verdicts and
labels, the closed-division refusal, and each reference's loader identifying real layouts
holding other data (MovieLens-100k-shaped ratings written as ml-20m, a small ILSVRC-style tree,
a small aclImdb tree)."""

from __future__ import annotations

import pytest

from references import registry
from references.common import datasets
from references.common.errors import DatasetError
from references.ncf import data as ncf_data
from references.sentiment import data as sdata
from tests.references.conftest import ratings_rows, write_aclimdb, write_ml20m


def test_the_table_holds_the_published_figures():
    t = datasets.TABLE
    assert t["ml-20m"].counts == {"ratings": 20_000_263, "users": 138_493, "items": 26_744}
    assert t["ml-1m"].counts == {"ratings": 1_000_209, "users": 6_040, "items": 3_706}
    assert t["imagenet"].counts == {"train images": 1_281_167, "classes": 1_000,
                                    "val images": 50_000}
    assert t["aclImdb"].counts["train reviews"] == t["aclImdb"].counts["test reviews"] == 25_000
    assert t["aclImdb"].counts["train pos"] == t["aclImdb"].counts["test neg"] == 12_500
    assert t["wmt-newstest2014-en-de"].counts == {"sentences": 3_003}
    assert {n: t[f"librispeech-{n}"].counts["utterances"] for n in
            ("train-clean-100", "dev-clean", "test-clean")} == \
        {"train-clean-100": 28_539, "dev-clean": 2_703, "test-clean": 2_620}
    assert t["ml-20m"].checksums[0].md5 == "cd245b17a1ae2cc31bb14903e1204af3"
    assert t["aclImdb"].checksums[0].md5 == "7c2ac02c03563afcf9b574c7e56c153a"
    assert all(i.source for i in t.values())
    assert {i.name for i in t.values() if i.by != "counts"} == {"minigo-benchmark-sgf"}
    for benchmark, name in (("ncf", "ml-20m"), ("resnet", "imagenet"),
                            ("sentiment", "aclImdb"), ("transformer", "wmt-newstest2014-en-de"),
                            ("deepspeech2", "librispeech-train-clean-100"),
                            ("maskrcnn", "coco2017"), ("minigo", "minigo-benchmark-sgf")):
        assert datasets.mlperf_dataset(benchmark).name == name


def test_the_real_counts_are_identified_and_labelled():
    verdict = datasets.identify("ncf", "ml-20m", {"ratings": 20_000_263, "users": 138_493,
                                                  "items": 26_744}, "ratings.csv in ml-20m/")
    assert verdict.is_mlperf and verdict.name == "ml-20m"
    assert verdict.label == ("ml-20m (MovieLens 20M: identified by counts, 20,000,263 ratings, "
                             "138,493 users, 26,744 items)")
    datasets.require_mlperf(verdict, "ncf", "full", "closed")            # no error


def test_other_data_in_the_layout_is_not_the_mlperf_dataset():
    ml100k = {"ratings": 100_000, "users": 943, "items": 1_682}
    verdict = datasets.identify("ncf", "ml-20m", ml100k, "ratings.csv in ml-20m/")
    assert not verdict.is_mlperf
    assert verdict.label.startswith("ratings.csv in ml-20m/ -- NOT the MLPerf dataset (100,000 "
                                    "ratings, 943 users, 1,682 items; ml-20m has 20,000,263")
    with pytest.raises(DatasetError, match=r"not ml-20m \(MovieLens 20M\).*--division open"):
        datasets.require_mlperf(verdict, "ncf", "full", "closed")
    for mode, division in (("full", "open"), ("reduced", "open"), ("reduced", "closed")):
        datasets.require_mlperf(verdict, "ncf", mode, division)          # runs, labelled


def test_a_known_other_dataset_is_named_and_not_mlperf():
    ml1m = {"ratings": 1_000_209, "users": 6_040, "items": 3_706}
    as_itself = datasets.identify("ncf", "ml-1m", ml1m, "ratings.dat in ml-1m/")
    assert not as_itself.is_mlperf and as_itself.name == "ml-1m"
    assert "NOT the MLPerf dataset: ml-1m is not ncf's MLPerf dataset (ml-20m)" in as_itself.label
    disguised = datasets.identify("ncf", "ml-20m", ml1m, "ratings.csv in ml-20m/")
    assert "(these are ml-1m's counts)" in disguised.label


def test_digits_as_ilsvrc_folders_are_not_imagenet():
    verdict = datasets.identify("resnet", "imagenet", {"train images": 1_437, "classes": 10,
                                                       "val images": 360}, "ILSVRC-style in x/")
    assert not verdict.is_mlperf and "imagenet has 1,281,167 train images" in verdict.label
    assert len(datasets.identify("resnet", "imagenet", {"train images": 1, "classes": 1,
                                                        "val images": 1}, "x" * 600).label) \
        <= datasets.MAX_LABEL


def test_synthetic_data_is_labelled_as_such():
    verdict = datasets.synthetic("synthetic (planted latent factors)")
    assert not verdict.is_mlperf and verdict.label == "synthetic (planted latent factors)"


def test_identify_wants_every_count_it_checks():
    with pytest.raises(ValueError, match="items"):
        datasets.identify("ncf", "ml-20m", {"ratings": 1, "users": 1}, "x")


# -- the loaders count what they read ----------------------------------------------------------

def test_ncf_loader_labels_small_ratings_written_as_ml20m(tmp_path):
    data = write_ml20m(tmp_path / "ml-20m", ratings_rows())
    cfg = registry.get("ncf").make_config("reduced")
    prepared = ncf_data.prepare(cfg, data)
    assert prepared.eval_items is None                  # drawn later, inside the timed window
    assert not prepared.verdict.is_mlperf
    assert prepared.verdict.counts == {"ratings": len(ratings_rows()), "users": 60,
                                       "items": len({i for _, i, _, _ in ratings_rows()})}
    assert prepared.verdict.label.startswith("ratings.csv in ml-20m/ -- NOT the MLPerf dataset")


def test_ncf_loader_identifies_ml20m_by_its_counts(tmp_path, monkeypatch):
    rows = ratings_rows()
    tiny = datasets.Identity("ml-20m", "MovieLens 20M", ("ncf",),
                             {"ratings": len(rows), "users": 60,
                              "items": len({i for _, i, _, _ in rows})}, "test")
    monkeypatch.setitem(datasets.TABLE, "ml-20m", tiny)
    prepared = ncf_data.prepare(registry.get("ncf").make_config("full"),
                                write_ml20m(tmp_path / "ml-20m", rows))
    assert prepared.verdict.is_mlperf and prepared.verdict.label.startswith("ml-20m (MovieLens")


def test_sentiment_loader_labels_a_small_review_tree(tmp_path):
    root = write_aclimdb(tmp_path / "aclImdb", per_class=3)
    data = sdata.load(registry.get("sentiment").make_config("reduced"), root, seed=1)
    assert not data.verdict.is_mlperf
    assert data.verdict.counts["train reviews"] == 6 and data.verdict.counts["test pos"] == 3
    assert "aclImdb has 25,000 train reviews" in data.verdict.label
