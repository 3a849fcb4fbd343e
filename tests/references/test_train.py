"""The training loop's pieces in-process: determinism under a seed, and evaluation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from references.ncf import data as D
from references.ncf.config import NcfConfig
from references.ncf.model import NeuMF
from references.ncf.train import evaluate, make_optimizer, train_step


def few_steps(seed: int, data: D.NcfData, cfg: NcfConfig, steps: int = 15) -> list[float]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    split = data.split
    model = NeuMF(split.n_users, split.n_items, cfg.factors, cfg.mlp_layers)
    optimizer, loss_fn = make_optimizer(model, cfg), nn.BCEWithLogitsLoss()
    losses = []
    for users, items, labels in D.epoch_batches(split, cfg.negatives_per_positive,
                                                cfg.batch_size, rng):
        losses.append(train_step(model, optimizer, loss_fn, users, items, labels).item())
        if len(losses) == steps:
            break
    losses.append(evaluate(model, data, cfg.topk, "cpu")[0])
    return losses


def test_a_seed_fixes_the_run_and_another_seed_changes_it():
    cfg = NcfConfig.smoke()
    data = D.load(cfg, None)
    first, again, other = few_steps(3, data, cfg), few_steps(3, data, cfg), few_steps(4, data, cfg)
    assert first == again
    assert first != other


def test_evaluation_of_a_perfect_and_a_hopeless_scorer():
    cfg = NcfConfig.smoke()
    data = D.load(cfg, None)
    held_out = torch.from_numpy(data.split.test_items)

    class Oracle(nn.Module):          # scores the held-out item 1, everything else 0
        def forward(self, users, items):
            return (items == held_out[users]).float()

    class Contrarian(Oracle):
        def forward(self, users, items):
            return -super().forward(users, items)

    assert evaluate(Oracle(), data, 10, "cpu") == (1.0, 1.0)
    assert evaluate(Contrarian(), data, 10, "cpu") == (0.0, 0.0)
