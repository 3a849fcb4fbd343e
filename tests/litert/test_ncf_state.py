"""NeuMF's state in numpy: the reference's names, shapes and initial distributions."""

from __future__ import annotations

import math

import numpy as np

from litert_models import ncf_state
from references.ncf.config import NcfConfig


def test_initial_params_follow_the_reference_initialisers():
    cfg = NcfConfig.smoke()
    params = ncf_state.initial_params(cfg, 500, 400, seed=3)
    assert all(v.dtype == np.float32 for v in params.values())
    for name in ("gmf_user__weight", "gmf_item__weight", "mlp_user__weight", "mlp_item__weight"):
        assert abs(params[name].std() - 0.01) < 0.001 and abs(params[name].mean()) < 0.001
    w0 = params["mlp__layers__0__weight"]                      # [16, 32]: glorot-uniform
    assert w0.shape == (16, 32) and np.abs(w0).max() <= math.sqrt(6 / (16 + 32))
    assert np.abs(w0).max() > 0.9 * math.sqrt(6 / (16 + 32))
    assert np.abs(params["mlp__layers__0__bias"]).max() <= 1 / math.sqrt(32)   # torch default
    final = params["final__weight"]                            # [1, 8 + 8]: lecun-uniform
    assert final.shape == (1, 16) and np.abs(final).max() <= math.sqrt(3 / 16)
    assert np.abs(params["final__bias"]).max() <= 1 / math.sqrt(16)


def test_seeds_and_state():
    cfg = NcfConfig.smoke()
    a, b = ncf_state.initial_params(cfg, 50, 40, 1), ncf_state.initial_params(cfg, 50, 40, 1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = ncf_state.initial_params(cfg, 50, 40, 2)
    assert not np.array_equal(a["final__weight"], c["final__weight"])
    state = ncf_state.initial_state(cfg, 50, 40, 1)
    assert list(state) == ncf_state.state_names(list(a))
    assert state["adam_step"].shape == () and not state["gmf_user__weight__adam_v"].any()
