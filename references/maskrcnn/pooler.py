"""RoI pooling over the FPN levels (maskrcnn-benchmark modeling/poolers.py: Pooler, LevelMapper).

Each RoI is pooled from one level, chosen by its size (FPN paper eq. 1): level =
floor(4 + log2(sqrt(area) / 224 + 1e-6)), clamped to 2..5 -- a 224 x 224 box reads P4, one of
112 x 112 P3 -- and RoIAlign'd from that level at its fixed scale 1/4 .. 1/32
(MODEL.ROI_BOX_HEAD.POOLER_SCALES), with POOLER_SAMPLING_RATIO 2 samples per bin side. The
reference's ROIAlign is the legacy, not pixel-aligned one: ops.roi_align(aligned=False).

The area is ops.box_area's (x2 - x1) * (y2 - y1); maskrcnn-benchmark's BoxList.area adds a
pixel to each side, so a box exactly on a level boundary can map one level lower here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from references.maskrcnn import ops

POOLER_SCALES = (1 / 4, 1 / 8, 1 / 16, 1 / 32)    # P2..P5
CANONICAL_SCALE_PX = 224                          # ImageNet pre-training size
CANONICAL_LEVEL = 4
LEVEL_EPS = 1e-6


def map_levels(boxes: Tensor, k_min: int = 2, k_max: int = 5,
               canonical_scale_px: float = CANONICAL_SCALE_PX,
               canonical_level: int = CANONICAL_LEVEL, eps: float = LEVEL_EPS) -> Tensor:
    """The FPN level (k_min..k_max, int64) each box [R, 4] is pooled from (LevelMapper)."""
    scale = torch.sqrt(ops.box_area(boxes))
    levels = torch.floor(canonical_level + torch.log2(scale / canonical_scale_px + eps))
    return levels.clamp(min=k_min, max=k_max).to(torch.int64)


class MultiScaleRoIAlign(nn.Module):
    """Features [P2..P5] and boxes per image -> pooled [R, C, size, size] in the boxes' order."""

    def __init__(self, output_size: int, scales: Sequence[float] = POOLER_SCALES,
                 sampling_ratio: int = 2) -> None:
        super().__init__()
        self.output_size = output_size
        self.scales = tuple(scales)
        self.sampling_ratio = sampling_ratio
        # The level of scale 1/2^k is k: P2 has scale 1/4.
        self.k_min = round(-math.log2(self.scales[0]))
        self.k_max = round(-math.log2(self.scales[-1]))

    def forward(self, features: Sequence[Tensor], boxes: Sequence[Tensor]) -> Tensor:
        features = list(features)[:len(self.scales)]
        index = [torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)]
        rois = torch.cat([torch.cat(index), torch.cat(list(boxes))], dim=1) if boxes else \
            features[0].new_zeros((0, 5))
        channels = features[0].shape[1]
        out = features[0].new_zeros((rois.shape[0], channels, self.output_size,
                                     self.output_size))
        if rois.shape[0] == 0:
            # Still a function of the features, so that an empty batch backpropagates zeros.
            return out + 0 * features[0].sum()
        levels = map_levels(rois[:, 1:], self.k_min, self.k_max) - self.k_min
        for level, (feature, scale) in enumerate(zip(features, self.scales)):
            chosen = torch.where(levels == level)[0]
            if chosen.numel():
                pooled = ops.roi_align(feature, rois[chosen], self.output_size, scale,
                                       self.sampling_ratio, aligned=False)
                out = out.index_copy(0, chosen, pooled)
        return out
