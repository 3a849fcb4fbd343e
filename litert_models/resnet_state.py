"""ResNet v1.5's state for the interpreter, in numpy only: the layout of convolutions and batch
norms, names, shapes, the reference's initialisation. Torch-free and TensorFlow-free: a device
imports it to re-initialise a model per run seed (through ``restore``) and to write checkpoints.

Names are the PyTorch state_dict's (references/resnet/model.py) with "." replaced by "__"
(``stages.0.0.reduce.0.weight`` -> ``stages__0__0__reduce__0__weight``), in state_dict order;
layouts are PyTorch's too (Conv2d weight [out, in, kh, kw], Linear weight [out, in]). Batch
norm's running statistics are state (``...__running_mean``, ``...__running_var``);
``num_batches_tracked`` is not (torch uses it only when momentum is None; ours is 0.1). The
optimiser's state adds, per parameter, ``<name>__momentum`` (torch SGD's momentum_buffer, zero
before the first step: torch's first step sets it to the gradient, which is 0.9 x 0 + g).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from litert_models.ncf_state import DEFAULT_INIT_SEED, state_name
from references.resnet.config import ARCHS

__all__ = ["DEFAULT_INIT_SEED", "MOMENTUM", "BN_MOMENTUM", "BN_EPS", "Conv", "Block",
           "layout", "param_shapes", "buffer_shapes", "state_names", "initial_params",
           "initial_state", "decayed"]

MOMENTUM = "__momentum"
#: torch.nn.BatchNorm2d's defaults, which the PyTorch reference keeps.
BN_MOMENTUM, BN_EPS = 0.1, 1e-5
EXPANSION = 4
# TF's truncated normal divides by the standard deviation of a unit normal cut at +-2.
TRUNCATED_STD = 0.87962566103423978


@dataclass(frozen=True)
class Conv:
    """A convolution without bias followed by batch norm (references/resnet/model.py conv_bn):
    ``prefix`` + ``0.weight`` is the kernel, ``prefix`` + ``1.*`` the batch norm."""

    prefix: str
    c_in: int
    c_out: int
    kernel: int
    stride: int = 1


@dataclass(frozen=True)
class Block:
    """A bottleneck: reduce (1x1), conv (3x3, the stride), expand (1x1), shortcut or None."""

    reduce: Conv
    conv: Conv
    expand: Conv
    shortcut: Conv | None


def layout(arch: str, base_width: int) -> tuple[Conv, list[Block], int]:
    """(stem convolution, bottlenecks in order, channels into the classifier)."""
    stem = Conv("stem.0.", 3, base_width, 7, 2)
    blocks, c = [], base_width
    for i, n in enumerate(ARCHS[arch]):
        width = base_width * 2 ** i
        for j in range(n):
            stride = (1 if i == 0 else 2) if j == 0 else 1
            p, c_out = f"stages.{i}.{j}.", width * EXPANSION
            shortcut = (Conv(p + "shortcut.", c, c_out, 1, stride)
                        if stride != 1 or c != c_out else None)
            blocks.append(Block(Conv(p + "reduce.", c, width, 1), Conv(p + "conv.", width, width,
                                3, stride), Conv(p + "expand.", width, c_out, 1), shortcut))
            c = c_out
    return stem, blocks, c


def _convs(arch: str, base_width: int) -> list[Conv]:
    stem, blocks, _ = layout(arch, base_width)
    out = [stem]
    for b in blocks:
        out += [b.reduce, b.conv, b.expand] + ([b.shortcut] if b.shortcut else [])
    return out


def _torch_shapes(arch: str, base_width: int, classes: int) -> dict[str, tuple[int, ...]]:
    """The state_dict (less num_batches_tracked) in torch's order, torch's names."""
    shapes: dict[str, tuple[int, ...]] = {}
    for conv in _convs(arch, base_width):
        shapes[conv.prefix + "0.weight"] = (conv.c_out, conv.c_in, conv.kernel, conv.kernel)
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[conv.prefix + "1." + name] = (conv.c_out,)
    c = layout(arch, base_width)[2]
    shapes["fc.weight"], shapes["fc.bias"] = (classes, c), (classes,)
    return shapes


def param_shapes(cfg, classes: int) -> dict[str, tuple[int, ...]]:
    """Trainable parameter name -> shape, in state_dict order."""
    return {state_name(k): v for k, v in _torch_shapes(cfg.arch, cfg.base_width, classes).items()
            if not k.endswith(("running_mean", "running_var"))}


def buffer_shapes(cfg, classes: int) -> dict[str, tuple[int, ...]]:
    """Batch norm's running statistics, in state_dict order."""
    return {state_name(k): v for k, v in _torch_shapes(cfg.arch, cfg.base_width, classes).items()
            if k.endswith(("running_mean", "running_var"))}


def decayed(name: str) -> bool:
    """Whether weight decay applies: every parameter but batch norm's (the reference's
    loss_filter_fn; references/resnet/train.py make_optimizer). Convolution kernels end in
    ``__0__weight``, batch norm's in ``__1__weight``/``__1__bias``; the classifier decays."""
    return not name.endswith(("__1__weight", "__1__bias"))


def state_names(cfg, classes: int) -> list[str]:
    """Every state tensor in save()'s order: parameters and running statistics (state_dict
    order), then the momentum buffers."""
    torch_order = [state_name(k) for k in _torch_shapes(cfg.arch, cfg.base_width, classes)]
    return torch_order + [k + MOMENTUM for k in param_shapes(cfg, classes)]


def _truncated_normal(rng: np.random.Generator, std: float, shape: tuple[int, ...]) -> np.ndarray:
    """N(0, std) cut at +-2 std, by redrawing what falls outside (torch.nn.init.trunc_normal_'s
    distribution)."""
    out = rng.normal(0.0, std, size=shape)
    bad = np.abs(out) > 2 * std
    while bad.any():
        out[bad] = rng.normal(0.0, std, size=int(bad.sum()))
        bad = np.abs(out) > 2 * std
    return out


def initial_params(cfg, classes: int, seed: int = DEFAULT_INIT_SEED) -> dict[str, np.ndarray]:
    """The reference's initialisation (references/resnet/model.py, the v0.5 reference's), drawn
    with numpy, parameters and running statistics in state_dict order: every convolution kernel
    truncated normal with std sqrt(1 / fan_in) / 0.8796 cut at two std; the classifier
    Glorot-uniform with a zero bias; batch norm gamma 1, beta 0, running mean 0, variance 1.
    Same distributions as torch's, not the same numbers (different generators)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for torch_name, shape in _torch_shapes(cfg.arch, cfg.base_width, classes).items():
        name = state_name(torch_name)
        if len(shape) == 4:                                     # a convolution kernel
            fan_in = shape[1] * shape[2] * shape[3]
            value = _truncated_normal(rng, math.sqrt(1.0 / fan_in) / TRUNCATED_STD, shape)
        elif name == "fc__weight":
            limit = math.sqrt(6.0 / (shape[0] + shape[1]))
            value = rng.uniform(-limit, limit, size=shape)
        elif name.endswith(("__1__weight", "__running_var")):
            value = np.ones(shape)
        else:                                                   # BN beta, running mean, fc bias
            value = np.zeros(shape)
        out[name] = value.astype(np.float32)
    return out


def initial_state(cfg, classes: int, seed: int = DEFAULT_INIT_SEED) -> dict[str, np.ndarray]:
    """Everything ``restore`` takes for a fresh run: initial parameters and statistics, zero
    momentum buffers, in save()'s order."""
    state = initial_params(cfg, classes, seed)
    for name, shape in param_shapes(cfg, classes).items():
        state[name + MOMENTUM] = np.zeros(shape, np.float32)
    return {k: state[k] for k in state_names(cfg, classes)}
