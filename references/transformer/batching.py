"""Batches by token count, as the reference's input pipeline makes them (utils/dataset.py):
an example's length is the longer of its two sides (EOS included); examples longer than
max_length are dropped; lengths fall into buckets whose bounds grow by 10% from 8
(_create_min_max_boundaries) and each bucket's batches hold batch_tokens // its upper bound
examples, so no batch has more than batch_tokens tokens of padding-included input. Pairs with an
empty side are dropped too (they teach nothing). Each epoch reshuffles the examples and the
order of the batches.
"""

from __future__ import annotations

import numpy as np
import torch

from references.transformer.subwords import Encoded


def bucket_bounds(max_length: int, min_boundary: int = 8,
                  scale: float = 1.1) -> tuple[list[int], list[int]]:
    """(lower bounds, exclusive upper bounds) of the length buckets."""
    bounds, x = [], min_boundary
    while x < max_length:
        bounds.append(x)
        x = max(x + 1, int(x * scale))
    return [0] + bounds, bounds + [max_length + 1]


class TokenBatcher:
    def __init__(self, source: Encoded, target: Encoded, batch_tokens: int,
                 max_length: int) -> None:
        self.source, self.target = source, target
        length = np.maximum(source.lengths, target.lengths)
        keep = (length <= max_length) & (source.lengths > 1) & (target.lengths > 1)
        self.examples = np.flatnonzero(keep)
        self.dropped = int(len(length) - len(self.examples))
        _, highs = bucket_bounds(max_length)
        self.bucket = np.searchsorted(np.asarray(highs), length[self.examples], side="right")
        self.sizes = [max(1, batch_tokens // h) for h in highs]

    def __len__(self) -> int:
        """Examples kept."""
        return len(self.examples)

    def steps_per_epoch(self) -> int:
        counts = np.bincount(self.bucket, minlength=len(self.sizes))
        return int(sum(-(-int(c) // size) for c, size in zip(counts, self.sizes)))

    def epoch(self, rng: np.random.Generator) -> list[np.ndarray]:
        """One epoch's batches of example indices, in a fresh random order."""
        order = rng.permutation(len(self.examples))
        batches = []
        for b, size in enumerate(self.sizes):
            members = self.examples[order[self.bucket[order] == b]]
            batches += [members[i:i + size] for i in range(0, len(members), size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def tensors(self, index: np.ndarray, device: str) -> tuple[torch.Tensor, ...]:
        """(source [b, s], decoder input [b, t], labels [b, t]), zero-padded; the decoder input
        is the labels shifted right behind the start symbol 0."""
        source = pad([self.source[i] for i in index])
        labels = pad([self.target[i] for i in index])
        decoder_input = np.zeros_like(labels)
        decoder_input[:, 1:] = labels[:, :-1]
        return tuple(torch.from_numpy(a).to(device) for a in (source, decoder_input, labels))


def pad(rows: list[np.ndarray]) -> np.ndarray:
    out = np.zeros((len(rows), max(len(r) for r in rows)), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out
