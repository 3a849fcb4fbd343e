"""Minigo's dual network (one residual tower, a policy head and a value head), its loss, its
optimiser and learning-rate schedule, and the evaluator MCTS calls, in PyTorch.

Built as the MLPerf v0.5 reference builds it (mlcommons/training,
reinforcement/tensorflow/minigo/dual_net.py, ``model_fn``):

- input: 3x3 convolution of ``conv_width`` filters + batch norm + ReLU;
- trunk: ``trunk_layers`` residual blocks, each conv-BN-ReLU-conv-BN, the input added, ReLU;
- policy head: 1x1 convolution to 2 filters + batch norm without scale or offset + ReLU, then a
  dense layer to N*N+1 logits (the pass last);
- value head: 1x1 convolution to 1 filter + batch norm without scale or offset + ReLU, dense to
  ``fc_width`` + ReLU, dense to 1, tanh.

Every convolution keeps its bias, as tf.layers.conv2d does by default (use_bias=True), even
before a batch norm. Batch norm decay 0.997 (PyTorch momentum 0.003), epsilon 1e-5, as the
reference. Initialisation is TensorFlow's default for those layers: Glorot-uniform kernels and
zero biases (batch norm scale 1, offset 0) -- not PyTorch's Kaiming default.

Sizes: the reference derives them from the board: conv_width = the power of two nearest N*N/3
(32 on 9x9), fc_width = 2 * conv_width (64), trunk_layers = N (9); dual_net.py,
``get_default_hyperparams``. 191,386 parameters on 9x9.

One difference, on purpose: the value is the expected outcome for the *player to move* (+1 they
win), where the reference's value net predicts the outcome for black. The input planes are
already relative to the mover with a colour plane, so the two are equivalent; the mover's view
keeps the targets symmetric in colour (AlphaGo Zero's convention).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from references.minigo import go
from references.minigo.selfplay import (
    NUM_SYMMETRIES,
    apply_symmetry_pi,
    apply_symmetry_planes,
)

# dual_net.py (v0.5), model_fn: tf.layers.batch_normalization(momentum=.997, epsilon=1e-5).
BN_DECAY = 0.997
BN_EPSILON = 1e-5
# dual_net.py (v0.5), get_default_hyperparams: 'l2_strength': 1e-4, 'momentum': 0.9.
L2_STRENGTH = 1e-4
SGD_MOMENTUM = 0.9
# dual_net.py (v0.5), model_fn: combined_cost = policy_cost + value_cost (weight 1; the later
# reference's --value_cost_weight flag defaults to 1.0 as well).
VALUE_COST_WEIGHT = 1.0
# dual_net.py (v0.5), model_fn: tf.train.piecewise_constant(global_step, [1e6, 2e6],
# [1e-2, 1e-3, 1e-4]).
LR_BOUNDARIES_STEPS = (1_000_000, 2_000_000)
LR_RATES = (1e-2, 1e-3, 1e-4)
# dual_net.py (v0.5): TRAIN_BATCH_SIZE = 16 (its comment: "256 for 9s"); positions trained on
# per generation EXAMPLES_PER_GENERATION = 100000.
TRAIN_BATCH_SIZE = 16
EXAMPLES_PER_GENERATION = 100_000

NetEval = Callable[[Sequence[go.Position]], tuple[np.ndarray, np.ndarray]]


def default_sizes(board_size: int) -> tuple[int, int, int]:
    """(conv_width, fc_width, trunk_layers) as dual_net.py derives them from the board:
    2 ** round(log2(N*N / 3)), twice that, N."""
    conv_width = 2 ** round(math.log2(board_size ** 2 / 3))
    return conv_width, 2 * conv_width, board_size


def _conv_bn(inputs: int, outputs: int, kernel: int, affine: bool = True) -> list[nn.Module]:
    return [nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2, bias=True),
            nn.BatchNorm2d(outputs, eps=BN_EPSILON, momentum=1 - BN_DECAY, affine=affine)]


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the input, ReLU: dual_net.py's ``my_res_layer``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(width, width, 3), nn.ReLU(),
                                  *_conv_bn(width, width, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class DualNet(nn.Module):
    """planes [B, 2*history+1, N, N] -> (policy logits [B, N*N+1], value [B] in (-1, 1)).

    Sizes left as None take the reference's values for the board (see :func:`default_sizes`).
    """

    def __init__(self, board_size: int = 9, conv_width: int | None = None,
                 fc_width: int | None = None, trunk_layers: int | None = None,
                 history: int = go.HISTORY) -> None:
        super().__init__()
        go.check_size(board_size)
        widths = default_sizes(board_size)
        conv_width = widths[0] if conv_width is None else conv_width
        fc_width = widths[1] if fc_width is None else fc_width
        trunk_layers = widths[2] if trunk_layers is None else trunk_layers
        if conv_width < 1 or fc_width < 1 or trunk_layers < 0 or not 1 <= history <= go.HISTORY:
            raise ValueError(f"conv_width {conv_width}, fc_width {fc_width}, trunk_layers "
                             f"{trunk_layers}, history {history}: widths must be positive, "
                             f"layers >= 0, history 1..{go.HISTORY}")
        self.board_size, self.history = board_size, history
        self.conv_width, self.fc_width, self.trunk_layers = conv_width, fc_width, trunk_layers
        n2 = board_size * board_size
        self.stem = nn.Sequential(*_conv_bn(2 * history + 1, conv_width, 3), nn.ReLU())
        self.trunk = nn.Sequential(*(ResidualBlock(conv_width) for _ in range(trunk_layers)))
        # Heads: batch norm with center=False, scale=False in the reference (no affine).
        self.policy_conv = nn.Sequential(*_conv_bn(conv_width, 2, 1, affine=False), nn.ReLU())
        self.policy_fc = nn.Linear(2 * n2, n2 + 1)
        self.value_conv = nn.Sequential(*_conv_bn(conv_width, 1, 1, affine=False), nn.ReLU())
        self.value_fc = nn.Sequential(nn.Linear(n2, fc_width), nn.ReLU(), nn.Linear(fc_width, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """TensorFlow's defaults, as the reference gets them: Glorot-uniform kernels (fans
        counted over the receptive field, as TF does for conv kernels), zero biases."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()

    def forward(self, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.board_size
        if planes.dim() != 4 or tuple(planes.shape[1:]) != (2 * self.history + 1, n, n):
            raise ValueError(f"planes of shape {tuple(planes.shape)}: expected "
                             f"[batch, {2 * self.history + 1}, {n}, {n}]")
        x = self.trunk(self.stem(planes))
        logits = self.policy_fc(self.policy_conv(x).flatten(1))
        value = torch.tanh(self.value_fc(self.value_conv(x).flatten(1))).squeeze(1)
        return logits, value

    def describe(self) -> str:
        params = sum(p.numel() for p in self.parameters())
        n = self.board_size
        return (f"Minigo dual net ({n}x{n}, {self.trunk_layers} residual blocks x "
                f"{self.conv_width} filters, value fc {self.fc_width}, {params:,} parameters)")


def loss(policy_logits: torch.Tensor, value: torch.Tensor, target_pi: torch.Tensor,
         target_z: torch.Tensor, value_cost_weight: float = VALUE_COST_WEIGHT
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, policy cross-entropy, value MSE), batch means, as dual_net.py's model_fn:
    softmax cross-entropy against the search distribution pi, squared error of the value against
    the outcome z, total = policy + value_cost_weight * value.

    The reference's third term, l2_strength * sum(w**2) / 2 (tf.nn.l2_loss) over every variable
    whose name lacks "bias", is left to the optimiser: its gradient is l2_strength * w, exactly
    what SGD's coupled ``weight_decay=l2_strength`` adds (see :func:`make_optimizer`)."""
    policy_ce = -(target_pi * F.log_softmax(policy_logits, dim=1)).sum(dim=1).mean()
    value_mse = (value - target_z).pow(2).mean()
    return policy_ce + value_cost_weight * value_mse, policy_ce, value_mse


def make_optimizer(net: nn.Module, learning_rate: float = LR_RATES[0],
                   momentum: float = SGD_MOMENTUM,
                   l2_strength: float = L2_STRENGTH) -> torch.optim.SGD:
    """SGD with momentum (tf.train.MomentumOptimizer, same update: v = m*v + g, w -= lr*v) and
    the reference's l2 as weight decay. v0.5 regularised every trainable variable whose name
    lacks "bias": conv and dense kernels and the batch-norm scale *and offset* (gamma, beta);
    so here every parameter but the conv/dense biases decays."""
    decay, no_decay = [], []
    for name, param in net.named_parameters():
        is_layer_bias = name.endswith(".bias") and not _is_batch_norm(net, name)
        (no_decay if is_layer_bias else decay).append(param)
    return torch.optim.SGD([{"params": decay, "weight_decay": l2_strength},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=learning_rate, momentum=momentum)


def _is_batch_norm(net: nn.Module, param_name: str) -> bool:
    return isinstance(net.get_submodule(param_name.rpartition(".")[0]), nn.BatchNorm2d)


def learning_rate(step: int, boundaries: Sequence[int] = LR_BOUNDARIES_STEPS,
                  rates: Sequence[float] = LR_RATES) -> float:
    """tf.train.piecewise_constant: rates[0] while step <= boundaries[0], rates[1] while
    step <= boundaries[1], ... (a boundary step still uses the earlier rate)."""
    if len(rates) != len(boundaries) + 1:
        raise ValueError(f"{len(rates)} rates for {len(boundaries)} boundaries: need one more")
    return float(rates[bisect.bisect_left(list(boundaries), step)])


def train_step(net: DualNet, optimizer: torch.optim.Optimizer, planes: torch.Tensor,
               target_pi: torch.Tensor, target_z: torch.Tensor,
               value_cost_weight: float = VALUE_COST_WEIGHT) -> tuple[float, float, float]:
    """One SGD step on a batch (train mode, so batch norm uses and updates batch statistics);
    returns (total, policy, value) losses before the step."""
    net.train()
    logits, value = net(planes)
    total, policy_ce, value_mse = loss(logits, value, target_pi, target_z, value_cost_weight)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return float(total.detach()), float(policy_ce.detach()), float(value_mse.detach())


def make_evaluator(net: nn.Module, rng: np.random.Generator | None = None,
                   random_symmetry: bool = True, history: int | None = None,
                   batch_size: int = 256) -> NetEval:
    """The ``net_eval`` MCTS and self-play call: positions -> (move probabilities [k, N*N+1],
    values [k], for the player to move), the net in eval mode without gradients.

    With ``random_symmetry`` each position is seen through one of the 8 board symmetries drawn
    at random and its policy mapped back, as the reference's DualNetwork.run_many does by default
    (use_random_symmetry=True): the search averages out the net's orientation biases. The
    net is put in eval mode (batch norm on its running statistics); train_step puts it back.
    """
    history = getattr(net, "history", go.HISTORY) if history is None else history
    rng = np.random.default_rng() if rng is None and random_symmetry else rng

    def evaluate(positions: Sequence[go.Position]) -> tuple[np.ndarray, np.ndarray]:
        if not positions:
            raise ValueError("no positions to evaluate")
        device = next(net.parameters()).device
        net.eval()
        priors, values = [], []
        for start in range(0, len(positions), batch_size):
            chunk = positions[start:start + batch_size]
            planes = np.stack([go.features(p, history) for p in chunk])
            syms = (rng.integers(0, NUM_SYMMETRIES, size=len(chunk)) if random_symmetry
                    else np.zeros(len(chunk), dtype=np.int64))
            planes = np.stack([apply_symmetry_planes(int(s), x) for s, x in zip(syms, planes)])
            with torch.inference_mode():
                logits, value = net(torch.from_numpy(planes).to(device))
                probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
            priors.extend(apply_symmetry_pi(int(s), p, inverse=True) for s, p in zip(syms, probs))
            values.append(value.float().cpu().numpy())
        return np.stack(priors).astype(np.float32), np.concatenate(values).astype(np.float32)

    return evaluate
