"""The Transformer of the MLPerf v0.5 reference (tensorflow/models official transformer), on
torch.nn building blocks, from small parts up.

What the reference does, and so this does: one embedding matrix shared by the encoder input,
the decoder input and the pre-softmax projection (EmbeddingSharedWeights), initialised
N(0, d^-0.5) and scaled by sqrt(d); padding (id 0) embeds to zeros; sinusoidal positions with
sines and cosines concatenated (get_position_encoding), not interleaved; layer norm *before*
each sub-layer with dropout on its output before the residual (PrePostProcessingWrapper), and
a final layer norm on each stack; ReLU feed-forward; dense layers Glorot-uniform (the
reference's variance scaling, gain 1, fan_avg, uniform). The decoder's first input is id 0.
Not identical: torch's attention projections have biases, the reference's have none.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from references.transformer.config import ARCHS, describe_arch


def position_encoding(length: int, hidden: int, min_timescale: float = 1.0,
                      max_timescale: float = 1.0e4) -> torch.Tensor:
    """[length, hidden]: sin of every timescale, then cos (model_utils.get_position_encoding)."""
    position = torch.arange(length, dtype=torch.float32)
    num_timescales = hidden // 2
    increment = math.log(max_timescale / min_timescale) / max(num_timescales - 1, 1)
    inv_timescales = min_timescale * torch.exp(
        torch.arange(num_timescales, dtype=torch.float32) * -increment)
    scaled = position[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)


class Transformer(nn.Module):
    def __init__(self, vocab_size: int, arch: str = "big", dropout: float = 0.1) -> None:
        super().__init__()
        layers, hidden, heads, ffn = ARCHS[arch]
        self.arch, self.hidden = arch, hidden
        self.embedding = nn.Embedding(vocab_size, hidden)
        nn.init.normal_(self.embedding.weight, 0.0, hidden ** -0.5)
        self.dropout = nn.Dropout(dropout)

        def encoder_layer():
            return nn.TransformerEncoderLayer(hidden, heads, ffn, dropout, batch_first=True,
                                              norm_first=True)

        def decoder_layer():
            return nn.TransformerDecoderLayer(hidden, heads, ffn, dropout, batch_first=True,
                                              norm_first=True)

        self.encoder = nn.TransformerEncoder(encoder_layer(), layers, norm=nn.LayerNorm(hidden),
                                             enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(decoder_layer(), layers, norm=nn.LayerNorm(hidden))
        for stack in (self.encoder, self.decoder):
            for name, p in stack.named_parameters():
                if p.dim() == 2:
                    nn.init.xavier_uniform_(p)
                elif "norm" not in name:
                    nn.init.zeros_(p)
        self.register_buffer("positions", position_encoding(1024, hidden), persistent=False)

    def describe(self) -> str:
        return describe_arch(self.arch)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Shared embedding x sqrt(d), zero at padding, plus positions, then dropout."""
        x = self.embedding(tokens) * (tokens != 0).unsqueeze(-1) * math.sqrt(self.hidden)
        length = tokens.size(1)
        if length > self.positions.size(0):
            self.positions = position_encoding(2 * length, self.hidden).to(x.device)
        return self.dropout(x + self.positions[:length].to(x.dtype))

    def encode(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(memory [b, s, d], padding mask [b, s]: True at padding)."""
        padding = source == 0
        return self.encoder(self.embed(source), src_key_padding_mask=padding), padding

    def decode(self, decoder_input: torch.Tensor, memory: torch.Tensor,
               padding: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Logits [b, t, vocab] for each next token (causal: position i sees inputs <= i);
        [b, 1, vocab] for the last position only with ``last_only`` (decoding)."""
        length = decoder_input.size(1)
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=memory.device,
                                                                dtype=memory.dtype)
        x = self.decoder(self.embed(decoder_input), memory, tgt_mask=causal,
                         tgt_is_causal=True, memory_key_padding_mask=padding)
        if last_only:
            x = x[:, -1:]
        return x @ self.embedding.weight.t()     # pre-softmax projection: the shared matrix

    def forward(self, source: torch.Tensor, decoder_input: torch.Tensor) -> torch.Tensor:
        memory, padding = self.encode(source)
        return self.decode(decoder_input, memory, padding)


def smoothed_loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """metrics.padded_cross_entropy_loss, averaged over non-padding tokens: the label gets
    1 - smoothing, every other token smoothing / (vocab - 1) (torch's label_smoothing also puts
    a share on the label), minus the best achievable value so a perfect model scores 0."""
    vocab = logits.size(-1)
    logp = torch.log_softmax(logits.float(), dim=-1)
    confidence, low = 1.0 - smoothing, smoothing / (vocab - 1)
    label_logp = logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    xent = -(confidence * label_logp + low * (logp.sum(-1) - label_logp))
    normaliser = -(confidence * math.log(confidence) + (vocab - 1) * low * math.log(low + 1e-20))
    weights = (labels != 0).to(xent.dtype)
    return ((xent - normaliser) * weights).sum() / weights.sum().clamp(min=1.0)
