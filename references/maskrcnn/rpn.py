"""The region proposal network (maskrcnn-benchmark modeling/rpn: rpn.py, inference.py, loss.py).

A shared head scores A = 3 anchors per cell on every FPN level (P2..P6) and regresses their
boxes. Proposals, the no-grad selection the RoI heads consume, follow the reference's
RPNPostProcessor in FPN mode (MODEL.RPN in e2e_mask_rcnn_R_50_FPN_1x and defaults.py):
- per level and image: sigmoid, the top PRE_NMS_TOP_N_TRAIN 2000 (test 1000) by score,
  decoded with weights (1, 1, 1, 1), clipped to the image, boxes under MIN_SIZE 0 pixels
  dropped, NMS at NMS_THRESH 0.7, the best POST_NMS_TOP_N_TRAIN 2000 (test 1000) kept;
- over the levels: in training the top FPN_POST_NMS_TOP_N_TRAIN 2000 *per batch* (the
  reference ranks all images' proposals together, which v0.5 did; later versions added
  FPN_POST_NMS_PER_BATCH False), in test FPN_POST_NMS_TOP_N_TEST 1000 per image;
- in training the ground-truth boxes are appended to each image's proposals.

The loss (RPNLossComputation): anchors matched to ground truth at FG_IOU_THRESHOLD 0.7 /
BG_IOU_THRESHOLD 0.3 with low-quality matches allowed, anchors not visible (STRADDLE_THRESH 0,
see anchors.py) or between the thresholds ignored, BATCH_SIZE_PER_IMAGE 256 sampled per image
with POSITIVE_FRACTION 0.5; binary cross-entropy on the sampled anchors (mean) and smooth L1
with beta 1/9 on the positives, summed and divided by the number sampled.

Box arithmetic (IoU, encoding, clipping) is ops.py's, torchvision's convention (a box is
x2 - x1 pixels wide); maskrcnn-benchmark counts x2 - x1 + 1. The difference is a pixel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from references.maskrcnn import ops
from references.maskrcnn.anchors import AnchorGenerator

RPN_BOX_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
RPN_SMOOTH_L1_BETA = 1.0 / 9


class RPNHead(nn.Module):
    """3x3 conv + ReLU, then 1x1 objectness logits (A) and 1x1 box deltas (4A), shared by all
    levels; weights N(0, 0.01), biases 0, as the reference."""

    def __init__(self, channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(channels, 4 * num_anchors, 1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: objectness [N, A, H, W] and deltas [N, 4A, H, W]."""
        logits, deltas = [], []
        for x in features:
            t = F.relu(self.conv(x))
            logits.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return logits, deltas


def flatten_level(x: Tensor, channels: int) -> Tensor:
    """[N, A * C, H, W] -> [N, H * W * A, C], the anchors' (row, column, anchor) order."""
    n, _, height, width = x.shape
    return x.view(n, -1, channels, height, width).permute(0, 3, 4, 1, 2).reshape(n, -1, channels)


def anchor_targets(anchors: Tensor, visible: Tensor, gt_boxes: Tensor, matcher: ops.Matcher,
                   box_coder: ops.BoxCoder) -> tuple[Tensor, Tensor]:
    """One image's anchor labels (float: 1 object, 0 background, -1 ignored) and regression
    targets [A, 4] (meaningful where the label is 1).

    Matching uses every anchor, visible or not (so a ground truth whose best anchor straddles
    the border gets no low-quality positive), as the reference; an image without ground truth
    has only background.
    """
    if gt_boxes.numel() == 0:
        labels = torch.zeros(anchors.shape[0], dtype=torch.float32, device=anchors.device)
        labels[~visible] = -1
        return labels, torch.zeros_like(anchors)
    matched = matcher(ops.box_iou(gt_boxes, anchors))
    labels = (matched >= 0).to(torch.float32)
    labels[~visible] = -1
    labels[matched == ops.Matcher.BETWEEN_THRESHOLDS] = -1
    targets = box_coder.encode_single(gt_boxes[matched.clamp(min=0)], anchors)
    return labels, targets


class RegionProposalNetwork(nn.Module):
    """Features -> (proposals per image [k, 4], losses in training)."""

    def __init__(self, channels: int, anchor_generator: AnchorGenerator | None = None, *,
                 pre_nms_top_n_train: int = 2000, post_nms_top_n_train: int = 2000,
                 fpn_post_nms_top_n_train: int = 2000, pre_nms_top_n_test: int = 1000,
                 post_nms_top_n_test: int = 1000, fpn_post_nms_top_n_test: int = 1000,
                 nms_thresh: float = 0.7, min_size_px: float = 0.0,
                 fg_iou_thresh: float = 0.7, bg_iou_thresh: float = 0.3,
                 batch_size_per_image: int = 256, positive_fraction: float = 0.5) -> None:
        super().__init__()
        self.anchor_generator = AnchorGenerator() if anchor_generator is None else \
            anchor_generator
        self.head = RPNHead(channels, self.anchor_generator.num_anchors_per_location)
        self.top_n = {True: (pre_nms_top_n_train, post_nms_top_n_train, fpn_post_nms_top_n_train),
                      False: (pre_nms_top_n_test, post_nms_top_n_test, fpn_post_nms_top_n_test)}
        self.nms_thresh, self.min_size_px = nms_thresh, min_size_px
        self.box_coder = ops.BoxCoder(RPN_BOX_WEIGHTS)
        self.matcher = ops.Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.sampler = ops.BalancedPositiveNegativeSampler(batch_size_per_image,
                                                           positive_fraction)

    def forward(self, features: Sequence[Tensor], image_sizes: Sequence[tuple[int, int]],
                targets: Sequence[Mapping[str, Tensor]] | None = None
                ) -> tuple[list[Tensor], dict[str, Tensor]]:
        logits, deltas = self.head(features)
        anchors = self.anchor_generator.grid_anchors([f.shape[-2:] for f in features])
        logits = [flatten_level(x, 1).squeeze(2) for x in logits]     # [N, HWA] per level
        deltas = [flatten_level(x, 4) for x in deltas]                # [N, HWA, 4] per level
        with torch.no_grad():
            proposals = self.select_proposals(anchors, [x.detach() for x in logits],
                                              [x.detach() for x in deltas], image_sizes)
        if not self.training:
            return proposals, {}
        if targets is None:
            raise ValueError("the RPN needs targets in training mode")
        proposals = [torch.cat((p, t["boxes"].to(p))) for p, t in zip(proposals, targets)]
        losses = self.loss(torch.cat(anchors), torch.cat(logits, 1), torch.cat(deltas, 1),
                           image_sizes, targets)
        return proposals, losses

    def select_proposals(self, anchors: Sequence[Tensor], logits: Sequence[Tensor],
                         deltas: Sequence[Tensor], image_sizes: Sequence[tuple[int, int]]
                         ) -> list[Tensor]:
        """Per image, the proposals [k, 4] the reference's RPNPostProcessor keeps (see the
        module docstring); in training ordered by level then score, in test by score."""
        pre_nms, post_nms, fpn_post_nms = self.top_n[self.training]
        boxes: list[list[Tensor]] = [[] for _ in image_sizes]
        scores: list[list[Tensor]] = [[] for _ in image_sizes]
        for level_anchors, level_logits, level_deltas in zip(anchors, logits, deltas):
            top_scores, top_idx = level_logits.sigmoid().topk(
                min(pre_nms, level_logits.shape[1]), dim=1, sorted=True)
            for i, size in enumerate(image_sizes):
                decoded = self.box_coder.decode_single(level_deltas[i, top_idx[i]],
                                                       level_anchors[top_idx[i]])
                decoded = ops.clip_boxes_to_image(decoded, size)
                keep = ops.remove_small_boxes(decoded, self.min_size_px)
                decoded, kept_scores = decoded[keep], top_scores[i, keep]
                keep = ops.nms(decoded, kept_scores, self.nms_thresh)[:post_nms]
                boxes[i].append(decoded[keep])
                scores[i].append(kept_scores[keep])
        per_image = [torch.cat(b) for b in boxes]
        per_image_scores = [torch.cat(s) for s in scores]
        if self.training:   # FPN_POST_NMS_TOP_N_TRAIN over the whole batch, as v0.5
            joined = torch.cat(per_image_scores)
            chosen = torch.zeros_like(joined, dtype=torch.bool)
            chosen[joined.topk(min(fpn_post_nms, joined.numel()), sorted=True).indices] = True
            return [b[c] for b, c in zip(per_image, chosen.split([len(s) for s in
                                                                   per_image_scores]))]
        return [b[s.topk(min(fpn_post_nms, s.numel()), sorted=True).indices]
                for b, s in zip(per_image, per_image_scores)]

    def loss(self, anchors: Tensor, logits: Tensor, deltas: Tensor,
             image_sizes: Sequence[tuple[int, int]], targets: Sequence[Mapping[str, Tensor]]
             ) -> dict[str, Tensor]:
        """loss_objectness and loss_rpn_box_reg over the anchors sampled in each image."""
        labels, regression = [], []
        for size, target in zip(image_sizes, targets):
            visible = self.anchor_generator.visible(anchors, size)
            image_labels, image_regression = anchor_targets(
                anchors, visible, target["boxes"].to(anchors), self.matcher, self.box_coder)
            labels.append(image_labels)
            regression.append(image_regression)
        positive, negative = self.sampler(labels)
        positive = torch.where(torch.cat(positive).bool())[0]
        sampled = torch.cat((positive, torch.where(torch.cat(negative).bool())[0]))
        labels_all, regression_all = torch.cat(labels), torch.cat(regression)
        box_loss = F.smooth_l1_loss(deltas.reshape(-1, 4)[positive], regression_all[positive],
                                    beta=RPN_SMOOTH_L1_BETA, reduction="sum")
        objectness = F.binary_cross_entropy_with_logits(logits.reshape(-1)[sampled],
                                                        labels_all[sampled])
        return {"loss_objectness": objectness,
                "loss_rpn_box_reg": box_loss / max(sampled.numel(), 1)}
