"""The interpreter's ResNet `train` against the PyTorch reference's step
(references/resnet/train.py: ResNet v1.5, make_optimizer's SGD with momentum and weight decay
off batch norm, CrossEntropyLoss, batch norm in training mode) from the same state on the same
batch of the smoke data (ResNet-14, base width 8, 4 classes, 32x32, batch 32).

Tolerances are absolute, float32, at the smoke's peak learning rate 0.1. Measured here, one
step from the same weights (five seeds, full batches and padded short ones of 20 real images
of 32): loss 4.3e-6 at worst (of ~1.8: 2.4e-6 relative), weights 1.1e-6, momentum buffers (the
gradients plus weight decay) 1.1e-5 of gradients up to 2.9, running statistics 4.5e-7; the
bounds leave a few times that. The gradients differ ~1e-5 relative because the
interpreter's float32 reductions over batch x height x width (batch norm's statistics and
their gradients, 8,192 values in the stem) are summed less accurately than torch's and TF's
(TensorFlow running the same module matches float64 torch to 2e-7). Over several steps at this
learning rate the two trajectories part (1e-5 grows ~100x per step on one repeated batch,
where torch float32 stays within 1e-6 of float64), so parity is stated for one step from a
shared state, as the issue asks; the smoke run reaching its target is the check over a run.

One discrete exception, seen once in 11 cases measured (this batch's first 20 images): where
two values of a max-pool window lie within that rounding of each other, the interpreter and
torch can pick different maxima, and the gradient flows back through a different input
(1e-2 in the stem's momentum then; TensorFlow on the same state stays with torch to 5e-6). The
cases here are ones without such a tie.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from litert_models import resnet_state
from litert_models.flatbuffer import check_builtins_only, describe
from references.resnet import data as rdata
from references.resnet.config import ResnetConfig
from references.resnet.model import ResNet
from references.resnet.train import make_optimizer
from tests.litert.conftest import Runners

LR = 0.1                                   # the smoke's peak: 0.8 x 32 / 256
BOUNDS = {"loss": 2e-5, "weights": 5e-6, "momentum": 5e-5, "running": 2e-6}
CLASSES = 4


def torch_model(state: dict[str, np.ndarray]) -> ResNet:
    cfg = ResnetConfig.smoke()
    model = ResNet(cfg.arch, CLASSES, cfg.base_width)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            key = resnet_state.state_name(name)
            if key in state:
                value.copy_(torch.from_numpy(state[key]))
    return model


def torch_state(model: ResNet, optimizer=None) -> dict[str, np.ndarray]:
    """A PyTorch ResNet (and its SGD's momentum buffers) under the interpreter's names."""
    out = {resnet_state.state_name(k): v.detach().numpy().copy()
           for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    for name, p in model.named_parameters():
        buf = (optimizer.state.get(p, {}).get("momentum_buffer") if optimizer is not None
               else None)
        out[resnet_state.state_name(name) + resnet_state.MOMENTUM] = (
            np.zeros(tuple(p.shape), np.float32) if buf is None else buf.numpy().copy())
    return out


def torch_step(model, optimizer, images, labels) -> float:
    for group in optimizer.param_groups:
        group["lr"] = LR
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(images)),
                                             torch.from_numpy(labels).long())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def interpreter_step(runners, images, labels, batch: int = 32) -> float:
    n = len(labels)
    padded = np.zeros((batch, *images.shape[1:]), np.float32)
    padded[:n] = images
    return float(runners.train(
        images=padded, labels=np.pad(labels, (0, batch - n)).astype(np.int32),
        weights=np.r_[np.ones(n), np.zeros(batch - n)].astype(np.float32),
        lr=np.float32(LR))["loss"])


def differences(got: dict, want: dict) -> dict[str, float]:
    groups = {"weights": [], "momentum": [], "running": []}
    for k in want:
        group = ("momentum" if k.endswith(resnet_state.MOMENTUM) else
                 "running" if "__running_" in k else "weights")
        groups[group].append(float(np.abs(got[k] - want[k]).max()))
    return {g: max(v) for g, v in groups.items()}


@pytest.fixture
def setup(resnet_artifact):
    """(torch model, its optimizer, interpreter holding the same state, a training batch)."""
    cfg = ResnetConfig.smoke()
    state = resnet_state.initial_state(cfg, CLASSES, seed=5)
    model = torch_model(state)
    runners = Runners(resnet_artifact.content)
    runners.restore(**state)
    data = rdata.synthetic(cfg, seed=1)
    return model, make_optimizer(model, cfg), runners, (data.train_images[:32],
                                                        data.train_labels[:32])


def test_one_step_gives_torchs_loss_weights_momentum_and_statistics(setup):
    model, optimizer, runners, (images, labels) = setup
    loss = interpreter_step(runners, images, labels)
    want = torch_step(model, optimizer, images, labels)
    assert abs(loss - want) <= BOUNDS["loss"], (loss, want)
    diffs = differences(runners.save(), torch_state(model, optimizer))
    over = {k: f"{v:.2e} > {BOUNDS[k]:.0e}" for k, v in diffs.items() if v > BOUNDS[k]}
    assert not over, over
    # The step moved things: a test of equality of two unchanged states proves nothing.
    moved = differences(runners.save(), torch_state(torch_model(
        resnet_state.initial_state(ResnetConfig.smoke(), CLASSES, seed=5))))
    assert moved["weights"] > 1e-3 and moved["running"] > 1e-3


def test_a_padded_short_batch_is_torchs_step_on_the_real_rows(setup):
    """21 images in torch's batch = the interpreter's 32 with 11 zero rows of weight 0: the
    loss and batch norm's statistics leave the padding out."""
    model, optimizer, runners, (images, labels) = setup
    loss = interpreter_step(runners, images[:21], labels[:21])
    want = torch_step(model, optimizer, images[:21], labels[:21])
    assert abs(loss - want) <= BOUNDS["loss"]
    diffs = differences(runners.save(), torch_state(model, optimizer))
    assert all(v <= BOUNDS[k] for k, v in diffs.items()), diffs


def test_infer_is_torchs_eval_mode(setup):
    model, optimizer, runners, (images, labels) = setup
    interpreter_step(runners, images, labels)          # running statistics no longer 0 / 1
    torch_step(model, optimizer, images, labels)
    model.eval()
    with torch.inference_mode():
        want = model(torch.from_numpy(images[:7])).numpy()
    got = runners.infer(images=images[:7])["logits"]
    assert got.shape == (7, CLASSES)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_the_built_model_starts_from_the_references_initialisation(resnet_artifact):
    want = resnet_state.initial_state(ResnetConfig.smoke(), CLASSES)
    got = Runners(resnet_artifact.content).save()
    assert list(got) and set(got) == set(want)
    for k, v in want.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)


def test_names_and_layouts_are_the_torch_state_dicts(resnet_artifact):
    cfg = ResnetConfig.smoke()
    model = ResNet(cfg.arch, CLASSES, cfg.base_width)
    torch_names = [resnet_state.state_name(k) for k in model.state_dict()
                   if not k.endswith("num_batches_tracked")]
    assert resnet_state.state_names(cfg, CLASSES)[:len(torch_names)] == torch_names
    assert resnet_artifact.label.param_names == [resnet_state.state_name(k) for k, _ in
                                                 model.named_parameters()]
    shapes = {**resnet_state.param_shapes(cfg, CLASSES), **resnet_state.buffer_shapes(cfg,
                                                                                     CLASSES)}
    assert {resnet_state.state_name(k): tuple(v.shape) for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")} == shapes
    # Weight decay: everything torch's make_optimizer decays, nothing else.
    decayed = {id(p) for p in make_optimizer(model, cfg).param_groups[0]["params"]}
    assert {resnet_state.state_name(k) for k, p in model.named_parameters()
            if id(p) in decayed} == {k for k in resnet_state.param_shapes(cfg, CLASSES)
                                     if resnet_state.decayed(k)}


@pytest.mark.parametrize("arch, base_width", [("resnet50", 64), ("resnet26", 16)])
def test_the_layout_matches_torch_for_every_arch(arch, base_width):
    cfg = ResnetConfig.smoke().__class__(arch=arch, base_width=base_width)
    model = ResNet(arch, 1000, base_width)
    assert resnet_state.state_names(cfg, 1000)[:len(model.state_dict()) - sum(
        k.endswith("num_batches_tracked") for k in model.state_dict())] == [
        resnet_state.state_name(k) for k in model.state_dict()
        if not k.endswith("num_batches_tracked")]


def test_the_initialisation_is_the_references_distribution():
    cfg = ResnetConfig(arch="resnet14", base_width=16)
    init = resnet_state.initial_params(cfg, 10, seed=3)
    stem = init["stem__0__0__weight"]                          # fan_in 3 x 7 x 7 = 147
    std = np.sqrt(1 / 147) / resnet_state.TRUNCATED_STD
    assert np.abs(stem).max() <= 2 * std + 1e-7
    assert abs(stem.std() - np.sqrt(1 / 147)) < 0.1 * np.sqrt(1 / 147)
    limit = np.sqrt(6 / (10 + init["fc__weight"].shape[1]))
    assert np.abs(init["fc__weight"]).max() <= limit and not init["fc__bias"].any()
    assert (init["stem__0__1__weight"] == 1).all() and (init["stem__0__1__running_var"] == 1).all()


def test_only_builtin_ops_and_the_static_batch(resnet_artifact):
    info = describe(resnet_artifact.content)
    check_builtins_only(info)
    assert not info.custom_ops and not any(op.startswith("FLEX") for op in info.ops)
    train = Runners(resnet_artifact.content).train.get_input_details()
    assert [int(d) for d in train["images"]["shape_signature"]] == [32, 3, 32, 32]
    assert list(train["lr"]["shape"]) == []
