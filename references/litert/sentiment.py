"""Sentiment in the LiteRT interpreter: the run of references/sentiment/loop.py -- the same data,
timed window, evaluation, MLLOG events and result.json as the PyTorch reference -- with a
.tflite seq-CNN (built by litert_models/sentiment.py) as the model.

The interpreter's shapes are static: every batch is padded to the model's review length T
(litert_models.sentiment_state.max_length) rather than to its longest review as PyTorch pads;
windows past a review's end are masked out of the max, so the step is the same. The batches
themselves (which reviews, in which order) are the reference's (data.batch_order for the run's
seed). Each run starts from its own seed's weights (sentiment_state.initial_state, put in with
``restore``); the artifact must have been built for this run's config and vocabulary.
"""

from __future__ import annotations

import numpy as np

from litert_models.sentiment_state import initial_state
from references.common.errors import ConfigError
from references.litert.interpreter import TrainingModel
from references.litert.ncf import check_built_config
from references.sentiment import data as sdata
from references.sentiment.config import SentimentConfig

# What must match between the artifact's label and the run (label key -> config field).
MUST_MATCH = ("embedding_dim", "filters", "filter_sizes", "batch_size", "learning_rate",
              "adam_beta1", "adam_beta2", "adam_epsilon", "max_tokens")
#: Reviews per infer call when evaluating.
EVAL_BATCH = 256


class LiteRTBackend:
    """The seq-CNN in the interpreter (sentiment loop.Backend)."""

    def __init__(self, model: TrainingModel, cfg: SentimentConfig, description: str) -> None:
        self.model, self.cfg, self.description = model, cfg, description
        self.length = model.input_shape("train", "tokens")[1]

    def batches(self, reviews: sdata.Reviews, rng: np.random.Generator):
        return sdata.array_batches(reviews, self.cfg.batch_size, rng, length=self.length)

    def train_step(self, batch) -> float:
        tokens, lengths, labels = batch
        return self.model.train_batch(tokens=tokens, lengths=lengths, labels=labels)

    def accuracy(self, reviews: sdata.Reviews) -> float:
        right = 0
        for tokens, lengths, labels in sdata.array_batches(reviews, EVAL_BATCH, None,
                                                           length=self.length):
            logits = self.model.infer_batch(tokens=tokens, lengths=lengths)
            right += int((logits.argmax(1) == labels).sum())
        return right / len(reviews)


def check_config(label: dict, cfg: SentimentConfig) -> None:
    """ConfigError naming the first difference between the artifact's config and the run's
    (checked before anything is logged)."""
    check_built_config(label, cfg, "sentiment", MUST_MATCH)
    if (label.get("config") or {}).get("dataset") != cfg.dataset:
        raise ConfigError(f"the model artifact was built for dataset "
                          f"{(label.get('config') or {}).get('dataset')!r}, this run reads "
                          f"{cfg.dataset!r}: build one for this data")


def check_sizes(label: dict, model: TrainingModel, data: sdata.SentimentData) -> None:
    """ConfigError unless the artifact's embedding has this run's vocabulary (plus the padding
    row) and its review length holds every review (known once the data is loaded, in init)."""
    sizes = label.get("sizes") or {}
    rows = len(data.vocab) + 1
    if sizes.get("vocab_rows") != rows:
        raise ConfigError(f"the model artifact's embedding has {sizes.get('vocab_rows')} rows; "
                          f"this run's vocabulary needs {rows:,} ({len(data.vocab):,} words + "
                          "padding): build one for this data")
    length = model.input_shape("train", "tokens")[1]
    longest = max(sdata.longest(data.train), sdata.longest(data.test))
    if longest > length:
        raise ConfigError(f"the model artifact takes reviews of at most {length} words; this "
                          f"run's longest has {longest:,}: build one for this data (or set "
                          "max_tokens)")


def make_backend(model: TrainingModel, label: dict, cfg: SentimentConfig, seed: int,
                 data: sdata.SentimentData, description: str) -> LiteRTBackend:
    """The backend with the run's seeded initial weights loaded."""
    check_sizes(label, model, data)
    if model.batch_size != cfg.batch_size:
        raise ConfigError(f"the model trains batches of {model.batch_size}, the run asks for "
                          f"{cfg.batch_size}")
    model.load_state(initial_state(cfg, len(data.vocab) + 1, seed))
    return LiteRTBackend(model, cfg, description)
