"""NeuMF (He et al., "Neural Collaborative Filtering", WWW 2017), as the MLPerf v0.5 reference
builds it (recommendation/pytorch/neumf.py): a GMF branch and an MLP branch with their own
embeddings, joined by one linear layer that outputs a logit.

Read top-down: the initialisers, the MLP tower, then the model.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def glorot_uniform_(layer: nn.Linear) -> None:
    """The reference's MLP weights: U(-a, a), a = sqrt(6 / (fan_in + fan_out))."""
    limit = math.sqrt(6.0 / (layer.in_features + layer.out_features))
    nn.init.uniform_(layer.weight, -limit, limit)


def lecun_uniform_(layer: nn.Linear) -> None:
    """The reference's output layer: U(-a, a), a = sqrt(3 / fan_in)."""
    limit = math.sqrt(3.0 / layer.in_features)
    nn.init.uniform_(layer.weight, -limit, limit)


class MLPTower(nn.Module):
    """Linear + ReLU layers: sizes[0] -> sizes[1] -> ... -> sizes[-1]."""

    def __init__(self, sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for layer in self.layers:
            glorot_uniform_(layer)          # biases keep PyTorch's default, as the reference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))
        return x


class NeuMF(nn.Module):
    """logit(user, item) = w . [gmf_user * gmf_item ; MLP([mlp_user ; mlp_item])] + b

    ``mlp_layers[0]`` is the MLP's input width, so each MLP embedding is half of it
    (256 -> 128 per side in the reference configuration).
    """

    def __init__(self, n_users: int, n_items: int, factors: int,
                 mlp_layers: tuple[int, ...]) -> None:
        super().__init__()
        self.gmf_user = nn.Embedding(n_users, factors)
        self.gmf_item = nn.Embedding(n_items, factors)
        self.mlp_user = nn.Embedding(n_users, mlp_layers[0] // 2)
        self.mlp_item = nn.Embedding(n_items, mlp_layers[0] // 2)
        self.mlp = MLPTower(tuple(mlp_layers))
        self.final = nn.Linear(mlp_layers[-1] + factors, 1)
        for embedding in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(embedding.weight, 0.0, 0.01)
        lecun_uniform_(self.final)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """[batch] logits (apply a sigmoid for probabilities; the loss takes logits)."""
        gmf = self.gmf_user(users) * self.gmf_item(items)
        mlp = self.mlp(torch.cat((self.mlp_user(users), self.mlp_item(items)), dim=1))
        return self.final(torch.cat((gmf, mlp), dim=1)).squeeze(1)
