"""DeepSpeech2 (Amodei et al. 2015) as the MLPerf reference builds it (speech_recognition/pytorch
model.py, from deepspeech.pytorch): spectrogram -> two convolutions with batch norm and hardtanh
-> bidirectional GRU layers, their two directions summed, each but the first preceded by batch
norm over time and batch -> batch norm and a bias-free linear layer to the characters.

Sizes come from config.MODELS; the reference model is 32 channels and 3 GRU layers of 2560.
One difference, on purpose: the GRUs run on packed sequences, so the padding of a batch never
reaches an utterance's frames through the backward direction (the reference ran them over the
padding); an utterance scores the same alone or in a batch when evaluated.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

# (kernel, stride) of the two convolutions, (frequency, time), no padding: as the reference.
CONVS = (((41, 11), (2, 2)), ((21, 11), (2, 1)))


class SequenceWise(nn.Module):
    """Apply a per-frame module to [time, batch, features] by folding time into the batch."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, n = x.shape[:2]
        return self.module(x.reshape(t * n, -1)).reshape(t, n, -1)


class BatchRNN(nn.Module):
    """(batch norm) -> bidirectional GRU, the directions summed."""

    def __init__(self, inputs: int, hidden: int, batch_norm: bool) -> None:
        super().__init__()
        self.batch_norm = SequenceWise(nn.BatchNorm1d(inputs)) if batch_norm else None
        self.rnn = nn.GRU(inputs, hidden, bidirectional=True, bias=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.batch_norm is not None:
            x = self.batch_norm(x)
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        y, _ = pad_packed_sequence(self.rnn(packed)[0], total_length=x.shape[0])
        return y.view(y.shape[0], y.shape[1], 2, -1).sum(2)


class DeepSpeech2(nn.Module):
    def __init__(self, conv_channels: int, rnn_layers: int, hidden: int, freq_bins: int,
                 classes: int = 29) -> None:
        super().__init__()
        c = conv_channels
        (k1, s1), (k2, s2) = CONVS
        self.conv = nn.Sequential(
            nn.Conv2d(1, c, kernel_size=k1, stride=s1), nn.BatchNorm2d(c), nn.Hardtanh(0, 20),
            nn.Conv2d(c, c, kernel_size=k2, stride=s2), nn.BatchNorm2d(c), nn.Hardtanh(0, 20))
        freq = ((freq_bins - k1[0]) // s1[0] + 1 - k2[0]) // s2[0] + 1
        if freq < 1:
            raise ValueError(f"{freq_bins} frequency bins are too few for the convolutions")
        self.rnns = nn.ModuleList(
            BatchRNN(c * freq if i == 0 else hidden, hidden, batch_norm=i > 0)
            for i in range(rnn_layers))
        self.fc = SequenceWise(nn.Sequential(nn.BatchNorm1d(hidden),
                                             nn.Linear(hidden, classes, bias=False)))
        self.sizes = (conv_channels, rnn_layers, hidden)

    @staticmethod
    def output_frames(frames: torch.Tensor) -> torch.Tensor:
        """Frames out of the convolutions for ``frames`` in (no padding, strides 2 then 1)."""
        (k1, s1), (k2, s2) = CONVS
        return ((frames - k1[1]) // s1[1] + 1 - k2[1]) // s2[1] + 1

    def forward(self, features: torch.Tensor, frames: torch.Tensor):
        """features [batch, 1, freq, time], frames [batch] -> (logits [time', batch, classes],
        output frames [batch])."""
        x = self.conv(features)                                   # [B, C, F', T']
        b, c, f, t = x.shape
        x = x.reshape(b, c * f, t).permute(2, 0, 1).contiguous()  # [T', B, C*F']
        lengths = self.output_frames(frames).clamp(1, t)
        for rnn in self.rnns:
            x = rnn(x, lengths)
        return self.fc(x), lengths

    def describe(self) -> str:
        c, layers, hidden = self.sizes
        params = sum(p.numel() for p in self.parameters())
        return (f"DeepSpeech2 ({c}-channel convolutions, {layers} x {hidden} bidirectional GRU, "
                f"{params / 1e6:.2f}M parameters)")
