"""Ranking metrics for leave-one-out evaluation: the held-out item against sampled negatives.

Pure functions on score tensors. ``rank`` is the number of valid negatives that score at least as
high as the held-out item: ties count against it, as in the reference, whose
``heapq.nlargest`` keeps equal-scored negatives (inserted first) ahead of the held-out item. That
also keeps an untrained model whose scores are all equal at HR 0, not 1.
"""

from __future__ import annotations

import torch


def ranks(positive: torch.Tensor, negatives: torch.Tensor,
          valid: torch.Tensor | None = None) -> torch.Tensor:
    """[users] 0-based rank of each held-out item among its negatives.

    positive: [users] scores of the held-out items; negatives: [users, n] scores of the sampled
    negatives; valid: [users, n] False where a negative is padding (a repeated draw).
    """
    beaten_by = negatives >= positive[:, None]
    if valid is not None:
        beaten_by &= valid
    return beaten_by.sum(dim=1)


def hit_rate(rank: torch.Tensor, k: int) -> float:
    """HR@k: the fraction of users whose held-out item is in the top k."""
    return (rank < k).double().mean().item()


def ndcg(rank: torch.Tensor, k: int) -> float:
    """NDCG@k with one relevant item: 1 / log2(rank + 2) inside the top k, else 0."""
    gain = 1.0 / torch.log2(rank.double() + 2.0)
    return torch.where(rank < k, gain, torch.zeros_like(gain)).mean().item()
