"""The interpreter's sentiment `train` against the PyTorch reference's step
(references/sentiment/train.py: SeqCNN, torch.optim.Adam with the config's hyperparameters,
CrossEntropyLoss) from the same weights on the same batches of the smoke data.

The interpreter takes every batch at the model's static review length T (84 for smoke) where
PyTorch pads to the batch's longest review: the masked max makes that the same step.
Tolerances are absolute, float32. Measured here on the smoke model (418 x 32, filters 32 x
(3, 4), batch 64, T 84, lr 5e-3):
- one step: loss 6e-8, weights 1.8e-6, Adam m 1.9e-9, v 4.5e-12;
- the padded short batch (40 real rows of 64): loss 6e-8, weights 6.2e-7, m 9.3e-10, v 5.5e-12;
- ten steps: loss 6e-8 at worst, weights 1.8e-6, m 4.0e-9, v 7.3e-12.
The weights' 1.8e-6 is Adam's first step on gradients near eps (1e-8): there m / (sqrt(v) +
eps) turns a float32 rounding of g into a visible change of a step of up to lr = 5e-3 (0.05%
of it), and it does not grow over ten steps. The bounds leave a few times the margins.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from litert_models import sentiment_state
from litert_models.flatbuffer import check_builtins_only, describe
from references.sentiment import data as sdata
from references.sentiment.config import SentimentConfig
from references.sentiment.model import SeqCNN
from references.sentiment.train import TorchBackend
from tests.litert.conftest import Runners, torch_state

ONE_STEP = {"loss": 3e-7, "weights": 1e-5, "adam_m": 1e-8, "adam_v": 5e-11}
TEN_STEPS = {"loss": 5e-7, "weights": 1e-5, "adam_m": 3e-8, "adam_v": 1e-10}


@pytest.fixture(scope="module")
def smoke_data() -> sdata.SentimentData:
    return sdata.load(SentimentConfig.smoke(), None, seed=0)


@pytest.fixture
def setup(sentiment_artifact, smoke_data):
    """(cfg, torch backend, interpreter restored to its weights, T, the smoke's first batches
    as numpy, padded to their longest review: four full ones narrower than T)."""
    cfg = SentimentConfig.smoke()
    rows = sentiment_artifact.label.sizes["vocab_rows"]
    assert rows == len(smoke_data.vocab) + 1 and sentiment_artifact.label.batch_size == 64
    torch.manual_seed(0)
    backend = TorchBackend(SeqCNN(rows, cfg.embedding_dim, cfg.filters, cfg.filter_sizes), cfg,
                           "cpu", 1)
    runners = Runners(sentiment_artifact.content)
    runners.restore(**torch_state(backend.model))
    batches = [b for b in sdata.array_batches(smoke_data.train, cfg.batch_size,
                                              np.random.default_rng(1))
               if len(b[2]) == cfg.batch_size and b[0].shape[1] < 84][:4]    # full, narrower
    return cfg, backend, runners, sentiment_artifact.label.sizes["max_length"], batches


def interpreter_step(runners, length: int, tokens, lengths, labels, batch: int = 64) -> float:
    """The batch at the model's T, padded to ``batch`` rows of weight 0."""
    n = len(labels)
    padded = np.zeros((batch, length), np.int32)
    padded[:n, :tokens.shape[1]] = tokens
    weights = np.r_[np.ones(n), np.zeros(batch - n)].astype(np.float32)
    return float(runners.train(tokens=padded, lengths=np.pad(lengths, (0, batch - n)).astype(
        np.int32), labels=np.pad(labels, (0, batch - n)).astype(np.int32),
        weights=weights)["loss"])


def torch_step(backend, tokens, lengths, labels) -> float:
    return float(backend.train_step((torch.from_numpy(tokens), torch.from_numpy(lengths),
                                     torch.from_numpy(labels))))


def check(got: dict, want: dict, bounds: dict) -> dict:
    diffs = {}
    for group, suffix in (("weights", ""), ("adam_m", "__adam_m"), ("adam_v", "__adam_v")):
        keys = [k for k in want if k != sentiment_state.ADAM_STEP and k.endswith(suffix)
                and (suffix or not k.endswith(("__adam_m", "__adam_v")))]
        assert keys
        diffs[group] = max(float(np.abs(got[k] - want[k]).max()) for k in keys)
    over = {k: f"{v:.2e} > {bounds[k]:.0e}" for k, v in diffs.items() if v > bounds[k]}
    assert not over, over
    assert float(got[sentiment_state.ADAM_STEP]) == float(want[sentiment_state.ADAM_STEP])
    return diffs


def test_one_step_gives_torchs_loss_and_weights(setup):
    cfg, backend, runners, length, batches = setup
    tokens, lengths, labels = batches[0]
    assert tokens.shape[1] < length                # torch's batch is narrower than T
    loss = interpreter_step(runners, length, tokens, lengths, labels)
    want = torch_step(backend, tokens, lengths, labels)
    assert abs(loss - want) <= ONE_STEP["loss"]
    got = runners.save()
    check(got, torch_state(backend.model, backend.optimizer), ONE_STEP)
    assert not got["embedding__weight"][0].any()           # padding_idx: row 0 stays zero
    assert not got["embedding__weight__adam_m"][0].any()


def test_ten_steps_stay_with_torch(setup):
    cfg, backend, runners, length, batches = setup
    for step in range(10):
        tokens, lengths, labels = batches[step % 4]
        loss = interpreter_step(runners, length, tokens, lengths, labels)
        want = torch_step(backend, tokens, lengths, labels)
        assert abs(loss - want) <= TEN_STEPS["loss"], (step, loss, want)
    got = runners.save()
    check(got, torch_state(backend.model, backend.optimizer), TEN_STEPS)
    assert not got["embedding__weight"][0].any()


def test_a_padded_short_batch_is_torchs_step_on_the_real_rows(setup):
    """40 reviews in torch's unpadded batch (its own width) = the interpreter's 64 x T batch
    with 24 rows of weight 0."""
    cfg, backend, runners, length, batches = setup
    tokens, lengths, labels = batches[0]
    real = 40
    width = int(lengths[:real].max())
    tokens, lengths, labels = tokens[:real, :width], lengths[:real], labels[:real]
    loss = interpreter_step(runners, length, tokens, lengths, labels)
    want = torch_step(backend, tokens, lengths, labels)
    assert abs(loss - want) <= ONE_STEP["loss"]
    check(runners.save(), torch_state(backend.model, backend.optimizer), ONE_STEP)


def test_infer_gives_torchs_logits_at_any_padding(setup, smoke_data):
    cfg, backend, runners, length, _ = setup
    tokens, lengths, _ = next(sdata.array_batches(smoke_data.test, 100, None))
    with torch.inference_mode():
        want = backend.model(torch.from_numpy(tokens), torch.from_numpy(lengths)).numpy()
    padded = np.zeros((100, length), np.int32)
    padded[:, :tokens.shape[1]] = tokens
    got = runners.infer(tokens=padded, lengths=lengths.astype(np.int32))["logits"]
    assert got.shape == (100, 2)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_the_built_model_starts_from_the_references_initialisation(sentiment_artifact):
    """Before any restore the model holds sentiment_state.initial_params (seed 0)."""
    rows = sentiment_artifact.label.sizes["vocab_rows"]
    want = sentiment_state.initial_state(SentimentConfig.smoke(), rows)
    got = Runners(sentiment_artifact.content).save()
    assert list(want) == sentiment_state.state_names(sentiment_artifact.label.param_names)
    assert set(got) == set(want)
    for k, v in want.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)


def test_names_and_layouts_are_the_torch_state_dicts(sentiment_artifact):
    cfg, rows = SentimentConfig.smoke(), sentiment_artifact.label.sizes["vocab_rows"]
    model = SeqCNN(rows, cfg.embedding_dim, cfg.filters, cfg.filter_sizes)
    assert sentiment_artifact.label.param_names == [sentiment_state.state_name(k)
                                                    for k in model.state_dict()]
    shapes = sentiment_state.param_shapes(cfg, rows)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {
        k: shapes[sentiment_state.state_name(k)] for k in model.state_dict()}


def test_only_builtin_ops_and_the_static_shapes(sentiment_artifact):
    info = describe(sentiment_artifact.content)
    check_builtins_only(info)
    assert not info.custom_ops and not any(op.startswith("FLEX") for op in info.ops)
    runners = Runners(sentiment_artifact.content)
    train = runners.train.get_input_details()
    assert [int(d) for d in train["tokens"]["shape_signature"]] == [64, 84]
    assert train["labels"]["dtype"] == np.int32
    infer = runners.infer.get_input_details()
    assert [int(d) for d in infer["tokens"]["shape_signature"]] == [-1, 84]


def test_save_then_restore_into_a_fresh_interpreter(setup, sentiment_artifact, tmp_path):
    """A checkpoint file as the device writes it (np.savez of save()'s outputs) brings a new
    interpreter to the same predictions and the same next step."""
    cfg, backend, runners, length, batches = setup
    tokens, lengths, labels = batches[0]
    padded = np.zeros((64, length), np.int32)
    padded[:, :tokens.shape[1]] = tokens
    batch = {"tokens": padded, "lengths": lengths.astype(np.int32),
             "labels": labels.astype(np.int32), "weights": np.ones(64, np.float32)}
    for _ in range(3):
        runners.train(**batch)
    probe = {"tokens": padded[:20], "lengths": batch["lengths"][:20]}
    before = runners.infer(**probe)["logits"]
    np.savez(tmp_path / "ckpt.npz", **runners.save())

    fresh = Runners(sentiment_artifact.content)
    assert np.abs(fresh.infer(**probe)["logits"] - before).max() > 0   # it starts elsewhere
    with np.load(tmp_path / "ckpt.npz") as saved:
        assert fresh.restore(**{k: saved[k] for k in saved.files})["ok"] == 1.0
    np.testing.assert_array_equal(fresh.infer(**probe)["logits"], before)
    assert float(fresh.save()[sentiment_state.ADAM_STEP]) == 3.0
    np.testing.assert_array_equal(fresh.train(**batch)["loss"], runners.train(**batch)["loss"])
