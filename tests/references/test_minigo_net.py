"""Minigo's dual network: sizes and parameter counts worked out by hand, TensorFlow's
initialisation, the loss on a hand-made batch, the optimiser's l2 and learning-rate schedule,
the 8 board symmetries (planes and move vectors kept consistent, inverses, the rules themselves
symmetric), the training window and its augmentation, the evaluator's symmetry round trip, and
a tiny training run on self-play games that lowers the loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from references.minigo import go, mcts, model, selfplay
from references.minigo.model import DualNet
from references.minigo.selfplay import (
    NUM_SYMMETRIES,
    GameRecord,
    ReplayWindow,
    apply_symmetry_pi,
    apply_symmetry_planes,
    inverse_symmetry,
)

torch.set_num_threads(1)


# -- sizes ---------------------------------------------------------------------------------------

def small_net(**overrides) -> DualNet:
    sizes = {"board_size": 5, "conv_width": 4, "fc_width": 6, "trunk_layers": 2, "history": 2}
    return DualNet(**{**sizes, **overrides})


def test_shapes_and_parameter_count_of_a_small_net():
    net = small_net()
    # 5x5 board, history 2 -> 5 planes; 4 filters, 2 blocks, value fc 6. Every conv has a bias.
    stem = 5 * 4 * 9 + 4 + 2 * 4                 # 3x3 conv + bias, BN gamma/beta   = 192
    block = 2 * (4 * 4 * 9 + 4) + 2 * 2 * 4      # two 3x3 convs + biases, two BNs  = 312
    policy = (4 * 2 + 2) + (2 * 25 * 26 + 26)    # 1x1 conv to 2, BN without affine, dense
    value = (4 * 1 + 1) + (25 * 6 + 6) + (6 + 1)  # 1x1 conv to 1, dense 25->6, dense 6->1
    expected = stem + 2 * block + policy + value
    assert expected == 2320
    assert sum(p.numel() for p in net.parameters()) == expected
    assert "2,320 parameters" in net.describe()

    logits, value = net(torch.zeros(3, 5, 5, 5))
    assert logits.shape == (3, 26) and value.shape == (3,)
    assert torch.all(value.abs() < 1)
    with pytest.raises(ValueError, match=r"\[batch, 5, 5, 5\]"):
        net(torch.zeros(3, 17, 5, 5))


def test_default_sizes_are_the_reference_9x9_sizes():
    net = DualNet()
    # dual_net.py: k = 2 ** round(log2(81 / 3)) = 32, fc_width = 2k, N trunk layers.
    assert (net.conv_width, net.fc_width, net.trunk_layers, net.history) == (32, 64, 9, 8)
    stem = 17 * 32 * 9 + 32 + 64
    block = 2 * (32 * 32 * 9 + 32) + 2 * 64
    heads = (32 * 2 + 2) + (162 * 82 + 82) + (32 + 1) + (81 * 64 + 64) + (64 + 1)
    assert sum(p.numel() for p in net.parameters()) == stem + 9 * block + heads == 191_386
    assert model.default_sizes(19) == (128, 256, 19)       # 361 / 3 = 120 -> 128


def test_batch_norms_are_the_references():
    net = DualNet()
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 1 + 2 * 9 + 2
    assert all(m.eps == 1e-5 and m.momentum == pytest.approx(0.003) for m in norms)
    # Heads: center=False, scale=False; trunk: both.
    assert not net.policy_conv[1].affine and not net.value_conv[1].affine
    assert net.stem[1].affine


def test_initialisation_is_glorot_uniform_with_zero_biases():
    torch.manual_seed(0)
    net = DualNet()
    stem = net.stem[0]
    bound = math.sqrt(6 / (17 * 9 + 32 * 9))      # fans over the 3x3 receptive field
    w = stem.weight.detach().abs()
    assert w.max() <= bound
    # PyTorch's default bound would be 1/sqrt(153) = 0.081 < 0.9 * 0.117: this tells them apart.
    assert w.max() > 0.9 * bound
    dense = net.policy_fc.weight.detach().abs()
    assert 0.9 * math.sqrt(6 / (162 + 82)) < dense.max() <= math.sqrt(6 / (162 + 82))
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert torch.all(module.bias == 0)


# -- loss, optimiser, schedule -------------------------------------------------------------------

def test_loss_on_a_hand_made_batch():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, math.log(3), 0.0, 0.0]])
    pi = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    value = torch.tensor([0.5, -0.5])
    z = torch.tensor([1.0, 1.0])
    total, policy, mse = model.loss(logits, value, pi, z, value_cost_weight=1.0)
    # Row 1: uniform over 4 -> cross-entropy ln 4. Row 2: softmax [1, 3, 1, 1] / 6, the target
    # has p = 1/2 -> ln 2. Mean 1.5 ln 2. Value: ((0.5)^2 + (1.5)^2) / 2 = 1.25.
    assert policy.item() == pytest.approx(1.5 * math.log(2), rel=1e-6)
    assert mse.item() == pytest.approx(1.25)
    assert total.item() == pytest.approx(1.5 * math.log(2) + 1.25, rel=1e-6)
    quarter, _, _ = model.loss(logits, value, pi, z, value_cost_weight=0.25)
    assert quarter.item() == pytest.approx(1.5 * math.log(2) + 0.3125, rel=1e-6)


def test_weight_decay_is_the_reference_l2_on_everything_but_layer_biases():
    net = small_net().double()          # float64: a 1e-5 shrink is then exact to 1e-12
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    optimizer = model.make_optimizer(net, learning_rate=0.1, momentum=0.9, l2_strength=1e-4)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    # d/dw of 1e-4 * w^2 / 2 is 1e-4 * w; one step of lr 0.1 shrinks w by a factor 1 - 1e-5.
    layer_biases = {f"{name}.bias" for name, m in net.named_modules()
                    if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert len(layer_biases) == 1 + 2 * 2 + 2 + 3
    for name, p in net.named_parameters():
        factor = 1.0 if name in layer_biases else 1 - 1e-5
        assert torch.allclose(p.detach(), before[name] * factor, rtol=0, atol=1e-12), name
    # v0.5 regularised batch-norm offsets too (only names with "bias" were spared).
    assert not torch.equal(net.stem[1].weight, before["stem.1.weight"])
    with torch.no_grad():
        net.stem[1].bias.fill_(1.0)
    optimizer.step()
    assert net.stem[1].bias[0].item() < 1.0


def test_learning_rate_is_piecewise_constant_as_tensorflow():
    assert model.learning_rate(0) == 1e-2
    assert model.learning_rate(1_000_000) == 1e-2          # a boundary keeps the earlier rate
    assert model.learning_rate(1_000_001) == 1e-3
    assert model.learning_rate(2_000_000) == 1e-3
    assert model.learning_rate(2_000_001) == 1e-4
    assert model.learning_rate(5, boundaries=(4,), rates=(1.0, 0.5)) == 0.5
    with pytest.raises(ValueError, match="one more"):
        model.learning_rate(0, boundaries=(1, 2), rates=(1.0, 0.5))


# -- symmetries ----------------------------------------------------------------------------------

def test_quarter_turn_and_mirror_move_a_corner_where_worked_out():
    board = np.zeros((9, 9))
    board[0, 0] = 1                                    # top-left
    # np.rot90 turns counter-clockwise: the top-left corner goes to the bottom-left.
    assert apply_symmetry_planes(1, board)[8, 0] == 1
    assert apply_symmetry_planes(2, board)[8, 8] == 1
    assert apply_symmetry_planes(4, board)[0, 8] == 1  # mirrored left-right


@pytest.mark.parametrize("symmetry", range(NUM_SYMMETRIES))
def test_a_point_moves_in_the_planes_where_its_pi_entry_moves(symmetry):
    n = 9
    for point in range(n * n):
        planes = np.zeros((17, n, n), dtype=np.float32)
        planes[3].flat[point] = 1
        pi = np.zeros(n * n + 1, dtype=np.float32)
        pi[point], pi[-1] = 0.75, 0.25
        moved_planes = apply_symmetry_planes(symmetry, planes)
        moved_pi = apply_symmetry_pi(symmetry, pi)
        assert np.flatnonzero(moved_planes[3]).tolist() == [int(np.argmax(moved_pi[:-1]))]
        assert moved_pi[-1] == 0.25 and moved_pi.sum() == pytest.approx(1.0)


def test_inverses_restore_and_the_eight_images_are_distinct():
    rng = np.random.default_rng(0)
    planes = rng.random((2, 17, 9, 9))
    pis = rng.random((4, 82))
    images = set()
    for s in range(NUM_SYMMETRIES):
        assert np.array_equal(apply_symmetry_planes(inverse_symmetry(s),
                                                    apply_symmetry_planes(s, planes)), planes)
        assert np.array_equal(apply_symmetry_planes(s, apply_symmetry_planes(s, planes),
                                                    inverse=True), planes)
        assert np.array_equal(apply_symmetry_pi(s, apply_symmetry_pi(s, pis), inverse=True), pis)
        images.add(apply_symmetry_planes(s, planes[0, 0]).tobytes())
    assert len(images) == NUM_SYMMETRIES
    with pytest.raises(ValueError, match="0..7"):
        apply_symmetry_planes(8, planes)


@pytest.mark.parametrize("symmetry", [1, 4, 7])
def test_the_rules_are_symmetric_so_a_transformed_game_gives_transformed_planes(symmetry):
    rng = np.random.default_rng(symmetry)
    n = 9
    position = moved = go.Position(n)
    for _ in range(40):
        legal = np.flatnonzero(position.legal_moves()[:-1])
        move = int(rng.choice(legal))
        one_hot = np.zeros(n * n + 1)
        one_hot[move] = 1
        image = int(np.argmax(apply_symmetry_pi(symmetry, one_hot)))
        position, moved = position.play(move), moved.play(image)
        assert np.array_equal(go.features(moved),
                              apply_symmetry_planes(symmetry, go.features(position)))
        assert np.array_equal(moved.legal_moves(),
                              apply_symmetry_pi(symmetry, position.legal_moves()))


# -- the training window -------------------------------------------------------------------------

def synthetic_record(moves: list[int], ids: list[float], n: int = 5) -> GameRecord:
    """A record whose plane 0 marks the move's point and whose pi is that move: augmentation
    must keep them together. z carries an id so a sample can be traced to its example."""
    t = len(moves)
    planes = np.zeros((t, 5, n, n), dtype=np.uint8)
    pi = np.zeros((t, n * n + 1), dtype=np.float32)
    for i, m in enumerate(moves):
        planes[i, 0].flat[m] = 1
        pi[i, m] = 1
    return GameRecord(size=n, komi=7.5, moves=tuple(moves), planes=planes, pi=pi,
                      z=np.array(ids, dtype=np.float32), root_q=np.zeros(t, dtype=np.float32),
                      winner=go.BLACK, result="B+R", resigned=True, resign_disabled=False)


def test_window_keeps_the_newest_games_within_both_limits():
    window = ReplayWindow(window_games=2, window_positions=None)
    for g in range(3):
        window.add(synthetic_record([1, 2, 3][: g + 1], [g] * (g + 1)))
    assert window.num_games == 2 and len(window) == 2 + 3
    assert sorted(set(window.examples()[2].tolist())) == [1.0, 2.0]     # game 0 dropped
    by_positions = ReplayWindow(window_games=None, window_positions=4)
    by_positions.add(synthetic_record([1, 2], [0, 0]))
    by_positions.add(synthetic_record([1, 2, 3], [1, 1, 1]))
    assert by_positions.num_games == 1 and len(by_positions) == 3
    with pytest.raises(ValueError, match="needs"):
        ReplayWindow(window_games=None, window_positions=None)


def test_sampled_batches_keep_planes_and_pi_together_under_random_symmetries():
    rng = np.random.default_rng(0)
    moves = [0, 7, 12, 21, 3, 8]                  # 5x5 points (12 is the centre)
    window = ReplayWindow(window_games=10)
    window.add(synthetic_record(moves[:3], [0, 1, 2]))
    window.add(synthetic_record(moves[3:], [3, 4, 5]))
    planes, pi, z = window.sample(400, rng)
    assert planes.dtype == np.float32 and planes.shape == (400, 5, 5, 5) and pi.shape == (400, 26)
    seen = set()
    for plane, target, example in zip(planes, pi, z.astype(int)):
        point = int(np.argmax(target))
        assert np.flatnonzero(plane[0]).tolist() == [point]
        stored = np.zeros(26)
        stored[moves[example]] = 1
        orbit = {int(np.argmax(apply_symmetry_pi(s, stored))) for s in range(8)}
        assert point in orbit
        seen.add((example, point))
    assert len({e for e, _ in seen}) == 6             # every example drawn
    assert len({p for e, p in seen if e == 0}) == 4   # the corner reached all four corners
    assert {p for e, p in seen if e == 2} == {12}     # the centre stays
    plain, plain_pi, plain_z = window.sample(50, rng, augment=False)
    for plane, target, example in zip(plain, plain_pi, plain_z.astype(int)):
        assert int(np.argmax(target)) == moves[example] == int(np.argmax(plane[0]))


# -- the evaluator -------------------------------------------------------------------------------

class EquivariantNet(nn.Module):
    """Policy logits = 3 * the mover's stones (pass 0): turning the board turns the policy,
    so the evaluator's random symmetry, undone, must give back the plain answer."""

    history = 2

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(3.0))

    def forward(self, planes):
        stones = planes[:, 0].flatten(1)
        logits = torch.cat([self.scale * stones, torch.zeros(len(planes), 1)], dim=1)
        return logits, torch.tanh((planes[:, 0] - planes[:, 1]).sum((1, 2)) / 10)


def test_evaluator_undoes_its_random_symmetries():
    position = go.Position(5)
    for move in (0, 1, 7, 24, 16):             # an asymmetric position, white to play
        position = position.play(move)
    net = EquivariantNet()
    plain = model.make_evaluator(net, random_symmetry=False)
    noisy = model.make_evaluator(net, np.random.default_rng(0), random_symmetry=True)
    want_p, want_v = plain([position])
    for _ in range(16):
        got_p, got_v = noisy([position, position])
        assert np.allclose(got_p, want_p, atol=1e-6) and np.allclose(got_v, want_v)
    # White's stones (1 and 24) are the mover's: the policy favours exactly those points.
    assert sorted(np.argsort(want_p[0])[-2:].tolist()) == [1, 24]
    assert want_p.sum() == pytest.approx(1.0)


# -- a tiny training run on self-play games ------------------------------------------------------

def test_training_on_self_play_games_lowers_the_loss():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = DualNet(board_size=5, conv_width=8, fc_width=16, trunk_layers=1)
    config = selfplay.SelfPlayConfig(board_size=5, readouts=8, resign_disabled_fraction=1.0)
    window = ReplayWindow(window_games=4)
    evaluate = model.make_evaluator(net, rng)
    for _ in range(4):
        window.add(selfplay.play_game(evaluate, config, rng, max_moves=mcts.max_game_moves(5)))
    assert len(window) >= 8

    planes, pi, z = (torch.from_numpy(a) for a in window.examples())

    def window_loss() -> tuple[float, float, float]:
        net.train()
        with torch.no_grad():
            return tuple(x.item() for x in model.loss(*net(planes), pi, z))

    before = window_loss()
    optimizer = model.make_optimizer(net, learning_rate=0.05)
    for _ in range(100):
        batch = (torch.from_numpy(a) for a in window.sample(32, rng))
        model.train_step(net, optimizer, *batch)
    after = window_loss()
    assert after[0] < 0.85 * before[0], (before, after)
    assert after[1] < before[1] - 0.2, (before, after)      # policy cross-entropy
    assert after[2] < 0.6 * before[2], (before, after)      # value squared error
