"""Mask R-CNN sizes by name: the MLPerf reference's, and smaller ones boards can afford.

"r50-fpn" is the v0.5 reference (maskrcnn-benchmark configs/e2e_mask_rcnn_R_50_FPN_1x.yaml and
defaults.py) and its sizes must stay exactly these. The others change only sizes and counts,
never the algorithm, and their names say what they are:

- "r26-fpn-lite": ResNet-26 body (bottlenecks 2, 2, 2, 2; our ResNet reference's resnet26 --
  it has no basic-block ResNet-18), a 128-channel FPN, half the proposals, 256 sampled RoIs per
  image, a 512-wide box MLP and two 128-channel mask convolutions.
- "r14-fpn-tiny": ResNet-14 at base width 16, a 64-channel FPN, a few hundred proposals, one
  64-channel mask convolution: for smoke runs and tests, not for accuracy.

Torch-free, so that a config can be checked without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from references.common.errors import ConfigError


@dataclass(frozen=True)
class Variant:
    """Everything that sizes the model; the defaults are the reference's (config key)."""

    name: str = "r50-fpn"
    backbone_arch: str = "resnet50"           # MODEL.BACKBONE.CONV_BODY R-50-FPN
    base_width: int = 64                      # RESNETS.RES2_OUT_CHANNELS 256 = 64 * 4
    fpn_channels: int = 256                   # RESNETS.BACKBONE_OUT_CHANNELS
    rpn_pre_nms_top_n_train: int = 2000       # RPN.PRE_NMS_TOP_N_TRAIN (per level, image)
    rpn_post_nms_top_n_train: int = 2000      # RPN.POST_NMS_TOP_N_TRAIN (per level, image)
    rpn_fpn_post_nms_top_n_train: int = 2000  # RPN.FPN_POST_NMS_TOP_N_TRAIN (per batch)
    rpn_pre_nms_top_n_test: int = 1000        # RPN.PRE_NMS_TOP_N_TEST
    rpn_post_nms_top_n_test: int = 1000       # RPN.POST_NMS_TOP_N_TEST
    rpn_fpn_post_nms_top_n_test: int = 1000   # RPN.FPN_POST_NMS_TOP_N_TEST (per image)
    rpn_batch_size_per_image: int = 256       # RPN.BATCH_SIZE_PER_IMAGE
    box_batch_size_per_image: int = 512       # ROI_HEADS.BATCH_SIZE_PER_IMAGE
    representation_size: int = 1024           # ROI_BOX_HEAD.MLP_HEAD_DIM
    mask_conv_channels: tuple[int, ...] = (256, 256, 256, 256)   # ROI_MASK_HEAD.CONV_LAYERS
    detections_per_img: int = 100             # ROI_HEADS.DETECTIONS_PER_IMG

    def with_overrides(self, **overrides: Any) -> Variant:
        """This variant with some sizes changed; its name then says so."""
        if not overrides:
            return self
        known = {f.name for f in fields(self)} - {"name"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown Mask R-CNN size {', '.join(unknown)}: expected one of "
                              f"{', '.join(sorted(known))}")
        changes = ", ".join(f"{k}={v}" for k, v in overrides.items())
        return replace(self, name=f"{self.name} with {changes}", **overrides)


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant(),
    Variant(name="r26-fpn-lite", backbone_arch="resnet26", fpn_channels=128,
            rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=1000,
            rpn_fpn_post_nms_top_n_train=1000, rpn_pre_nms_top_n_test=500,
            rpn_post_nms_top_n_test=500, rpn_fpn_post_nms_top_n_test=500,
            box_batch_size_per_image=256, representation_size=512,
            mask_conv_channels=(128, 128)),
    Variant(name="r14-fpn-tiny", backbone_arch="resnet14", base_width=16, fpn_channels=64,
            rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=300,
            rpn_fpn_post_nms_top_n_train=300, rpn_pre_nms_top_n_test=100,
            rpn_post_nms_top_n_test=100, rpn_fpn_post_nms_top_n_test=100,
            rpn_batch_size_per_image=128, box_batch_size_per_image=128,
            representation_size=256, mask_conv_channels=(64,)),
)}


def get_variant(name: str | Variant, **overrides: Any) -> Variant:
    """A variant by name (ConfigError listing the names otherwise), with overrides applied."""
    if isinstance(name, Variant):
        return name.with_overrides(**overrides)
    if name not in VARIANTS:
        raise ConfigError(f"unknown Mask R-CNN variant {name!r}: expected one of "
                          f"{', '.join(VARIANTS)}")
    return VARIANTS[name].with_overrides(**overrides)
