"""Audio in, spectrogram batches out: what the reference's SpectrogramDataset and
AudioDataLoader do, in plain torch (torchaudio and librosa are not used).

- Files are read with soundfile. 16 kHz mono is checked: another rate or channel count is a
  DatasetError naming the file, unless ``resample`` / ``downmix`` ask for conversion (the
  reference converted every file with ``sox -r 16000 -c 1`` before training).
- Features: |STFT| with a symmetric Hamming window of 20 ms every 10 ms (centred, reflect-padded,
  as librosa.stft then did), log(1 + x), normalised to zero mean and unit std per utterance.
- Augmentation (training only): gain uniform in -6..+8 dB on the samples, and tempo uniform in
  0.85..1.15 by stretching the magnitude spectrogram along time -- the reference ran sox
  ``tempo``; a time stretch of the magnitudes is its counterpart for a model that only sees
  magnitudes (not bit-identical).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from references.common.errors import DatasetError
from references.deepspeech2 import text
from references.deepspeech2.data import Utterance

MIN_FRAMES = 31                 # the convolutions need 31 frames for one output frame
TEMPO = (0.85, 1.15)            # load_randomly_augmented_audio tempo_range
GAIN_DB = (-6.0, 8.0)           # gain_range


def probe(utt: Utterance, cfg) -> None:
    """Read the file header: duration into ``utt.seconds``; rate and channels checked."""
    try:
        info = sf.info(str(utt.path))
    except RuntimeError as exc:          # soundfile's LibsndfileError
        raise DatasetError(f"unreadable audio {utt.path}: {exc}") from None
    _check_format(utt.path, info.samplerate, info.channels, cfg)
    utt.seconds = info.frames / info.samplerate


def _check_format(path: Path, rate: int, channels: int, cfg) -> None:
    if rate != cfg.sample_rate and not cfg.resample:
        raise DatasetError(f"{path}: {rate} Hz, expected {cfg.sample_rate} Hz "
                           "(or --set resample=true)")
    if channels != 1 and not cfg.downmix:
        raise DatasetError(f"{path}: {channels} channels, expected mono (or --set downmix=true)")


def load(utt: Utterance, cfg) -> torch.Tensor:
    """The utterance's samples: float32 mono at cfg.sample_rate."""
    if utt.audio is not None:
        return torch.from_numpy(utt.audio)
    try:
        samples, rate = sf.read(str(utt.path), dtype="float32", always_2d=True)
    except RuntimeError as exc:          # soundfile's LibsndfileError
        raise DatasetError(f"unreadable audio {utt.path}: {exc}") from None
    _check_format(utt.path, rate, samples.shape[1], cfg)
    wave = torch.from_numpy(samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0])
    return resample(wave, rate, cfg.sample_rate) if rate != cfg.sample_rate else wave


def resample(wave: torch.Tensor, rate: int, target: int, taps: int = 64) -> torch.Tensor:
    """Linear interpolation to ``target`` Hz, after a Hann-windowed sinc low-pass at the new
    Nyquist frequency when the rate goes down (so nothing above it folds back)."""
    if rate == target:
        return wave
    if target < rate:
        cutoff = target / rate / 2                               # cycles per input sample
        n = torch.arange(-taps, taps + 1, dtype=torch.float64)
        kernel = 2 * cutoff * torch.sinc(2 * cutoff * n) * torch.hann_window(2 * taps + 1,
                                                                             periodic=False)
        kernel = (kernel / kernel.sum()).to(wave.dtype)
        wave = F.conv1d(wave[None, None], kernel[None, None], padding=taps)[0, 0]
    length = max(1, round(len(wave) * target / rate))
    return F.interpolate(wave[None, None], size=length, mode="linear", align_corners=False)[0, 0]


def spectrogram(wave: torch.Tensor, cfg, rng: np.random.Generator | None = None) -> torch.Tensor:
    """[freq, time] normalised log-magnitude spectrogram; augmented when ``rng`` is given."""
    if rng is not None:
        wave = wave * 10 ** (rng.uniform(*GAIN_DB) / 20)
    n_fft = int(cfg.sample_rate * cfg.window_s)
    hop = int(cfg.sample_rate * cfg.stride_s)
    if len(wave) <= n_fft // 2:                                  # reflect padding needs more
        wave = F.pad(wave, (0, n_fft // 2 + 1 - len(wave)))
    window = torch.hamming_window(n_fft, periodic=False, dtype=wave.dtype)
    spec = torch.stft(wave, n_fft, hop, n_fft, window, center=True, pad_mode="reflect",
                      return_complex=True).abs()
    if rng is not None:
        frames = max(1, round(spec.shape[1] / rng.uniform(*TEMPO)))
        spec = F.interpolate(spec[None], size=frames, mode="linear", align_corners=False)[0]
    spec = torch.log1p(spec)
    return (spec - spec.mean()) / spec.std().clamp_min(1e-5)


class SpeechBatches(torch.utils.data.Dataset):
    """Item k is batch k of ``plan`` as (features [B, 1, F, T], frames [B], targets [sum],
    target lengths [B], transcripts): one process builds a whole batch, so DataLoader
    workers (batch_size=None) read and transform batches in parallel."""

    def __init__(self, utts: list[Utterance], plan: list[list[int]], cfg, augment: bool,
                 seed: int, epoch: int = 0) -> None:
        self.utts, self.plan, self.cfg = utts, plan, cfg
        self.augment, self.seed, self.epoch = augment, seed, epoch

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, k: int):
        rng = np.random.default_rng((self.seed, self.epoch, k)) if self.augment else None
        utts = [self.utts[i] for i in self.plan[k]]
        return collate([spectrogram(load(u, self.cfg), self.cfg, rng) for u in utts],
                       [u.transcript for u in utts])


def collate(specs: list[torch.Tensor], transcripts: list[str]):
    """Pad to the longest (zeros: the normalised mean) and at least MIN_FRAMES."""
    frames = torch.tensor([s.shape[1] for s in specs])
    width = max(MIN_FRAMES, int(frames.max()))
    features = torch.zeros(len(specs), 1, specs[0].shape[0], width)
    for b, s in enumerate(specs):
        features[b, 0, :, :s.shape[1]] = s
    labels = [text.encode(t) for t in transcripts]
    targets = torch.tensor([k for row in labels for k in row], dtype=torch.long)
    return (features, frames.clamp(min=MIN_FRAMES), targets,
            torch.tensor([len(row) for row in labels]), transcripts)


def audio_seconds(utts: list[Utterance]) -> float:
    return math.fsum(u.seconds for u in utts)
