"""Ranking metrics for leave-one-out evaluation: the held-out item against sampled negatives.

Pure functions on score arrays (numpy arrays, or CPU torch tensors: both index and compare
alike). ``rank`` is the number of valid negatives that score at least as high as the held-out
item: ties count against it, as in the reference, whose ``heapq.nlargest`` keeps equal-scored
negatives (inserted first) ahead of the held-out item. That also keeps an untrained model whose
scores are all equal at HR 0, not 1.

Torch-free: the LiteRT runtime scores with it on devices without torch.
"""

from __future__ import annotations

import numpy as np


def ranks(positive, negatives, valid=None):
    """[users] 0-based rank of each held-out item among its negatives.

    positive: [users] scores of the held-out items; negatives: [users, n] scores of the sampled
    negatives; valid: [users, n] False where a negative is padding (a repeated draw).
    """
    beaten_by = negatives >= positive[:, None]
    if valid is not None:
        beaten_by &= valid
    return beaten_by.sum(1)


def hit_rate(rank, k: int) -> float:
    """HR@k: the fraction of users whose held-out item is in the top k."""
    rank = np.asarray(rank)
    return float((rank < k).mean())


def ndcg(rank, k: int) -> float:
    """NDCG@k with one relevant item: 1 / log2(rank + 2) inside the top k, else 0."""
    rank = np.asarray(rank, dtype=np.float64)
    return float(np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0).mean())
