"""Transformer configuration: one typed dataclass and its three presets.

full() carries the MLPerf training v0.5 reference (mlperf/training translation/tensorflow,
from tensorflow/models' official transformer): ``transformer_main.py --params=big``
(run_training.sh), i.e. TransformerBigParams in model/model_params.py -- 6 encoder and 6 decoder
layers, hidden size 1024, 16 heads, filter size 4096, dropout 0.1 (residual, attention, relu),
label smoothing 0.1, at most 4096 tokens per batch and 256 per example; learning rate 2.0 x
hidden^-0.5 with 16,000 linear warmup steps then rsqrt decay (get_learning_rate); (Lazy)Adam with
beta1 0.9, beta2 0.997, epsilon 1e-9; BLEU on newstest2014 after every epoch
(epochs_between_eval=1) by beam search of width 4, length penalty alpha 0.6, up to 50 tokens past
the source (extra_decode_length); stop when the uncased BLEU passes 25 (run_and_time.sh
TARGET_UNCASED_BLEU_SCORE=25). Subwords: a shared vocabulary of ~32k learned from the training
data (data_download.py _TARGET_VOCAB_SIZE = 32768, tensor2tensor's subword tokenizer); here a
sentencepiece unigram model of the same size (see subwords.py).

Torch-free: the agent builds and validates configs without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from references.common.errors import ConfigError

# name -> (layers per stack, hidden size, heads, filter size). "big" and "base" are the
# reference's TransformerBigParams / TransformerBaseParams; the smaller ones are the same
# architecture scaled down for small devices and named for what they are.
ARCHS = {
    "big": (6, 1024, 16, 4096),
    "base": (6, 512, 8, 2048),
    "small": (3, 256, 4, 1024),
    "tiny": (2, 128, 4, 512),
    "mini": (2, 64, 4, 256),              # smoke runs
}


def describe_arch(arch: str) -> str:
    layers, hidden, heads, ffn = ARCHS[arch]
    return (f"Transformer-{arch} ({layers}+{layers} layers, d={hidden}, {heads} heads, "
            f"ffn {ffn})")


@dataclass(frozen=True)
class TransformerConfig:
    # The v0.6 rules' transformer.yaml logs these as the submitter's choice (global_batch_size,
    # opt_base_learning_rate, opt_learning_rate_warmup_steps, max_sequence_length and the Adam
    # betas/epsilon, whose values it restricts to a list); everything else is the reference's.
    CLOSED_TUNABLE: ClassVar[tuple[str, ...]] = (
        "batch_tokens", "learning_rate", "warmup_steps", "max_length", "adam_beta1",
        "adam_beta2", "adam_epsilon")
    # Upper bounds on sizes and counts a job may ask for.
    LIMITS: ClassVar[dict[str, float]] = {
        "vocab_size": 10**6, "vocab_sample_sentences": 10**8, "max_length": 4096,
        "batch_tokens": 10**7, "warmup_steps": 10**8, "beam_size": 64,
        "extra_decode_length": 4096, "eval_batch_size": 4096, "eval_sentences": 10**6,
        "epochs_per_eval": 1000, "max_epochs": 10**4, "epochs_to_converge": 10**4,
        "synthetic_pairs": 10**6, "synthetic_eval_pairs": 10**5, "synthetic_words": 1000,
        "synthetic_max_words": 256, "threads": 1024}

    # -- data -------------------------------------------------------------------------------
    dataset: str = "wmt_en_de"            # the folder --data names, or "synthetic"
    train_stems: str = "train"            # comma-separated: STEM.en + STEM.de line-aligned pairs
    eval_stem: str = "newstest2014"       # STEM.en/.de, or WMT's STEM-*src.en.sgm/-*ref.de.sgm
    vocab_size: int = 32768               # data_download.py _TARGET_VOCAB_SIZE
    vocab_sample_sentences: int = 2_000_000   # sentences sentencepiece learns from (sampled)
    max_length: int = 256                 # tokens per example, EOS included (longer: dropped)

    # -- model ------------------------------------------------------------------------------
    arch: str = "big"                     # big (reference), base, small, tiny, mini
    dropout: float = 0.1                  # layer_postprocess, attention and relu dropout

    # -- optimisation -------------------------------------------------------------------------
    batch_tokens: int = 4096              # batch_size: at most this many tokens per batch
    learning_rate: float = 2.0            # x hidden^-0.5, linear warmup, then rsqrt decay
    warmup_steps: int = 16000
    adam_beta1: float = 0.9
    adam_beta2: float = 0.997
    adam_epsilon: float = 1e-9
    label_smoothing: float = 0.1

    # -- evaluation and stopping -------------------------------------------------------------
    beam_size: int = 4
    alpha: float = 0.6                    # length penalty ((5 + len) / 6) ** alpha
    extra_decode_length: int = 50
    eval_batch_size: int = 32             # translate.py _DECODE_BATCH_SIZE
    eval_sentences: int | None = None     # None: all of newstest2014, as the reference
    epochs_per_eval: int = 1
    # The reference trains until the BLEU threshold, with no epoch bound (INF iterations);
    # 30 is our bound on a run that never gets there.
    max_epochs: int = 30
    max_steps: int | None = None
    max_seconds: float | None = None

    # -- projection (reduced mode) -------------------------------------------------------------
    # NOT a measured convergence point: the reference's default train_epochs (transformer_main.py
    # DEFAULT_TRAIN_EPOCHS = 10, its schedule when no BLEU threshold is given). An ASSUMPTION of
    # mlperf-edge, labelled as such in every projection.
    epochs_to_converge: float = 10.0

    # -- synthetic data (smoke only) ------------------------------------------------------------
    synthetic_pairs: int = 3000
    synthetic_eval_pairs: int = 200
    synthetic_words: int = 40             # words per language (a substitution bijection)
    synthetic_max_words: int = 9          # sentences of 3..this many words

    # -- machine -------------------------------------------------------------------------------
    threads: int = 0
    device: str = "auto"

    @classmethod
    def full(cls) -> TransformerConfig:
        """Transformer-big to uncased BLEU 25 on newstest2014 with the v0.5 recipe."""
        return cls()

    @classmethod
    def reduced(cls) -> TransformerConfig:
        """The full model and data, bounded: one epoch or five minutes."""
        return replace(cls(), max_epochs=1, max_seconds=300.0)

    @classmethod
    def smoke(cls) -> TransformerConfig:
        """Transformer-mini on a synthetic substitution-and-reordering language. One thread:
        its matrices are too small to share well. Measured on 2 cores: a step took 39 ms on two
        threads and 67 ms on one when idle, but with one other busy process the two-thread epochs
        slowed from ~2.5 s to 40-55 s while one thread held ~5 s (seeds 1-4 pass the target
        after epoch 5 or 6)."""
        return replace(cls(), dataset="synthetic", arch="mini", vocab_size=256, max_length=32,
                       batch_tokens=512, learning_rate=0.5, warmup_steps=100,
                       extra_decode_length=10, eval_batch_size=100, max_epochs=12, threads=1)

    def data_folder(self) -> str | None:
        return None if self.dataset == "synthetic" else self.dataset

    def train_stem_list(self) -> list[str]:
        return [s.strip() for s in self.train_stems.split(",") if s.strip()]

    def validate(self) -> TransformerConfig:
        layers, hidden, heads, _ = ARCHS.get(self.arch, (1, 1, 1, 1))
        checks = [
            (self.dataset.strip() != "" and "/" not in self.dataset and self.dataset != "..",
             "dataset must be a folder name or synthetic"),
            (len(self.train_stem_list()) >= 1 and all("/" not in s
                                                      for s in self.train_stem_list()),
             "train_stems must name at least one STEM (files STEM.en and STEM.de)"),
            (self.eval_stem.strip() != "" and "/" not in self.eval_stem,
             "eval_stem must be a file stem (STEM.en/STEM.de or STEM-*.sgm)"),
            (self.vocab_size >= 16, "vocab_size must be >= 16"),
            (self.vocab_sample_sentences >= 100, "vocab_sample_sentences must be >= 100"),
            (self.max_length >= 2, "max_length must be >= 2"),
            (self.arch in ARCHS, f"arch must be one of {', '.join(ARCHS)}"),
            (hidden % heads == 0 and layers >= 1, "hidden size must divide by heads"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.batch_tokens >= self.max_length,
             "batch_tokens must be >= max_length (a batch holds at least one example)"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (self.warmup_steps >= 1, "warmup_steps must be >= 1"),
            (0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1, "adam betas must be in [0, 1)"),
            (self.adam_epsilon > 0, "adam_epsilon must be > 0"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.beam_size >= 1, "beam_size must be >= 1"),
            (self.alpha >= 0, "alpha must be >= 0"),
            (self.extra_decode_length >= 1, "extra_decode_length must be >= 1"),
            (self.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
            (self.eval_sentences is None or self.eval_sentences >= 1,
             "eval_sentences must be >= 1 (or none: all)"),
            (self.epochs_per_eval >= 1, "epochs_per_eval must be >= 1"),
            (self.max_epochs >= 1, "max_epochs must be >= 1"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1"),
            (self.max_seconds is None or self.max_seconds > 0, "max_seconds must be > 0"),
            (self.epochs_to_converge > 0, "epochs_to_converge must be > 0"),
            (self.synthetic_pairs >= 10 and self.synthetic_eval_pairs >= 1,
             "synthetic pair counts must be positive (at least 10 training pairs)"),
            (2 <= self.synthetic_words <= 1000, "synthetic_words must be in 2..1000"),
            (3 <= self.synthetic_max_words < self.max_length,
             "synthetic_max_words must be >= 3 and below max_length"),
            (self.threads >= 0, "threads must be >= 0 (0 = automatic)"),
            (self.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self
