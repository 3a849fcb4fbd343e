"""Sentiment: tokenisation and vocabulary, the aclImdb layout and its errors, the seq-CNN's
masking, and runs through the CLI checked by the real compliance checker with our rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

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
    assert "zyzzyva" not in data.vocab and data.vocab[sdata.UNK] == len(data.vocab)
    assert min(data.vocab.values()) == 1                  # id 0 is padding, no word
    assert "wonderful" in data.vocab and "awful" in data.vocab
    unk = data.vocab[sdata.UNK]
    assert (data.test.tokens[-1] == unk).sum() == 50      # test/pos/99_9.txt, read last
    assert len(data.train) == 12 and len(data.test) == 13
    assert sorted(set(data.train.labels.tolist())) == [0, 1]


def test_vocabulary_order_and_cutoff():
    vocab = sdata.build_vocab([["b", "a", "a", "c"], ["a", "b"]], min_count=2)
    assert vocab == {"a": 1, "b": 2, sdata.UNK: 3}       # 0 is padding


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


def paddle_features(model: SeqCNN, tokens: list[int]) -> torch.Tensor:
    """The pooled features as paddle's sequence_conv computes them, written out by hand: one
    window per word, context from k // 2 words before it, zeros past either end, ELU, max."""
    emb = model.embedding.weight[torch.tensor(tokens)]                   # [T, emb]
    feats = []
    for conv in model.convs:
        k = conv.kernel_size[0]
        outs = []
        for t in range(len(tokens)):
            window = torch.stack([emb[t + j - k // 2] if 0 <= t + j - k // 2 < len(tokens)
                                  else torch.zeros(emb.shape[1]) for j in range(k)], dim=1)
            outs.append(nn.functional.elu((conv.weight * window).sum(dim=(1, 2)) + conv.bias))
        feats.append(torch.stack(outs).amax(dim=0))
    return torch.cat(feats)


@torch.no_grad()
def test_convolution_gives_one_window_per_word_with_zeros_past_the_ends():
    torch.manual_seed(0)
    model = SeqCNN(50, 8, 6, (3, 4)).eval()
    for tokens in ([5, 7, 9, 11, 13], [4, 9], [8]):                     # shorter than k too
        got = model(torch.tensor([tokens]), torch.tensor([len(tokens)]))
        want = model.fc(paddle_features(model, tokens))
        assert torch.allclose(got[0], want, atol=1e-5), tokens


@torch.no_grad()
def test_padding_is_id_zero_a_zero_vector_and_never_changes_a_score():
    torch.manual_seed(0)
    model = SeqCNN(50, 8, 6, (3, 4)).eval()
    assert model.embedding.padding_idx == sdata.PAD == 0
    assert model.embedding.weight[0].abs().sum() == 0
    short = torch.tensor([[5, 7, 9, 11, 13]])
    alone = model(short, torch.tensor([5]))
    padded = torch.cat((short, torch.zeros((1, 20), dtype=torch.long)), dim=1)
    assert torch.allclose(model(padded, torch.tensor([5])), alone, atol=1e-6)
    tiny = torch.tensor([[4, 0, 0, 0]])                                  # one word: still a score
    assert torch.isfinite(model(tiny, torch.tensor([1]))).all()


def test_the_padding_row_stays_zero_while_training():
    torch.manual_seed(0)
    model = SeqCNN(20, 4, 3, (3,))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(
        model(torch.tensor([[3, 4, 0, 0], [5, 6, 7, 8]]), torch.tensor([2, 4])),
        torch.tensor([0, 1]))
    loss.backward()
    optimizer.step()
    assert model.embedding.weight[0].abs().sum() == 0


def test_batches_are_bucketed_deterministic_and_keep_every_review():
    lengths = np.random.default_rng(0).integers(1, 400, size=1000)
    reviews = sdata.Reviews([np.arange(1, n + 1) for n in lengths], np.arange(1000) % 2)
    got = list(sdata.batches(reviews, 16, np.random.default_rng(3), pool_batches=8))
    assert sorted(int(x) for b in got for x in b[1]) == sorted(lengths.tolist())
    for tokens, lens, _ in got:
        assert tokens.shape[1] == int(lens.max())                          # to the longest
        assert all((row[n:] == sdata.PAD).all() for row, n in zip(tokens, lens))
    again = list(sdata.batches(reviews, 16, np.random.default_rng(3), pool_batches=8))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(got, again))      # same seed, same order
    other = list(sdata.batches(reviews, 16, np.random.default_rng(4), pool_batches=8))
    assert any(not torch.equal(a[1], b[1]) for a, b in zip(got, other))
    # Bucketing: far less convolution over padding than batches of random lengths.
    plain = np.random.default_rng(3).permutation(1000)
    plain_work, words = sdata.conv_work(lengths, [plain[i:i + 16] for i in range(0, 1000, 16)])
    bucketed_work, _ = sdata.conv_work(
        lengths, sdata.batch_order(lengths, 16, np.random.default_rng(3), pool_batches=8))
    assert bucketed_work < 1.2 * words and plain_work > 1.5 * words      # 1.12x vs 1.83x


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
def test_reduced_run_on_a_small_review_tree_is_labelled_not_projected(references_cli, tmp_path):
    root = write_aclimdb(tmp_path / "aclImdb")
    run = references_cli("run", "sentiment", "--mode", "reduced", "--data", str(root),
                         "--division", "open", "--set", "embedding_dim=16", "--set", "filters=16",
                         "--set", "batch_size=4", "--max-steps", "2")
    assert run.code == 0, run.stderr
    result = run.result
    assert result["stop_reason"] == "max_steps" and result["samples_trained"] == 8
    assert result["dataset"].startswith("review folders in aclImdb/ -- NOT the MLPerf dataset")
    assert result["time_to_train_s"] is None
    assert result["projection"] is None and "no projection: 5 epochs" in run.stderr
    vocab = next(e for e in run.events if e["key"] == "preproc_hp_vocab_size")["value"]
    assert vocab == 1           # only <unk>: no fixture word is seen 151 times (paddle cutoff)


@pytest.mark.integration
def test_closed_full_run_on_a_small_review_tree_is_refused_before_any_log(references_cli,
                                                                          tmp_path):
    root = write_aclimdb(tmp_path / "aclImdb")
    run = references_cli("run", "sentiment", "--mode", "full", "--data", str(root))
    assert run.code == 2 and run.stdout == "" and run.stderr.count("\n") == 1
    assert "not aclImdb" in run.stderr and "6 train pos" in run.stderr
    assert "--division open" in run.stderr


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
