"""Sentiment: tokenisation and vocabulary, the aclImdb layout and its errors, the seq-CNN's
masking, and runs through the CLI checked by the real compliance checker with our rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from references import registry
from references.common.errors import DatasetError
from references.compliance import check
from references.sentiment import data as sdata
from references.sentiment.model import SeqCNN
from tests.references.conftest import write_aclimdb


def test_tokenize_as_the_paddle_reader():
    assert sdata.tokenize("Great film!<br /><br />I'd see it AGAIN.\n") == \
        ["great", "filmbr", "br", "id", "see", "it", "again"]


def test_vocabulary_comes_from_the_training_split_only(tmp_path):
    root = write_aclimdb(tmp_path / "aclImdb")
    (root / "test" / "pos" / "99_9.txt").write_text("zyzzyva " * 50)
    cfg = registry.get("sentiment").make_config("reduced", {"min_word_count": "2"})
    data = sdata.load(cfg, root, seed=1)
    assert "zyzzyva" not in data.vocab and data.vocab[sdata.UNK] == len(data.vocab) - 1
    assert "wonderful" in data.vocab and "awful" in data.vocab
    unk = data.vocab[sdata.UNK]
    assert (data.test.tokens[-1] == unk).sum() == 50      # test/pos/99_9.txt, read last
    assert len(data.train) == 12 and len(data.test) == 13
    assert sorted(set(data.train.labels.tolist())) == [0, 1]


def test_vocabulary_order_and_cutoff():
    vocab = sdata.build_vocab([["b", "a", "a", "c"], ["a", "b"]], min_count=2)
    assert vocab == {"a": 0, "b": 1, sdata.UNK: 2}


@pytest.mark.parametrize("breakage, message", [
    ("bad_name", "expected a file named <id>_<rating>.txt with a rating of 7-10 in pos/"),
    ("bad_rating", "rating of 1-4 in neg/"),
    ("missing_split", "test/neg is missing"),
    ("empty_split", "holds no reviews"),
])
def test_bad_layouts_name_the_file(tmp_path, breakage, message):
    root = write_aclimdb(tmp_path / "aclImdb")
    if breakage == "bad_name":
        (root / "train" / "pos" / "review.txt").write_text("fine")
    elif breakage == "bad_rating":
        (root / "train" / "neg" / "7_8.txt").write_text("odd")
    elif breakage == "missing_split":
        for f in (root / "test" / "neg").iterdir():
            f.unlink()
        (root / "test" / "neg").rmdir()
    elif breakage == "empty_split":
        for folder in ("pos", "neg"):
            for f in (root / "test" / folder).iterdir():
                f.unlink()
    cfg = registry.get("sentiment").make_config("reduced")
    with pytest.raises(DatasetError, match=message.replace("|", r"\|")):
        sdata.load(cfg, root, seed=1)


def test_padding_never_changes_a_reviews_score():
    torch.manual_seed(0)
    model = SeqCNN(50, 8, 6, (3, 4)).eval()
    short = torch.tensor([[5, 7, 9, 11, 13]])
    alone = model(short, torch.tensor([5]))
    padded = torch.cat((short, torch.full((1, 20), 3)), dim=1)      # pad with a real token id
    assert torch.allclose(model(padded, torch.tensor([5])), alone, atol=1e-6)
    tiny = torch.tensor([[4, 0, 0, 0]])                              # one word: still a score
    assert torch.isfinite(model(tiny, torch.tensor([1]))).all()


def test_batches_pad_to_the_longest_and_keep_every_review():
    reviews = sdata.Reviews([np.arange(n) for n in (2, 7, 5)], np.array([0, 1, 0]))
    got = list(sdata.batches(reviews, 2, min_len=4, rng=np.random.default_rng(0)))
    assert sum(len(b[2]) for b in got) == 3
    assert {tuple(b[0].shape) for b in got} <= {(2, 7), (1, 4), (2, 5), (1, 7)}
    assert sorted(int(x) for b in got for x in b[1]) == [2, 5, 7]


def test_closed_division_allows_batch_size_and_learning_rate_only():
    spec = registry.get("sentiment")
    assert spec.make_config("full", {"batch_size": "64", "learning_rate": "1e-3"}).batch_size == 64
    with pytest.raises(Exception, match="closed division: filters may not be changed"):
        spec.make_config("full", {"filters": "128"})
    assert spec.make_config("full", {"filters": "128"}, "open").filters == 128


@pytest.mark.integration
def test_smoke_reaches_its_target_and_passes_our_rules(references_cli):
    run = references_cli("run", "sentiment", "--mode", "smoke", "--seed", "2")
    assert run.code == 0, run.stderr
    result = run.result
    assert result["reached_target"] and result["quality"] >= result["target"]["value"] == 0.90
    assert result["time_to_train_s"] is None and result["time_to_target_s"] > 0
    assert "synthetic" in result["target"]["source"] and result["division"] == "open"
    for proc in check("sentiment", run.out):
        assert proc.returncode == 0 and "SUCCESS" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.integration
def test_reduced_run_on_aclimdb_reports_a_labelled_assumption(references_cli, tmp_path):
    root = write_aclimdb(tmp_path / "aclImdb")
    run = references_cli("run", "sentiment", "--mode", "reduced", "--data", str(root),
                         "--division", "open", "--set", "embedding_dim=16", "--set", "filters=16",
                         "--set", "batch_size=4", "--max-steps", "2")
    assert run.code == 0, run.stderr
    result = run.result
    assert result["stop_reason"] == "max_steps" and result["samples_trained"] == 8
    assert result["dataset"] == "aclImdb" and result["time_to_train_s"] is None
    projection = result["projection"]
    assert projection["kind"] == "projection" and "ASSUMPTION" in projection["basis"]
    assert projection["time_to_train_s"] == pytest.approx(5 * result["epoch_time_s"])
    vocab = next(e for e in run.events if e["key"] == "preproc_hp_vocab_size")["value"]
    assert vocab == 1           # only <unk>: no fixture word is seen 151 times (paddle cutoff)


@pytest.mark.integration
def test_full_mode_refuses_a_missing_folder_in_one_line(references_cli, tmp_path):
    run = references_cli("run", "sentiment", "--mode", "full", "--data",
                         str(tmp_path / "nowhere"), out=False)
    assert run.code == 2 and run.stdout == ""
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1
    assert "expected the aclImdb layout" in run.stderr


def test_the_smoke_data_is_balanced_and_planted():
    cfg = registry.get("sentiment").make_config("smoke")
    texts, labels = sdata.synthetic_reviews(cfg, seed=1)
    assert sum(labels) == len(labels) // 2
    for text, y in zip(texts[:50], labels[:50]):
        own = "good" if y else "bad"
        assert any(w.startswith(own) for w in sdata.tokenize(text))
