"""The sequence CNN of Johnson & Zhang (2014, "Effective Use of Word Order for Text
Categorization with Convolutional Neural Networks"), as the MLPerf sentiment reference builds it
(paddle convolution_net): word embedding -> one convolution per filter width over the word
sequence (ELU) -> max over the whole review -> concatenation -> linear layer to 2 classes.

Each convolution gives one window per word, T windows for T words, as paddle's sequence_conv
does (padding=True): its context starts k // 2 words before the word (context_start =
-(k // 2)) and runs past either end of the review into zeros. Id 0 is padding, not a word: its
embedding is zero and stays zero (padding_idx), so the zeros a batch pads with are exactly the
reference's zeros past the end. Windows past a review's end never win the max (masked), so a
review scores the same alone or in any batch, as with paddle's unpadded sequences.
"""

from __future__ import annotations

import torch
import torch.nn as nn

PAD = 0                                   # token id of padding (references/sentiment/data.py)


class SeqCNN(nn.Module):
    def __init__(self, vocab_size: int, embedding_dim: int, filters: int,
                 filter_sizes: tuple[int, ...], classes: int = 2) -> None:
        """``vocab_size`` counts the padding id 0 too (words are 1..vocab_size - 1)."""
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, filters, k) for k in filter_sizes)
        self.fc = nn.Linear(filters * len(filter_sizes), classes)
        # Reference README: Xavier initialisation for weights, zero biases.
        for m in (self.embedding, *self.convs, self.fc):
            nn.init.xavier_uniform_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.embedding.weight[PAD].zero_()   # padding is zeros, as the reference's

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens [batch, time] (0-padded), lengths [batch] -> logits [batch, classes]."""
        x = self.embedding(tokens).transpose(1, 2)              # [batch, emb, time]
        valid = torch.arange(x.shape[2], device=x.device)[None, :] < lengths.clamp(min=1)[:, None]
        pooled = []
        for conv in self.convs:
            k = conv.kernel_size[0]
            # "same": k // 2 zeros before, the rest after -> one window per word.
            y = nn.functional.elu(conv(nn.functional.pad(x, (k // 2, k - 1 - k // 2))))
            pooled.append(y.masked_fill(~valid[:, None, :], float("-inf")).amax(dim=2))
        return self.fc(torch.cat(pooled, dim=1))
