"""The sequence CNN of Johnson & Zhang (2014, "Effective Use of Word Order for Text
Categorization with Convolutional Neural Networks"), as the MLPerf sentiment reference builds it
(paddle convolution_net): word embedding -> one convolution per filter width over the word
sequence (ELU) -> max over the whole review -> concatenation -> linear layer to 2 classes.

Reviews in a batch are padded to the longest; padded positions never win the max (masked),
so a review scores the same alone or in any batch, as with paddle's unpadded sequences.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class SeqCNN(nn.Module):
    def __init__(self, vocab_size: int, embedding_dim: int, filters: int,
                 filter_sizes: tuple[int, ...], classes: int = 2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, filters, k) for k in filter_sizes)
        self.fc = nn.Linear(filters * len(filter_sizes), classes)
        # Reference README: Xavier initialisation for weights, zero biases.
        for m in (self.embedding, *self.convs, self.fc):
            nn.init.xavier_uniform_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens [batch, time] (padded, time >= the widest filter), lengths [batch] -> logits."""
        x = self.embedding(tokens).transpose(1, 2)              # [batch, emb, time]
        pooled = []
        for conv in self.convs:
            y = nn.functional.elu(conv(x))                       # [batch, filters, time - k + 1]
            k = conv.kernel_size[0]
            windows = (lengths - k + 1).clamp(min=1)             # a short review: one window
            valid = torch.arange(y.shape[2], device=y.device)[None, :] < windows[:, None]
            pooled.append(y.masked_fill(~valid[:, None, :], float("-inf")).amax(dim=2))
        return self.fc(torch.cat(pooled, dim=1))
