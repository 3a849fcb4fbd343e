"""The sentiment seq-CNN's state for the interpreter, in numpy only: names, shapes, the
reference's initialisation, the static review length. Torch-free and TensorFlow-free: a device
imports it to re-initialise a model per run seed (through ``restore``) and to write checkpoints.

Names are the PyTorch state_dict's (references/sentiment/model.py) with "." replaced by "__"
(``convs.0.weight`` -> ``convs__0__weight``), in state_dict order; layouts are PyTorch's too
(embedding [rows, dim], Conv1d weight [filters, dim, width], Linear weight [out, in]). The
optimiser's state adds, per parameter, ``<name>__adam_m`` and ``<name>__adam_v`` (torch's
exp_avg and exp_avg_sq), and one ``adam_step`` (float32 scalar: torch's step count), as NCF's
(litert_models/ncf_state.py).
"""

from __future__ import annotations

import math

import numpy as np

from litert_models.ncf_state import (
    ADAM_STEP,
    DEFAULT_INIT_SEED,
    fresh_state,
    state_name,
    state_names,
)

__all__ = ["ADAM_STEP", "DEFAULT_INIT_SEED", "CLASSES", "state_name", "state_names",
           "param_shapes", "max_length", "initial_params", "initial_state"]

CLASSES = 2
#: Words data.synthetic_reviews plants in a review beyond its filler: 1-3 of its polarity and
#: at most one of the other.
SYNTHETIC_PLANTED_MAX = 4


def param_shapes(cfg, vocab_rows: int) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape, in the order of SeqCNN(vocab_rows, ...).state_dict().
    ``vocab_rows`` counts the padding id 0 (len(vocab) + 1)."""
    shapes = {"embedding.weight": (vocab_rows, cfg.embedding_dim)}
    for i, k in enumerate(cfg.filter_sizes):
        shapes[f"convs.{i}.weight"] = (cfg.filters, cfg.embedding_dim, k)
        shapes[f"convs.{i}.bias"] = (cfg.filters,)
    shapes["fc.weight"] = (CLASSES, cfg.filters * len(cfg.filter_sizes))
    shapes["fc.bias"] = (CLASSES,)
    return {state_name(k): v for k, v in shapes.items()}


def max_length(cfg, longest_review: int | None = None) -> int:
    """The static review length T of the ``train`` signature: the longest batch the reference
    can pad to (it pads each batch to its longest review). That is ``max_tokens`` when set (the
    reviews are cut there); for synthetic reviews, the longest the generator can write
    (synthetic_max_words + 4 planted words: the same for every seed); for aclImdb, the longest
    review of the data (``longest_review``, read at build time: the dataset is fixed)."""
    bound = None
    if cfg.dataset == "synthetic":
        bound = cfg.synthetic_max_words + SYNTHETIC_PLANTED_MAX
    elif longest_review is not None:
        bound = max(1, int(longest_review))
    if cfg.max_tokens is not None:
        bound = cfg.max_tokens if bound is None else min(bound, cfg.max_tokens)
    if bound is None:
        raise ValueError("max_length: aclImdb without max_tokens needs the longest review")
    return max(bound, max(cfg.filter_sizes))


def initial_params(cfg, vocab_rows: int,
                   seed: int = DEFAULT_INIT_SEED) -> dict[str, np.ndarray]:
    """The reference's initialisation (references/sentiment/model.py), drawn with numpy:
    Xavier-uniform weights (torch's fans: fan_in = size(1) x width, fan_out = size(0) x width),
    zero biases, the padding row of the embedding zero. Same distributions as torch's, not
    the same numbers (different generators)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in param_shapes(cfg, vocab_rows).items():
        if name.endswith("__bias"):
            value = np.zeros(shape)
        else:
            receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
            fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            value = rng.uniform(-limit, limit, size=shape)
        if name == "embedding__weight":
            value[0] = 0.0                                   # padding id 0 (padding_idx)
        out[name] = value.astype(np.float32)
    return out


def initial_state(cfg, vocab_rows: int,
                  seed: int = DEFAULT_INIT_SEED) -> dict[str, np.ndarray]:
    """Everything ``restore`` takes for a fresh run: initial parameters, zero moments, step 0."""
    params = initial_params(cfg, vocab_rows, seed)
    return fresh_state(params)
