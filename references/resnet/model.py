"""ResNet v1.5 (He et al. 2016, "Deep Residual Learning"; v1.5 as in the MLPerf reference and
NVIDIA's: the stride-2 of a downsampling bottleneck sits on its 3x3 convolution, not its first
1x1). Read top-down: the bottleneck block, a stage of blocks, then the network.

ResNet-50 has 3, 4, 6, 3 bottlenecks per stage. The smaller members of the same family used for
reduced and smoke runs on small devices change only the block counts (ResNet-26: 2, 2, 2, 2;
ResNet-14: 1, 1, 1, 1) and optionally the width; ``describe()`` names them honestly.

Initialisation follows the v0.5 reference (TensorFlow official/resnet resnet_model.py), not
torchvision: every convolution kernel ``tf.variance_scaling_initializer(distribution=
"truncated_normal")`` -- scale 1, fan-in, a normal cut at two standard deviations whose
standard deviation after the cut is sqrt(1 / fan_in) -- and the classifier
``tf.layers.dense``'s defaults, Glorot-uniform kernel and zero bias. Batch norm starts at
gamma 1, beta 0 in both. (Later reference versions draw the classifier from N(0, 0.01); v0.5
did not. torchvision uses He-normal with fan-out and its own Linear default.)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

# The standard deviation of a unit normal cut to [-2, 2] (TF's variance_scaling divides by it
# so that the cut distribution keeps the intended variance).
TRUNCATED_STD = 0.87962566103423978


def init_conv_(weight: torch.Tensor) -> torch.Tensor:
    """TF's variance_scaling(scale=1, mode="fan_in", distribution="truncated_normal")."""
    fan_in = weight.shape[1] * math.prod(weight.shape[2:])
    std = math.sqrt(1.0 / fan_in) / TRUNCATED_STD
    return nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)

from references.resnet.config import ARCHS, describe

EXPANSION = 4                              # a bottleneck's output is 4x its inner width


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Convolution (no bias: batch norm follows) + batch norm."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out))


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 (stride here: v1.5) -> 1x1 (expand), plus the shortcut, then ReLU."""

    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        c_out = width * EXPANSION
        self.reduce = conv_bn(c_in, width, 1)
        self.conv = conv_bn(width, width, 3, stride)
        self.expand = conv_bn(width, c_out, 1)
        self.shortcut = (conv_bn(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out
                         else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.reduce(x))
        y = torch.relu(self.conv(y))
        return torch.relu(self.expand(y) + self.shortcut(x))


def stage(c_in: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` bottlenecks; the first changes resolution (stride) and width."""
    layers = [Bottleneck(c_in, width, stride)]
    layers += [Bottleneck(width * EXPANSION, width, 1) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """Stem (7x7/2 conv, 3x3/2 max pool) -> 4 stages (strides 1, 2, 2, 2) -> global average
    pool -> linear classifier."""

    def __init__(self, arch: str = "resnet50", num_classes: int = 1000,
                 base_width: int = 64) -> None:
        super().__init__()
        self.arch, self.base_width = arch, base_width
        blocks = ARCHS[arch]
        self.stem = nn.Sequential(conv_bn(3, base_width, 7, 2), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, stride=2, padding=1))
        c, stages = base_width, []
        for i, n in enumerate(blocks):
            width = base_width * 2 ** i
            stages.append(stage(c, width, n, stride=1 if i == 0 else 2))
            c = width * EXPANSION
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(c, num_classes)
        # The v0.5 reference's initialisation (see the module docstring).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init_conv_(m.weight)
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    def describe(self) -> str:
        """'ResNet-50 v1.5', or e.g. 'ResNet-14 v1.5 (base width 8; the reference has 64)'."""
        return describe(self.arch, self.base_width)
