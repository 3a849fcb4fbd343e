"""Mask R-CNN's backbone: our ResNet reference's body with frozen batch norm, and the FPN.

The body is references.resnet.model.ResNet's stem and stages (the same modules, built by that
class, so a checkpoint our ResNet reference writes loads key for key), minus the classifier,
with every BatchNorm2d swapped for a FrozenBatchNorm2d and the stem and first stage frozen
(maskrcnn-benchmark MODEL.BACKBONE.FREEZE_CONV_BODY_AT 2). It returns C2..C5 (strides 4..32).

Differences from the MLPerf v0.5 reference (maskrcnn-benchmark, e2e_mask_rcnn_R_50_FPN_1x):
- the bottleneck is v1.5 (stride on the 3x3), as our ResNet reference and torchvision; the
  reference's MSRA C2 weights want MODEL.RESNETS.STRIDE_IN_1X1 True (stride on the first 1x1).
  The parameter count is the same.
- FrozenBatchNorm2d divides by sqrt(running_var + 1e-5) as torchvision's does: our checkpoints
  come from training with BatchNorm2d(eps=1e-5), so this reproduces their eval-mode output
  (maskrcnn-benchmark's has no eps, its C2 weights having the variance folded in already).

The FPN is maskrcnn-benchmark's (modeling/backbone/fpn.py, MODEL.RESNETS.BACKBONE_OUT_CHANNELS
256): a 1x1 lateral and a 3x3 output convolution per level, both with bias, the top-down path
upsampled by nearest neighbour x2, and P6 = max_pool2d(P5, kernel 1, stride 2)
(LastLevelMaxPool). Convolutions start as conv_with_kaiming_uniform: kaiming_uniform_(a=1),
bias 0.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from references.common.errors import ConfigError
from references.resnet.config import ARCHS
from references.resnet.model import EXPANSION, ResNet

FREEZE_CONV_BODY_AT = 2        # 0 freezes nothing, 1 the stem, 2 the stem and the first stage
BN_EPS = 1e-5                  # torch.nn.BatchNorm2d's default, which our ResNet trains with
_KEYS_SHOWN = 3                # how many missing/unexpected keys an error message names


class FrozenBatchNorm2d(nn.Module):
    """Batch norm as a fixed per-channel affine map, y = x * scale + shift.

    Detection batches are 1-2 images per device, too few for batch statistics, so the
    reference keeps the ImageNet-trained statistics and affine parameters as constants: they
    are buffers (no parameters, nothing for the optimiser or weight decay), loaded from a
    checkpoint under the BatchNorm2d names (num_batches_tracked is accepted and dropped).
    """

    def __init__(self, channels: int, eps: float = BN_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def freeze_batch_norm_(module: nn.Module) -> nn.Module:
    """Replaces every BatchNorm2d below ``module`` by a FrozenBatchNorm2d with its values."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, child.eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            freeze_batch_norm_(child)
    return module


@torch.no_grad()
def calibrate_frozen_batch_norm_(module: nn.Module, batch: Tensor) -> nn.Module:
    """Sets every FrozenBatchNorm2d's running mean and variance from one batch, in one pass.

    For runs without an ImageNet checkpoint (smoke runs, tests) only -- the reference always
    starts from pre-trained weights. A random body with the initial statistics (mean 0,
    variance 1) passes the 0..255-scale input through unnormalised, so the heads start on
    features in the hundreds and the first losses explode; with statistics measured on real
    input, as a trained body's would be, activations start near unit scale. Each layer is set
    from its own input as the pass reaches it, so it sees the layers before it calibrated.
    """
    def measure(layer: FrozenBatchNorm2d, inputs: tuple[Tensor]) -> None:
        x = inputs[0]
        layer.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        layer.running_var.copy_(x.var(dim=(0, 2, 3), unbiased=False))

    hooks = [m.register_forward_pre_hook(measure) for m in module.modules()
             if isinstance(m, FrozenBatchNorm2d)]
    try:
        module(batch)
    finally:
        for hook in hooks:
            hook.remove()
    return module


class ResNetBody(nn.Module):
    """ResNet stem + 4 stages -> [C2, C3, C4, C5] (strides 4, 8, 16, 32 pixels).

    ``stem`` and ``stages`` are the modules references.resnet.model.ResNet builds (its
    initialisation included), so their state-dict keys are that class's.
    """

    def __init__(self, arch: str = "resnet50", base_width: int = 64,
                 freeze_at: int = FREEZE_CONV_BODY_AT) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ConfigError(f"backbone arch {arch!r}: expected one of {', '.join(ARCHS)}")
        resnet = ResNet(arch, num_classes=1, base_width=base_width)
        self.arch, self.base_width = arch, base_width
        self.stem = freeze_batch_norm_(resnet.stem)
        self.stages = freeze_batch_norm_(resnet.stages)
        self.out_channels = [base_width * 2 ** i * EXPANSION for i in range(4)]
        self.freeze_at = freeze_at
        for module in [self.stem, *self.stages][:freeze_at]:
            for p in module.parameters():
                p.requires_grad_(False)

    def describe(self) -> str:
        """'ResNet-50 v1.5', as ResNet.describe names it (it reads only arch and base_width)."""
        return ResNet.describe(self)  # type: ignore[arg-type]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def load_backbone_checkpoint(body: ResNetBody, path: str | Path) -> str:
    """Loads a ResNet state dict our ResNet reference wrote into ``body``; its sha256 (hex).

    The classifier (``fc.*``) is skipped. Anything else that does not fit -- a file that is
    missing or not a torch state dict, keys missing or left over, a tensor of another shape
    (another arch or width) -- is one ConfigError line naming the file, before ``body`` is
    changed. The hash is of the bytes that were loaded, for the run's provenance.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"backbone checkpoint {path}: unreadable: {exc.strerror or exc}") \
            from None
    digest = hashlib.sha256(data).hexdigest()
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        reason = " ".join(str(exc).split())[:160]
        raise ConfigError(f"backbone checkpoint {path}: not a torch state dict "
                          f"({exc.__class__.__name__}: {reason})") from None
    if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise ConfigError(f"backbone checkpoint {path}: not a state dict of named tensors")
    state = {k: v for k, v in state.items()
             if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    expected = body.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
                   for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = [f"{what} {len(keys)} keys ({_some(keys)})" for what, keys in
                (("missing", missing), ("unexpected", unexpected), ("wrong shape of", wrong_shape))
                if keys]
    if problems:
        raise ConfigError(f"backbone checkpoint {path} does not fit a {body.arch} body with "
                          f"base width {body.base_width}: {'; '.join(problems)}")
    body.load_state_dict(state, strict=True)
    return digest


def _some(keys: list[str]) -> str:
    shown = ", ".join(keys[:_KEYS_SHOWN])
    return shown + (", ..." if len(keys) > _KEYS_SHOWN else "")


def kaiming_uniform_conv(c_in: int, c_out: int, kernel: int) -> nn.Conv2d:
    """maskrcnn-benchmark's conv_with_kaiming_uniform: bias on, kaiming_uniform_(a=1), bias 0."""
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
    nn.init.kaiming_uniform_(conv.weight, a=1)
    nn.init.zeros_(conv.bias)
    return conv


class FPN(nn.Module):
    """[C2..C5] -> [P2, P3, P4, P5, P6], each ``out_channels`` (256 in the reference) wide."""

    def __init__(self, in_channels: list[int], out_channels: int = 256) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.lateral = nn.ModuleList(kaiming_uniform_conv(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(kaiming_uniform_conv(out_channels, out_channels, 3)
                                    for _ in in_channels)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        inner = self.lateral[-1](features[-1])
        results = [self.output[-1](inner)]
        for i in range(len(features) - 2, -1, -1):
            lateral = self.lateral[i](features[i])
            # Inputs padded to SIZE_DIVISIBILITY 32 make this exactly the reference's
            # scale_factor=2; the target size keeps odd sizes working too.
            inner = lateral + F.interpolate(inner, size=lateral.shape[-2:], mode="nearest")
            results.insert(0, self.output[i](inner))
        results.append(F.max_pool2d(results[-1], kernel_size=1, stride=2))   # LastLevelMaxPool
        return results


class BackboneWithFPN(nn.Module):
    """Image batch [N, 3, H, W] -> [P2..P6] at strides 4, 8, 16, 32, 64 pixels."""

    def __init__(self, arch: str = "resnet50", base_width: int = 64, fpn_channels: int = 256,
                 freeze_at: int = FREEZE_CONV_BODY_AT) -> None:
        super().__init__()
        self.body = ResNetBody(arch, base_width, freeze_at)
        self.fpn = FPN(self.body.out_channels, fpn_channels)
        self.out_channels = fpn_channels

    def forward(self, images: Tensor) -> list[Tensor]:
        return self.fpn(self.body(images))
