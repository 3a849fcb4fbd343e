"""BLEU as the MLPerf reference computed it, and sacreBLEU's beside it.

The reference (translation/tensorflow/transformer/compute_bleu.py with utils/metrics.py, from
tensor2tensor's bleu_hook.py) scores detokenised translations against newstest2014 thus:
lower-case both sides (its target is the *uncased* score; run_and_time.sh
TARGET_UNCASED_BLEU_SCORE=25, and it stops when uncased > threshold), tokenise them the way
mteval-v14.pl's international tokeniser does (split punctuation from non-digits, symbols from
everything), then corpus BLEU up to 4-grams with the brevity penalty and mteval's exponential
smoothing of zero n-gram matches. ``reference_bleu`` is that, on a 0-100 scale.

sacreBLEU (Post, 2018) is the score people compare: cased, 13a tokenisation, reported with its
signature. It is computed alongside and logged; the target is held to the reference's score.
"""

from __future__ import annotations

import math
import re
import sys
import unicodedata
from collections import Counter
from functools import cache


@cache
def _patterns() -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    """The reference's UnicodeRegex: every punctuation (P*) and symbol (S*) character. Built
    once, on first use (it walks the whole Unicode range)."""
    def chars(prefix: str) -> str:
        return "".join(re.escape(chr(x)) for x in range(sys.maxunicode)
                       if unicodedata.category(chr(x)).startswith(prefix))

    punctuation = chars("P")
    return (re.compile(r"([^\d])([" + punctuation + r"])"),
            re.compile(r"([" + punctuation + r"])([^\d])"),
            re.compile("([" + chars("S") + "])"))


def bleu_tokenize(text: str) -> list[str]:
    """compute_bleu.bleu_tokenize: punctuation split from non-digits, symbols from all."""
    nondigit_punct, punct_nondigit, symbol = _patterns()
    text = nondigit_punct.sub(r"\1 \2 ", text)
    text = punct_nondigit.sub(r" \1 \2", text)
    text = symbol.sub(r" \1 ", text)
    return text.split()


def _ngrams(tokens: list[str], max_order: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for n in range(1, max_order + 1)
                   for i in range(len(tokens) - n + 1))


def compute_bleu(references: list[list[str]], translations: list[list[str]],
                 max_order: int = 4) -> float:
    """metrics.compute_bleu on token lists, 0..1: clipped n-gram matches summed over the corpus;
    an order with no match gets 1 / (2^k x candidates), k counting such orders; an order with no
    candidates at all counts as 0 and is left out of the log sum (the reference's quirk, kept);
    brevity penalty exp(1 - ref/hyp) when the translation is shorter."""
    matches, possible = [0] * max_order, [0] * max_order
    ref_len = hyp_len = 0
    for ref, hyp in zip(references, translations, strict=True):
        ref_len, hyp_len = ref_len + len(ref), hyp_len + len(hyp)
        ref_ngrams, hyp_ngrams = _ngrams(ref, max_order), _ngrams(hyp, max_order)
        for ngram, count in ref_ngrams.items():
            matches[len(ngram) - 1] += min(count, hyp_ngrams[ngram])
        for ngram, count in hyp_ngrams.items():
            possible[len(ngram) - 1] += count
    precisions, smooth = [0.0] * max_order, 1.0
    for i in range(max_order):
        if possible[i] > 0:
            if matches[i] > 0:
                precisions[i] = matches[i] / possible[i]
            else:
                smooth *= 2
                precisions[i] = 1.0 / (smooth * possible[i])
    if max(precisions) <= 0 or hyp_len == 0 or ref_len == 0:
        return 0.0                          # the reference divides by zero here; nothing matched
    geo_mean = math.exp(sum(math.log(p) for p in precisions if p) / max_order)
    ratio = hyp_len / ref_len
    return geo_mean * (math.exp(1 - 1.0 / ratio) if ratio < 1.0 else 1.0)


def reference_bleu(references: list[str], translations: list[str],
                   case_sensitive: bool = False) -> float:
    """compute_bleu.bleu_wrapper on lines of text, x100 (uncased unless asked)."""
    if len(references) != len(translations):
        raise ValueError("Reference and translation files have different number of lines.")
    if not case_sensitive:
        references = [r.lower() for r in references]
        translations = [t.lower() for t in translations]
    return 100.0 * compute_bleu([bleu_tokenize(r) for r in references],
                                [bleu_tokenize(t) for t in translations])


def sacrebleu_score(references: list[str], translations: list[str]) -> tuple[float, str]:
    """(sacreBLEU corpus score, its signature) with sacreBLEU's defaults (cased, 13a)."""
    from sacrebleu.metrics import BLEU

    metric = BLEU()
    score = metric.corpus_score(translations, [references])
    return score.score, str(metric.get_signature())
