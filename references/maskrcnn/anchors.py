"""FPN anchors as maskrcnn-benchmark generates them (modeling/rpn/anchor_generator.py).

One anchor size per level (MODEL.RPN.ANCHOR_SIZES 32, 64, 128, 256, 512 on P2..P6, strides
MODEL.RPN.ANCHOR_STRIDE 4, 8, 16, 32, 64 pixels) and three aspect ratios (ASPECT_RATIOS 0.5, 1,
2, height / width). The cell anchors keep the reference's Detectron arithmetic, rounding
included: start from the stride x stride box (0, 0, stride - 1, stride - 1), give each ratio
round(sqrt(stride^2 / ratio)) x round(that * ratio) pixels about the same centre, then scale
both sides by size / stride; corners are centre -+ (side - 1) / 2. At stride 4, size 32:
ratio 0.5 -> (-22, -10, 25, 13), 1 -> (-14, -14, 17, 17), 2 -> (-10, -22, 13, 25). They are
then laid on every feature-map cell, shifted by (x, y) * stride, ordered (row, column, ratio)
as the RPN head's outputs are flattened. (torchvision centres anchors on 0 and rounds
differently: its anchors are not these.)

An anchor is "visible" when it lies within the image it belongs to, within
MODEL.RPN.STRADDLE_THRESH 0 pixels: x1 >= -t, y1 >= -t, x2 < width + t, y2 < height + t, the
image's own size before padding. The RPN loss ignores invisible anchors; proposals come from
all of them. A negative threshold makes every anchor visible, as in the reference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

ANCHOR_SIZES_PX = (32, 64, 128, 256, 512)
ANCHOR_STRIDES_PX = (4, 8, 16, 32, 64)
ASPECT_RATIOS = (0.5, 1.0, 2.0)
STRADDLE_THRESH_PX = 0


def cell_anchors(stride_px: int, size_px: float, aspect_ratios: Sequence[float]) -> Tensor:
    """[len(aspect_ratios), 4] anchors of one cell at the origin (generate_anchors)."""
    side = float(stride_px)
    centre = 0.5 * (side - 1)
    ratios = np.asarray(aspect_ratios, dtype=np.float64)
    widths = np.round(np.sqrt(side * side / ratios))            # _ratio_enum
    heights = np.round(widths * ratios)
    widths, heights = widths * (size_px / side), heights * (size_px / side)   # _scale_enum
    anchors = np.stack((centre - 0.5 * (widths - 1), centre - 0.5 * (heights - 1),
                        centre + 0.5 * (widths - 1), centre + 0.5 * (heights - 1)), axis=1)
    return torch.from_numpy(anchors).to(torch.float32)


class AnchorGenerator(nn.Module):
    """Anchors for each feature map, and which of them each image sees."""

    def __init__(self, sizes_px: Sequence[float] = ANCHOR_SIZES_PX,
                 strides_px: Sequence[int] = ANCHOR_STRIDES_PX,
                 aspect_ratios: Sequence[float] = ASPECT_RATIOS,
                 straddle_thresh_px: float = STRADDLE_THRESH_PX) -> None:
        super().__init__()
        if len(sizes_px) != len(strides_px):
            raise ValueError(f"{len(sizes_px)} anchor sizes for {len(strides_px)} strides")
        self.strides_px = tuple(strides_px)
        self.straddle_thresh_px = straddle_thresh_px
        self.num_anchors_per_location = len(aspect_ratios)
        for level, (stride, size) in enumerate(zip(strides_px, sizes_px)):
            # Not in the state dict: they follow from the config, and move with .to(device).
            self.register_buffer(f"cell_{level}", cell_anchors(stride, size, aspect_ratios),
                                 persistent=False)

    def grid_anchors(self, feature_sizes: Sequence[tuple[int, int]]) -> list[Tensor]:
        """Per level, [H * W * A, 4] anchors in image pixels, ordered (row, column, anchor)."""
        if len(feature_sizes) != len(self.strides_px):
            raise ValueError(f"{len(feature_sizes)} feature maps for "
                             f"{len(self.strides_px)} anchor levels")
        out = []
        for level, ((height, width), stride) in enumerate(zip(feature_sizes, self.strides_px)):
            cell = getattr(self, f"cell_{level}")
            xs = torch.arange(width, dtype=torch.float32, device=cell.device) * stride
            ys = torch.arange(height, dtype=torch.float32, device=cell.device) * stride
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
            shifts = torch.stack((grid_x, grid_y, grid_x, grid_y), dim=-1).reshape(-1, 1, 4)
            out.append((shifts + cell[None]).reshape(-1, 4))
        return out

    def visible(self, anchors: Tensor, image_size: tuple[int, int]) -> Tensor:
        """bool [A]: which ``anchors`` lie inside an image of (height, width) pixels."""
        if self.straddle_thresh_px < 0:
            return torch.ones(anchors.shape[0], dtype=torch.bool, device=anchors.device)
        height, width = image_size
        t = self.straddle_thresh_px
        return ((anchors[:, 0] >= -t) & (anchors[:, 1] >= -t)
                & (anchors[:, 2] < width + t) & (anchors[:, 3] < height + t))
