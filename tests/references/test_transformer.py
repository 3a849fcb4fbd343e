"""Transformer: WMT text in its real formats (parallel .en/.de lines, newstest2014 .sgm) and its
errors, the reference's BLEU against hand-worked examples and sacreBLEU, beam search, the
model's pieces, the vocabulary cache and the division rules. Runs through the CLI are in
test_transformer_runs.py."""

from __future__ import annotations

import math
import os
import random
from typing import ClassVar

import numpy as np
import pytest
import torch

from references import registry
from references.common.errors import ConfigError, DatasetError
from references.transformer import bleu, subwords
from references.transformer import data as tdata
from references.transformer.batching import TokenBatcher
from references.transformer.beam import beam_search
from references.transformer.model import Transformer, smoothed_loss
from references.transformer.train import lr_at, prepare

EN = ["the house", "a small dog", "my friend", "the old city", "our new school", "the river"]
DE = ["das Haus", "ein kleiner Hund", "mein Freund", "die alte Stadt", "unsere neue Schule",
      "der Fluss"]
VERBS = [("is big", "ist groß"), ("sleeps", "schläft"), ("was here in 2014", "war 2014 hier")]


def sentence_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        i, (verb_en, verb_de) = rng.randrange(len(EN)), rng.choice(VERBS)
        out.append((f"{EN[i].capitalize()} {verb_en}, I think.",
                    f"{DE[i][0].upper()}{DE[i][1:]} {verb_de}, glaube ich."))
    return out


def write_wmt(root, n_train: int = 300, n_test: int = 20, sgm: bool = True):
    """train.en/train.de line-aligned, and newstest2014 as WMT ships it (.sgm) or plain."""
    root.mkdir(parents=True, exist_ok=True)
    train = sentence_pairs(n_train, 0)
    (root / "train.en").write_text("".join(en + "\n" for en, _ in train), encoding="utf-8")
    (root / "train.de").write_text("".join(de + "\n" for _, de in train), encoding="utf-8")
    test = sentence_pairs(n_test, 1)
    if not sgm:
        (root / "newstest2014.en").write_text("\n".join(en for en, _ in test) + "\n")
        (root / "newstest2014.de").write_text("\n".join(de for _, de in test) + "\n")
        return root
    for side, tag, lang, col in (("src", "srcset", "en", 0), ("ref", "refset", "de", 1)):
        lines = [f'<{tag} setid="newstest2014" srclang="any"' + (' trglang="de">' if col else ">")]
        for d in range(2):                         # two documents; seg ids restart in each
            lines += [f'<doc sysid="ref" docid="10{d}-bbc" genre="news" origlang="en">', "<p>"]
            half = test[d * n_test // 2:(d + 1) * n_test // 2]
            lines += [f'<seg id="{k + 1}">{pair[col].replace("&", "&amp;")}</seg>'
                      for k, pair in enumerate(half)]
            lines += ["</p>", "</doc>"]
        lines.append(f"</{tag}>")
        (root / f"newstest2014-deen-{side}.{lang}.sgm").write_text("\n".join(lines) + "\n")
    return root


def cfg(**overrides):
    return registry.get("transformer").make_config("reduced", overrides, "open")


# -- data: formats and errors -----------------------------------------------------------------

def test_sgm_segments_are_read_in_order_with_entities_decoded(tmp_path):
    root = write_wmt(tmp_path / "wmt")
    (root / "newstest2014-deen-ref.de.sgm").write_text(
        '<refset setid="x">\n<doc docid="a" genre="news">\n<seg id="1">Tom &amp; Jerry '
        '&quot;gut&quot;</seg>\n<seg id=2>zwei</seg>\n</doc>\n</refset>\n')
    keyed = tdata.read_sgm_keyed(root / "newstest2014-deen-ref.de.sgm")
    assert keyed == [(("a", "1"), 'Tom & Jerry "gut"'), (("a", "2"), "zwei")]
    layout = tdata.find_layout(cfg(), root)
    assert layout.eval_source.name == "newstest2014-deen-src.en.sgm"
    sources = tdata.read_sgm(layout.eval_source)
    assert len(sources) == 20 and sources[0] == sentence_pairs(20, 1)[0][0]


@pytest.mark.parametrize("breakage, message", [
    ("no_de", "train.de is missing: it is the other side of train.en"),
    ("misaligned", "train.de: 299 lines, but train.en has 300: the two sides must be aligned"),
    ("empty", "train.en is empty"),
    ("no_ref", "newstest2014-*ref.de.sgm is missing"),
    ("seg_dropped", "19 segments, but newstest2014-deen-src.en.sgm has 20"),
    ("seg_renumbered", "<seg id> sequence differs"),
    ("plain_misaligned", "newstest2014.de: 19 lines, but newstest2014.en has 20"),
])
def test_data_errors_are_one_clear_error_naming_the_file(tmp_path, breakage, message):
    root = write_wmt(tmp_path / "wmt", sgm=not breakage.startswith("plain"))
    ref = root / "newstest2014-deen-ref.de.sgm"
    if breakage == "no_de":
        (root / "train.de").unlink()
    elif breakage == "misaligned":
        (root / "train.de").write_text("".join((root / "train.de").read_text().splitlines(
            keepends=True)[:-1]))
    elif breakage == "empty":
        (root / "train.en").write_text("")
    elif breakage == "no_ref":
        ref.unlink()
    elif breakage == "seg_dropped":
        lines = ref.read_text().splitlines()
        lines.remove(next(ln for ln in lines if '<seg id="3">' in ln))   # in the first doc
        ref.write_text("\n".join(lines))
    elif breakage == "seg_renumbered":
        ref.write_text(ref.read_text().replace('<seg id="3">', '<seg id="33">', 1))
    elif breakage == "plain_misaligned":
        de = root / "newstest2014.de"
        de.write_text("\n".join(de.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DatasetError, match=message.replace("*", r"\*")):
        registry.get("transformer").check_data(cfg(), root)


def test_line_counts_split_on_newlines_only(tmp_path):
    path = tmp_path / "x.de"
    path.write_bytes("eins\r\nzwei\u2028drei\nvier".encode())     # CRLF, U+2028, no final \n
    assert tdata.count_lines(path) == 3 == len(tdata.read_lines(path))
    assert tdata.read_lines(path) == ["eins", "zwei\u2028drei", "vier"]


# -- BLEU ----------------------------------------------------------------------------------------

def test_bleu_by_hand():
    # 1-grams 3/4, 2-grams 1/3, no 3-gram (1/(2*2)) or 4-gram (1/(4*1)) match: the geometric
    # mean is (3/4 * 1/3 * 1/4 * 1/4)^(1/4) = 0.353553; brevity penalty exp(1 - 6/4).
    got = bleu.compute_bleu([["the", "cat", "sat", "on", "the", "mat"]],
                            [["the", "cat", "the", "cat"]])
    assert got == pytest.approx(0.3535534 * math.exp(-0.5), rel=1e-6)
    assert bleu.reference_bleu(["The cat, sat."], ["the cat , sat ."]) == pytest.approx(100.0)
    assert bleu.reference_bleu(["The cat, sat."], ["the cat , sat ."], case_sensitive=True) < 100
    assert bleu.reference_bleu(["a b c d"], [""]) == 0.0


def test_bleu_tokenizer_is_mtevals_international_one():
    assert bleu.bleu_tokenize("1,000.5 dollars, ok.") == ["1,000.5", "dollars", ",", "ok", "."]
    assert bleu.bleu_tokenize("in 2014.") == ["in", "2014."]         # mteval's quirk, kept
    assert bleu.bleu_tokenize('Das "gut" – 5€?') == \
        ["Das", '"', "gut", '"', "–", "5", "€", "?"]


def test_reference_bleu_matches_sacrebleu_lowercased_intl():
    from sacrebleu.metrics import BLEU

    pairs = sentence_pairs(40, 3)
    refs = [de for _, de in pairs]
    rng = random.Random(0)
    hyps = [" ".join(w for w in de.split() if rng.random() > 0.2) for de in refs]
    ours = bleu.reference_bleu(refs, hyps)
    assert ours == pytest.approx(BLEU(lowercase=True, tokenize="intl").corpus_score(
        hyps, [refs]).score, abs=1e-9)
    score, signature = bleu.sacrebleu_score(refs, hyps)
    assert 0 < score < 100 and "tok:13a" in signature and "case:mixed" in signature


# -- model, schedule, batching, decoding -----------------------------------------------------------

def test_schedule_warms_up_linearly_then_decays_as_rsqrt():
    c = registry.get("transformer").make_config("full")
    peak = 2.0 * 1024 ** -0.5 * 16000 ** -0.5
    assert lr_at(0, c) == 0 and lr_at(8000, c) == pytest.approx(peak / 2)
    assert lr_at(16000, c) == pytest.approx(peak) and lr_at(64000, c) == pytest.approx(peak / 2)


def test_smoothed_loss_is_zero_at_the_smoothed_targets_and_ignores_padding():
    labels = torch.tensor([[3, 1, 0]])
    soft = torch.full((1, 3, 5), 0.1 / 4)
    soft[0, 0, 3] = soft[0, 1, 1] = 0.9
    assert smoothed_loss(soft.log(), labels, 0.1).item() == pytest.approx(0.0, abs=1e-5)
    logits = torch.randn(1, 3, 5)
    plain = torch.nn.functional.cross_entropy(logits[0, :2], labels[0, :2])
    assert smoothed_loss(logits, labels, 0.0).item() == pytest.approx(plain.item(), rel=1e-5)


def test_padding_never_changes_a_translation_score():
    torch.manual_seed(0)
    model = Transformer(40, "mini", 0.1).eval()
    source, decoder_input = torch.tensor([[5, 6, 7, 1]]), torch.tensor([[0, 9, 8]])
    alone = model(source, decoder_input)
    padded = model(torch.cat([source, torch.zeros(1, 5, dtype=torch.long)], 1), decoder_input)
    assert torch.allclose(alone, padded, atol=1e-5)


class TableModel:
    """A decoder with a fixed next-token table, to check beam search by hand: greedy takes A
    (0.6) and then finds nothing likely; B (0.4) then EOS (1.0) is the better sentence."""
    table: ClassVar[dict] = {(): [0, 0, 0.6, 0.4], (2,): [0, 0.3, 0.35, 0.35],
                             (3,): [0, 1.0, 0, 0]}

    def encode(self, source):
        return torch.zeros(source.size(0), source.size(1), 1), source == 0

    def decode(self, decoder_input, memory, padding, last_only=False):
        rows = [self.table.get(tuple(r[1:].tolist()), [0, 0.25, 0.25, 0.5])
                for r in decoder_input]
        return torch.tensor(rows).clamp(min=1e-9).log().unsqueeze(1)


def test_beam_search_keeps_the_better_sentence_greedy_loses():
    source = torch.tensor([[5, 1]])
    assert beam_search(TableModel(), source, beam=4, alpha=0.6, extra_length=3)[0][:2] == [3, 1]
    assert beam_search(TableModel(), source, beam=1, alpha=0.6, extra_length=3)[0][0] == 2


def test_batches_hold_at_most_batch_tokens_and_every_kept_pair_once():
    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(0, 40, size=500)]
    src = subwords.Encoded([[5] * n for n in lengths])
    tgt = subwords.Encoded([[6] * max(0, n - 2) for n in lengths])
    batcher = TokenBatcher(src, tgt, batch_tokens=256, max_length=32)
    kept = [i for i, n in enumerate(lengths) if 1 <= n + 1 <= 32 and n - 2 >= 1]
    batches = batcher.epoch(rng)
    assert sorted(int(i) for b in batches for i in b) == kept and len(batcher) == len(kept)
    assert len(batches) == batcher.steps_per_epoch()
    for b in batches:
        source, decoder_input, labels = batcher.tensors(b, "cpu")
        assert source.numel() <= 256 and labels.numel() <= 256
        assert (decoder_input[:, 0] == 0).all() and (decoder_input[:, 1:] == labels[:, :-1]).all()


def test_vocabulary_comes_from_the_training_split_and_is_cached_by_hash(tmp_path, capsys,
                                                                        monkeypatch):
    root = write_wmt(tmp_path / "wmt", sgm=False)
    (root / "newstest2014.en").write_text("Zyzzyva zyzzyva zyzzyva.\n" * 20)
    c = cfg(vocab_size=120, max_length=64, eval_sentences=5)
    corpus = prepare(c, "reduced", "open", root, tmp_path / "out", 1, seed=1)
    cached = list(root.glob("spm-*-120.model"))
    assert len(cached) == 1 and len(cached[0].name.split("-")[1]) == 16
    assert corpus.sp.piece_to_id("▁zyzzyva") == subwords.UNK       # never seen in training
    assert corpus.sp.piece_to_id("▁Haus") != subwords.UNK
    assert len(corpus.eval_source) == 5 and "NOT the MLPerf dataset" in corpus.verdict.label
    again = prepare(c, "reduced", "open", root, tmp_path / "out", 1, seed=1)
    assert "(cached)" in capsys.readouterr().err
    assert again.sp.serialized_model_proto() == corpus.sp.serialized_model_proto()

    with open(root / "train.de", "a") as f:                       # other text: another hash
        f.write("Noch ein Satz.\n")
    with open(root / "train.en", "a") as f:
        f.write("One more sentence.\n")
    real_mkstemp = subwords.tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):                      # the data folder refuses
        if dir is not None and os.path.samefile(dir, root):
            raise PermissionError(13, "Read-only file system", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(subwords.tempfile, "mkstemp", read_only)
    prepare(c, "reduced", "open", root, tmp_path / "out2", 1, seed=1)
    assert len(list(root.glob("spm-*-120.model"))) == 1
    assert len(list((tmp_path / "out2").glob("spm-*-120.model"))) == 1


# -- configuration -------------------------------------------------------------------------------

def test_closed_division_allows_the_rules_hyperparameters_only():
    spec = registry.get("transformer")
    got = spec.make_config("full", {"batch_tokens": "8192", "learning_rate": "1.0",
                                    "warmup_steps": "8000", "adam_beta2": "0.98"})
    assert (got.batch_tokens, got.warmup_steps, got.arch) == (8192, 8000, "big")
    with pytest.raises(ConfigError, match="closed division: arch may not be changed"):
        spec.make_config("full", {"arch": "tiny"})
    assert spec.make_config("full", {"arch": "tiny"}, "open").arch == "tiny"
    with pytest.raises(ConfigError, match="at most 64"):
        spec.make_config("smoke", {"beam_size": "1000"})
