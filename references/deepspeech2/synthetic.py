"""Synthetic speech for smoke runs: a planted, learnable character signal.

Each letter of a small alphabet is a tone of its own pitch (a fundamental and a quieter second
harmonic) lasting 50-80 ms; words are separated by 70-110 ms of silence; every utterance gets
white noise and a random gain. Words come from a fixed vocabulary of random letter strings (no
letter twice in a row, so a letter boundary is always a change of pitch), 1..max words per
utterance. A model that hears which tone is playing and where the gaps are can transcribe it --
the WER it reaches measures that the whole pipeline (features, CTC, decoding, WER) works.
"""

from __future__ import annotations

import numpy as np

from references.deepspeech2.data import Utterance

ALPHABET = "ADEHILNORST"
PITCH_HZ = {c: 300.0 + 230.0 * k for k, c in enumerate(ALPHABET)}   # 300 Hz .. 2.6 kHz


def vocabulary(size: int, seed: int) -> list[str]:
    """``size`` distinct words of 2-4 letters, no letter repeated back to back."""
    rng = np.random.default_rng(seed)
    words: list[str] = []
    while len(words) < size:
        word = ""
        for _ in range(int(rng.integers(2, 5))):
            word += str(rng.choice([c for c in ALPHABET if not word or c != word[-1]]))
        if word not in words:
            words.append(word)
    return words


def utterances(cfg, words: list[str], count: int, seed: int, prefix: str) -> list[Utterance]:
    """``count`` utterances of words from ``words``, samples at cfg.sample_rate."""
    rng = np.random.default_rng(seed)
    sr = cfg.sample_rate
    out = []
    for n in range(count):
        picked = [str(w) for w in rng.choice(words, size=int(rng.integers(
            1, cfg.synthetic_max_words + 1)))]
        pieces = [_silence(rng, sr, 0.05, 0.12)]
        for w, word in enumerate(picked):
            if w:
                pieces.append(_silence(rng, sr, 0.07, 0.11))
            pieces += [_tone(rng, sr, PITCH_HZ[c]) for c in word]
        pieces.append(_silence(rng, sr, 0.05, 0.12))
        wave = np.concatenate(pieces)
        wave = wave * rng.uniform(0.2, 0.6) + rng.normal(0, 0.02, size=len(wave))
        out.append(Utterance(f"{prefix}-{n:05d}", " ".join(picked), None, len(wave) / sr,
                             wave.astype(np.float32)))
    return out


def _tone(rng: np.random.Generator, sr: int, pitch: float) -> np.ndarray:
    t = np.arange(int(sr * rng.uniform(0.05, 0.08))) / sr
    f = pitch * rng.uniform(0.97, 1.03)
    phase = rng.uniform(0, 2 * np.pi)
    envelope = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.005)      # 5 ms ramps, no clicks
    return envelope * (np.sin(2 * np.pi * f * t + phase) + 0.4 * np.sin(4 * np.pi * f * t))


def _silence(rng: np.random.Generator, sr: int, low: float, high: float) -> np.ndarray:
    return np.zeros(int(sr * rng.uniform(low, high)))


def synthetic_data(cfg, seed: int) -> tuple[list[Utterance], list[Utterance]]:
    """(training, evaluation) utterances over one vocabulary; different draws of words."""
    words = vocabulary(cfg.synthetic_words, seed)
    return (utterances(cfg, words, cfg.synthetic_train, seed + 1, "train"),
            utterances(cfg, words, cfg.synthetic_eval, seed + 2, "eval"))
