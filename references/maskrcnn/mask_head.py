"""The mask branch (maskrcnn-benchmark modeling/roi_heads/mask_head).

Head (MaskRCNNFPNFeatureExtractor + MaskRCNNC4Predictor): 14 x 14 RoIAlign
(MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION 14, sampling 2), CONV_LAYERS (256, 256, 256, 256) 3x3
convolutions with ReLU, a 2x2 stride-2 transposed convolution with ReLU, and a 1x1 convolution
to one 28 x 28 logit map per class, background's channel included (NUM_CLASSES counts it) and
never trained. Weights kaiming_normal_(fan_out, relu), biases 0.

Loss (MaskRCNNLossComputation): on the positive sampled proposals only, binary cross-entropy
(mean over pixels) between the ground-truth class's logits and the matched object's mask
cropped to the proposal and resized to 28 x 28. The reference crops and rasterises the polygons;
here the binary mask is RoIAligned (pixel-aligned, 2 x 2 samples per output pixel) and
thresholded at 0.5, which gives the same 0/1 target up to pixels on the outline.

Inference (MaskPostProcessor + Masker): sigmoid of the predicted class's map, pasted into the
image at its box (ops.paste_masks_in_image, padding 1). The pasted masks stay probabilities;
a pixel belongs to the object above MASK_THRESHOLD 0.5 (POSTPROCESS_MASKS_THRESHOLD), which is
what coco.evaluate applies.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from references.maskrcnn import ops

MASK_THRESHOLD = 0.5


class MaskHead(nn.Module):
    """Pooled RoI features [R, C, 14, 14] -> mask logits [R, num_outputs, 28, 28] (one map per
    class, background included)."""

    def __init__(self, in_channels: int, num_outputs: int,
                 conv_channels: Sequence[int] = (256, 256, 256, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for width in conv_channels:
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
            c = width
        self.convs = nn.Sequential(*layers)
        self.deconv = nn.ConvTranspose2d(c, c, 2, stride=2)
        self.logits = nn.Conv2d(c, num_outputs, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.logits(F.relu(self.deconv(self.convs(x))))


def mask_targets(gt_masks: Tensor, matched_idxs: Tensor, proposals: Tensor,
                 resolution: int) -> Tensor:
    """0/1 float [P, resolution, resolution]: each proposal's window of its matched mask.

    ``gt_masks`` uint8 [k, H, W] at the image's size; ``matched_idxs`` [P] rows of it.
    Only the masks some proposal matched are converted to float.
    """
    if proposals.shape[0] == 0:
        return proposals.new_zeros((0, resolution, resolution))
    used, rows = torch.unique(matched_idxs, return_inverse=True)
    masks = gt_masks[used].to(proposals.dtype)[:, None]
    rois = torch.cat((rows[:, None].to(proposals.dtype), proposals), dim=1)
    window = ops.roi_align(masks, rois, resolution, 1.0, sampling_ratio=2, aligned=True)
    return (window[:, 0] >= 0.5).to(proposals.dtype)


def mask_loss(mask_logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
    """BCE with logits on each RoI's ground-truth class channel; 0 (still differentiable)
    without positives."""
    if targets.numel() == 0:
        return mask_logits.sum() * 0
    rows = torch.arange(labels.shape[0], device=labels.device)
    return F.binary_cross_entropy_with_logits(mask_logits[rows, labels], targets)


def paste_masks(mask_logits: Tensor, labels: Tensor, boxes: Tensor,
                image_size: tuple[int, int]) -> Tensor:
    """One image's detections: probabilities [n, 1, H, W] of each box's own class, pasted."""
    rows = torch.arange(labels.shape[0], device=labels.device)
    probs = mask_logits[rows, labels].sigmoid()[:, None]
    height, width = image_size
    return ops.paste_masks_in_image(probs, boxes, height, width, padding=1)
