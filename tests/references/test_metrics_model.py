"""HR@10 / NDCG@10 on hand-computed cases, and the NeuMF model's shape and initialisation."""

from __future__ import annotations

import math

import pytest
import torch

from references.ncf.metrics import hit_rate, ndcg, ranks
from references.ncf.model import NeuMF


def test_hit_rate_and_ndcg_by_hand():
    pos = torch.tensor([0.5, 0.5, 0.5, 0.5])
    above, below = 0.9, 0.1
    negatives = torch.tensor([
        [above] * 9 + [below] * 3,            # A: 9 negatives above -> rank 9, a hit at 10
        [above] * 10 + [below] * 2,           # B: 10 above -> rank 10, a miss
        [above] * 9 + [0.5] + [below] * 2,    # C: 9 above and one tie -> rank 10 (ties lose)
        [above] * 10 + [below] * 2,           # D: 10 above, but two are padding -> rank 8
    ])
    valid = torch.ones_like(negatives, dtype=torch.bool)
    valid[3, :2] = False
    r = ranks(pos, negatives, valid)
    assert r.tolist() == [9, 10, 10, 8]
    assert hit_rate(r, 10) == 0.5
    assert ndcg(r, 10) == pytest.approx((1 / math.log2(11) + 1 / math.log2(10)) / 4)
    assert hit_rate(r, 1) == 0.0 and hit_rate(r, 11) == 1.0


def test_constant_scores_are_not_hits():
    """An untrained model scoring everything alike must not look perfect."""
    r = ranks(torch.zeros(3), torch.zeros(3, 999))
    assert hit_rate(r, 10) == 0.0


def test_neumf_shapes_and_reference_initialisation():
    torch.manual_seed(0)
    model = NeuMF(n_users=50, n_items=40, factors=8, mlp_layers=(32, 16, 8))
    users, items = torch.tensor([0, 49, 3]), torch.tensor([39, 0, 5])
    assert model(users, items).shape == (3,)
    assert model.mlp_user.weight.shape == (50, 16)               # half of mlp_layers[0]
    assert model.final.in_features == 8 + 8                      # last MLP layer + factors
    assert model.gmf_user.weight.std().item() == pytest.approx(0.01, rel=0.2)
    first = model.mlp.layers[0]
    assert first.weight.abs().max() <= math.sqrt(6 / (32 + 16))  # Glorot uniform
    assert model.final.weight.abs().max() <= math.sqrt(3 / 16)   # LeCun uniform
