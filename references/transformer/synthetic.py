"""A synthetic parallel corpus for smoke runs: a tiny "English" and "German" whose mapping is
learnable and exact, so BLEU can climb near 100 within seconds.

The languages are fixed (they do not depend on the seed); the sentences do. Each source word has
exactly one translation (a substitution bijection between two made-up vocabularies), and word
order changes: the last word moves to the front (a b c d -> D A B C, as a verb-final clause
turned verb-first), and a sentence ends with a full stop. Words are letters
only, so the subword model learns them whole. (Swapping every adjacent pair was tried first: a
tiny model needs the position's parity for it, which sinusoidal positions make slow to learn.)
"""

from __future__ import annotations

import random

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"


def vocabulary(n: int, salt: int) -> list[str]:
    """``n`` distinct two-syllable words (e.g. "kalo"), different for each ``salt``."""
    syllables = [c + v for c in CONSONANTS for v in VOWELS]
    words = [a + b for a in syllables for b in syllables]
    random.Random(salt).shuffle(words)
    return words[:n]


def languages(n_words: int) -> tuple[list[str], dict[str, str]]:
    """(source words, source word -> target word)."""
    source, target = vocabulary(n_words, 1), vocabulary(n_words, 2)
    random.Random(3).shuffle(target)
    return source, dict(zip(source, target))


def translate(words: list[str], lexicon: dict[str, str]) -> list[str]:
    """The planted translation: substitute every word, then move the last one to the front."""
    out = [lexicon[w] for w in words]
    return out[-1:] + out[:-1]


def corpus(n_pairs: int, n_words: int, max_words: int, seed: int) -> tuple[list[str], list[str]]:
    """(source sentences, target sentences) of 3..max_words words each."""
    source_words, lexicon = languages(n_words)
    rng = random.Random(seed)
    sources, targets = [], []
    for _ in range(n_pairs):
        words = [rng.choice(source_words) for _ in range(rng.randint(3, max_words))]
        sources.append(" ".join(words) + ".")
        targets.append(" ".join(translate(words, lexicon)) + ".")
    return sources, targets
