"""Mask R-CNN (He et al. 2017) with a ResNet-FPN backbone, as the MLPerf v0.5 reference
(maskrcnn-benchmark GeneralizedRCNN, configs/e2e_mask_rcnn_R_50_FPN_1x.yaml) in plain PyTorch.

Images come in as coco.py gives them, float [3, H, W] in 0..1 at the size the model sees
(the dataset has already resized them to 800 / 1333). They are scaled to 0..255 and the
ImageNet channel means subtracted, no division by a standard deviation: how our ResNet
reference normalises (references.resnet.data.MEAN_RGB), so that its checkpoints see the
inputs they were trained on. (The reference does the same in BGR order with its C2 weights'
means, INPUT.PIXEL_MEAN, INPUT.PIXEL_STD 1.) A batch is zero-padded at the bottom and right to
a common size divisible by 32 (DATALOADER.SIZE_DIVISIBILITY), so that every FPN level is
exactly half the one below; each image keeps its own size for anchors, clipping and masks.

The parts: backbone.py (ResNet body + FPN), anchors.py and rpn.py (proposals and the RPN
loss), pooler.py, roi_heads.py and mask_head.py (boxes, classes and masks). Sizes come from a
named variant (variants.py); "r50-fpn" is the reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from references.maskrcnn.backbone import BackboneWithFPN, load_backbone_checkpoint
from references.maskrcnn.roi_heads import RoIHeads
from references.maskrcnn.rpn import RegionProposalNetwork
from references.maskrcnn.variants import VARIANTS, Variant, get_variant
from references.resnet.data import MEAN_RGB

SIZE_DIVISIBILITY = 32
PIXEL_RANGE = 255.0            # coco.py's 0..1 -> the 0..255 our ResNet reference is fed

__all__ = ["SIZE_DIVISIBILITY", "VARIANTS", "MaskRCNN", "Variant", "batch_images"]


def batch_images(images: Sequence[Tensor], mean: Tensor,
                 size_divisibility: int = SIZE_DIVISIBILITY
                 ) -> tuple[Tensor, list[tuple[int, int]]]:
    """Normalised images zero-padded into one [N, 3, H', W'] batch, and each one's (H, W)."""
    if not images:
        raise ValueError("Mask R-CNN needs at least one image")
    for image in images:
        if image.dim() != 3 or image.shape[0] != 3 or not image.is_floating_point():
            raise ValueError(f"expected float images [3, H, W] in 0..1, got "
                             f"{image.dtype} {tuple(image.shape)}")
    sizes = [(int(im.shape[1]), int(im.shape[2])) for im in images]
    height = math.ceil(max(h for h, _ in sizes) / size_divisibility) * size_divisibility
    width = math.ceil(max(w for _, w in sizes) / size_divisibility) * size_divisibility
    batch = mean.new_zeros((len(images), 3, height, width))
    for i, (image, (h, w)) in enumerate(zip(images, sizes)):
        batch[i, :, :h, :w] = image.to(mean) * PIXEL_RANGE - mean[:, None, None]
    return batch, sizes


class MaskRCNN(nn.Module):
    """``MaskRCNN(num_classes)`` is the reference; ``variant=`` picks other sizes by name and
    keyword overrides (e.g. ``backbone_arch="resnet26"``) change single ones.

    ``num_classes`` is K, the object classes (labels 1..K, as coco.py gives them; 80 for
    COCO); the class and mask predictors have K + 1 outputs, background's first.
    """

    def __init__(self, num_classes: int, variant: str | Variant = "r50-fpn",
                 **overrides: Any) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        v = get_variant(variant, **overrides)
        self.variant, self.num_classes = v, num_classes
        self.backbone = BackboneWithFPN(v.backbone_arch, v.base_width, v.fpn_channels)
        self.rpn = RegionProposalNetwork(
            v.fpn_channels, pre_nms_top_n_train=v.rpn_pre_nms_top_n_train,
            post_nms_top_n_train=v.rpn_post_nms_top_n_train,
            fpn_post_nms_top_n_train=v.rpn_fpn_post_nms_top_n_train,
            pre_nms_top_n_test=v.rpn_pre_nms_top_n_test,
            post_nms_top_n_test=v.rpn_post_nms_top_n_test,
            fpn_post_nms_top_n_test=v.rpn_fpn_post_nms_top_n_test,
            batch_size_per_image=v.rpn_batch_size_per_image)
        self.roi_heads = RoIHeads(
            v.fpn_channels, num_classes, representation_size=v.representation_size,
            batch_size_per_image=v.box_batch_size_per_image,
            detections_per_img=v.detections_per_img, mask_conv_channels=v.mask_conv_channels)
        self.register_buffer("pixel_mean", torch.tensor(MEAN_RGB, dtype=torch.float32),
                             persistent=False)

    def forward(self, images: Sequence[Tensor],
                targets: Sequence[Mapping[str, Any]] | None = None
                ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Training: {loss_objectness, loss_rpn_box_reg, loss_classifier, loss_box_reg,
        loss_mask}. Eval: per image {boxes [n, 4], labels [n], scores [n], masks [n, 1, H, W]
        probabilities}, in the input image's pixels, best score first."""
        if self.training and targets is None:
            raise ValueError("Mask R-CNN needs targets in training mode")
        if targets is not None and len(targets) != len(images):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        batch, sizes = batch_images(images, self.pixel_mean)
        features = self.backbone(batch)
        train_targets = targets if self.training else None
        proposals, rpn_losses = self.rpn(features, sizes, train_targets)
        detections, head_losses = self.roi_heads(features, proposals, sizes, train_targets)
        return {**rpn_losses, **head_losses} if self.training else detections

    def load_backbone(self, path: str | Path) -> str:
        """Loads a checkpoint our ResNet reference wrote into the body; its sha256."""
        return load_backbone_checkpoint(self.backbone.body, path)

    def describe(self) -> str:
        """One line: the variant, its body, and how many parameters (and trainable ones)."""
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return (f"Mask R-CNN {self.variant.name} ({self.backbone.body.describe()} body, "
                f"FPN {self.variant.fpn_channels}, {self.num_classes} classes): "
                f"{total:,} parameters, {trainable:,} trainable")

