"""Detection ops for Mask R-CNN in plain PyTorch, with the semantics of torchvision.ops.

Why not torchvision: the project pins a CPU torch (2.13.0) and the x86-64 torchvision wheel on the
index is linked against the CUDA torch and fails to load; a device whose torch has no matching
torchvision build needs the same ops anyway. Everything here is tensor arithmetic that runs
wherever torch runs, and roi_align is differentiable w.r.t. its input through autograd.

The semantics are torchvision 0.29's: its CPU kernels for ``nms`` and ``roi_align``, and
torchvision.models.detection for BoxCoder, Matcher, the sampler and mask pasting. The tests check
them against golden values torchvision itself produced (tests/references/maskrcnn_golden.py).
Boxes are (x1, y1, x2, y2) in pixels throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# roi_align gathers ROIs x C x bins x samples x 4 corners values at once; above this many elements
# it works through the ROIs in chunks, so one big adaptive-sampling ROI cannot take all memory.
_ROI_ALIGN_MAX_ELEMENTS = 1 << 24
# nms compares this many ordered boxes at a time with the rest (a block x N boolean matrix);
# small blocks keep the temporaries in cache.
_NMS_BLOCK_ROWS = 64


def box_area(boxes: Tensor) -> Tensor:
    """Area of each box, (x2 - x1) * (y2 - y1): [N, 4] -> [N]."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over union of every pair: [N, 4] x [M, 4] -> [N, M] (0/0 gives NaN)."""
    area1, area2 = box_area(boxes1), box_area(boxes2)
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1[:, None] + area2[None, :] - inter)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices (int64) of the boxes greedy non-maximum suppression keeps, by score descending.

    Boxes are visited in stable descending score order (equal scores keep their input order, as
    torchvision's kernel sorts them); a box is dropped when its IoU with a kept, higher-ranked box
    is > iou_threshold, the IoU computed as torchvision computes it and compared as its C++ does
    (float IoU against the double threshold).
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    ordered = boxes[order]
    areas = box_area(ordered)
    threshold = _strict_threshold(iou_threshold, ordered.dtype)
    count = ordered.shape[0]
    suppressed = np.zeros(count, dtype=bool)
    keep: list[int] = []
    for start in range(0, count, _NMS_BLOCK_ROWS):
        stop = min(start + _NMS_BLOCK_ROWS, count)
        # Only boxes from ``start`` on are still undecided: compare the block with those.
        over = _overlaps(ordered[start:stop], ordered[start:], areas[start:stop], areas[start:],
                         threshold).cpu().numpy()
        for row in range(stop - start):
            if not suppressed[start + row]:
                keep.append(start + row)
                suppressed[start:] |= over[row]
    return order[torch.as_tensor(keep, dtype=torch.int64, device=boxes.device)]


def _strict_threshold(iou_threshold: float, dtype: torch.dtype) -> float:
    """A threshold t' in the IoU's dtype with (iou > t') == (iou > iou_threshold in double).

    A float32 IoU compared with a Python float is compared in float32, where 0.3 rounds up to
    0.30000001: an IoU of exactly that would then survive, while torchvision drops it.
    """
    if dtype == torch.float64:
        return iou_threshold
    rounded = np.float32(iou_threshold)
    if float(rounded) > iou_threshold:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return float(rounded)


def _overlaps(rows: Tensor, cols: Tensor, row_areas: Tensor, col_areas: Tensor,
              threshold: float) -> Tensor:
    """IoU(rows x cols) > threshold as a bool [R, C]: box_iou's arithmetic, fewer temporaries."""
    x1 = torch.max(rows[:, None, 0], cols[None, :, 0])
    y1 = torch.max(rows[:, None, 1], cols[None, :, 1])
    x2 = torch.min(rows[:, None, 2], cols[None, :, 2])
    y2 = torch.min(rows[:, None, 3], cols[None, :, 3])
    inter = x2.sub_(x1).clamp_(min=0).mul_(y2.sub_(y1).clamp_(min=0))
    union = (row_areas[:, None] + col_areas[None, :]).sub_(inter)
    return inter.div_(union) > threshold


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """nms within each category ``idxs``; indices kept, by score descending (stable).

    As torchvision on the CPU: up to 1000 boxes, its coordinate trick (each category's boxes
    shifted by idx * (max coordinate + 1), which only changes IoUs by float rounding); above, the
    boxes as they are. Either way each category is suppressed on its own, so the work is the sum
    of the squared category sizes, not the square of the total.
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    if boxes.numel() <= 4000:
        max_coordinate = boxes.max()
        offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
        boxes = boxes + offsets[:, None]
    kept = torch.zeros(scores.shape[0], dtype=torch.bool, device=boxes.device)
    for category in torch.unique(idxs):
        members = torch.where(idxs == category)[0]
        kept[members[nms(boxes[members], scores[members], iou_threshold)]] = True
    order = torch.sort(scores, descending=True, stable=True).indices
    return order[kept[order]]


def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Boxes [..., 4] clamped into an image of ``size`` = (height, width) pixels."""
    height, width = size
    xs = boxes[..., 0::2].clamp(min=0, max=width)
    ys = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((xs, ys), dim=boxes.dim()).reshape(boxes.shape)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of the boxes whose width and height are both >= min_size."""
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return torch.where((widths >= min_size) & (heights >= min_size))[0]


# ------------------------------------------------------------------------------------ roi_align

def roi_align(input: Tensor, boxes: Tensor | Sequence[Tensor], output_size: int | tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = True) -> Tensor:
    """RoIAlign: [N, C, H, W] features pooled over each ROI into [K, C, out_h, out_w].

    ``boxes`` is a Tensor[K, 5] of (batch index, x1, y1, x2, y2) or a list with one Tensor[k, 4]
    per image, in input-image pixels; ``spatial_scale`` maps them onto the feature map. Each
    output bin averages a grid of bilinear samples: ``sampling_ratio`` per side, or when <= 0
    ceil(roi size / output size) per side, per ROI. A sample more than one pixel outside the map
    (y < -1 or y > H, same for x) contributes 0; one in the border strip reads the edge pixel.
    ``aligned`` shifts the box by -0.5 pixel so that samples fall on pixel centres (torchvision's
    own default is False, the legacy behaviour, which also widens ROIs to >= 1 pixel).

    Gradients flow to ``input`` (none to the boxes, as in torchvision).
    """
    rois = _as_rois(boxes, input)
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    channels, height, width = input.shape[1:]
    num_rois = rois.shape[0]
    if num_rois == 0:
        return input.new_zeros((0, channels, out_h, out_w))

    offset = 0.5 if aligned else 0.0
    start_x = rois[:, 1] * spatial_scale - offset
    start_y = rois[:, 2] * spatial_scale - offset
    roi_w = (rois[:, 3] * spatial_scale - offset) - start_x
    roi_h = (rois[:, 4] * spatial_scale - offset) - start_y
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_w, bin_h = roi_w / out_w, roi_h / out_h
    if sampling_ratio > 0:
        grid_h = torch.full((num_rois,), sampling_ratio, dtype=torch.int64, device=input.device)
        grid_w = grid_h
    else:
        grid_h, grid_w = torch.ceil(roi_h / out_h).long(), torch.ceil(roi_w / out_w).long()
    samples_per_bin = (grid_h * grid_w).clamp(min=1).to(input.dtype)
    grid_h, grid_w = grid_h.clamp(min=0), grid_w.clamp(min=0)   # an empty ROI pools to 0

    features = input.permute(0, 2, 3, 1).reshape(-1, channels)  # one row per (image, y, x)
    batch = rois[:, 0].long()
    parts: list[Tensor] = []
    members: list[Tensor] = []
    # The sampling grid is per ROI; ROIs sharing one are gathered together (a single group
    # unless sampling is adaptive).
    for grid in torch.unique(torch.stack((grid_h, grid_w), 1), dim=0).tolist():
        rows, cols = grid
        group = torch.nonzero((grid_h == rows) & (grid_w == cols)).flatten()
        per_roi = channels * out_h * out_w * max(rows * cols, 1) * 4
        for chunk in group.split(max(1, _ROI_ALIGN_MAX_ELEMENTS // per_roi)):
            members.append(chunk)
            if rows == 0 or cols == 0:
                parts.append(input.new_zeros((chunk.numel(), channels, out_h, out_w)))
                continue
            y_idx, y_wt = _bilinear_taps(_sample_points(start_y[chunk], bin_h[chunk], out_h, rows),
                                         height)
            x_idx, x_wt = _bilinear_taps(_sample_points(start_x[chunk], bin_w[chunk], out_w, cols),
                                         width)
            # flat[k, ph, iy, a, pw, ix, b]: row of ``features`` for corner (a, b) of the sample.
            row_base = (batch[chunk, None, None, None] * height + y_idx) * width
            flat = row_base[:, :, :, :, None, None, None] + x_idx[:, None, None, None]
            values = features.index_select(0, flat.reshape(-1)).reshape(*flat.shape, channels)
            values = torch.einsum("kpabqcdz,kqcd->kpabqz", values, x_wt)
            pooled = torch.einsum("kpabqz,kpab->kzpq", values, y_wt)
            parts.append(pooled / samples_per_bin[chunk, None, None, None])
    order = torch.cat(members)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(num_rois, device=order.device)
    return torch.cat(parts)[inverse]


def _as_rois(boxes: Tensor | Sequence[Tensor], input: Tensor) -> Tensor:
    """Tensor[K, 5] (batch index, x1, y1, x2, y2) in the input's dtype, detached."""
    if not isinstance(boxes, Tensor):
        boxes = list(boxes)
        if not boxes:
            return input.new_zeros((0, 5))
        index = [torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)]
        boxes = torch.cat([torch.cat(index), torch.cat(boxes)], dim=1)
    if boxes.dim() != 2 or boxes.shape[1] != 5:
        raise ValueError(f"roi_align boxes must be Tensor[K, 5] or a list of Tensor[k, 4], "
                         f"got shape {tuple(boxes.shape)}")
    return boxes.detach().to(device=input.device, dtype=input.dtype)


def _sample_points(start: Tensor, bin_size: Tensor, bins: int, grid: int) -> Tensor:
    """Sample coordinates [K, bins, grid] along one axis, in the kernel's order of operations."""
    bin_index = torch.arange(bins, dtype=start.dtype, device=start.device)
    sample = torch.arange(grid, dtype=start.dtype, device=start.device) + 0.5
    return ((start[:, None, None] + bin_index[None, :, None] * bin_size[:, None, None])
            + (sample[None, None, :] * bin_size[:, None, None]) / grid)


def _bilinear_taps(coord: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """The two pixels (low, high) and weights that interpolate ``coord`` on an axis of ``size``.

    torchvision's rules: outside [-1, size] the weights are 0; below 0 the coordinate reads
    pixel 0; at or past size - 1 it reads the last pixel.
    """
    inside = ((coord >= -1.0) & (coord <= size)).to(coord.dtype)
    coord = coord.clamp(min=0)
    low = coord.floor().long()
    at_edge = low >= size - 1
    low = low.clamp(max=size - 1)
    high = torch.where(at_edge, low, low + 1)
    coord = torch.where(at_edge, low.to(coord.dtype), coord)
    frac = coord - low.to(coord.dtype)
    weights = torch.stack((1.0 - frac, frac), dim=-1) * inside[..., None]
    return torch.stack((low, high), dim=-1), weights


# ------------------------------------------------------------------------- training-time helpers

class BoxCoder:
    """Boxes <-> regression targets (dx, dy, dw, dh), as torchvision.models.detection._utils.

    The weights scale the targets to comparable magnitudes: (10, 10, 5, 5) for the box head,
    (1, 1, 1, 1) for the RPN. ``bbox_xform_clip`` caps dw/dh before exp() so that a wild
    prediction cannot overflow (a box at most 1000/16 times its reference).
    """

    def __init__(self, weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0),
                 bbox_xform_clip: float = math.log(1000.0 / 16)) -> None:
        self.weights = weights
        self.bbox_xform_clip = bbox_xform_clip

    def encode(self, reference_boxes: Sequence[Tensor], proposals: Sequence[Tensor]
               ) -> tuple[Tensor, ...]:
        """Per image: the targets that move each proposal onto its reference (matched) box."""
        per_image = [len(b) for b in reference_boxes]
        targets = self.encode_single(torch.cat(list(reference_boxes)), torch.cat(list(proposals)))
        return targets.split(per_image, 0)

    def encode_single(self, reference_boxes: Tensor, proposals: Tensor) -> Tensor:
        """[N, 4] reference boxes and [N, 4] proposals -> [N, 4] targets."""
        wx, wy, ww, wh = torch.as_tensor(self.weights, dtype=reference_boxes.dtype,
                                         device=reference_boxes.device)
        ex_w = proposals[:, 2:3] - proposals[:, 0:1]
        ex_h = proposals[:, 3:4] - proposals[:, 1:2]
        ex_x = proposals[:, 0:1] + 0.5 * ex_w
        ex_y = proposals[:, 1:2] + 0.5 * ex_h
        gt_w = reference_boxes[:, 2:3] - reference_boxes[:, 0:1]
        gt_h = reference_boxes[:, 3:4] - reference_boxes[:, 1:2]
        gt_x = reference_boxes[:, 0:1] + 0.5 * gt_w
        gt_y = reference_boxes[:, 1:2] + 0.5 * gt_h
        return torch.cat((wx * (gt_x - ex_x) / ex_w, wy * (gt_y - ex_y) / ex_h,
                          ww * torch.log(gt_w / ex_w), wh * torch.log(gt_h / ex_h)), dim=1)

    def decode(self, rel_codes: Tensor, boxes: Sequence[Tensor]) -> Tensor:
        """Codes [sum k, 4 * classes] applied to the per-image boxes -> [sum k, classes, 4]."""
        concat = torch.cat(list(boxes), dim=0)
        total = concat.shape[0]
        if total > 0:
            rel_codes = rel_codes.reshape(total, -1)
        pred = self.decode_single(rel_codes, concat)
        return pred.reshape(total, -1, 4) if total > 0 else pred

    def decode_single(self, rel_codes: Tensor, boxes: Tensor) -> Tensor:
        """Codes [N, 4 * classes] applied to boxes [N, 4] -> [N, 4 * classes]."""
        boxes = boxes.to(rel_codes.dtype)
        widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        ctr_x, ctr_y = boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx, dy = rel_codes[:, 0::4] / wx, rel_codes[:, 1::4] / wy
        dw = torch.clamp(rel_codes[:, 2::4] / ww, max=self.bbox_xform_clip)
        dh = torch.clamp(rel_codes[:, 3::4] / wh, max=self.bbox_xform_clip)
        pred_x = dx * widths[:, None] + ctr_x[:, None]
        pred_y = dy * heights[:, None] + ctr_y[:, None]
        half_w = 0.5 * (torch.exp(dw) * widths[:, None])
        half_h = 0.5 * (torch.exp(dh) * heights[:, None])
        return torch.stack((pred_x - half_w, pred_y - half_h, pred_x + half_w, pred_y + half_h),
                           dim=2).flatten(1)


class Matcher:
    """Assigns each prediction (column) the ground truth (row) it overlaps most.

    From an IoU matrix [M gt, N predictions] it returns [N] gt indices, or BELOW_LOW_THRESHOLD
    (-1, a negative) when the best IoU is < low_threshold, or BETWEEN_THRESHOLDS (-2, ignored)
    when it is in [low, high). ``allow_low_quality_matches`` gives every gt its best-overlapping
    predictions back (ties included) even below high_threshold, so no gt goes unmatched.
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold: float, low_threshold: float,
                 allow_low_quality_matches: bool = False) -> None:
        if low_threshold > high_threshold:
            raise ValueError(f"low_threshold {low_threshold} > high_threshold {high_threshold}")
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: Tensor) -> Tensor:
        if match_quality_matrix.numel() == 0:
            what = "ground-truth" if match_quality_matrix.shape[0] == 0 else "proposal"
            raise ValueError(f"No {what} boxes available for one of the images during training")
        matched_vals, matches = match_quality_matrix.max(dim=0)
        all_matches = matches.clone() if self.allow_low_quality_matches else None
        below = matched_vals < self.low_threshold
        between = (matched_vals >= self.low_threshold) & (matched_vals < self.high_threshold)
        matches[below] = self.BELOW_LOW_THRESHOLD
        matches[between] = self.BETWEEN_THRESHOLDS
        if all_matches is not None:
            best_per_gt = match_quality_matrix.max(dim=1).values
            preds = torch.where(match_quality_matrix == best_per_gt[:, None])[1]
            matches[preds] = all_matches[preds]
        return matches


class BalancedPositiveNegativeSampler:
    """Picks at most ``batch_size_per_image`` examples per image, ``positive_fraction`` positive.

    Labels are >= 1 positive, 0 negative, -1 ignored. Too few positives are made up with
    negatives. Draws come from ``generator`` (torch's global RNG when None), so a seeded run
    samples the same examples.
    """

    def __init__(self, batch_size_per_image: int, positive_fraction: float,
                 generator: torch.Generator | None = None) -> None:
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.generator = generator

    def __call__(self, matched_idxs: Sequence[Tensor], generator: torch.Generator | None = None
                 ) -> tuple[list[Tensor], list[Tensor]]:
        """Per image, uint8 masks of the positives and of the negatives chosen."""
        generator = generator if generator is not None else self.generator
        pos_masks, neg_masks = [], []
        for labels in matched_idxs:
            positive = torch.where(labels >= 1)[0]
            negative = torch.where(labels == 0)[0]
            num_pos = min(positive.numel(),
                          int(self.batch_size_per_image * self.positive_fraction))
            num_neg = min(negative.numel(), self.batch_size_per_image - num_pos)
            pos_pick = positive[_randperm(positive.numel(), generator, labels.device)[:num_pos]]
            neg_pick = negative[_randperm(negative.numel(), generator, labels.device)[:num_neg]]
            pos_mask = torch.zeros_like(labels, dtype=torch.uint8)
            neg_mask = torch.zeros_like(labels, dtype=torch.uint8)
            pos_mask[pos_pick] = 1
            neg_mask[neg_pick] = 1
            pos_masks.append(pos_mask)
            neg_masks.append(neg_mask)
        return pos_masks, neg_masks


def _randperm(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    if generator is None:
        return torch.randperm(n, device=device)
    # A generator draws on its own device; the permutation is then moved where the labels are.
    return torch.randperm(n, generator=generator, device=generator.device).to(device)


# ------------------------------------------------------------------------------- mask pasting

def paste_masks_in_image(masks: Tensor, boxes: Tensor, img_h: int, img_w: int,
                         padding: int = 1) -> Tensor:
    """Mask-head outputs [K, M, M] (or [K, 1, M, M]) resized into their boxes in an image.

    As torchvision's roi_heads: each mask is padded by ``padding`` zeros and its box grown to
    match, the box is truncated to whole pixels, the mask is resized bilinearly
    (align_corners=False) to the box's (x2 - x1 + 1) x (y2 - y1 + 1) pixels, and what falls
    inside the image is written into a zero canvas. Returns [K, img_h, img_w] (or
    [K, 1, img_h, img_w] for 4-d input), probabilities still: threshold them for a binary mask.
    Done for all masks at once with gathers instead of one interpolate call per mask.
    """
    four_d = masks.dim() == 4
    if four_d:
        masks = masks[:, 0]
    if not masks.is_floating_point():
        masks = masks.float()
    count, size = masks.shape[0], masks.shape[-1]
    if count == 0:
        out = masks.new_zeros((0, img_h, img_w))
        return out[:, None] if four_d else out
    scale = float(size + 2 * padding) / size
    padded = F.pad(masks, (padding,) * 4)
    boxes = _expand_boxes(boxes if boxes.is_floating_point() else boxes.float(), scale)
    boxes = boxes.to(torch.int64)   # truncation toward zero, as torchvision
    x0, y0, x1, y1 = boxes.unbind(1)
    x_idx, x_wt = _resize_taps(x0, x1, padded.shape[-1], img_w, masks.dtype)   # [K, W, 2]
    y_idx, y_wt = _resize_taps(y0, y1, padded.shape[-2], img_h, masks.dtype)   # [K, H, 2]
    # Along x first, then y, as torch's bilinear kernel: [K, Mp, W], then [K, H, W].
    cols = torch.gather(padded, 2, x_idx.reshape(count, 1, -1).expand(-1, padded.shape[1], -1))
    cols = cols.reshape(count, padded.shape[1], img_w, 2)
    cols = cols[..., 0] * x_wt[:, None, :, 0] + cols[..., 1] * x_wt[:, None, :, 1]
    rows = torch.gather(cols, 1, y_idx.reshape(count, -1, 1).expand(-1, -1, img_w))
    rows = rows.reshape(count, img_h, 2, img_w)
    out = y_wt[:, :, 0, None] * rows[:, :, 0] + y_wt[:, :, 1, None] * rows[:, :, 1]
    return out[:, None] if four_d else out


def _expand_boxes(boxes: Tensor, scale: float) -> Tensor:
    """Boxes grown about their centres by ``scale`` (torchvision's expand_boxes, same rounding)."""
    w_half = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    h_half = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    x_c = (boxes[:, 2] + boxes[:, 0]) * 0.5
    y_c = (boxes[:, 3] + boxes[:, 1]) * 0.5
    return torch.stack((x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half), dim=1)


def _resize_taps(lo: Tensor, hi: Tensor, src_size: int, image_size: int, dtype: torch.dtype
                 ) -> tuple[Tensor, Tensor]:
    """For each image pixel along one axis, the two source pixels and weights of the mask.

    The mask spans image pixels lo..hi (hi - lo + 1 of them, at least 1); it is resampled like
    F.interpolate(mode="bilinear", align_corners=False); pixels outside the box or the image
    get weight 0.
    """
    opmath = torch.float64 if dtype == torch.float64 else torch.float32
    length = (hi - lo + 1).clamp(min=1)
    pixel = torch.arange(image_size, device=lo.device)
    local = pixel[None, :] - lo[:, None]                                        # [K, S]
    inside = (pixel[None, :] >= lo.clamp(min=0)[:, None]) & (pixel[None, :] < (hi + 1)[:, None])
    ratio = torch.tensor(float(src_size), dtype=opmath) / length.to(opmath)
    src = (ratio[:, None] * (local.to(opmath) + 0.5) - 0.5).clamp(min=0)
    low = src.floor().long().clamp(max=src_size - 1)
    frac = (src - low.to(opmath)).clamp(0, 1)
    high = torch.where(low < src_size - 1, low + 1, low)
    weights = torch.stack((1 - frac, frac), -1) * inside[..., None].to(opmath)
    index = torch.stack((low, high), -1).clamp(min=0)   # outside the box: any valid pixel
    return index, weights.to(dtype)
