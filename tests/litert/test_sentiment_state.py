"""The seq-CNN's state in numpy: the reference's names, shapes, Xavier initialisation with the
padding row zero, and the static review length the interpreter trains at."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from litert_models import sentiment_state
from references.sentiment import data as sdata
from references.sentiment.config import SentimentConfig


def test_initial_params_are_xavier_with_zero_biases_and_a_zero_padding_row():
    cfg = SentimentConfig.smoke()
    params = sentiment_state.initial_params(cfg, 300, seed=3)
    assert all(v.dtype == np.float32 for v in params.values())
    emb = params["embedding__weight"]                      # [300, 32]: fans 32 and 300
    assert emb.shape == (300, 32) and not emb[0].any()
    assert 0.9 * math.sqrt(6 / 332) < np.abs(emb).max() <= math.sqrt(6 / 332)
    conv = params["convs__1__weight"]                      # [32, 32, 4]: fans 32*4, 32*4
    assert conv.shape == (32, 32, 4)
    assert 0.9 * math.sqrt(6 / 256) < np.abs(conv).max() <= math.sqrt(6 / 256)
    assert params["fc__weight"].shape == (2, 64)
    assert not any(params[k].any() for k in params if k.endswith("__bias"))


def test_seeds_and_state():
    cfg = SentimentConfig.smoke()
    a, b = (sentiment_state.initial_params(cfg, 50, 1) for _ in range(2))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = sentiment_state.initial_params(cfg, 50, 2)
    assert not np.array_equal(a["fc__weight"], c["fc__weight"])
    state = sentiment_state.initial_state(cfg, 50, 1)
    assert list(state) == sentiment_state.state_names(list(a))
    assert state["adam_step"].shape == () and not state["embedding__weight__adam_v"].any()


def test_the_review_length_holds_every_review_the_reference_can_batch():
    cfg = SentimentConfig.smoke()
    length = sentiment_state.max_length(cfg)
    assert length == cfg.synthetic_max_words + 4 == 84
    for seed in (0, 1, 7):                  # every seed's reviews fit, and the vocabulary
        data = sdata.load(cfg, None, seed)  # (the embedding's rows) is the same
        assert max(sdata.longest(data.train), sdata.longest(data.test)) <= length
        assert len(data.vocab) == 417
    assert sentiment_state.max_length(replace(cfg, max_tokens=50)) == 50
    aclimdb = SentimentConfig.full()
    assert sentiment_state.max_length(aclimdb, longest_review=2470) == 2470
    assert sentiment_state.max_length(replace(aclimdb, max_tokens=400), 2470) == 400
    with pytest.raises(ValueError, match="longest review"):
        sentiment_state.max_length(aclimdb)
