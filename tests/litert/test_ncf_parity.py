"""The interpreter's `train` against the PyTorch reference's step (references/ncf/train.py:
NeuMF, fused Adam with the config's hyperparameters, BCEWithLogitsLoss) from the same weights
on the same batches.

Tolerances are absolute, float32. Measured here on the smoke model (839 x 992, batch 1024):
- one step: loss 0 (6e-8 for the padded batch), weights 9.4e-8, Adam m 7.5e-9, v 2.9e-11;
- ten steps: loss 1.2e-7 at worst, weights 8.8e-7, m 3.0e-8, v 5.8e-11.
For scale: each step moves a weight by up to lr = 0.02, and over the same ten steps PyTorch's
float32 run itself drifts 7.0e-7 from a float64 one (the interpreter: 3.0e-7). The bounds leave
a few times the measured margins.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from litert_models import ncf_state
from references.ncf.config import NcfConfig
from references.ncf.model import NeuMF
from references.ncf.train import make_optimizer, train_step
from tests.litert.conftest import Runners, torch_state

ONE_STEP = {"loss": 1e-6, "weights": 5e-7, "adam_m": 2e-8, "adam_v": 1e-10}
TEN_STEPS = {"loss": 1e-6, "weights": 5e-6, "adam_m": 2e-7, "adam_v": 5e-10}


@pytest.fixture
def setup(ncf_artifact):
    """(cfg, torch model, its optimizer, interpreter restored to the torch weights, batches)."""
    cfg = NcfConfig.smoke()
    assert ncf_artifact.label.batch_size == cfg.batch_size
    users, items = ncf_artifact.label.sizes["users"], ncf_artifact.label.sizes["items"]
    torch.manual_seed(0)
    model = NeuMF(users, items, cfg.factors, cfg.mlp_layers)
    runners = Runners(ncf_artifact.content)
    runners.restore(**torch_state(model))
    rng = np.random.default_rng(1)
    b = cfg.batch_size
    batches = [(rng.integers(0, users, b).astype(np.int32),
                rng.integers(0, items, b).astype(np.int32),
                (rng.random(b) < 0.2).astype(np.float32)) for _ in range(4)]  # 1 pos : 4 neg
    return cfg, model, make_optimizer(model, cfg), runners, batches


def torch_step(model, optimizer, users, items, labels) -> float:
    return float(train_step(model, optimizer, nn.BCEWithLogitsLoss(),
                            torch.from_numpy(users.astype(np.int64)),
                            torch.from_numpy(items.astype(np.int64)), torch.from_numpy(labels)))


def worst(got: dict, want: dict, suffix: str) -> float:
    keys = [k for k in want if k != ncf_state.ADAM_STEP and k.endswith(suffix)
            and (suffix or not k.endswith(("__adam_m", "__adam_v")))]
    assert keys
    return max(float(np.abs(got[k] - want[k]).max()) for k in keys)


def check(got: dict, want: dict, bounds: dict) -> None:
    diffs = {"weights": worst(got, want, ""), "adam_m": worst(got, want, "__adam_m"),
             "adam_v": worst(got, want, "__adam_v")}
    over = {k: f"{v:.2e} > {bounds[k]:.0e}" for k, v in diffs.items() if v > bounds[k]}
    assert not over, over
    assert float(got[ncf_state.ADAM_STEP]) == float(want[ncf_state.ADAM_STEP])


def test_one_step_gives_torchs_loss_and_weights(setup):
    cfg, model, optimizer, runners, batches = setup
    users, items, labels = batches[0]
    ones = np.ones(cfg.batch_size, np.float32)
    loss = float(runners.train(users=users, items=items, labels=labels, weights=ones)["loss"])
    want = torch_step(model, optimizer, users, items, labels)
    assert abs(loss - want) <= ONE_STEP["loss"]
    check(runners.save(), torch_state(model, optimizer), ONE_STEP)


def test_ten_steps_stay_with_torch(setup):
    cfg, model, optimizer, runners, batches = setup
    ones = np.ones(cfg.batch_size, np.float32)
    for step in range(10):
        users, items, labels = batches[step % 4]
        loss = float(runners.train(users=users, items=items, labels=labels, weights=ones)["loss"])
        want = torch_step(model, optimizer, users, items, labels)
        assert abs(loss - want) <= TEN_STEPS["loss"], (step, loss, want)
    check(runners.save(), torch_state(model, optimizer), TEN_STEPS)


def test_a_padded_short_batch_is_torchs_step_on_the_real_rows(setup):
    cfg, model, optimizer, runners, batches = setup
    users, items, labels = batches[0]
    real = 600
    weights = np.r_[np.ones(real), np.zeros(cfg.batch_size - real)].astype(np.float32)
    pad = slice(real, None)                  # padding rows: any valid ids, weight 0
    users, items, labels = users.copy(), items.copy(), labels.copy()
    users[pad], items[pad], labels[pad] = 0, 0, 1.0
    loss = float(runners.train(users=users, items=items, labels=labels, weights=weights)["loss"])
    want = torch_step(model, optimizer, users[:real], items[:real], labels[:real])
    assert abs(loss - want) <= ONE_STEP["loss"]
    check(runners.save(), torch_state(model, optimizer), ONE_STEP)


def test_the_built_model_starts_from_the_references_initialisation(ncf_artifact, runners):
    """Before any restore the model holds ncf_state.initial_params (seed 0): Adam at zero."""
    sizes = ncf_artifact.label.sizes
    want = ncf_state.initial_state(NcfConfig.smoke(), sizes["users"], sizes["items"])
    got = runners.save()
    assert list(want) == ncf_state.state_names(ncf_artifact.label.param_names)
    assert set(got) == set(want)
    for k, v in want.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)


def test_names_and_order_are_the_torch_state_dicts(ncf_artifact):
    cfg, sizes = NcfConfig.smoke(), ncf_artifact.label.sizes
    model = NeuMF(sizes["users"], sizes["items"], cfg.factors, cfg.mlp_layers)
    torch_names = [ncf_state.state_name(k) for k in model.state_dict()]
    assert ncf_artifact.label.param_names == torch_names
    shapes = ncf_state.param_shapes(cfg, sizes["users"], sizes["items"])
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {
        k: shapes[ncf_state.state_name(k)] for k in model.state_dict()}


def test_save_then_restore_into_a_fresh_interpreter(ncf_artifact, runners, tmp_path):
    """A checkpoint file as the device writes it (np.savez of save()'s outputs) brings a new
    interpreter to the same predictions and the same next step."""
    cfg = NcfConfig.smoke()
    rng = np.random.default_rng(2)
    sizes, b = ncf_artifact.label.sizes, cfg.batch_size
    batch = {"users": rng.integers(0, sizes["users"], b).astype(np.int32),
             "items": rng.integers(0, sizes["items"], b).astype(np.int32),
             "labels": (rng.random(b) < 0.2).astype(np.float32),
             "weights": np.ones(b, np.float32)}
    for _ in range(3):
        runners.train(**batch)
    probe = {"users": batch["users"][:50], "items": batch["items"][:50]}
    before = runners.infer(**probe)["logits"]
    np.savez(tmp_path / "ckpt.npz", **runners.save())

    fresh = Runners(ncf_artifact.content)
    assert np.abs(fresh.infer(**probe)["logits"] - before).max() > 0   # it starts elsewhere
    with np.load(tmp_path / "ckpt.npz") as saved:
        assert fresh.restore(**{k: saved[k] for k in saved.files})["ok"] == 1.0
    np.testing.assert_array_equal(fresh.infer(**probe)["logits"], before)
    assert float(fresh.save()[ncf_state.ADAM_STEP]) == 3.0
    np.testing.assert_array_equal(fresh.train(**batch)["loss"], runners.train(**batch)["loss"])
